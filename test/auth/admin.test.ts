// Platform administration through Better Auth's admin client: the first admin from
// `bun run admin:create`, listing and searching users, roles, bans, revoking sessions, impersonation
// with its audit trail, removing users, and ADMIN_EMAILS promotion of verified addresses.
import { describe, expect, test } from "bun:test";
import { createLogger } from "../../src/ops/log.ts";
import { IMPERSONATION_SECONDS } from "../../src/auth/plugins/admin.ts";
import { ERRORS } from "../../src/errors.ts";
import {
  cleanUpAfterFile,
  createTestApp,
  createTestClient,
  createTestDatabase,
  inProcessFetch,
  PASSWORD,
  spawnProject,
  TEST_SECRET,
  uniqueEmail,
} from "../helpers.ts";

cleanUpAfterFile();

const auditLines: string[] = [];
const t = await createTestApp({}, createLogger("info", (line) => auditLines.push(line)));
const target = { baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) };

async function signedUp(name = "Learner", email = uniqueEmail("admin-test")) {
  const { client } = createTestClient(target);
  const { data, error } = await client.signUp.email({ name, email, password: PASSWORD });
  expect(error).toBeNull();
  return { client, email, id: data!.user.id };
}

/** A signed-in admin (made one with SQL: the CLI has its own tests below). */
async function signedInAdmin() {
  const admin = await signedUp("Admin");
  await t.db.sql`update users set role = 'admin' where id = ${admin.id}`;
  return admin;
}

const sessionsOf = async (userId: string) =>
  (await t.db.sql<{ count: number }[]>`select count(*)::int as count from sessions where user_id = ${userId}`)[0]!.count;

describe("bun run admin:create", () => {
  const cli = (db: { url: string }, args: string[]) =>
    spawnProject(["bun", "run", "admin:create", ...args], { NODE_ENV: "test", DATABASE_URL: db.url, BETTER_AUTH_SECRET: TEST_SECRET, LOG_LEVEL: "error" });

  test("creates a verified admin with a random password printed once, stored as its argon2id hash", async () => {
    const db = await createTestDatabase("admin_cli");
    const email = uniqueEmail("first-admin");
    const run = cli(db, ["--email", email, "--name", "Ada Admin"]);
    expect(await run.exited(30_000)).toBe(0);
    const password = /password \(shown once; change it after signing in\): (\S+)/.exec(run.output())?.[1];
    expect(password).toHaveLength(32);
    const [row] = await db.sql`select name, role, email_verified from users where email = ${email}`;
    expect(row).toEqual({ name: "Ada Admin", role: "admin", email_verified: true });
    const [account] = await db.sql`select password from accounts a join users u on u.id = a.user_id where u.email = ${email}`;
    expect(account!.password).toStartWith("$argon2id$");
    expect(await Bun.password.verify(password!, account!.password)).toBe(true);

    // Running it again changes nothing and says so.
    const again = cli(db, ["--email", email]);
    expect(await again.exited(30_000)).toBe(0);
    expect(again.output()).toContain("is already an admin");
    expect((await db.sql`select count(*)::int as count from users`)[0]!.count).toBe(1);
  }, 60_000);

  test("an existing user is promoted, keeping their other roles; without --email it answers usage and exit code 2", async () => {
    const { email, id } = await signedUp("Teacher");
    await t.db.sql`update users set role = 'teacher' where id = ${id}`;
    const run = cli(t.db, ["--email", email.toUpperCase()]);
    expect(await run.exited(30_000)).toBe(0);
    expect((await t.db.sql`select role from users where id = ${id}`)[0]!.role).toBe("teacher,admin");

    const missing = cli(t.db, []);
    expect(await missing.exited(30_000)).toBe(2);
    expect(missing.output()).toContain("--email is required");
    const bad = cli(t.db, ["--email", "not-an-address"]);
    expect(await bad.exited(30_000)).toBe(2);
  }, 60_000);
});

