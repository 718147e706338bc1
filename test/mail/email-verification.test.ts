// Email verification over real mail: the mail sent on sign-up, its link (once, with auto sign-in),
// the used and expired link, the resend endpoint, and REQUIRE_EMAIL_VERIFICATION: sign-in before
// verification answers 403 EMAIL_NOT_VERIFIED and resends the mail at most once a minute.
import { afterEach, describe, expect, setSystemTime, test } from "bun:test";
import { cleanUpAfterFile, createTestClient, inProcessFetch, PASSWORD, SITE_ORIGIN, TEST_SECRET, uniqueEmail, type TestApp, attemptSignIn, expectError } from "../helpers.ts";
import { createMailTestApp, linkIn, type TestSmtpServer } from "../smtp.ts";

cleanUpAfterFile();

const t = await createMailTestApp();
const strict = await createMailTestApp({ REQUIRE_EMAIL_VERIFICATION: "on" });
// During a secret rotation: version 2 signs, version 1 and BETTER_AUTH_SECRET are still accepted.
const rotating = await createMailTestApp({ BETTER_AUTH_SECRETS: `2:rotated-secret-Hq3ZmW8pL2vT6xK9nB4yR7jD1fG5sA0c,1:${TEST_SECRET}` });

afterEach(() => setSystemTime());

const clientOf = (app: TestApp) => createTestClient({ baseUrl: app.config.baseUrl, fetch: inProcessFetch(app.app) });

async function userRow(app: TestApp, email: string) {
  const [row] = await app.db.sql<{ id: string; email_verified: boolean }[]>`select id, email_verified from users where email = ${email}`;
  return row;
}

const sessionCount = async (app: TestApp, userId: string) =>
  (await app.db.sql<{ n: number }[]>`select count(*)::int as n from sessions where user_id = ${userId}`)[0]!.n;

/** Signs up through Better Auth's client and returns the verification mail it caused. */
async function signUpAndReceive(app: TestApp & { smtp: TestSmtpServer }, callbackURL?: string) {
  const email = uniqueEmail("verify");
  const { client } = clientOf(app);
  const { error } = await client.signUp.email({ email, password: PASSWORD, name: "Ada", ...(callbackURL && { callbackURL }) });
  expect(error).toBeNull();
  const mail = await app.smtp.waitForMail(email);
  return { email, mail, client };
}

