// Fast answers for the two hottest reads, GET /api/auth/get-session and GET /api/auth/token.
// Better Auth 1.7 rebuilds its whole router inside the handler on every request and builds the
// session+user query through Kysely each time (together most of its ~1 ms of CPU per get-session).
// For the common case (a validly signed session cookie, a live session, no refresh due, no options)
// these answer with one prepared statement and the same JSON; every other case returns null and
// Better Auth answers as usual. With the cookie cache on (its default "compact" format), get-session
// also answers from a valid signed session_data cookie without any lookup when the change notices
// vouch for it (src/session/change-notices.ts), and sets that cookie after a lookup, as Better Auth does. test/session/fast-session.test.ts proves the answers identical.
import { symmetricDecrypt } from "better-auth/crypto";
import { getAuthTables } from "better-auth/db";
import { signJWT, toExpJWT as toExp } from "better-auth/plugins";
import type { JwtOptions } from "better-auth/plugins";
import { parseCookies, serializeCookie } from "better-call";
import { importJWK } from "jose";
import type { Auth } from "../auth/better-auth.ts";
import { readCacheCookie, trustedCopy } from "./cache-trust.ts";
import type { ChangeNotices } from "./change-notices.ts";
import type { Sql } from "../db/pool.ts";
import type { Logger } from "../ops/log.ts";
import { noteRequestUser } from "../ops/observe.ts";
import type { CachedSessionAnswer } from "./memo.ts";
import { cacheCookieSignature, isSignedBy, splitSignedValue } from "./signed-cookie.ts";

export interface SessionFastPath {
  /** The get-session answer, or null when Better Auth must answer. */
  getSession(request: Request): Promise<Response | null>;
  /** When getSession answered `request` from a valid cache cookie: that answer (src/session/memo.ts). */
  cachedAnswerFor(request: Request): CachedSessionAnswer | undefined;
  /** The /token answer, or null when Better Auth must answer. */
  token(request: Request): Promise<Response | null>;
}

type Field = { key: string; column: string };
type SessionPair = { session: Record<string, unknown>; user: Record<string, unknown> };

// Better Auth's own spelling of the JSON type, so that its answers and the fast path's carry the same header.
const JSON_HEADERS = { "content-type": "application/json" };
// Better Auth marks get-session answers uncacheable; so does the fast path.
const SESSION_HEADERS = { ...JSON_HEADERS, "cache-control": "no-store", pragma: "no-cache" };
// Better Auth splits a cookie whose Set-Cookie line would pass this many bytes into chunks; the fast
// path leaves those to it.
const MAX_COOKIE_BYTES = 4050;
// How long a decrypted, imported signing key is reused before the jwks table is read again; a
// rotated key is picked up within this time (old keys stay in the JWKS for their grace period).
const SIGNING_KEY_TTL_MS = 60_000;
// Value types the lookup returns exactly as Better Auth's adapter does; anything else (json,
// bigint, arrays from future plugins) switches the fast path off rather than risk a different answer.
const PLAIN_TYPES = new Set(["string", "boolean", "date", "number"]);
// A JWT minted for a session is handed out again for at most this long (or a quarter of its
// lifetime, if shorter) while the session and the user row are unchanged (and no change notice for
// either came after it was minted): clients that ask for a token before every API call cost one lookup
// instead of an RSA signature each time. The session is still looked up on every request, so a revoked
// session never gets a cached token.
const TOKEN_REUSE_MS = 60_000;
const TOKEN_CACHE_ENTRIES = 10_000;

const quote = (identifier: string) => `"${identifier.replaceAll('"', '""')}"`;