describe("the admin API", () => {
  test("a non-admin is refused every admin endpoint with 403", async () => {
    const { client, id } = await signedUp();
    expect((await client.admin.listUsers({ query: {} })).error?.status).toBe(403);
    expect((await client.admin.setRole({ userId: id, role: "admin" })).error?.status).toBe(403);
    expect((await t.db.sql`select role from users where id = ${id}`)[0]!.role).toBe("user");
  });

  test("list users searches by email or name and pages with limit and offset", async () => {
    const { client } = await signedInAdmin();
    const tag = `page${Date.now().toString(36)}`;
    for (let i = 0; i < 5; i++) await signedUp(`${tag} pupil ${i}`, uniqueEmail(tag));

    const page1 = await client.admin.listUsers({ query: { searchField: "email", searchValue: tag, searchOperator: "contains", limit: 2, offset: 0, sortBy: "name" } });
    expect(page1.error).toBeNull();
    const page1Data = page1.data as { users: { name: string }[]; total: number };
    expect(page1Data.total).toBe(5);
    expect(page1Data.users.map((user) => user.name)).toEqual([`${tag} pupil 0`, `${tag} pupil 1`]);
    const page3 = (await client.admin.listUsers({ query: { searchField: "email", searchValue: tag, searchOperator: "contains", limit: 2, offset: 4, sortBy: "name" } }))
      .data as { users: { name: string }[] };
    expect(page3.users.map((user) => user.name)).toEqual([`${tag} pupil 4`]);
    const byName = (await client.admin.listUsers({ query: { searchField: "name", searchValue: `${tag} pupil 3`, searchOperator: "contains" } })).data as {
      users: { name: string; role: string }[];
    };
    expect(byName.users).toHaveLength(1);
    expect(byName.users[0]!.role).toBe("user");
  });

  test("set role accepts user, teacher and admin, and refuses a role that does not exist", async () => {
    const { client } = await signedInAdmin();
    const pupil = await signedUp();
    expect((await client.admin.setRole({ userId: pupil.id, role: "teacher" })).error).toBeNull();
    expect((await t.db.sql`select role from users where id = ${pupil.id}`)[0]!.role).toBe("teacher");
    const wrong = await client.admin.setRole({ userId: pupil.id, role: "superuser" as "user" });
    expect(wrong.error?.status).toBe(400);
    expect((await t.db.sql`select role from users where id = ${pupil.id}`)[0]!.role).toBe("teacher");
    // The role is in the user's JWT at once.
    const token = (await pupil.client.token()).data?.token;
    expect(JSON.parse(atob(token!.split(".")[1]!))).toMatchObject({ role: "teacher", impersonatedBy: null });
  });

  test("a demoted admin loses admin rights at once, and the browser's cached session shows the new role within a second", async () => {
    const { client } = await signedInAdmin();
    const deputy = await signedInAdmin();
    // A fresh read caches the deputy's session in its cookie (SESSION_COOKIE_CACHE) with the admin role.
    await deputy.client.getSession({ query: { disableCookieCache: true } });
    expect(((await deputy.client.getSession()).data?.user as { role?: string }).role).toBe("admin");
    expect((await deputy.client.admin.listUsers({ query: { limit: 1 } })).error).toBeNull();

    expect((await client.admin.setRole({ userId: deputy.id, role: "user" })).error).toBeNull();
    // The cookie copy is not answered from once the change is heard (src/session/change-notices.ts) ...
    const demotedAt = Date.now();
    const roleNow = async () => ((await deputy.client.getSession()).data?.user as { role?: string }).role;
    while ((await roleNow()) !== "user" && Date.now() - demotedAt < 1000) await Bun.sleep(20);
    expect(await roleNow()).toBe("user");
    // ... and the admin plugin reads the session and user rows for its checks: refused at once.
    const refused = await deputy.client.admin.listUsers({ query: { limit: 1 } });
    expect(refused.error?.status).toBe(403);
    expect((await deputy.client.admin.setRole({ userId: deputy.id, role: "admin" })).error?.status).toBe(403);
    expect((await t.db.sql`select role from users where id = ${deputy.id}`)[0]!.role).toBe("user");
    const token = (await deputy.client.token()).data?.token;
    expect(JSON.parse(atob(token!.split(".")[1]!))).toMatchObject({ role: "user" });
    expect(await roleNow()).toBe("user");
  });

  test("a ban with a reason and an expiry revokes the user's sessions; sign-in answers 403 BANNED_USER until unbanned", async () => {
    const { client } = await signedInAdmin();
    const pupil = await signedUp();
    expect(await sessionsOf(pupil.id)).toBe(1);

    const banned = await client.admin.banUser({ userId: pupil.id, banReason: "spam in the forum", banExpiresIn: 7 * 86400 });
    expect(banned.error).toBeNull();
    expect(await sessionsOf(pupil.id)).toBe(0);
    // Everything that reads the session row refuses at once, and the browser's signed session cookie
    // cache within a second (src/session/change-notices.ts).
    expect((await pupil.client.token()).error?.status).toBe(401);
    const bannedAt = Date.now();
    while ((await pupil.client.getSession()).data !== null && Date.now() - bannedAt < 1000) await Bun.sleep(20);
    expect((await pupil.client.getSession()).data).toBeNull();
    const [row] = await t.db.sql`select banned, ban_reason, ban_expires from users where id = ${pupil.id}`;
    expect(row).toMatchObject({ banned: true, ban_reason: "spam in the forum" });
    expect(Math.round(((row!.ban_expires as Date).getTime() - Date.now()) / 86400_000)).toBe(7);

    const refused = await pupil.client.signIn.email({ email: pupil.email, password: PASSWORD });
    expect(refused.error?.status).toBe(403);
    expect(refused.error?.code).toBe("BANNED_USER");
    expect(refused.error?.message).toBe("This account is banned");
    expect(await sessionsOf(pupil.id)).toBe(0);

    expect((await client.admin.unbanUser({ userId: pupil.id })).error).toBeNull();
    expect((await pupil.client.signIn.email({ email: pupil.email, password: PASSWORD })).error).toBeNull();
  });

  test("a ban whose expiry has passed is lifted at the next sign-in", async () => {
    const pupil = await signedUp();
    await t.db.sql`update users set banned = true, ban_reason = 'cool off', ban_expires = now() - interval '1 minute' where id = ${pupil.id}`;
    expect((await pupil.client.signIn.email({ email: pupil.email, password: PASSWORD })).error).toBeNull();
    expect((await t.db.sql`select banned from users where id = ${pupil.id}`)[0]!.banned).toBe(false);
  });

  test("revoke user sessions signs the user out everywhere", async () => {
    const { client } = await signedInAdmin();
    const pupil = await signedUp();
    await createTestClient(target).client.signIn.email({ email: pupil.email, password: PASSWORD });
    expect(await sessionsOf(pupil.id)).toBe(2);
    expect((await client.admin.revokeUserSessions({ userId: pupil.id })).error).toBeNull();
    expect(await sessionsOf(pupil.id)).toBe(0);
  });

  test("impersonation: an hour-long session as the user, marked with the admin's id in the session, the JWT and the audit log", async () => {
    const admin = await signedInAdmin();
    const pupil = await signedUp("Impersonated Pupil");
    auditLines.length = 0;

    expect((await admin.client.admin.impersonateUser({ userId: pupil.id })).error).toBeNull();
    const session = (await admin.client.getSession()).data!;
    expect(session.user.id).toBe(pupil.id);
    expect((session.session as { impersonatedBy?: string }).impersonatedBy).toBe(admin.id);
    const [row] = await t.db.sql`select impersonated_by, expires_at from sessions where id = ${session.session.id}`;
    expect(row!.impersonated_by).toBe(admin.id);
    const lasts = ((row!.expires_at as Date).getTime() - Date.now()) / 1000;
    expect(lasts).toBeGreaterThan(IMPERSONATION_SECONDS - 60);
    expect(lasts).toBeLessThanOrEqual(IMPERSONATION_SECONDS);
    const claims = JSON.parse(atob((await admin.client.token()).data!.token.split(".")[1]!));
    expect(claims).toMatchObject({ sub: pupil.id, impersonatedBy: admin.id });
    expect(auditLines.some((line) => line.includes(`admin ${admin.id} started impersonating user ${pupil.id}`))).toBe(true);

    // The impersonated user's own session list does not show it.
    const listed = (await pupil.client.listSessions()).data!;
    expect(listed.map((item) => item.id)).not.toContain(session.session.id);

    expect((await admin.client.admin.stopImpersonating()).error).toBeNull();
    expect((await admin.client.getSession()).data?.user.id).toBe(admin.id);
    expect((await t.db.sql`select count(*)::int as count from sessions where impersonated_by = ${admin.id}`)[0]!.count).toBe(0);
    expect(auditLines.some((line) => line.includes(`admin ${admin.id} stopped impersonating user ${pupil.id}`))).toBe(true);
  });

  test("stop-impersonating after the admin's own session ended answers 401 ADMIN_SESSION_NOT_FOUND, never a 500", async () => {
    const boss = await signedInAdmin();
    const acting = await signedInAdmin();
    const pupil = await signedUp("Pupil of a banned admin");
    expect((await acting.client.admin.impersonateUser({ userId: pupil.id })).error).toBeNull();
    // The acting admin's own session, the one the impersonation would return to, ends (signed out
    // elsewhere); a ban would end the impersonation session too (test/auth/impersonation-revocation.test.ts).
    await t.db.sql`delete from sessions where user_id = ${acting.id}`;
    const { error } = await acting.client.admin.stopImpersonating();
    expect(error).toMatchObject({ status: 401, code: "ADMIN_SESSION_NOT_FOUND", message: ERRORS.ADMIN_SESSION_NOT_FOUND.message });

    // Outside an impersonation, and without a session, the answers carry a code as well.
    const notImpersonating = await boss.client.admin.stopImpersonating();
    expect(notImpersonating.error).toMatchObject({ status: 400, code: "BAD_REQUEST", message: "You are not impersonating anyone" });
    const signedOut = await t.request("/api/auth/admin/stop-impersonating", { method: "POST" });
    expect(signedOut.status).toBe(401);
    expect(await signedOut.json()).toEqual({ code: "UNAUTHORIZED", message: ERRORS.UNAUTHORIZED.message });
  });

  test("remove user deletes the user with their sessions and accounts", async () => {
    const { client } = await signedInAdmin();
    const pupil = await signedUp();
    expect((await client.admin.removeUser({ userId: pupil.id })).error).toBeNull();
    const [counts] = await t.db.sql`
      select (select count(*)::int from users where id = ${pupil.id}) as users,
             (select count(*)::int from sessions where user_id = ${pupil.id}) as sessions,
             (select count(*)::int from accounts where user_id = ${pupil.id}) as accounts`;
    expect(counts).toEqual({ users: 0, sessions: 0, accounts: 0 });
  });
});

