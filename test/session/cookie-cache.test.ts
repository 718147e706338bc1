// The signed session cookie cache (SESSION_COOKIE_CACHE, 5 minutes by default): get-session answers
// from the cookie, the fast path writes and reads the same cookie Better Auth does, and the
// revocation delay it used to imply is gone: a copy the change notices do not vouch for is never answered.
import { describe, expect, test } from "bun:test";
import { untilTrusting } from "../../src/session/change-notices.ts";
import { createSessionFastPath } from "../../src/session/fast-path.ts";
import { cleanUpAfterFile, createTestApp, PASSWORD, quietLogger, SITE_ORIGIN, signUp, uniqueEmail, type TestApp, attemptSignIn } from "../helpers.ts";

cleanUpAfterFile();

const t = await createTestApp();
const fastPath = (await createSessionFastPath(t.auth, t.db.sql, quietLogger, t.notices))!;
await untilTrusting(t.notices);
const DATA = "better-auth.session_data";

const get = (app: TestApp, path: string, cookie: string) =>
  new Request(new URL(path, app.config.baseUrl).toString(), { headers: { origin: SITE_ORIGIN, cookie } });
/** The `name=value` pairs a response sets, by name. */
const setCookies = (response: Response) =>
  Object.fromEntries(response.headers.getSetCookie().map((line) => [line.slice(0, line.indexOf("=")), line]));
const pairOf = (line: string) => line.split(";")[0]!;

test("the fast path stays on with the default cookie cache", () => {
  expect(t.config.sessionCookieCacheSeconds).toBe(300);
  expect(fastPath).not.toBeNull();
});

