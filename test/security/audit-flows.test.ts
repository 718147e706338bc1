// The audit trail (src/security/audit.ts) through the flows test/security/audit.test.ts does not drive: password reset,
// email verification and change over real mail, 2FA on and off through Better Auth's client, the
// admin actions through the admin client, and account deletion.
// ASVS 7.1.3 / 7.2.1: each is a row in auth_events with the user it concerns, the IP and the user
// agent; ASVS 7.1.1 / 7.1.2: no row holds a password, token, cookie value, TOTP secret or backup code.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { TOTP, URI } from "otpauth";
import { cleanUpAfterFile, createTestClient, inProcessFetch, PASSWORD, SITE_ORIGIN, TEST_SECRET, uniqueEmail } from "../helpers.ts";
import { createMailTestApp, linkIn } from "../smtp.ts";

cleanUpAfterFile();
// Each test hashes passwords several times; a loaded machine needs more than the default 5 s.
setDefaultTimeout(30_000);

const t = await createMailTestApp({ TRUST_PROXY: "on" });
const IP = "192.0.2.44";
const USER_AGENT = "audit-flows-test/1.0";
const NEW_PASSWORD = "a brand new passphrase";

/** The in-process app as a client sees it, every request from IP with USER_AGENT. */
const clientFetch: typeof fetch = (async (input: string | URL | Request, init?: RequestInit) => {
  const request = input instanceof Request ? new Request(input, init) : new Request(String(input), init);
  request.headers.set("x-forwarded-for", IP);
  request.headers.set("user-agent", USER_AGENT);
  return inProcessFetch(t.app)(request);
}) as typeof fetch;
const headers = (cookie?: string) => ({ "x-forwarded-for": IP, "user-agent": USER_AGENT, ...(cookie ? { cookie } : {}) });

type EventRow = { type: string; user_id: string | null; ip: string | null; user_agent: string | null; details: Record<string, unknown> };
const eventsOf = (userId: string) =>
  t.db.sql<EventRow[]>`select type, user_id, ip, user_agent, details from auth_events where user_id = ${userId} order by id`;
const typesOf = async (userId: string) => (await eventsOf(userId)).map((row) => row.type);

/** Everything secret a test saw; checked against every column of every row at the end of each test. */
const secrets = new Set<string>([PASSWORD, NEW_PASSWORD, TEST_SECRET]);
async function expectNothingSecret() {
  const dump = JSON.stringify(await t.db.sql`select * from auth_events`);
  for (const secret of secrets) expect(dump).not.toContain(secret);
}
/** The cookie values a client holds (not names: those are public). */
async function rememberCookies(jar: ReturnType<typeof createTestClient>["jar"]) {
  for (const cookie of await jar.getCookies(t.config.baseUrl)) if (cookie.value.length >= 8) secrets.add(cookie.value);
}
/** A link's token (query `token` or the last path segment). */
function tokenOf(link: string) {
  const url = new URL(link);
  const token = url.searchParams.get("token") ?? url.pathname.split("/").pop()!;
  secrets.add(token);
  return token;
}

/** A user signed up through the client; the sign-up verification mail is taken off the server. */
async function member(prefix = "audit-flow") {
  const email = uniqueEmail(prefix);
  const { client, jar } = createTestClient({ baseUrl: t.config.baseUrl, fetch: clientFetch });
  const { data, error } = await client.signUp.email({ email, password: PASSWORD, name: "Ada" });
  expect(error).toBeNull();
  const verificationMail = await t.smtp.waitForMail(email);
  await rememberCookies(jar);
  return { client, jar, email, userId: data!.user.id, verificationMail };
}

/** Every row of the user carries the client's IP and user agent. */
async function expectOrigin(userId: string) {
  for (const row of await eventsOf(userId)) expect([row.type, row.ip, row.user_agent]).toEqual([row.type, IP, USER_AGENT]);
}

