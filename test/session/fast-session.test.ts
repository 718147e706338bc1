// The get-session and /token fast paths (src/session/fast-path.ts) answer exactly as Better Auth does, and
// step aside for every case they do not own.
import { expect, test } from "bun:test";
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from "jose";
import { createSessionFastPath } from "../../src/session/fast-path.ts";
import { createTestApp, quietLogger, SITE_ORIGIN, signUp } from "../helpers.ts";

// These tests are about the database path; test/session/cookie-cache.test.ts covers the cookie cache.
const t = await createTestApp({ SESSION_COOKIE_CACHE: "off" });
const fastPath = (await createSessionFastPath(t.auth, t.db.sql, quietLogger, t.notices))!;

const get = (path: string, headers: Record<string, string>) =>
  new Request(new URL(path, t.config.baseUrl).toString(), { headers: { origin: SITE_ORIGIN, ...headers } });
/** Better Auth's own answer, bypassing the app and its fast path. */
const betterAuth = (path: string, headers: Record<string, string>) => t.auth.handler(get(path, headers));

test("the fast path is on for this configuration", () => {
  expect(fastPath).not.toBeNull();
});

test("get-session: the fast answer equals Better Auth's, field for field", async () => {
  const { cookie } = await signUp(t, { experienceLevel: "intermediate", professionalRole: "other", roleOther: "teacher", organization: "Lab" });
  const fast = await fastPath.getSession(get("/api/auth/get-session", { cookie }));
  expect(fast).not.toBeNull();
  const reference = await betterAuth("/api/auth/get-session", { cookie });
  expect(fast!.status).toBe(reference.status);
  expect(fast!.headers.get("content-type")).toContain("application/json");
  expect(reference.headers.getSetCookie()).toEqual([]);
  expect(await fast!.json()).toEqual(await reference.json());
});

test("get-session through the app answers what Better Auth answers", async () => {
  const { cookie } = await signUp(t);
  const viaApp = await t.request("/api/auth/get-session", { headers: { cookie } });
  const reference = await betterAuth("/api/auth/get-session", { cookie });
  expect(viaApp.status).toBe(200);
  expect(await viaApp.json()).toEqual(await reference.json());
});

test("a tampered, unsigned or missing cookie is left to Better Auth, which answers null", async () => {
  const { cookie } = await signUp(t);
  const [name, value] = cookie.split("=") as [string, string];
  const token = decodeURIComponent(value).split(".")[0]!;
  for (const bad of [`${name}=${token}`, `${name}=${encodeURIComponent(`${token}.${"A".repeat(43)}=`)}`, "other=1", ""]) {
    expect(await fastPath.getSession(get("/api/auth/get-session", bad ? { cookie: bad } : {}))).toBeNull();
    const viaApp = await t.request("/api/auth/get-session", { headers: bad ? { cookie: bad } : {} });
    expect(viaApp.status).toBe(200);
    expect(await viaApp.json()).toBeNull();
  }
});

test("a session whose refresh is due is left to Better Auth, which slides its expiry", async () => {
  const { cookie, token } = await signUp(t);
  // Make the session look two days old: with the 1-day update age, a refresh is due.
  await t.db.sql`update sessions set expires_at = now() + interval '5 days' where token = ${token}`;
  expect(await fastPath.getSession(get("/api/auth/get-session", { cookie }))).toBeNull();
  const res = await t.request("/api/auth/get-session", { headers: { cookie } });
  expect(res.status).toBe(200);
  const [row] = await t.db.sql<{ days: number }[]>`select extract(epoch from expires_at - now()) / 86400 as days from sessions where token = ${token}`;
  expect(Number(row!.days)).toBeGreaterThan(6.9);
  expect(res.headers.getSetCookie().some((c) => c.includes("session_token="))).toBe(true);
});

test("an expired session is left to Better Auth, which answers null and deletes it", async () => {
  const { cookie, token } = await signUp(t);
  await t.db.sql`update sessions set expires_at = now() - interval '1 minute' where token = ${token}`;
  expect(await fastPath.getSession(get("/api/auth/get-session", { cookie }))).toBeNull();
  const res = await t.request("/api/auth/get-session", { headers: { cookie } });
  expect(await res.json()).toBeNull();
  const rows = await t.db.sql`select 1 from sessions where token = ${token}`;
  expect(rows.length).toBe(0);
});

test("query options and bearer tokens are left to Better Auth", async () => {
  const { cookie, response, userId } = await signUp(t);
  const token = response.headers.get("set-auth-token")!;
  expect(await fastPath.getSession(get("/api/auth/get-session?disableRefresh=true", { cookie }))).toBeNull();
  expect(await fastPath.getSession(get("/api/auth/get-session", { authorization: `Bearer ${token}` }))).toBeNull();
  const bearer = await t.request("/api/auth/get-session", { headers: { authorization: `Bearer ${token}` } });
  expect(((await bearer.json()) as { user: { id: string } }).user.id).toBe(userId);
});

test("a signed-out session gets no answer from the fast path", async () => {
  const { cookie } = await signUp(t);
  const out = await t.request("/api/auth/sign-out", { method: "POST", headers: { cookie } });
  expect(out.status).toBe(200);
  expect(await fastPath.getSession(get("/api/auth/get-session", { cookie }))).toBeNull();
  expect(await fastPath.token(get("/api/auth/token", { cookie }))).toBeNull();
});

test("/token: the fast JWT carries the same header and claims as Better Auth's", async () => {
  const { cookie } = await signUp(t, { experienceLevel: "advanced", professionalRole: "engineer" });
  const fast = await fastPath.token(get("/api/auth/token", { cookie }));
  expect(fast).not.toBeNull();
  const reference = await betterAuth("/api/auth/token", { cookie });
  const fastJwt = ((await fast!.json()) as { token: string }).token;
  const referenceJwt = ((await reference.json()) as { token: string }).token;
  expect(decodeProtectedHeader(fastJwt)).toEqual(decodeProtectedHeader(referenceJwt));
  const { iat: a, exp: b, ...fastClaims } = decodeJwt(fastJwt);
  const { iat: c, exp: d, ...referenceClaims } = decodeJwt(referenceJwt);
  expect(fastClaims).toEqual(referenceClaims);
  expect(b! - a!).toBe(d! - c!);
  const jwks = createLocalJWKSet((await (await t.request("/api/auth/jwks")).json()) as any);
  await jwtVerify(fastJwt, jwks, { issuer: t.config.baseUrl, audience: t.config.jwtAudience });
});

test("/token reuses a minted JWT for the same session until the user changes", async () => {
  const { cookie } = await signUp(t, { organization: "Before" });
  const first = ((await (await t.request("/api/auth/token", { headers: { cookie } })).json()) as { token: string }).token;
  const again = ((await (await t.request("/api/auth/token", { headers: { cookie } })).json()) as { token: string }).token;
  expect(again).toBe(first);
  await Bun.sleep(5); // updated_at must move forward
  const update = await t.request("/api/auth/update-user", { method: "POST", headers: { cookie }, json: { organization: "After" } });
  expect(update.status).toBe(200);
  const fresh = ((await (await t.request("/api/auth/token", { headers: { cookie } })).json()) as { token: string }).token;
  expect(fresh).not.toBe(first);
  expect(decodeJwt(fresh).organization).toBe("After");
});
