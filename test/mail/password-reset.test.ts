// Password reset and change over real mail: the same answer for known and unknown addresses (ASVS
// 2.5.x), a single-use link stored hashed that lasts an hour, reset-password under the length policy
// revoking every session, change-password needing the current password (ASVS 2.1.6), and the
// notification mail after either (ASVS 2.2.3).
import { describe, expect, test } from "bun:test";
import { cleanUpAfterFile, createTestClient, inProcessFetch, PASSWORD, SITE_ORIGIN, signUp, uniqueEmail, attemptSignIn, expectError } from "../helpers.ts";
import { createMailTestApp, hashedIdentifier, linkIn } from "../smtp.ts";

cleanUpAfterFile();

// Only this flow: sign-up sends no verification mail here, so each address's inbox holds just what the test caused.
const t = await createMailTestApp({ EMAIL_FLOWS: "password-reset" });
const NEW_PASSWORD = "a brand new passphrase";
const RESET_PAGE = `${SITE_ORIGIN}/reset`;

const requestReset = (email: string, redirectTo = RESET_PAGE) =>
  t.request("/api/auth/request-password-reset", { method: "POST", json: { email, redirectTo } });
const sessionsOf = async (userId: string) => (await t.db.sql<{ n: number }[]>`select count(*)::int as n from sessions where user_id = ${userId}`)[0]!.n;
/** Reset tokens are verifications rows whose value is the user id (stored under a hashed identifier). */
const resetRows = async () => (await t.db.sql<{ n: number }[]>`select count(*)::int as n from verifications where value in (select id from users)`)[0]!.n;

/** The token in a reset mail's link (/reset-password/<token>?callbackURL=...). */
const tokenIn = (link: string) => new URL(link).pathname.split("/").pop()!;