describe("the verification mail", () => {
  test("sign-up sends it: subject, both parts, a link back to the site, its lifetime", async () => {
    const { mail } = await signUpAndReceive(t);
    expect(mail.subject).toBe("Verify your email address for Learn");
    const link = new URL(linkIn(mail));
    expect(link.origin + link.pathname).toBe("http://localhost:3001/api/auth/verify-email");
    expect(link.searchParams.get("callbackURL")).toBe(SITE_ORIGIN);
    expect(mail.text).toContain("expires in 1 hour");
    expect(mail.html).toContain("/api/auth/verify-email?token=");
  });

  test("the link verifies the address, signs the user in and redirects to the site; email_verified is true", async () => {
    const { email, mail } = await signUpAndReceive(t, `${SITE_ORIGIN}/welcome`);
    const before = (await userRow(t, email))!;
    expect(before.email_verified).toBe(false);
    const sessionsBefore = await sessionCount(t, before.id);

    const response = await t.request(linkIn(mail), { redirect: "manual" });

    expect(response.status).toBe(302);
    expect(response.headers.get("location")).toBe(`${SITE_ORIGIN}/welcome`);
    expect(response.headers.getSetCookie().some((cookie) => cookie.startsWith("better-auth.session_token="))).toBe(true);
    expect((await userRow(t, email))!.email_verified).toBe(true);
    expect(await sessionCount(t, before.id)).toBe(sessionsBefore + 1);
  });

  test("a used link answers ?error=INVALID_TOKEN in the browser and 401 JSON to an API call, and signs nobody in", async () => {
    const { email, mail } = await signUpAndReceive(t);
    const link = linkIn(mail);
    expect((await t.request(link, { redirect: "manual" })).status).toBe(302);
    const userId = (await userRow(t, email))!.id;
    const sessions = await sessionCount(t, userId);

    const again = await t.request(link, { redirect: "manual" });
    expect(again.status).toBe(302);
    expect(again.headers.get("location")).toBe(`${SITE_ORIGIN}/?error=INVALID_TOKEN`);
    expect(again.headers.getSetCookie()).toEqual([]);

    const api = new URL(link);
    api.searchParams.delete("callbackURL");
    const json = await t.request(api.toString());
    await expectError(json, 401, "INVALID_TOKEN");
    expect(await sessionCount(t, userId)).toBe(sessions);
  });

  test("during a secret rotation (BETTER_AUTH_SECRETS) a link still verifies once and only once", async () => {
    const { email, mail } = await signUpAndReceive(rotating);
    const link = linkIn(mail);
    expect((await rotating.request(link, { redirect: "manual" })).headers.get("location")).toBe(SITE_ORIGIN);
    const userId = (await userRow(rotating, email))!.id;
    expect((await userRow(rotating, email))!.email_verified).toBe(true);
    const sessions = await sessionCount(rotating, userId);

    const again = await rotating.request(link, { redirect: "manual" });
    expect(again.headers.get("location")).toBe(`${SITE_ORIGIN}/?error=INVALID_TOKEN`);
    expect(again.headers.getSetCookie()).toEqual([]);
    expect(await sessionCount(rotating, userId)).toBe(sessions);
  });

  test("an expired link (the clock moved past its hour) answers TOKEN_EXPIRED and leaves the address unverified", async () => {
    const { email, mail } = await signUpAndReceive(t);
    setSystemTime(new Date(Date.now() + 3601_000));

    const response = await t.request(linkIn(mail), { redirect: "manual" });
    expect(response.headers.get("location")).toBe(`${SITE_ORIGIN}/?error=TOKEN_EXPIRED`);
    const api = new URL(linkIn(mail));
    api.searchParams.delete("callbackURL");
    const json = await t.request(api.toString());
    await expectError(json, 401, "TOKEN_EXPIRED");
    expect((await userRow(t, email))!.email_verified).toBe(false);
  });

  test("a forged token answers INVALID_TOKEN, never a 5xx", async () => {
    const response = await t.request("/api/auth/verify-email?token=not.a.jwt");
    await expectError(response, 401, "INVALID_TOKEN");
  });

  test("send-verification-email through the client resends to a signed-in user; a second link works too", async () => {
    const { email, client } = await signUpAndReceive(t);
    const { error } = await client.sendVerificationEmail({ email, callbackURL: `${SITE_ORIGIN}/again` });
    expect(error).toBeNull();
    const resent = await t.smtp.waitForMail(email);
    const link = new URL(linkIn(resent));
    expect(link.searchParams.get("callbackURL")).toBe(`${SITE_ORIGIN}/again`);

    const { error: verifyError } = await client.verifyEmail({ query: { token: link.searchParams.get("token")! } });
    expect(verifyError).toBeNull();
    expect((await userRow(t, email))!.email_verified).toBe(true);
  });

  test("send-verification-email without a session answers the same for an unknown address and sends nothing", async () => {
    const email = uniqueEmail("nobody");
    const response = await t.request("/api/auth/send-verification-email", { method: "POST", json: { email } });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: true });
    await Bun.sleep(300);
    expect(t.smtp.mailsTo(email)).toEqual([]);
  });
});

describe("REQUIRE_EMAIL_VERIFICATION=on", () => {
  test("sign-up creates no session; sign-in before verification answers 403 EMAIL_NOT_VERIFIED; after the link it works", async () => {
    const { email, mail } = await signUpAndReceive(strict);
    const user = (await userRow(strict, email))!;
    expect(await sessionCount(strict, user.id)).toBe(0);

    const refused = await attemptSignIn(strict, email);
    await expectError(refused, 403, "EMAIL_NOT_VERIFIED");
    expect(refused.headers.getSetCookie()).toEqual([]);

    expect((await strict.request(linkIn(mail), { redirect: "manual" })).status).toBe(302);
    const accepted = await attemptSignIn(strict, email);
    expect(accepted.status).toBe(200);
  });

  test("sign-in resends the mail at most once a minute", async () => {
    const { email } = await signUpAndReceive(strict);
    const user = (await userRow(strict, email))!;

    // The sign-up mail went out just now: a sign-in within the minute sends nothing more.
    expect((await attemptSignIn(strict, email)).status).toBe(403);
    await Bun.sleep(300);
    expect(strict.smtp.mailsTo(email)).toHaveLength(1);

    // A minute later (the throttle row's expiry moved into the past), sign-in resends once.
    await strict.db.sql`update verifications set expires_at = now() - interval '1 second' where id = ${`verification-mail-sent:${user.id}`}`;
    expect((await attemptSignIn(strict, email)).status).toBe(403);
    const resent = await strict.smtp.waitForMail(email);
    expect(resent.subject).toBe("Verify your email address for Learn");
    expect((await attemptSignIn(strict, email)).status).toBe(403);
    expect((await attemptSignIn(strict, email)).status).toBe(403);
    await Bun.sleep(300);
    expect(strict.smtp.mailsTo(email)).toHaveLength(2);

    // The resent link verifies.
    expect((await strict.request(linkIn(resent), { redirect: "manual" })).status).toBe(302);
    expect((await attemptSignIn(strict, email)).status).toBe(200);
  });
});
