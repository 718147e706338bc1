// Fast answers for the two hottest reads, GET /api/auth/get-session and GET /api/auth/token.
// Better Auth 1.7 rebuilds its whole router inside the handler on every request and builds the
// session+user query through Kysely each time (together most of its ~1 ms of CPU per get-session).
// For the common case (a validly signed session cookie, a live session, no refresh due, no options)
// these answer with one prepared statement and the same JSON; every other case returns null and
// Better Auth answers as usual. With the cookie cache on (its default "compact" format), get-session
// also answers from a valid signed session_data cookie without any lookup when the change notices
// vouch for it (src/session/change-notices.ts), and sets that cookie after a lookup, as Better Auth does. test/session/fast-session.test.ts proves the answers identical.
// The pieces: session-cookie-token.ts (the signed cookie), session-lookup.ts (the SQL), cookie-cache.ts,
// signing-key-cache.ts and jwt-memo.ts; this module composes them.
import { getAuthTables } from "better-auth/db";
import { signJWT, toExpJWT as toExp } from "better-auth/plugins";
import type { JwtOptions } from "better-auth/plugins";
import type { Auth } from "../auth/better-auth.ts";
import type { ChangeNotices } from "./change-notices.ts";
import type { Sql } from "../db/pool.ts";
import type { Logger } from "../ops/log.ts";
import { createCookieCache } from "./cookie-cache.ts";
import { createJwtMemo } from "./jwt-memo.ts";
import type { CachedSessionAnswer } from "./memo.ts";
import { createSessionTokenReader } from "./session-cookie-token.ts";
import { createSessionLookup, type AuthTables } from "./session-lookup.ts";
import { createSigningKeyCache } from "./signing-key-cache.ts";

export interface SessionFastPath {
  /** The get-session answer, or null when Better Auth must answer. */
  getSession(request: Request): Promise<Response | null>;
  /** When getSession answered `request` from a valid cache cookie: that answer (src/session/memo.ts). */
  cachedAnswerFor(request: Request): CachedSessionAnswer | undefined;
  /** The /token answer, or null when Better Auth must answer. */
  token(request: Request): Promise<Response | null>;
}

// Better Auth's own spelling of the JSON type, so that its answers and the fast path's carry the same header.
const JSON_HEADERS = { "content-type": "application/json" };
// Better Auth marks get-session answers uncacheable; so does the fast path.
const SESSION_HEADERS = { ...JSON_HEADERS, "cache-control": "no-store", pragma: "no-cache" };

/** The JWTs' lifetime in ms as the JWT plugin sets it (15 minutes unless configured). */
function jwtLifetimeMs(jwtOptions: JwtOptions | undefined): number {
  const configured = jwtOptions?.jwt?.expirationTime ?? "15m";
  const iat = Math.floor(Date.now() / 1000);
  return typeof configured === "string" ? (toExp(configured, iat) - iat) * 1000 : 0;
}

