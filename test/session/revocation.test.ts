// Revocation is instant, everywhere, at cache speed (src/session/change-notices.ts, sql/0006_change_notices.sql).
// Two instances in process on one database, each with its change listener. A second browser holds the
// session cookie and a valid session_data copy answered by instance B; the session is then revoked on
// instance A (or in SQL, as another writer would). Within a second neither instance honours the copy:
// get-session, update-user, list-sessions, organization/create and /token all refuse it. A change to the
// user row (profile, role, ban) is likewise never answered from an older copy.
import { beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { untilTrusting } from "../../src/session/change-notices.ts";
import { createLogger } from "../../src/ops/log.ts";
import { ADMIN_URL, cleanUpAfterFile, createSecondInstance, createTestApp, createTestClient, inProcessFetch, listedHandle, PASSWORD, sessionCookieOf, signUp, SITE_ORIGIN, type TestApp, post, signIn, expectError } from "../helpers.ts";
import { createMailTestApp, linkIn } from "../smtp.ts";

cleanUpAfterFile();

const DATA = "better-auth.session_data";
const WITHIN_MS = 1000;

let a: TestApp;
let b: Omit<TestApp, "db">;
beforeAll(async () => {
  a = await createTestApp({ ADMIN_EMAILS: "" });
  b = await createSecondInstance(a);
  await Promise.all([untilTrusting(a.notices), untilTrusting(b.notices)]);
}, 30_000);

type App = Pick<TestApp, "request">;
const getSession = (app: App, cookie: string) => app.request("/api/auth/get-session", { headers: { cookie } });

/** `cookie` with the session_data copy `app` writes for it, checked to be answered from that copy. */
async function withCachedCopy(app: App, cookie: string): Promise<string> {
  const first = await getSession(app, cookie);
  const data = first.headers.getSetCookie().find((line) => line.startsWith(`${DATA}=`))!.split(";")[0]!;
  const browser = `${cookie}; ${data}`;
  const cached = await getSession(app, browser);
  expect(cached.headers.getSetCookie()).toEqual([]); // no lookup: the copy answered
  expect(((await cached.json()) as { session: unknown } | null)?.session).toBeTruthy();
  return browser;
}

/** Polls `check` until it holds or `WITHIN_MS` passed since `from`; the last result. */
async function within(from: number, check: () => Promise<boolean>): Promise<boolean> {
  for (;;) {
    if (await check()) return true;
    if (Date.now() - from > WITHIN_MS) return false;
    await Bun.sleep(20);
  }
}

/** Within a second of `from`, both instances refuse `browser` on every endpoint that reads the session, and change no row. */
async function refusedEverywhere(browser: string, userId: string, from: number) {
  for (const app of [a, b]) {
    expect(await within(from, async () => (await (await getSession(app, browser)).json()) === null)).toBe(true);
  }
  for (const app of [a, b]) {
    expect((await post(app, "/api/auth/update-user", { name: "pwned" }, browser)).status).toBe(401);
    expect((await app.request("/api/auth/list-sessions", { headers: { cookie: browser } })).status).toBe(401);
    expect((await post(app, "/api/auth/organization/create", { name: "Pwned", slug: `pwned-${Date.now()}` }, browser)).status).toBe(401);
    expect((await app.request("/api/auth/token", { headers: { cookie: browser } })).status).toBe(401);
  }
  const rows = await a.db.sql`select name from users where id = ${userId}`;
  if (rows.length) expect(rows[0]!.name).not.toBe("pwned");
  expect((await a.db.sql`select count(*)::int as n from organizations where name = 'Pwned'`)[0]!.n).toBe(0);
}

/** A victim signed up on A and a second browser of theirs whose session B answers from its cached copy. */
async function victimWithCachedBrowser() {
  const victim = await signUp(a, { name: "Victim" });
  const other = await signIn(b, victim.email);
  const browser = await withCachedCopy(b, other.cookie);
  return { ...victim, browser, otherToken: other.token, otherCookie: other.cookie };
}

async function signedInAdmin() {
  const admin = await signUp(a, { name: "Admin" });
  await a.db.sql`update users set role = 'admin' where id = ${admin.userId}`;
  return admin;
}

for (const store of ["Postgres", "Postgres and Redis"]) {
  describe(`a revoked session's cached copy is refused by both instances within a second (${store})`, () => {
    if (store !== "Postgres") {
      beforeAll(async () => {
        a = await createTestApp({ ADMIN_EMAILS: "", REDIS_URL: "redis://127.0.0.1:6379" });
        b = await createSecondInstance(a);
        await Promise.all([untilTrusting(a.notices), untilTrusting(b.notices)]);
      }, 30_000);
    }
    const revocations: Array<[string, (victim: Awaited<ReturnType<typeof victimWithCachedBrowser>>) => Promise<unknown>]> = [
      ["sign-out (of that session, elsewhere)", (v) => post(a, "/api/auth/sign-out", {}, v.otherCookie)],
      [
        "revoke-session with the handle list-sessions answers",
        async (v) => expect((await post(a, "/api/auth/revoke-session", { token: await listedHandle(a, v.cookie, v.otherToken) }, v.cookie)).status).toBe(200),
      ],
      ["revoke-other-sessions", (v) => post(a, "/api/auth/revoke-other-sessions", {}, v.cookie)],
      ["change-password with revokeOtherSessions", (v) => post(a, "/api/auth/change-password", { currentPassword: PASSWORD, newPassword: "another horse battery", revokeOtherSessions: true }, v.cookie)],
      ["admin ban", async (v) => expect((await post(a, "/api/auth/admin/ban-user", { userId: v.userId }, (await signedInAdmin()).cookie)).status).toBe(200)],
      ["admin revoke-user-sessions", async (v) => expect((await post(a, "/api/auth/admin/revoke-user-sessions", { userId: v.userId }, (await signedInAdmin()).cookie)).status).toBe(200)],
      ["the session row deleted in SQL", (v) => a.db.sql`delete from sessions where token = ${v.otherToken}`],
      // Better Auth checks a ban only when it creates a session; sql/0008 makes a ban in SQL revoke them as the admin plugin does.
      ["a ban set in SQL", (v) => a.db.sql`update users set banned = true where id = ${v.userId}`],
      ["the user deleted in SQL", (v) => a.db.sql`delete from users where id = ${v.userId}`],
      ["the session expired (in SQL)", (v) => a.db.sql`update sessions set expires_at = now() - interval '1 second' where token = ${v.otherToken}`],
    ];
    for (const [name, revoke] of revocations) {
      test(name, async () => {
        const victim = await victimWithCachedBrowser();
        await revoke(victim);
        await refusedEverywhere(victim.browser, victim.userId, Date.now());
      });
    }
  });
}

describe("a changed user row is never answered from an older copy", () => {
  const userOf = async (app: App, browser: string) => ((await (await getSession(app, browser)).json()) as { user: Record<string, unknown> }).user;
  const changes: Array<[string, (victim: Awaited<ReturnType<typeof victimWithCachedBrowser>>) => Promise<unknown>, (user: Record<string, unknown>) => boolean]> = [
    ["profile, through update-user on the other instance", (v) => post(a, "/api/auth/update-user", { name: "Renamed" }, v.cookie), (u) => u.name === "Renamed"],
    ["role, in SQL", (v) => a.db.sql`update users set role = 'teacher' where id = ${v.userId}`, (u) => u.role === "teacher"],
    ["email, in SQL", (v) => a.db.sql`update users set email = ${`changed-${v.userId}@example.test`} where id = ${v.userId}`, (u) => u.email === `changed-${u.id}@example.test`],
  ];
  for (const [name, change, changed] of changes) {
    test(name, async () => {
      const victim = await victimWithCachedBrowser();
      expect(changed(await userOf(b, victim.browser))).toBe(false);
      await change(victim);
      const from = Date.now();
      for (const app of [a, b]) expect(await within(from, async () => changed(await userOf(app, victim.browser)))).toBe(true);
    });
  }
});

describe("list-sessions and revoke-session", () => {
  test("list-sessions discloses no value that authenticates as another session, and Better Auth's client revokes with what it lists", async () => {
    const { client } = createTestClient({ baseUrl: a.config.baseUrl, fetch: inProcessFetch(a.app) });
    const victim = await signUp(a);
    expect((await client.signIn.email({ email: victim.email, password: PASSWORD })).error).toBeNull();
    const { data: sessions } = await client.listSessions();
    expect(sessions!.length).toBe(2);
    for (const session of sessions!) {
      // Neither as a bearer value nor as a session cookie.
      expect(await (await a.request("/api/auth/get-session", { headers: { authorization: `Bearer ${session.token}` } })).json()).toBeNull();
      expect(await (await getSession(a, `better-auth.session_token=${encodeURIComponent(session.token)}`)).json()).toBeNull();
    }
    const handle = await listedHandle(a, victim.cookie, victim.token);
    expect(sessions!.some((s) => s.token === handle)).toBe(true);
    const { data, error } = await client.revokeSession({ token: handle });
    expect(error).toBeNull();
    expect(data).toEqual({ status: true });
    expect(await (await getSession(a, victim.cookie)).json()).toBeNull();
    const again = await client.revokeSession({ token: handle });
    expect(again.error?.status).toBe(404);
    expect(again.error?.code).toBe("SESSION_NOT_FOUND");
  });

  test("the admin plugin's list-user-sessions answers handles too, and revoke-user-session takes them", async () => {
    const admin = await signedInAdmin();
    const user = await signUp(a);
    const listed = await post(a, "/api/auth/admin/list-user-sessions", { userId: user.userId }, admin.cookie);
    expect(listed.status).toBe(200);
    const text = await listed.text();
    expect(text).not.toContain(user.token);
    const { sessions } = JSON.parse(text) as { sessions: Array<{ token: string }> };
    expect(sessions.length).toBe(1);
    expect((await post(a, "/api/auth/admin/revoke-user-session", { sessionToken: user.token }, admin.cookie)).status).toBe(404);
    expect((await post(a, "/api/auth/admin/revoke-user-session", { sessionToken: sessions[0]!.token }, admin.cookie)).status).toBe(200);
    expect(await (await getSession(a, user.cookie)).json()).toBeNull();
  });

  test("revoke-session with the signed set-auth-token value of another of one's own sessions answers 404 and revokes nothing: it takes list-sessions' handles only", async () => {
    const victim = await signUp(a);
    const second = await a.request("/api/auth/sign-in/email", { method: "POST", json: { email: victim.email, password: PASSWORD } });
    const signed = second.headers.get("set-auth-token")!;
    const response = await post(a, "/api/auth/revoke-session", { token: signed }, victim.cookie);
    await expectError(response, 404, "SESSION_NOT_FOUND");
    expect((await a.db.sql`select count(*)::int as n from sessions where user_id = ${victim.userId}`)[0]!.n).toBe(2);
  });
});

describe("the change listener", () => {
  test("while it is disconnected nothing is answered from a copy; after it reconnects, only copies written after it listens again", async () => {
    const lines: string[] = [];
    const c = await createTestApp({}, createLogger("info", (line) => lines.push(line)));
    await untilTrusting(c.notices);
    const user = await signUp(c, { name: "Before" });
    const browser = await withCachedCopy(c, user.cookie);
    const fromCopy = async (cookie: string) => (await getSession(c, cookie)).headers.getSetCookie().length === 0;
    const copyOf = async (cookie: string) => {
      const response = await getSession(c, cookie);
      const data = response.headers.getSetCookie().find((line) => line.startsWith(`${DATA}=`));
      return { body: (await response.json()) as { user: { name: string } }, browser: data ? `${user.cookie}; ${data.split(";")[0]}` : null };
    };
    // Keep it from reconnecting until the test allows it: no new connections to this database.
    await c.db.sql`select 1`;
    const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`alter database "${c.db.name}" allow_connections false`);
    try {
      const killed = await admin`
        select pg_terminate_backend(pid) from pg_stat_activity where datname = ${c.db.name} and application_name = 'auth-server listener'`;
      expect(killed.length).toBe(1);
      const from = Date.now();
      while (c.notices.current() && Date.now() - from < 5000) await Bun.sleep(10);
      expect(c.notices.current()).toBe(false);
      // A change this instance cannot hear about.
      await c.db.sql`update users set name = 'Changed while away' where id = ${user.userId}`;
      const fresh = await copyOf(browser);
      expect(fresh.body.user.name).toBe("Changed while away");
      expect(fresh.browser).not.toBeNull();
      // Not even the copy it has just written is trusted while it cannot hear.
      expect(await fromCopy(fresh.browser!)).toBe(false);
      await Bun.sleep(600); // a reconnection attempt or more, refused
      expect(c.notices.current()).toBe(false);
      expect(await fromCopy(fresh.browser!)).toBe(false);
    } finally {
      await admin.unsafe(`alter database "${c.db.name}" allow_connections true`);
      await admin.end();
    }
    const back = Date.now();
    while (!c.notices.current() && Date.now() - back < 5000) await Bun.sleep(10);
    expect(c.notices.current()).toBe(true);
    const said = lines.join("\n");
    expect(said).toContain("change listener disconnected");
    expect(said.match(/change listener cannot listen/g)?.length).toBe(1); // once per outage
    expect(said).toContain("change listener listening again");
    // Copies written before it listened again stay distrusted; one written after it (and the clock margin) answers.
    expect(await fromCopy(browser)).toBe(false);
    await untilTrusting(c.notices);
    const after = await copyOf(user.cookie);
    expect(after.body.user.name).toBe("Changed while away");
    expect(await fromCopy(after.browser!)).toBe(true);
  }, 30_000);
});

describe("a password reset", () => {
  test("revokes every session of the user: a cached copy on the other instance is refused within a second", async () => {
    const m = await createMailTestApp({ EMAIL_FLOWS: "password-reset" });
    const other = await createSecondInstance(m);
    await Promise.all([untilTrusting(m.notices), untilTrusting(other.notices)]);
    const victim = await signUp(m);
    const browser = await withCachedCopy(other, (await signIn(other, victim.email)).cookie);
    await m.request("/api/auth/request-password-reset", { method: "POST", json: { email: victim.email, redirectTo: `${SITE_ORIGIN}/reset` } });
    const token = new URL(linkIn(await m.smtp.waitForMail(victim.email))).pathname.split("/").pop()!;
    expect((await m.request("/api/auth/reset-password", { method: "POST", json: { token, newPassword: "a brand new passphrase" } })).status).toBe(200);
    const from = Date.now();
    for (const app of [other, m]) expect(await within(from, async () => (await (await getSession(app, browser)).json()) === null)).toBe(true);
    expect((await post(other, "/api/auth/update-user", { name: "pwned" }, browser)).status).toBe(401);
  });
});