function outputFields(table: { fields: Record<string, { type: unknown; fieldName?: string; returned?: boolean; bigint?: boolean }> }): Field[] | null {
  const fields: Field[] = [{ key: "id", column: "id" }];
  for (const [key, field] of Object.entries(table.fields)) {
    if (field.returned === false) continue;
    if (typeof field.type !== "string" || !PLAIN_TYPES.has(field.type) || field.bigint) return null;
    fields.push({ key, column: field.fieldName ?? key });
  }
  return fields;
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
  const tables = getAuthTables(options) as Record<string, any>;
  const sessionFields = outputFields(tables.session);
  const userFields = outputFields(tables.user);
  if (!sessionFields || !userFields) {
    logger.debug("session fast path off: the session or user schema has fields it does not map");
    return null;
  }
  const column = (model: string, key: string) => quote(tables[model].fields[key].fieldName ?? key);
  const lookupText =
    `select ${[...sessionFields.map((f, i) => `s.${quote(f.column)} as s${i}`), ...userFields.map((f, i) => `u.${quote(f.column)} as u${i}`)].join(", ")}` +
    ` from ${quote(tables.session.modelName)} s join ${quote(tables.user.modelName)} u on u.id = s.${column("session", "userId")}` +
    ` where s.${column("session", "token")} = $1`;

  const cookies = context.authCookies;
  const secret = context.secret;
  const { expiresIn, updateAge } = context.sessionConfig;

  /**
   * The session token of a request that the fast path may answer, and its cookies, or null. A
   * session_data cookie is only acceptable where the caller handles it (get-session with the cache on).
   */
  function sessionTokenOf(request: Request, sessionDataAllowed: boolean): { token: string; jar: Map<string, string> } | null {
    if (request.headers.has("authorization")) return null; // bearer plugin: Better Auth converts it
    if (request.url.includes("?")) return null; // disableRefresh, disableCookieCache, ...
    const header = request.headers.get("cookie");
    if (!header) return null;
    const jar = parseCookies(header);
    if (jar.has(cookies.dontRememberToken.name)) return null;
    if (!sessionDataAllowed) for (const name of jar.keys()) if (name.startsWith(cookies.sessionData.name)) return null;
    const value = jar.get(cookies.sessionToken.name);
    if (!value) return null;
    const signed = splitSignedValue(value);
    return signed && isSignedBy(secret, signed.value, signed.signature) ? { token: signed.value, jar } : null;
  }

  /** The live session and its user, as Better Auth's get-session returns them, or null. */
  async function lookup(token: string): Promise<SessionPair | null> {
    const [row] = await sql.unsafe(lookupText, [token], { prepare: true });
    if (!row) return null;
    const pair: SessionPair = { session: {}, user: {} };
    sessionFields!.forEach((field, i) => (pair.session[field.key] = row[`s${i}`]));
    userFields!.forEach((field, i) => (pair.user[field.key] = row[`u${i}`]));
    const expiresAt = (pair.session.expiresAt as Date).getTime();
    const now = Date.now();
    if (expiresAt <= now) return null; // expired: Better Auth deletes it and clears the cookie
    if (expiresAt - expiresIn * 1000 + updateAge * 1000 <= now) return null; // refresh due: Better Auth slides it
    noteRequestUser(pair.user.id);
    return pair;
  }

  // The cookie cache, "compact" strategy as Better Auth 1.7 writes it (cookies/index.mjs
  // setCookieCache): base64url(JSON {session: payload, expiresAt, signature}), the signature over
  // JSON {...payload, expiresAt} (src/session/signed-cookie.ts).
  const cacheMaxAge: number = cookieCache?.maxAge ?? 300;

  /**
   * The session a valid, current session_data cookie holds for `token`, until when the cookie proves
   * it and when it was written, or null (Better Auth decides). A copy the change notices do not vouch
   * for (src/session/change-notices.ts) is null too: Better Auth then reads the rows.
   */
  function cachedPair(jar: Map<string, string>, token: string): { pair: SessionPair; validUntil: number; issuedAt: number } | null {
    const value = jar.get(cookies.sessionData.name);
    const cached = value ? readCacheCookie(value, secret, cacheMaxAge) : null;
    if (!cached) return null;
    const payload = cached.payload;
    const now = Date.now();
    const sessionExpiresAt = new Date(payload.session.expiresAt as string).getTime();
    if (payload.session.token !== token || (payload.version ?? "1") !== "1") return null;
    if (cached.expiresAt < now || !(sessionExpiresAt >= now)) return null;
    if (!trustedCopy(cached, notices)) return null;
    noteRequestUser(payload.user.id);
    return { pair: { session: payload.session, user: payload.user }, validUntil: Math.min(cached.expiresAt, sessionExpiresAt), issuedAt: cached.issuedAt };
  }

  /** The Set-Cookie line of a fresh session_data cookie for `pair`, or null when it would need chunks. */
  function cacheCookie(pair: SessionPair): string | null {
    const payload = { session: pair.session, user: pair.user, updatedAt: Date.now(), version: "1" };
    const expiresAt = Date.now() + cacheMaxAge * 1000;
    const signature = cacheCookieSignature(secret, JSON.stringify({ ...payload, expiresAt }));
    const value = Buffer.from(JSON.stringify({ session: payload, expiresAt, signature })).toString("base64url");
    const line = serializeCookie(cookies.sessionData.name, value, { ...cookies.sessionData.attributes, maxAge: cacheMaxAge } as never);
    return line.length > MAX_COOKIE_BYTES ? null : line;
  }

  const jwtPlugin = options.plugins?.find((plugin: { id: string }) => plugin.id === "jwt") as { options?: JwtOptions } | undefined;
  const jwtOptions = jwtPlugin?.options;
  const tokenFastPath = Boolean(jwtPlugin && !jwtOptions?.jwt?.sign && !jwtOptions?.jwks?.remoteUrl && !jwtOptions?.adapter);
  const algorithm = jwtOptions?.jwks?.keyPairConfig?.alg ?? "EdDSA";
  const jwksTable = tables.jwks;
  const keyQuery = jwksTable
    ? `select id, ${column("jwks", "privateKey")} as private_key, ${column("jwks", "alg")} as alg from ${quote(jwksTable.modelName)}` +
      ` where (${column("jwks", "alg")} = $1 or ${column("jwks", "alg")} is null)` +
      ` and (${column("jwks", "expiresAt")} is null or ${column("jwks", "expiresAt")} > now())` +
      ` order by ${column("jwks", "createdAt")} desc limit 1`
    : "";
  let signingKey: { value: Promise<{ alg: string; kid: string; privateKey: CryptoKey | Uint8Array } | null>; loadedAt: number } | undefined;

  async function loadSigningKey() {
    const [row] = await sql.unsafe(keyQuery, [algorithm], { prepare: true });
    if (!row) return null; // no key yet: Better Auth mints one
    const privateJwk = jwtOptions?.jwks?.disablePrivateKeyEncryption
      ? row.private_key
      : await symmetricDecrypt({ key: context.secretConfig, data: JSON.parse(row.private_key) });
    const alg = row.alg ?? algorithm;
    return { alg, kid: row.id as string, privateKey: (await importJWK(JSON.parse(privateJwk), alg)) as CryptoKey | Uint8Array };
  }

  function currentSigningKey() {
    if (!signingKey || Date.now() - signingKey.loadedAt > SIGNING_KEY_TTL_MS) {
      const value = loadSigningKey();
      signingKey = { value, loadedAt: Date.now() };
      value.catch(() => (signingKey = undefined));
    }
    return signingKey.value;
  }

  type Minted = { jwt: string; version: string; reuseUntil: number; mintedAt: number };
  const minted = new Map<string, Minted>();
  const remember = (token: string, entry: Minted) => {
    minted.delete(token);
    minted.set(token, entry);
    if (minted.size > TOKEN_CACHE_ENTRIES) minted.delete(minted.keys().next().value!);
  };
  const lifetimeMs = () => {
    const configured = jwtOptions?.jwt?.expirationTime ?? "15m";
    const iat = Math.floor(Date.now() / 1000);
    return typeof configured === "string" ? (toExp(configured, iat) - iat) * 1000 : 0;
  };
  const reuseMs = Math.min(TOKEN_REUSE_MS, lifetimeMs() / 4);

  const cachedAnswers = new WeakMap<Request, CachedSessionAnswer>();
  return {
    cachedAnswerFor: (request) => cachedAnswers.get(request),
    async getSession(request) {
      const found = sessionTokenOf(request, Boolean(cookieCache));
      if (!found) return null;
      if (cookieCache) {
        for (const name of found.jar.keys()) if (name.startsWith(`${cookies.sessionData.name}.`)) return null; // chunked
        if (found.jar.has(cookies.sessionData.name)) {
          const cached = cachedPair(found.jar, found.token);
          if (!cached) return null;
          const body = JSON.stringify(cached.pair);
          cachedAnswers.set(request, { body, validUntil: cached.validUntil, userId: cached.pair.user.id as string, sessionId: cached.pair.session.id as string, issuedAt: cached.issuedAt });
          return new Response(body, { headers: SESSION_HEADERS });
        }
      }
      const pair = await lookup(found.token);
      if (!pair) return null;
      if (!cookieCache) return new Response(JSON.stringify(pair), { headers: SESSION_HEADERS });
      const setCookie = cacheCookie(pair);
      if (!setCookie) return null;
      return new Response(JSON.stringify(pair), { headers: { ...SESSION_HEADERS, "set-cookie": setCookie } });
    },
    async token(request) {
      if (!tokenFastPath) return null;
      // The fast /token reads the session row; when it is gone Better Auth answers (and it honours the cookie cache).
      const found = sessionTokenOf(request, Boolean(cookieCache));
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
      if (reuseMs > 0) remember(sessionToken, { jwt, version, reuseUntil: Date.now() + reuseMs, mintedAt });
      return new Response(JSON.stringify({ token: jwt }), { headers: JSON_HEADERS });
    },
  };
}