export async function createSessionFastPath(auth: Auth, sql: Sql, logger: Logger, notices: ChangeNotices): Promise<SessionFastPath | null> {
  const options = auth.options as typeof auth.options & Record<string, any>;
  const session = options.session as Record<string, any> | undefined;
  const cookieCache = session?.cookieCache?.enabled ? (session.cookieCache as Record<string, any>) : null;
  const cacheUnsupported = cookieCache && ((cookieCache.strategy ?? "compact") !== "compact" || cookieCache.version || cookieCache.refreshCache);
  if (cacheUnsupported || options.secondaryStorage || session?.deferSessionRefresh || session?.disableSessionRefresh) {
    logger.debug("session fast path off: cookie cache options, secondary storage or refresh options are set");
    return null;
  }
  const context = await auth.$context;
  const tables = getAuthTables(options) as AuthTables;
  const lookup = createSessionLookup(sql, tables, context.sessionConfig);
  if (!lookup) {
    logger.debug("session fast path off: the session or user schema has fields it does not map");
    return null;
  }
  const cookies = context.authCookies;
  const sessionTokenOf = createSessionTokenReader(cookies, context.secret);
  const cache = cookieCache ? createCookieCache(cookies.sessionData, context.secret, cookieCache.maxAge ?? 300, notices) : null;

  const jwtPlugin = options.plugins?.find((plugin: { id: string }) => plugin.id === "jwt") as { options?: JwtOptions } | undefined;
  const jwtOptions = jwtPlugin?.options;
  const tokenFastPath = Boolean(jwtPlugin && !jwtOptions?.jwt?.sign && !jwtOptions?.jwks?.remoteUrl && !jwtOptions?.adapter);
  const currentSigningKey = createSigningKeyCache(sql, tables, {
    algorithm: jwtOptions?.jwks?.keyPairConfig?.alg ?? "EdDSA",
    disablePrivateKeyEncryption: jwtOptions?.jwks?.disablePrivateKeyEncryption,
    secretConfig: context.secretConfig,
  });
  const minted = createJwtMemo(jwtLifetimeMs(jwtOptions));

  const cachedAnswers = new WeakMap<Request, CachedSessionAnswer>();
  return {
    cachedAnswerFor: (request) => cachedAnswers.get(request),
    async getSession(request) {
      const found = sessionTokenOf(request, Boolean(cache));
      if (!found) return null;
      if (cache) {
        for (const name of found.jar.keys()) if (name.startsWith(`${cookies.sessionData.name}.`)) return null; // chunked
        if (found.jar.has(cookies.sessionData.name)) {
          const cached = cache.read(found.jar, found.token);
          if (!cached) return null;
          const body = JSON.stringify(cached.pair);
          cachedAnswers.set(request, { body, validUntil: cached.validUntil, userId: cached.pair.user.id as string, sessionId: cached.pair.session.id as string, issuedAt: cached.issuedAt });
          return new Response(body, { headers: SESSION_HEADERS });
        }
      }
      const pair = await lookup(found.token);
      if (!pair) return null;
      if (!cache) return new Response(JSON.stringify(pair), { headers: SESSION_HEADERS });
      const setCookie = cache.write(pair);
      if (!setCookie) return null;
      return new Response(JSON.stringify(pair), { headers: { ...SESSION_HEADERS, "set-cookie": setCookie } });
    },
    async token(request) {
      if (!tokenFastPath) return null;
      // The fast /token reads the session row; when it is gone Better Auth answers (and it honours the cookie cache).
      const found = sessionTokenOf(request, Boolean(cache));
      const pair = found && (await lookup(found.token));
      if (!pair) return null;
      const sessionToken = pair.session.token as string;
      // The claims are built on every request (they may come from other rows, e.g. the member role
      // in the active organization): any change to them, the user row or a slid session mints a fresh token.
      const claims = jwtOptions?.jwt?.definePayload ? await jwtOptions.jwt.definePayload(pair as any) : pair.user;
      const version = `${(pair.user.updatedAt as Date).getTime()}:${(pair.session.expiresAt as Date).getTime()}:${JSON.stringify(claims)}`;
      const cached = minted.get(sessionToken);
      // The version misses changes that leave updated_at alone (a ban in SQL, say): the notices catch them.
      if (cached && cached.version === version && cached.reuseUntil > Date.now() && notices.trusts(pair.session.id as string, pair.user.id as string, cached.mintedAt)) {
        return new Response(JSON.stringify({ token: cached.jwt }), { headers: JSON_HEADERS });
      }
      const mintedAt = Date.now();
      const resolvedKey = await currentSigningKey();
      if (!resolvedKey) return null;
      const payload = { iat: Math.floor(Date.now() / 1000), ...claims, sub: (await jwtOptions?.jwt?.getSubject?.(pair as any)) ?? (pair.user.id as string) };
      const jwt = await signJWT({ context } as any, { options: jwtOptions, payload, resolvedKey } as any);
      if (minted.reuseMs > 0) minted.remember(sessionToken, { jwt, version, reuseUntil: Date.now() + minted.reuseMs, mintedAt });
      return new Response(JSON.stringify({ token: jwt }), { headers: JSON_HEADERS });
    },
  };
}
