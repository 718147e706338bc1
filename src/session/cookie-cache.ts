// The cookie cache, "compact" strategy as Better Auth 1.7 writes it (cookies/index.mjs
// setCookieCache): base64url(JSON {session: payload, expiresAt, signature}), the signature over
// JSON {...payload, expiresAt} (src/session/signed-cookie.ts). Read and written here.
import { serializeCookie } from "better-call";
import { readCacheCookie, trustedCopy } from "./cache-trust.ts";
import type { ChangeNotices } from "./change-notices.ts";
import { noteRequestUser } from "../ops/observe.ts";
import type { SessionPair } from "./session-lookup.ts";
import { cacheCookieSignature } from "./signed-cookie.ts";

// Better Auth splits a cookie whose Set-Cookie line would pass this many bytes into chunks; the fast
// path leaves those to it.
const MAX_COOKIE_BYTES = 4050;

type CookieSpec = { name: string; attributes: Record<string, unknown> };

export interface CookieCache {
  /**
   * The session a valid, current session_data cookie holds for `token`, until when the cookie proves
   * it and when it was written, or null (Better Auth decides). A copy the change notices do not vouch
   * for (src/session/change-notices.ts) is null too: Better Auth then reads the rows.
   */
  read(jar: Map<string, string>, token: string): { pair: SessionPair; validUntil: number; issuedAt: number } | null;
  /** The Set-Cookie line of a fresh session_data cookie for `pair`, or null when it would need chunks. */
  write(pair: SessionPair): string | null;
}

export function createCookieCache(sessionData: CookieSpec, secret: string, maxAge: number, notices: ChangeNotices): CookieCache {
  return {
    read(jar, token) {
      const value = jar.get(sessionData.name);
      const cached = value ? readCacheCookie(value, secret, maxAge) : null;
      if (!cached) return null;
      const payload = cached.payload;
      const now = Date.now();
      const sessionExpiresAt = new Date(payload.session.expiresAt as string).getTime();
      if (payload.session.token !== token || (payload.version ?? "1") !== "1") return null;
      if (cached.expiresAt < now || !(sessionExpiresAt >= now)) return null;
      if (!trustedCopy(cached, notices)) return null;
      noteRequestUser(payload.user.id);
      return { pair: { session: payload.session, user: payload.user }, validUntil: Math.min(cached.expiresAt, sessionExpiresAt), issuedAt: cached.issuedAt };
    },
    write(pair) {
      const payload = { session: pair.session, user: pair.user, updatedAt: Date.now(), version: "1" };
      const expiresAt = Date.now() + maxAge * 1000;
      const signature = cacheCookieSignature(secret, JSON.stringify({ ...payload, expiresAt }));
      const value = Buffer.from(JSON.stringify({ session: payload, expiresAt, signature })).toString("base64url");
      const line = serializeCookie(sessionData.name, value, { ...sessionData.attributes, maxAge } as never);
      return line.length > MAX_COOKIE_BYTES ? null : line;
    },
  };
}
