// Account deletion over real mail: the password or a fresh session, then an emailed confirmation link
// opened while signed in; deleting removes the user's sessions and accounts (cascade) and nothing else.
import { describe, expect, test } from "bun:test";
import { cleanUpAfterFile, countIdentityRows, createTestClient, inProcessFetch, PASSWORD, SITE_ORIGIN, signUp, expectError, attemptSignIn } from "../helpers.ts";
import { createMailTestApp, hashedIdentifier, linkIn } from "../smtp.ts";

cleanUpAfterFile();

const t = await createMailTestApp();

const deleteUser = (cookie: string, json: Record<string, unknown>) => t.request("/api/auth/delete-user", { method: "POST", headers: { cookie }, json });
const rowsOf = async (userId: string) => {
  const [row] = await t.db.sql<{ users: number; sessions: number; accounts: number }[]>`
    select (select count(*)::int from users where id = ${userId}) as users,
           (select count(*)::int from sessions where user_id = ${userId}) as sessions,
           (select count(*)::int from accounts where user_id = ${userId}) as accounts`;
  return row!;
};
/** Deletion tokens: verifications rows whose value is a user id, other than the verification-mail throttle. */
const deleteTokens = async () =>
  (await t.db.sql<{ n: number }[]>`
    select count(*)::int as n from verifications where value in (select id from users) and id not like 'verification-mail-sent:%'`)[0]!.n;

/** A signed-up user whose sign-up verification mail has been taken off the server. */
async function member() {
  const user = await signUp(t);
  await t.smtp.waitForMail(user.email);
  return user;
}

