// Two server processes on one database, as behind a load balancer: started together, they share
// sessions, the JWKS, the per-IP rate limits and the account lockout (all state lives in Postgres).
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createLocalJWKSet, jwtVerify } from "jose";
import { cleanUpAfterFile, createTestDatabase, PASSWORD, sessionCookieOf, SITE_ORIGIN, spawnServer, uniqueEmail, type TestDatabase, post } from "../helpers.ts";

cleanUpAfterFile();
setDefaultTimeout(60_000);

// One public URL for both, as a load balancer gives them; TRUST_PROXY lets the test choose client IPs.
const SHARED = { BETTER_AUTH_URL: "http://localhost:3001", RATE_LIMIT: "on", TRUST_PROXY: "on", LOG_LEVEL: "error" };

let a: string;
let b: string;
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase("two_instances");
  // Started at the same moment: migrations and the first signing key are taken in turns.
  const [first, second] = await Promise.all([spawnServer(["bun", "src/index.ts"], SHARED, db), spawnServer(["bun", "src/index.ts"], SHARED, db)]);
  a = first.url;
  b = second.url;
}, 60_000);

describe("two instances on one database", () => {
  test("a session created on one is valid on the other, and both serve the same JWKS, which verifies JWTs from either", async () => {
    const email = uniqueEmail("two");
    const signedUp = await post(a, "/api/auth/sign-up/email", { name: "Two", email, password: PASSWORD }, { "x-forwarded-for": "192.0.2.1" });
    expect(signedUp.status).toBe(200);
    const cookie = sessionCookieOf(signedUp);
    const session = (await (await fetch(`${b}/api/auth/get-session`, { headers: { cookie } })).json()) as { user: { email: string } } | null;
    expect(session?.user.email).toBe(email);

    const jwksA = await (await fetch(`${a}/api/auth/jwks`)).json();
    const jwksB = await (await fetch(`${b}/api/auth/jwks`)).json();
    expect(jwksB).toEqual(jwksA);
    expect((jwksA as { keys: unknown[] }).keys.length).toBe(1);
    const keys = createLocalJWKSet(jwksA as Parameters<typeof createLocalJWKSet>[0]);
    for (const base of [a, b]) {
      const { token } = (await (await fetch(`${base}/api/auth/token`, { headers: { cookie } })).json()) as { token: string };
      expect((await jwtVerify(token, keys, { issuer: SHARED.BETTER_AUTH_URL })).payload.email).toBe(email);
    }
  });

  test("the per-IP sign-in budget is shared: 5 attempts spread over both, the 6th is refused by either", async () => {
    const answers: number[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await post(i % 2 ? b : a, "/api/auth/sign-in/email", { email: uniqueEmail(), password: "wrong password" }, { "x-forwarded-for": "192.0.2.50" });
      answers.push(response.status);
    }
    expect(answers).toEqual([401, 401, 401, 401, 401, 429]);
    expect((await post(a, "/api/auth/sign-in/email", { email: uniqueEmail(), password: "wrong password" }, { "x-forwarded-for": "192.0.2.50" })).status).toBe(429);
  });

  test("the account lockout is shared: 10 failures spread over both instances and IPs lock the account on both", async () => {
    const email = uniqueEmail("lock");
    expect((await post(a, "/api/auth/sign-up/email", { name: "Lock", email, password: PASSWORD }, { "x-forwarded-for": "192.0.2.2" })).status).toBe(200);
    for (let i = 0; i < 10; i++) {
      const response = await post(i % 2 ? b : a, "/api/auth/sign-in/email", { email, password: `wrong ${i}` }, { "x-forwarded-for": `198.18.0.${i + 1}` });
      expect(response.status).toBe(401);
    }
    for (const base of [a, b]) {
      const response = await post(base, "/api/auth/sign-in/email", { email, password: PASSWORD }, { "x-forwarded-for": "198.18.1.1" });
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ code: "INVALID_EMAIL_OR_PASSWORD", message: "Invalid email or password" });
    }
  });

  describe("revocation is instant on both (change notices, sql/0006_change_notices.sql)", () => {
    const DATA = "better-auth.session_data";
    const getSession = (base: string, cookie: string) => fetch(`${base}/api/auth/get-session`, { headers: { cookie, origin: SITE_ORIGIN } });
    /** `cookie` with a session_data copy written by `base`, once `base` answers from it (its listener listens). */
    async function cachedBrowser(base: string, cookie: string): Promise<string> {
      const started = Date.now();
      for (;;) {
        const first = await getSession(base, cookie);
        const browser = `${cookie}; ${first.headers.getSetCookie().find((line) => line.startsWith(`${DATA}=`))!.split(";")[0]}`;
        // Asked twice: the second answer of a listening server comes from its kept answers.
        const answers = [await getSession(base, browser), await getSession(base, browser)];
        if (answers.every((answer) => answer.headers.getSetCookie().length === 0)) return browser;
        if (Date.now() - started > 10_000) throw new Error("the cache copy is never answered from");
        await Bun.sleep(200);
      }
    }
    async function signedUp() {
      const response = await post(a, "/api/auth/sign-up/email", { name: "Cached", email: uniqueEmail("cached"), password: PASSWORD }, { "x-forwarded-for": "192.0.2.9" });
      expect(response.status).toBe(200);
      const body = (await response.json()) as { token: string; user: { id: string } };
      return { cookie: sessionCookieOf(response), token: body.token, userId: body.user.id };
    }
    /** Polls get-session on `base` until `done(body)` or a second has passed since `from`. */
    async function within(base: string, browser: string, from: number, done: (body: { user: Record<string, unknown> } | null) => boolean) {
      for (;;) {
        const body = (await (await getSession(base, browser)).json()) as { user: Record<string, unknown> } | null;
        if (done(body)) return true;
        if (Date.now() - from > 1000) return false;
        await Bun.sleep(20);
      }
    }

    test("a session row deleted in SQL is refused by the other instance's cookie cache and kept answers within a second", async () => {
      const user = await signedUp();
      const browser = await cachedBrowser(b, user.cookie);
      await db.sql`delete from sessions where token = ${user.token}`;
      const from = Date.now();
      for (const base of [b, a]) expect(await within(base, browser, from, (body) => body === null)).toBe(true);
      const updated = await fetch(`${b}/api/auth/update-user`, { method: "POST", headers: { cookie: browser, origin: SITE_ORIGIN, "content-type": "application/json" }, body: JSON.stringify({ name: "pwned" }) });
      expect(updated.status).toBe(401);
      expect((await fetch(`${b}/api/auth/token`, { headers: { cookie: browser, origin: SITE_ORIGIN } })).status).toBe(401);
    });

    test("a user banned in SQL is signed out on both within a second, cached copies included", async () => {
      const user = await signedUp();
      const browser = await cachedBrowser(b, user.cookie);
      await db.sql`update users set banned = true where id = ${user.userId}`;
      const from = Date.now();
      for (const base of [b, a]) expect(await within(base, browser, from, (body) => body === null)).toBe(true);
      expect((await db.sql`select 1 from sessions where user_id = ${user.userId}`).length).toBe(0);
      expect((await fetch(`${a}/api/auth/token`, { headers: { cookie: browser, origin: SITE_ORIGIN } })).status).toBe(401);
    });

    test("with their listener connections killed, neither answers from a copy written before it listens again", async () => {
      const user = await signedUp();
      const browsers = [await cachedBrowser(a, user.cookie), await cachedBrowser(b, user.cookie)];
      const killed = await db.sql`
        select pg_terminate_backend(pid) from pg_stat_activity where datname = ${db.name} and application_name = 'auth-server listener'`;
      expect(killed.length).toBe(2);
      await Bun.sleep(100);
      for (const base of [a, b]) {
        for (const browser of browsers) {
          const answer = await getSession(base, browser);
          expect(answer.headers.getSetCookie().some((line) => line.startsWith(`${DATA}=`))).toBe(true); // read from the rows
        }
      }
      // Once they listen again, a copy written after that is answered from again.
      expect((await getSession(a, await cachedBrowser(a, user.cookie))).headers.getSetCookie()).toEqual([]);
      for (const base of [a, b]) expect((await getSession(base, browsers[1]!)).headers.getSetCookie().length).toBeGreaterThan(0);
    });
  });
});
