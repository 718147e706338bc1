// An admin who is banned or loses the admin role keeps no session as anyone: the impersonation sessions
// they started (sessions.impersonated_by) end with their own, within a second, on every instance
// (ASVS 4.0 3.3.1 / 3.3.3: termination invalidates the session everywhere; 4.1.3 least privilege: an
// admin right withdrawn is withdrawn from what it already opened). Ending an impersonation afterwards
// answers a 4xx, never a 500.
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { cleanUpAfterFile, createInstancePair, sessionCookieOf, signUp, type TestApp } from "../helpers.ts";

cleanUpAfterFile();
setDefaultTimeout(60_000);

const WITHIN_MS = 1000;
type App = Pick<TestApp, "request">;

let a: TestApp;
let b: Omit<TestApp, "db">;
beforeAll(async () => ({ a, b } = await createInstancePair({ ADMIN_EMAILS: "" })));

async function admin(name: string) {
  const user = await signUp(a, { name });
  await a.db.sql`update users set role = 'admin' where id = ${user.userId}`;
  const response = await a.request("/api/auth/sign-in/email", { method: "POST", json: { email: user.email, password: "correct horse battery" } });
  expect(response.status).toBe(200);
  return { ...user, cookie: sessionCookieOf(response) };
}

/** The cookie of a session as `victimId` that `adminCookie` starts with impersonate-user. */
async function impersonate(adminCookie: string, victimId: string): Promise<string> {
  const response = await a.request("/api/auth/admin/impersonate-user", { method: "POST", json: { userId: victimId }, headers: { cookie: adminCookie } });
  expect(response.status).toBe(200);
  // Better Auth clears the admin's cookies first, then sets the new ones: the last value of each name counts.
  const jar = new Map<string, string>();
  for (const line of response.headers.getSetCookie()) {
    const [name, value] = line.split(";")[0]!.split(/=(.*)/s) as [string, string];
    if (value) jar.set(name, value);
    else jar.delete(name);
  }
  return [...jar].map(([name, value]) => `${name}=${value}`).join("; ");
}

async function refusedWithinASecond(app: App, cookie: string, from: number): Promise<boolean> {
  for (;;) {
    const session = await (await app.request("/api/auth/get-session", { headers: { cookie } })).json();
    if (session === null) return true;
    if (Date.now() - from > WITHIN_MS) return false;
    await Bun.sleep(20);
  }
}

describe("impersonation sessions end with the admin's rights", () => {
  const cases: [string, (adminId: string, boss: string) => Promise<unknown>][] = [
    ["banned with admin/ban-user", (adminId, boss) => b.request("/api/auth/admin/ban-user", { method: "POST", json: { userId: adminId }, headers: { cookie: boss } })],
    ["banned in SQL", (adminId) => a.db.sql`update users set banned = true where id = ${adminId}`],
    ["demoted in SQL", (adminId) => a.db.sql`update users set role = 'user' where id = ${adminId}`],
  ];
  for (const [name, withdraw] of cases) {
    test(`an admin ${name}: their impersonation session is refused on both instances within a second, writes nothing, and stop-impersonating answers 4xx`, async () => {
      const boss = await admin("Boss");
      const acting = await admin("Acting admin");
      const victim = await signUp(a, { name: "Victim" });
      const asVictim = await impersonate(acting.cookie, victim.userId);
      expect(((await (await b.request("/api/auth/get-session", { headers: { cookie: asVictim } })).json()) as { user: { id: string } }).user.id).toBe(victim.userId);

      const from = Date.now();
      await withdraw(acting.userId, boss.cookie);
      for (const app of [a, b]) expect(await refusedWithinASecond(app, asVictim, from)).toBe(true);
      for (const app of [a, b]) {
        const update = await app.request("/api/auth/update-user", { method: "POST", json: { name: "Changed by an ex-admin" }, headers: { cookie: asVictim } });
        expect(update.status).toBe(401);
        const stop = await app.request("/api/auth/admin/stop-impersonating", { method: "POST", headers: { cookie: asVictim } });
        expect(stop.status).toBeGreaterThanOrEqual(400);
        expect(stop.status).toBeLessThan(500);
      }
      expect((await a.db.sql<{ name: string }[]>`select name from users where id = ${victim.userId}`)[0]!.name).toBe("Victim");
    });
  }
});