describe("get-session with the cookie cache", () => {
  test("without a cache cookie: one lookup, the same body as Better Auth, and the same session_data cookie attributes", async () => {
    const { cookie } = await signUp(t, { organization: "Cache Lab" });
    const fast = (await fastPath.getSession(get(t, "/api/auth/get-session", cookie)))!;
    expect(fast).not.toBeNull();
    const reference = await t.auth.handler(get(t, "/api/auth/get-session", cookie));
    expect(await fast.json()).toEqual(await reference.json());
    expect(fast.headers.get("cache-control")).toBe(reference.headers.get("cache-control"));
    const mine = setCookies(fast)[DATA]!;
    const theirs = setCookies(reference)[DATA]!;
    expect(mine).toBeDefined();
    expect(mine.split("; ").slice(1).sort()).toEqual(theirs.split("; ").slice(1).sort());
    expect(mine).toContain("Max-Age=300");
    expect(mine).toContain("HttpOnly");
  });

  test("Better Auth accepts the cache cookie the fast path wrote, and the fast path accepts Better Auth's", async () => {
    const { cookie, token } = await signUp(t);
    const ours = pairOf(setCookies((await fastPath.getSession(get(t, "/api/auth/get-session", cookie)))!)[DATA]!);
    const theirs = pairOf(setCookies(await t.auth.handler(get(t, "/api/auth/get-session", cookie)))[DATA]!);
    // The fast path answers from Better Auth's cookie alone: no lookup, so no fresh cookie.
    const request = get(t, "/api/auth/get-session", `${cookie}; ${theirs}`);
    const viaFastPath = (await fastPath.getSession(request))!;
    expect(fastPath.cachedAnswerFor(request)).toBeDefined();
    expect(viaFastPath.headers.getSetCookie()).toEqual([]);
    // With the row gone, only a valid cache cookie can still produce the session: Better Auth on its own
    // (not through the app, which removes a cookie the change notices do not vouch for) still trusts ours.
    await t.db.sql`delete from sessions where token = ${token}`;
    const viaBetterAuth = await t.auth.handler(get(t, "/api/auth/get-session", `${cookie}; ${ours}`));
    const a = (await viaBetterAuth.json()) as { session: { token: string } };
    const b = (await viaFastPath.json()) as { session: { token: string } };
    expect(a.session.token).toBe(token);
    expect(b).toEqual(a as never);
  });

  test("no revocation delay: a session deleted in SQL is refused within a second although its cache cookie is valid", async () => {
    const { cookie, token } = await signUp(t);
    const first = await t.request("/api/auth/get-session", { headers: { cookie } });
    const cache = pairOf(setCookies(first)[DATA]!);
    const cached = await t.request("/api/auth/get-session", { headers: { cookie: `${cookie}; ${cache}` } });
    expect(((await cached.json()) as { session: { token: string } }).session.token).toBe(token);
    await t.db.sql`delete from sessions where token = ${token}`;
    const deletedAt = Date.now();
    let answer: unknown = "not asked";
    while (Date.now() - deletedAt < 1000) {
      answer = await (await t.request("/api/auth/get-session", { headers: { cookie: `${cookie}; ${cache}` } })).json();
      if (answer === null) break;
      await Bun.sleep(20);
    }
    expect(answer).toBeNull();
    expect(await fastPath.getSession(get(t, "/api/auth/get-session", `${cookie}; ${cache}`))).toBeNull();
  });

  test("a tampered or foreign cache cookie is ignored: the fast path steps aside and the row decides", async () => {
    const { cookie, token } = await signUp(t);
    const other = await signUp(t);
    const cache = pairOf(setCookies(await t.request("/api/auth/get-session", { headers: { cookie } }))[DATA]!);
    const otherCache = pairOf(setCookies(await t.request("/api/auth/get-session", { headers: { cookie: other.cookie } }))[DATA]!);
    const [name, value] = [cache.slice(0, cache.indexOf("=")), cache.slice(cache.indexOf("=") + 1)];
    const decoded = JSON.parse(Buffer.from(value, "base64url").toString()) as { session: { user: { name: string } } };
    decoded.session.user.name = "Mallory";
    const tampered = `${name}=${Buffer.from(JSON.stringify(decoded)).toString("base64url")}`;
    await t.db.sql`delete from sessions where token = ${token}`;
    for (const bad of [tampered, otherCache, `${name}=not-base64-json`]) {
      expect(await fastPath.getSession(get(t, "/api/auth/get-session", `${cookie}; ${bad}`))).toBeNull();
      const answer = await t.request("/api/auth/get-session", { headers: { cookie: `${cookie}; ${bad}` } });
      expect(await answer.json()).toBeNull();
    }
  });

  test("an expired cache cookie sends the request to the database again", async () => {
    const short = await createTestApp({ SESSION_COOKIE_CACHE: "1s" });
    const shortFast = (await createSessionFastPath(short.auth, short.db.sql, quietLogger, short.notices))!;
    const { cookie, token } = await signUp(short);
    const cache = pairOf(setCookies((await shortFast.getSession(get(short, "/api/auth/get-session", cookie)))!)[DATA]!);
    expect(setCookies((await shortFast.getSession(get(short, "/api/auth/get-session", cookie)))!)[DATA]).toContain("Max-Age=1");
    await short.db.sql`delete from sessions where token = ${token}`;
    await Bun.sleep(1100);
    expect(await shortFast.getSession(get(short, "/api/auth/get-session", `${cookie}; ${cache}`))).toBeNull();
    expect(await (await short.request("/api/auth/get-session", { headers: { cookie: `${cookie}; ${cache}` } })).json()).toBeNull();
  });

  test("a client keeping cookies (Better Auth's flow) gets the cache cookie at sign-in and is answered from it", async () => {
    const email = uniqueEmail("cachejar");
    await signUp(t, { email });
    const signIn = await attemptSignIn(t, email);
    const jar = Object.values(setCookies(signIn)).map(pairOf).join("; ");
    expect(jar).toContain(`${DATA}=`);
    const fast = await fastPath.getSession(get(t, "/api/auth/get-session", jar));
    expect(fast).not.toBeNull();
    expect(((await fast!.json()) as { user: { email: string } }).user.email).toBe(email);
    expect(fast!.headers.getSetCookie()).toEqual([]);
  });
});

describe("SESSION_COOKIE_CACHE=off", () => {
  test("no cache cookie is set and a deleted session is refused at once", async () => {
    const off = await createTestApp({ SESSION_COOKIE_CACHE: "off" });
    expect(off.config.sessionCookieCacheSeconds).toBe(0);
    const { cookie, token, response } = await signUp(off);
    expect(setCookies(response)[DATA]).toBeUndefined();
    const first = await off.request("/api/auth/get-session", { headers: { cookie } });
    expect(setCookies(first)[DATA]).toBeUndefined();
    await off.db.sql`delete from sessions where token = ${token}`;
    expect(await (await off.request("/api/auth/get-session", { headers: { cookie } })).json()).toBeNull();
  });
});