describe("delete-user", () => {
  test("with the password: a confirmation mail; its link, opened signed in, deletes the user, sessions and accounts and nothing else", async () => {
    const bystander = await member();
    const { email, userId, cookie } = await member();
    await attemptSignIn(t, email); // a second session
    const before = await countIdentityRows(t.db.sql);
    expect(await rowsOf(userId)).toEqual({ users: 1, sessions: 2, accounts: 1 });

    const requested = await deleteUser(cookie, { password: PASSWORD, callbackURL: `${SITE_ORIGIN}/goodbye` });
    expect(requested.status).toBe(200);
    expect(await requested.json()).toEqual({ success: true, message: "Verification email sent" });
    expect(await rowsOf(userId)).toEqual({ users: 1, sessions: 2, accounts: 1 });
    const mail = await t.smtp.waitForMail(email);
    expect(mail.subject).toBe("Confirm the deletion of your Learn account");
    expect(mail.text).toContain("expires in 1 hour");

    const opened = await t.request(linkIn(mail), { headers: { cookie }, redirect: "manual" });
    expect(opened.status).toBe(302);
    expect(opened.headers.get("location")).toBe(`${SITE_ORIGIN}/goodbye`);

    expect(await rowsOf(userId)).toEqual({ users: 0, sessions: 0, accounts: 0 });
    expect(await countIdentityRows(t.db.sql)).toEqual({ users: before.users - 1, sessions: before.sessions - 2, accounts: before.accounts - 1 });
    expect(await rowsOf(bystander.userId)).toEqual({ users: 1, sessions: 1, accounts: 1 });
    const session = await t.request("/api/auth/get-session", { headers: { cookie } });
    expect(await session.json()).toBeNull();
  });

  test("through the client with a fresh session and no password", async () => {
    const { client } = createTestClient({ baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) });
    const email = `client-${Date.now()}@example.test`;
    const { data } = await client.signUp.email({ email, password: PASSWORD, name: "Ada" });
    await t.smtp.waitForMail(email);

    const { data: sent, error } = await client.deleteUser({ callbackURL: `${SITE_ORIGIN}/goodbye` });
    expect(error).toBeNull();
    expect(sent).toMatchObject({ message: "Verification email sent" });
    const token = new URL(linkIn(await t.smtp.waitForMail(email))).searchParams.get("token")!;

    const { error: deleteError } = await client.deleteUser({ token });
    expect(deleteError).toBeNull();
    expect(await rowsOf(data!.user.id)).toEqual({ users: 0, sessions: 0, accounts: 0 });
  });

  test("a stale session without the password is refused with 403 SESSION_NOT_FRESH; no mail, no token", async () => {
    const { email, userId, cookie } = await member();
    await t.db.sql`update sessions set created_at = now() - interval '2 days' where user_id = ${userId}`;
    const tokens = await deleteTokens();

    const refused = await deleteUser(cookie, {});
    await expectError(refused, 403, "SESSION_NOT_FRESH");
    expect(await deleteTokens()).toBe(tokens);

    // The password makes up for the stale session.
    expect((await deleteUser(cookie, { password: PASSWORD })).status).toBe(200);
    expect((await t.smtp.waitForMail(email)).subject).toContain("deletion");
    await Bun.sleep(200);
    expect(t.smtp.mailsTo(email)).toHaveLength(2);
  });

  test("a stale session with an empty, null, blank or mistyped password or token is refused: no mail, no token", async () => {
    const { email, userId, cookie } = await member();
    await t.db.sql`update sessions set created_at = now() - interval '2 days' where user_id = ${userId}`;
    const tokens = await deleteTokens();
    // Better Auth reads `password` and `token` by truthiness: "" is no password and no token.
    const bodies: Record<string, unknown>[] = [
      { password: "" },
      { token: "" },
      { password: "", token: "" },
      { password: null },
      { token: null },
      { password: " " },
      { token: " " },
      { password: 0 },
      { password: [] },
      { token: [PASSWORD] },
    ];
    for (const body of bodies) {
      const refused = await deleteUser(cookie, body);
      expect({ body, refused: refused.status >= 400 && refused.status < 500 }).toEqual({ body, refused: true });
      expect(await refused.json()).toHaveProperty("code");
    }
    expect((await deleteUser(cookie, { password: "" })).status).toBe(403);
    await Bun.sleep(300);
    expect(t.smtp.mailsTo(email)).toHaveLength(1); // the sign-up verification mail only
    expect(await deleteTokens()).toBe(tokens);
    expect((await rowsOf(userId)).users).toBe(1);
  });

  test("a wrong password answers 400 INVALID_PASSWORD with no mail and no token", async () => {
    const { email, cookie } = await member();
    const tokens = await deleteTokens();
    const refused = await deleteUser(cookie, { password: "not my password" });
    await expectError(refused, 400, "INVALID_PASSWORD");
    await Bun.sleep(300);
    expect(t.smtp.mailsTo(email)).toHaveLength(1);
    expect(await deleteTokens()).toBe(tokens);
  });

  test("the link needs the user's session, expires, and is stored hashed", async () => {
    const { email, userId, cookie } = await member();
    expect((await deleteUser(cookie, { password: PASSWORD, callbackURL: `${SITE_ORIGIN}/goodbye` })).status).toBe(200);
    const link = linkIn(await t.smtp.waitForMail(email));
    const token = new URL(link).searchParams.get("token")!;
    const [leak] = await t.db.sql`select 1 from verifications where identifier like ${`%${token}%`}`;
    expect(leak).toBeUndefined();

    // Opened without the session: sent back to the site with an error, nothing deleted.
    const anonymous = await t.request(link, { redirect: "manual" });
    expect(anonymous.status).toBe(302);
    expect(anonymous.headers.get("location")).toBe(`${SITE_ORIGIN}/goodbye?error=FAILED_TO_GET_USER_INFO`);
    expect((await rowsOf(userId)).users).toBe(1);

    // Expired: refused, nothing deleted.
    const moved = await t.db.sql`
      update verifications set expires_at = now() - interval '1 second' where identifier = ${await hashedIdentifier(`delete-account-${token}`)}`;
    expect(moved.count).toBe(1);
    const expired = await t.request(link, { headers: { cookie }, redirect: "manual" });
    expect(expired.headers.get("location")).toBe(`${SITE_ORIGIN}/goodbye?error=INVALID_TOKEN`);
    const api = new URL(link);
    api.searchParams.delete("callbackURL");
    const json = await t.request(api.toString(), { headers: { cookie } });
    await expectError(json, 404, "INVALID_TOKEN");
    expect((await rowsOf(userId)).users).toBe(1);
  });
});
