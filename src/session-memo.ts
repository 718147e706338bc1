// Repeated get-sessions from the cookie cache, answered without verifying the same cookie again.
// A browser sends the same session_data cookie for up to SESSION_COOKIE_CACHE (5 minutes) and asks
// get-session on every page and focus; the first request is answered by the whole app (Elysia, CORS,
// the fast path's signature check), and its answer (body and headers) is kept for that exact request:
// the same Cookie header, byte for byte, and the same Origin. The entry ends when the cache cookie or
// the session in it expires, whichever is first, so nothing is answered that the fast path would have
// refused: the memo changes the cost of a repeated answer, never the answer (test/session-memo.test.ts).

/** What the fast path learnt while answering a get-session from a valid cache cookie. */
export interface CachedSessionAnswer {
  body: string;
  /** Epoch ms after which the cookie no longer proves the session. */
  validUntil: number;
  userId: string;
  sessionId: string;
  /** Epoch ms the cache cookie was written: the app asks the change notices before replaying (src/change-notices.ts). */
  issuedAt: number;
}

export interface MemoHit {
  userId: string;
  sessionId: string;
  issuedAt: number;
  /** A new Response with the kept body and headers. */
  response(): Response;
}

interface Entry extends MemoHit {
  validUntil: number;
}

// Bounds the memory: an entry is its key (the Cookie header, about 1.4 KB with the cache cookie) and
// the answer (under 1 KB), so at most about 12 MB. Past it the oldest entries go first.
export const SESSION_MEMO_ENTRIES = 5_000;
// Set per request by the observer or Bun, never replayed from the first answer.
const PER_REQUEST_HEADERS = new Set(["x-request-id", "date", "content-length", "set-cookie"]);

export interface SessionMemo {
  /** The kept answer for this request, or null (the app must answer). */
  lookup(request: Request): MemoHit | null;
  /** Keeps `response`, the app's answer to `request`, which the fast path gave from `answer`. */
  remember(request: Request, response: Response, answer: CachedSessionAnswer): void;
  readonly size: number;
}

/** The memo key of a request whose answer may be kept: a plain GET with cookies and no query. */
function keyOf(request: Request): string | null {
  if (request.method !== "GET" || request.url.includes("?")) return null;
  const headers = request.headers;
  // The bearer plugin turns Authorization into the session; a body is not part of a get-session.
  if (headers.has("authorization") || headers.has("content-length") || headers.has("transfer-encoding")) return null;
  const cookie = headers.get("cookie");
  if (!cookie) return null;
  return `${headers.get("origin") ?? ""}\n${cookie}`;
}

export function createSessionMemo(maxEntries = SESSION_MEMO_ENTRIES): SessionMemo {
  const entries = new Map<string, Entry>();
  return {
    lookup(request) {
      if (entries.size === 0) return null; // the cookie cache is off, or nothing answered from it yet
      const key = keyOf(request);
      const entry = key === null ? undefined : entries.get(key);
      if (!entry) return null;
      if (Date.now() >= entry.validUntil) {
        entries.delete(key!);
        return null;
      }
      return entry;
    },
    remember(request, response, answer) {
      const key = keyOf(request);
      if (key === null || response.status !== 200 || Date.now() >= answer.validUntil) return;
      // One Headers object, copied into each replay by the Response constructor: a third of the cost of
      // building the headers from a list on every replay (bench/RESULTS.md).
      const headers = new Headers();
      response.headers.forEach((value, name) => {
        if (!PER_REQUEST_HEADERS.has(name)) headers.append(name, value);
      });
      entries.delete(key);
      const { body, validUntil, userId, sessionId, issuedAt } = answer;
      entries.set(key, { userId, sessionId, issuedAt, validUntil, response: () => new Response(body, { headers }) });
      if (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
    },
    get size() {
      return entries.size;
    },
  };
}