describe("mail flows", () => {
  test("ASVS 7.1.3 / 7.2.1: a password reset is recorded once, for the user whose token it was; a refused reuse adds nothing", async () => {
    const { email, userId } = await member();
    const requested = await t.request("/api/auth/request-password-reset", { method: "POST", headers: headers(), json: { email, redirectTo: `${SITE_ORIGIN}/reset` } });
    expect(requested.status).toBe(200);
    const token = tokenOf(linkIn(await t.smtp.waitForMail(email)));
    const reset = (newPassword: string) => t.request("/api/auth/reset-password", { method: "POST", headers: headers(), json: { token, newPassword } });

    expect((await reset(NEW_PASSWORD)).status).toBe(200);
    expect((await reset("yet another passphrase")).status).toBe(400);
    secrets.add("yet another passphrase");

    expect(await typesOf(userId)).toEqual(["sign_up", "password_reset"]);
    expect((await eventsOf(userId))[1]!.details).toEqual({});
    await expectOrigin(userId);
    await expectNothingSecret();
  });

  test("ASVS 7.1.3: opening the verification link records email_verified; opening it again records nothing more", async () => {
    const { userId, verificationMail } = await member();
    const link = linkIn(verificationMail);
    tokenOf(link);
    const opened = await t.request(link, { headers: headers(), redirect: "manual" });
    expect(opened.status).toBe(302);
    expect(opened.headers.get("location")).not.toContain("error=");
    for (const cookie of opened.headers.getSetCookie()) secrets.add(cookie.split(";")[0]!.split("=").slice(1).join("="));
    await t.request(link, { headers: headers(), redirect: "manual" });

    expect(await typesOf(userId)).toEqual(["sign_up", "email_verified"]);
    await expectOrigin(userId);
    await expectNothingSecret();
  });

  test("ASVS 7.1.3: an email change is recorded when its link is opened, not when it is asked for; a bad token records nothing", async () => {
    const { client, userId } = await member();
    const newEmail = uniqueEmail("audit-moved");
    expect((await client.changeEmail({ newEmail, callbackURL: `${SITE_ORIGIN}/account` })).error).toBeNull();
    const link = linkIn(await t.smtp.waitForMail(newEmail));
    tokenOf(link);
    expect(await typesOf(userId)).toEqual(["sign_up"]);

    const forged = new URL(link);
    forged.searchParams.set("token", "not-a-token");
    expect((await t.request(forged.toString(), { headers: headers(), redirect: "manual" })).headers.get("location")).toContain("error=");
    const opened = await t.request(link, { headers: headers(), redirect: "manual" });
    expect(opened.headers.get("location")).toBe(`${SITE_ORIGIN}/account`);
    expect((await t.db.sql`select email from users where id = ${userId}`)[0]!.email).toBe(newEmail);

    expect(await typesOf(userId)).toEqual(["sign_up", "email_changed"]);
    await expectOrigin(userId);
    // The addresses are personal data, not needed to follow the trail: the user id is.
    expect(JSON.stringify(await eventsOf(userId))).not.toContain(newEmail);
    await expectNothingSecret();
  });

  test("ASVS 7.1.3: deleting one's account is recorded when the confirmation link deletes it, not when the mail is sent", async () => {
    const { client, jar, email, userId } = await member();
    expect((await client.deleteUser({ password: PASSWORD, callbackURL: `${SITE_ORIGIN}/goodbye` })).error).toBeNull();
    const link = linkIn(await t.smtp.waitForMail(email));
    tokenOf(link);
    expect(await typesOf(userId)).toEqual(["sign_up"]);

    const cookie = await jar.getCookieString(t.config.baseUrl);
    const opened = await t.request(link, { headers: headers(cookie), redirect: "manual" });
    expect(opened.headers.get("location")).toBe(`${SITE_ORIGIN}/goodbye`);
    expect((await t.db.sql`select count(*)::int as n from users where id = ${userId}`)[0]!.n).toBe(0);

    // The trail outlives the user (no foreign key).
    const rows = await eventsOf(userId);
    expect(rows.map((row) => [row.type, row.details])).toEqual([
      ["sign_up", {}],
      ["user_deleted", { by: "self" }],
    ]);
    await expectOrigin(userId);
    await expectNothingSecret();
  });
});

describe("magic link", () => {
  test("ASVS 7.1.3 / 7.2.1: opening a magic link is a sign_in by magic-link; opening it again is a sign_in_failed, not a sign-in", async () => {
    const { client, userId, email } = await member("audit-magic");
    expect((await client.signIn.magicLink({ email, callbackURL: `${SITE_ORIGIN}/home` })).error).toBeNull();
    const link = linkIn(await t.smtp.waitForMail(email));
    tokenOf(link);
    const opened = await t.request(link, { headers: headers(), redirect: "manual" });
    expect(opened.headers.get("location")).toBe(`${SITE_ORIGIN}/home`);
    for (const cookie of opened.headers.getSetCookie()) secrets.add(cookie.split(";")[0]!.split("=").slice(1).join("="));
    expect((await t.request(link, { headers: headers(), redirect: "manual" })).headers.get("location")).toContain("error=");

    const rows = await eventsOf(userId);
    expect(rows.map((row) => [row.type, row.details])).toEqual([
      ["sign_up", {}],
      ["sign_in", { method: "magic-link" }],
    ]);
    await expectOrigin(userId);
    const [failure] = await t.db.sql`select type, details from auth_events order by id desc limit 1`;
    expect(failure).toEqual({ type: "sign_in_failed", details: { method: "magic-link", reason: "invalid_request" } });
    await expectNothingSecret();
  });
});

