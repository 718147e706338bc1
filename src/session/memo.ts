// Repeated get-sessions from the cookie cache, answered without verifying the same cookie again.
// A browser sends the same session_data cookie for up to SESSION_COOKIE_CACHE (5 minutes) and asks
// get-session on every page and focus; the first request is answered by the whole app (Elysia, CORS,
// the fast path's signature check), and its answer (body and headers) is kept for what that answer
// depended on: the session_token and session_data cookie values and the Origin (which must be absent or
// one of the trusted origins). Other cookies are not part of the key: the fast path reads no other
// cookie, so junk cookies neither change the answer nor make a new entry. The entry ends when the cache
// cookie or the session in it expires, whichever is first, so nothing is answered that the fast path
// would have refused: the memo changes the cost of a repeated answer, never the answer
// (test/session/session-memo.test.ts).
//
// Its memory is bounded three ways, so that no client can inflate it or push others out: a key longer
// than a session cookie pair is never kept, the entries' estimated bytes and their number have a cap
// (the oldest go first), and one user keeps at most a few entries (their oldest go first), however
// many origins, sessions or fresh cache cookies they present.
import { parseCookies } from "better-call";

/** What the fast path learnt while answering a get-session from a valid cache cookie. */
export interface CachedSessionAnswer {
  body: string;
  /** Epoch ms after which the cookie no longer proves the session. */
  validUntil: number;
  userId: string;
  sessionId: string;
  /** Epoch ms the cache cookie was written: the app asks the change notices before replaying (src/session/change-notices.ts). */
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
  key: string;
  validUntil: number;
  bytes: number;
}

export const SESSION_MEMO_ENTRIES = 5_000;
// The estimated bytes of all entries together (see ENTRY_OVERHEAD_BYTES); past it the oldest go first.
export const SESSION_MEMO_BYTES = 12 * 1024 * 1024;
// A user with a few browsers, each on a trusted origin or two, fits; one client cycling through
// sessions or fresh cache cookies only replaces its own entries.
export const SESSION_MEMO_ENTRIES_PER_USER = 8;
// The longest key kept: a session_data cookie Better Auth writes without chunks is under 4,050 bytes
// (larger ones are chunked, and chunked cookies are never kept), plus the token cookie and an origin.
export const SESSION_MEMO_MAX_KEY = 4_600;
// What an entry costs besides its strings (the Map slot, the entry and closure, the Headers object):
// about 800 bytes on Bun 1.4's heap, doubled for margin; test/session/session-memo.test.ts checks the heap.
const ENTRY_OVERHEAD_BYTES = 1_536;
// Set per request by the observer or Bun, never replayed from the first answer.
const PER_REQUEST_HEADERS = new Set(["x-request-id", "date", "content-length", "set-cookie"]);

export interface SessionMemoOptions {
  /** The cookie names the fast path reads (Better Auth's `getCookies(options)`). */
  cookies: { sessionToken: { name: string }; sessionData: { name: string }; dontRememberToken: { name: string } };
  /** The origins whose requests may be kept (CORS_ORIGINS); a request with another Origin is never kept. */
  trustedOrigins: readonly string[];
  maxEntries?: number;
  maxBytes?: number;
  maxEntriesPerUser?: number;
}

export interface SessionMemo {
  /** The kept answer for this request, or null (the app must answer). */
  lookup(request: Request): MemoHit | null;
  /** Keeps `response`, the app's answer to `request`, which the fast path gave from `answer`. */
  remember(request: Request, response: Response, answer: CachedSessionAnswer): void;
  readonly size: number;
  /** The estimated bytes the entries hold (at most `maxBytes`). */
  readonly bytes: number;
}

// Strings of two-byte characters count double; headers and keys are ASCII, a body may not be.
const stringBytes = (text: string) => (/[^\x00-\xff]/.test(text) ? 2 : 1) * text.length;

export function createSessionMemo({
  cookies,
  trustedOrigins,
  maxEntries = SESSION_MEMO_ENTRIES,
  maxBytes = SESSION_MEMO_BYTES,
  maxEntriesPerUser = SESSION_MEMO_ENTRIES_PER_USER,
}: SessionMemoOptions): SessionMemo {
  const trusted = new Set(trustedOrigins);
  const tokenName = cookies.sessionToken.name;
  const dataName = cookies.sessionData.name;
  const chunkPrefix = `${dataName}.`;
  const dontRemember = cookies.dontRememberToken.name;

  /**
   * The memo key of a request whose answer may be kept: a plain GET with no query, a trusted or no
   * Origin, and exactly the cookies the fast path answers from the cache with. The cookies are read as
   * the fast path reads them (better-call's parseCookies: the first of two same-named cookies).
   */
  function keyOf(request: Request): string | null {
    if (request.method !== "GET" || request.url.includes("?")) return null;
    const headers = request.headers;
    // The bearer plugin turns Authorization into the session; a body is not part of a get-session.
    if (headers.has("authorization") || headers.has("content-length") || headers.has("transfer-encoding")) return null;
    const origin = headers.get("origin");
    if (origin !== null && !trusted.has(origin)) return null;
    const header = headers.get("cookie");
    if (!header) return null;
    const jar = parseCookies(header);
    const token = jar.get(tokenName);
    const data = jar.get(dataName);
    if (!token || !data || jar.has(dontRemember)) return null;
    for (const name of jar.keys()) if (name.startsWith(chunkPrefix)) return null; // the fast path leaves chunks to Better Auth
    const key = `${origin ?? ""}\n${token}\n${data}`;
    return key.length > SESSION_MEMO_MAX_KEY ? null : key;
  }

  const entries = new Map<string, Entry>();
  const byUser = new Map<string, Set<string>>();
  let bytes = 0;

  function drop(entry: Entry) {
    entries.delete(entry.key);
    bytes -= entry.bytes;
    const keys = byUser.get(entry.userId);
    keys?.delete(entry.key);
    if (keys?.size === 0) byUser.delete(entry.userId);
  }

  return {
    lookup(request) {
      if (entries.size === 0) return null; // the cookie cache is off, or nothing answered from it yet
      const key = keyOf(request);
      const entry = key === null ? undefined : entries.get(key);
      if (!entry) return null;
      if (Date.now() >= entry.validUntil) {
        drop(entry);
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
      let headerBytes = 0;
      response.headers.forEach((value, name) => {
        if (PER_REQUEST_HEADERS.has(name)) return;
        headers.append(name, value);
        headerBytes += name.length + value.length;
      });
      const { body, validUntil, userId, sessionId, issuedAt } = answer;
      const size = key.length + stringBytes(body) + headerBytes + userId.length + ENTRY_OVERHEAD_BYTES;
      if (size > maxBytes) return;
      const previous = entries.get(key);
      if (previous) drop(previous);
      const entry: Entry = { key, userId, sessionId, issuedAt, validUntil, bytes: size, response: () => new Response(body, { headers }) };
      entries.set(key, entry);
      bytes += size;
      let keys = byUser.get(userId);
      if (!keys) byUser.set(userId, (keys = new Set()));
      keys.add(key);
      if (keys.size > maxEntriesPerUser) drop(entries.get(keys.values().next().value!)!);
      while (entries.size > maxEntries || bytes > maxBytes) drop(entries.values().next().value!);
    },
    get size() {
      return entries.size;
    },
    get bytes() {
      return bytes;
    },
  };
}