describe("request-password-reset", () => {
  test("known and unknown addresses get the same answer; only the known one gets mail, and no row is written for the other", async () => {
    const { email } = await signUp(t);
    const stranger = uniqueEmail("stranger");
    const rowsBefore = await resetRows();

    const known = await requestReset(email);
    const unknown = await requestReset(stranger);

    expect(known.status).toBe(200);
    expect(unknown.status).toBe(known.status);
    expect(await unknown.json()).toEqual(await known.json());
    const mail = await t.smtp.waitForMail(email);
    expect(mail.subject).toBe("Reset your Learn password");
    expect(mail.text).toContain("expires in 1 hour");
    await Bun.sleep(300);
    expect(t.smtp.mailsTo(stranger)).toEqual([]);
    expect(await resetRows()).toBe(rowsBefore + 1);
  });

  test("the token is stored hashed: no verifications row holds it, one holds its SHA-256", async () => {
    const { email, userId } = await signUp(t);
    await requestReset(email);
    const token = tokenIn(linkIn(await t.smtp.waitForMail(email)));
    const [leak] = await t.db.sql`select 1 from verifications where identifier like ${`%${token}%`} or value like ${`%${token}%`}`;
    expect(leak).toBeUndefined();
    const [row] = await t.db.sql<{ value: string }[]>`select value from verifications where identifier = ${await hashedIdentifier(`reset-password:${token}`)}`;
    expect(row?.value).toBe(userId);
  });

  test("through Better Auth's client: requestPasswordReset, the link to the site's page, resetPassword", async () => {
    const { email, userId } = await signUp(t);
    await attemptSignIn(t, email, PASSWORD); // a second session
    expect(await sessionsOf(userId)).toBe(2);
    const { client } = createTestClient({ baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) });

    const { error } = await client.requestPasswordReset({ email, redirectTo: RESET_PAGE });
    expect(error).toBeNull();
    const link = linkIn(await t.smtp.waitForMail(email));

    // The mailed link checks the token and hands it to the site's reset page.
    const opened = await t.request(link, { redirect: "manual" });
    expect(opened.status).toBe(302);
    const page = new URL(opened.headers.get("location")!);
    expect(page.origin + page.pathname).toBe(RESET_PAGE);
    const token = page.searchParams.get("token")!;
    expect(token).toBe(tokenIn(link));

    const { error: resetError } = await client.resetPassword({ newPassword: NEW_PASSWORD, token });
    expect(resetError).toBeNull();

    // Every session of the user is revoked; the old password is refused, the new one works.
    expect(await sessionsOf(userId)).toBe(0);
    expect((await attemptSignIn(t, email, PASSWORD)).status).toBe(401);
    expect((await attemptSignIn(t, email, NEW_PASSWORD)).status).toBe(200);
    // ASVS 2.2.3: the user hears about it.
    const notice = await t.smtp.waitForMail(email);
    expect(notice.subject).toBe("Your Learn password was reset");
    expect(notice.text).not.toContain("http");
  });

  test("the link works once: a second reset answers 400 INVALID_TOKEN and the browser link ?error=INVALID_TOKEN", async () => {
    const { email } = await signUp(t);
    await requestReset(email);
    const link = linkIn(await t.smtp.waitForMail(email));
    const token = tokenIn(link);
    const reset = (newPassword: string) => t.request("/api/auth/reset-password", { method: "POST", json: { token, newPassword } });

    expect((await reset(NEW_PASSWORD)).status).toBe(200);
    const again = await reset("yet another passphrase");
    await expectError(again, 400, "INVALID_TOKEN");
    expect((await attemptSignIn(t, email, NEW_PASSWORD)).status).toBe(200);

    const opened = await t.request(link, { redirect: "manual" });
    expect(opened.status).toBe(302);
    expect(opened.headers.get("location")).toBe(`${RESET_PAGE}?error=INVALID_TOKEN`);
  });

  test("an expired link (expires_at moved into the past) answers INVALID_TOKEN and the password stays", async () => {
    const { email } = await signUp(t);
    await requestReset(email);
    const link = linkIn(await t.smtp.waitForMail(email));
    const identifier = await hashedIdentifier(`reset-password:${tokenIn(link)}`);
    const moved = await t.db.sql`update verifications set expires_at = now() - interval '1 second' where identifier = ${identifier}`;
    expect(moved.count).toBe(1);

    const response = await t.request("/api/auth/reset-password", { method: "POST", json: { token: tokenIn(link), newPassword: NEW_PASSWORD } });
    await expectError(response, 400, "INVALID_TOKEN");
    expect((await t.request(link, { redirect: "manual" })).headers.get("location")).toBe(`${RESET_PAGE}?error=INVALID_TOKEN`);
    expect((await attemptSignIn(t, email, PASSWORD)).status).toBe(200);
  });

  test("a new password outside the length policy is refused before the token is spent", async () => {
    const { email } = await signUp(t);
    await requestReset(email);
    const token = tokenIn(linkIn(await t.smtp.waitForMail(email)));
    const reset = (newPassword: string) => t.request("/api/auth/reset-password", { method: "POST", json: { token, newPassword } });

    const short = await reset("short");
    await expectError(short, 400, "PASSWORD_TOO_SHORT");
    expect((await reset("x".repeat(129))).status).toBe(400);
    expect((await reset(NEW_PASSWORD)).status).toBe(200);
  });

  test("a link with no redirect returns to the site's /reset-password page (APP_URL)", async () => {
    const { email } = await signUp(t);
    const response = await t.request("/api/auth/request-password-reset", { method: "POST", json: { email } });
    expect(response.status).toBe(200);
    const link = new URL(linkIn(await t.smtp.waitForMail(email)));
    expect(link.searchParams.get("callbackURL")).toBe(`${SITE_ORIGIN}/reset-password`);
  });
});

describe("change-password", () => {
  test("needs the current password (ASVS 2.1.6): a wrong one answers 400 INVALID_PASSWORD and sends no mail", async () => {
    const { email, cookie } = await signUp(t);
    const response = await t.request("/api/auth/change-password", {
      method: "POST",
      headers: { cookie },
      json: { currentPassword: "not my password", newPassword: NEW_PASSWORD },
    });
    await expectError(response, 400, "INVALID_PASSWORD");
    await Bun.sleep(300);
    expect(t.smtp.mailsTo(email)).toEqual([]);
  });

  test("through the client with revokeOtherSessions: other sessions end, this one continues, and a notice is mailed", async () => {
    const { email, userId } = await signUp(t);
    await attemptSignIn(t, email, PASSWORD);
    const { client } = createTestClient({ baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) });
    expect((await client.signIn.email({ email, password: PASSWORD })).error).toBeNull();
    expect(await sessionsOf(userId)).toBe(3);

    const { data, error } = await client.changePassword({ currentPassword: PASSWORD, newPassword: NEW_PASSWORD, revokeOtherSessions: true });
    expect(error).toBeNull();
    expect(data?.token).toBeString();
    expect(await sessionsOf(userId)).toBe(1);
    expect((await client.getSession()).data?.user.email).toBe(email);

    const notice = await t.smtp.waitForMail(email);
    expect(notice.subject).toBe("Your Learn password was changed");
    expect((await attemptSignIn(t, email, NEW_PASSWORD)).status).toBe(200);
  });
});
