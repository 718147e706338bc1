// Revocation done in SQL includes TRUNCATE: an operator who signs everybody out with `truncate sessions`
// (or empties users) must see every session refused within a second, on every instance, as with a
// `delete` (ASVS 4.0 3.3.1 / 3.3.3: logout and termination invalidate the session everywhere). Row
// triggers do not fire on TRUNCATE, so without a statement-level notice the cached copies (the
// session_data cookie and, with REDIS_URL, the Redis entry) stay trusted until they expire: the revoked
// session still reads get-session and list-sessions and still writes update-user.
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cleanUpAfterFile, createInstancePair, PASSWORD, sessionCookieOf, signUp, type TestApp } from "../helpers.ts";
import { redisServer } from "../redis-server.ts";

cleanUpAfterFile();
setDefaultTimeout(60_000);

const DATA = "better-auth.session_data";
const WITHIN_MS = 1000;
type App = Pick<TestApp, "request">;

async function signedInBrowser(app: App, email: string): Promise<{ tokenCookie: string; browser: string }> {
  const response = await app.request("/api/auth/sign-in/email", { method: "POST", json: { email, password: PASSWORD } });
  expect(response.status).toBe(200);
  const tokenCookie = sessionCookieOf(response);
  const first = await app.request("/api/auth/get-session", { headers: { cookie: tokenCookie } });
  const data = first.headers.getSetCookie().find((line) => line.startsWith(`${DATA}=`))!.split(";")[0]!;
  return { tokenCookie, browser: `${tokenCookie}; ${data}` };
}

/** True when, within a second of `from`, `app` refuses `cookie` on get-session, list-sessions and update-user. */
async function refusedWithinASecond(app: App, cookie: string, from: number): Promise<boolean> {
  for (;;) {
    const session = await (await app.request("/api/auth/get-session", { headers: { cookie } })).json();
    const list = await app.request("/api/auth/list-sessions", { headers: { cookie } });
    if (session === null && list.status === 401) return true;
    if (Date.now() - from > WITHIN_MS) return false;
    await Bun.sleep(20);
  }
}

for (const withRedis of [false, true]) {
  describe(`truncate sessions${withRedis ? " (REDIS_URL set)" : ""}`, () => {
    let a: TestApp;
    let b: Omit<TestApp, "db">;
    beforeAll(async () => {
      const env: Record<string, string> = {};
      if (withRedis) {
        const redis = redisServer();
        await redis.start();
        env.REDIS_URL = redis.url;
      }
      ({ a, b } = await createInstancePair(env));
    });

    test("signs every session out on both instances within a second, cached copies included, and a revoked session writes nothing", async () => {
      const user = await signUp(a, { name: "Before" });
      const onA = await signedInBrowser(a, user.email);
      const onB = await signedInBrowser(b, user.email);
      const from = Date.now();
      await a.db.sql`truncate sessions`;
      for (const [app, seen] of [[a, onA], [b, onB], [a, onB], [b, onA]] as const) {
        expect(await refusedWithinASecond(app, seen.browser, from)).toBe(true);
        expect(await refusedWithinASecond(app, seen.tokenCookie, from)).toBe(true);
      }
      for (const [app, seen] of [[a, onA], [b, onB]] as const) {
        const update = await app.request("/api/auth/update-user", { method: "POST", json: { name: "After" }, headers: { cookie: seen.browser } });
        expect(update.status).toBe(401);
      }
      expect((await a.db.sql<{ name: string }[]>`select name from users where id = ${user.userId}`)[0]!.name).toBe("Before");
    });
  });
}