describe("ADMIN_EMAILS", () => {
  test("a listed address becomes an admin at sign-in once verified; an unverified one, or one not listed, does not", async () => {
    const boss = uniqueEmail("boss");
    const listed = await createTestApp({ ADMIN_EMAILS: `someone@example.test, ${boss.toUpperCase()}` });
    const listedTarget = { baseUrl: listed.config.baseUrl, fetch: inProcessFetch(listed.app) };
    const { client } = createTestClient(listedTarget);
    await client.signUp.email({ name: "Boss", email: boss, password: PASSWORD });
    const other = createTestClient(listedTarget).client;
    const otherEmail = uniqueEmail("not-boss");
    await other.signUp.email({ name: "Other", email: otherEmail, password: PASSWORD });
    const roleOf = async (email: string) => (await listed.db.sql`select role from users where email = ${email}`)[0]!.role;
    expect(await roleOf(boss)).toBe("user");

    await listed.db.sql`update users set email_verified = true where email in (${boss}, ${otherEmail})`;
    await client.signOut();
    await client.signIn.email({ email: boss, password: PASSWORD });
    expect(await roleOf(boss)).toBe("admin");
    expect((await client.admin.listUsers({ query: {} })).error).toBeNull();

    await other.signIn.email({ email: otherEmail, password: PASSWORD });
    expect(await roleOf(otherEmail)).toBe("user");
  });
});