describe("two-factor authentication", () => {
  test("ASVS 7.1.3: 2FA is recorded as enabled when the first code turns it on (not at enable), and as disabled; the first code is no sign-in, nor is a password awaiting its second factor", async () => {
    const { client, jar, userId } = await member("audit-2fa");
    const enabled = await client.twoFactor.enable({ password: PASSWORD });
    expect(enabled.error).toBeNull();
    const { totpURI, backupCodes } = enabled.data as { totpURI: string; backupCodes: string[] };
    const totp = URI.parse(totpURI) as TOTP;
    secrets.add(totp.secret.base32);
    for (const code of backupCodes) secrets.add(code);
    // Asked for, not on yet: 2FA is off until a first valid code.
    expect(await typesOf(userId)).toEqual(["sign_up"]);

    const wrongCode = totp.generate() === "000000" ? "111111" : "000000";
    expect((await client.twoFactor.verifyTotp({ code: wrongCode })).error?.status).toBe(401);
    expect(await typesOf(userId)).toEqual(["sign_up"]);
    expect((await client.twoFactor.verifyTotp({ code: totp.generate() })).error).toBeNull();
    expect(await typesOf(userId)).toEqual(["sign_up", "two_factor_enabled"]);
    await rememberCookies(jar);

    // A password sign-in that still needs the second factor grants no session: no sign_in until the code.
    await client.signOut();
    const { email } = (await t.db.sql<{ email: string }[]>`select email from users where id = ${userId}`)[0]!;
    expect((await client.signIn.email({ email, password: PASSWORD })).data).toMatchObject({ twoFactorRedirect: true });
    await rememberCookies(jar);
    expect(await typesOf(userId)).toEqual(["sign_up", "two_factor_enabled", "sign_out"]);
    const nextCode = totp.generate({ timestamp: Date.now() + totp.period * 1000 });
    expect((await client.twoFactor.verifyTotp({ code: nextCode })).error).toBeNull();
    await rememberCookies(jar);
    expect((await eventsOf(userId)).slice(3).map((row) => [row.type, row.details])).toEqual([["sign_in", { method: "verify-totp" }]]);

    // A wrong password leaves 2FA on and records nothing; the right one turns it off.
    expect((await client.twoFactor.disable({ password: "not my password" })).error?.status).toBe(400);
    expect((await client.twoFactor.disable({ password: PASSWORD })).error).toBeNull();
    expect((await t.db.sql`select two_factor_enabled from users where id = ${userId}`)[0]!.two_factor_enabled).toBe(false);

    expect(await typesOf(userId)).toEqual(["sign_up", "two_factor_enabled", "sign_out", "sign_in", "two_factor_disabled"]);
    await expectOrigin(userId);
    await rememberCookies(jar);
    await expectNothingSecret();
  });
});

describe("admin actions", () => {
  test("ASVS 7.1.3 / 7.2.1: set role, ban, unban, revoke sessions, impersonate and its stop, remove user: each an admin_action of the admin naming the target; removal also user_deleted", async () => {
    const admin = await member("audit-admin");
    await t.db.sql`update users set role = 'admin' where id = ${admin.userId}`;
    const pupil = await member("audit-pupil");
    const { client } = admin;

    // A non-admin is refused and nothing is recorded as an admin action.
    expect((await pupil.client.admin.setRole({ userId: admin.userId, role: "user" })).error?.status).toBe(403);

    expect((await client.admin.setRole({ userId: pupil.userId, role: "teacher" })).error).toBeNull();
    expect((await client.admin.banUser({ userId: pupil.userId, banReason: "spam in the forum" })).error).toBeNull();
    expect((await client.admin.unbanUser({ userId: pupil.userId })).error).toBeNull();
    expect((await client.admin.revokeUserSessions({ userId: pupil.userId })).error).toBeNull();
    expect((await client.admin.impersonateUser({ userId: pupil.userId })).error).toBeNull();
    await rememberCookies(admin.jar);
    expect((await client.admin.stopImpersonating()).error).toBeNull();
    expect((await client.admin.removeUser({ userId: pupil.userId })).error).toBeNull();

    const actions = (await t.db.sql<EventRow[]>`select type, user_id, ip, user_agent, details from auth_events where type = 'admin_action' order by id`)
      .filter((row) => row.details.targetUserId === pupil.userId || row.user_id === pupil.userId);
    expect(actions.map((row) => [row.user_id, row.details])).toEqual([
      [admin.userId, { action: "set-role", targetUserId: pupil.userId }],
      [admin.userId, { action: "ban-user", targetUserId: pupil.userId }],
      [admin.userId, { action: "unban-user", targetUserId: pupil.userId }],
      [admin.userId, { action: "revoke-user-sessions", targetUserId: pupil.userId }],
      [admin.userId, { action: "impersonate-user", targetUserId: pupil.userId }],
      [admin.userId, { action: "stop-impersonating", targetUserId: pupil.userId }],
      [admin.userId, { action: "remove-user", targetUserId: pupil.userId }],
    ]);
    for (const row of actions) expect([row.ip, row.user_agent]).toEqual([IP, USER_AGENT]);
    expect((await eventsOf(pupil.userId)).map((row) => [row.type, row.details])).toEqual([
      ["sign_up", {}],
      ["user_deleted", { by: "admin" }],
    ]);
    await expectNothingSecret();
  });
});
