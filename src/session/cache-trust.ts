// Better Auth's session cookie cache (session_data, "compact" strategy) read and checked against the
// change notices (src/session/change-notices.ts). Better Auth 1.7 trusts a validly signed session_data cookie
// in get-session and in every endpoint that reads the session (its session middleware calls
// get-session), so a revoked session's cached copy would still update the profile, list sessions or
// create organizations. Before a request reaches Better Auth, a session_data cookie that the notices
// do not vouch for is removed from it: Better Auth then reads the rows (and sets a fresh cookie).
import { parseCookies } from "better-call";
import type { Auth } from "../auth/better-auth.ts";
import type { ChangeNotices } from "./change-notices.ts";
import { isCacheCookieSignedBy } from "./signed-cookie.ts";

export interface CacheCookie {
  payload: { session: Record<string, unknown>; user: Record<string, unknown>; version?: string; updatedAt?: number };
  /** Epoch ms the cookie stops proving the session. */
  expiresAt: number;
  /** Epoch ms the cookie was written (by the writing instance's clock). */
  issuedAt: number;
}

/** The signed content of a compact session_data cookie value, or null (bad encoding or signature). */
export function readCacheCookie(value: string, secret: string, maxAgeSeconds: number): CacheCookie | null {
  let cached: { session?: CacheCookie["payload"]; expiresAt?: number; signature?: string };
  try {
    cached = JSON.parse(Buffer.from(value, "base64url").toString("utf8"));
  } catch {
    return null;
  }
  const payload = cached?.session;
  if (!payload?.session || !payload.user || typeof cached.expiresAt !== "number" || typeof cached.signature !== "string") return null;
  if (!isCacheCookieSignedBy(secret, JSON.stringify({ ...payload, expiresAt: cached.expiresAt }), cached.signature)) return null;
  // Better Auth writes updatedAt (Date.now()) into every copy; without it, the latest possible issue time.
  const issuedAt = typeof payload.updatedAt === "number" ? payload.updatedAt : cached.expiresAt - maxAgeSeconds * 1000;
  return { payload, expiresAt: cached.expiresAt, issuedAt };
}

/** True when `cookie` is a copy the change notices vouch for. */
export function trustedCopy(cookie: CacheCookie, notices: ChangeNotices): boolean {
  const sessionId = cookie.payload.session.id;
  const userId = cookie.payload.user.id;
  return typeof sessionId === "string" && typeof userId === "string" && notices.trusts(sessionId, userId, cookie.issuedAt);
}

/**
 * A function that returns the request unchanged when it carries no session_data cookie, or one the
 * notices vouch for; otherwise a copy without any session_data cookie (chunked ones included).
 */
export async function createCacheCookieFilter(auth: Auth, notices: ChangeNotices): Promise<(request: Request) => Request> {
  const context = await auth.$context;
  const name = context.authCookies.sessionData.name;
  const secret = context.secret;
  const session = auth.options.session as { cookieCache?: { enabled?: boolean; maxAge?: number } } | undefined;
  const maxAge = session?.cookieCache?.maxAge ?? 300;
  return (request) => {
    const header = request.headers.get("cookie");
    if (!header || !header.includes(name)) return request;
    const jar = parseCookies(header);
    let names = 0;
    for (const cookie of jar.keys()) if (cookie.startsWith(name)) names++;
    if (names === 0) return request;
    const value = jar.get(name);
    const cookie = names === 1 && value ? readCacheCookie(value, secret, maxAge) : null;
    if (cookie && trustedCopy(cookie, notices)) return request;
    const kept = header
      .split(";")
      .filter((part) => !part.trim().startsWith(name))
      .join(";");
    const headers = new Headers(request.headers);
    if (kept.trim()) headers.set("cookie", kept);
    else headers.delete("cookie");
    return new Request(request, { headers });
  };
}
