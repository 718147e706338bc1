// Magic-link sign-in over real mail: a single-use link, stored hashed, that lasts 10 minutes; an
// account is created on first use only with MAGIC_LINK_SIGN_UP=on, and the answer is the same for
// known and unknown addresses either way.
import { describe, expect, test } from "bun:test";
import { cleanUpAfterFile, createTestClient, inProcessFetch, PASSWORD, SITE_ORIGIN, signUp, uniqueEmail, type TestApp, expectError, attemptSignIn } from "../helpers.ts";
import { createMailTestApp, linkIn } from "../smtp.ts";

cleanUpAfterFile();

const t = await createMailTestApp();
const open = await createMailTestApp({ MAGIC_LINK_SIGN_UP: "on" });

const requestLink = (app: TestApp, email: string, callbackURL = `${SITE_ORIGIN}/home`) =>
  app.request("/api/auth/sign-in/magic-link", { method: "POST", json: { email, callbackURL } });
const users = async (app: TestApp, email: string) => (await app.db.sql`select id, email_verified from users where email = ${email}`) as unknown as { id: string; email_verified: boolean }[];
const sessionsOf = async (app: TestApp, userId: string) =>
  (await app.db.sql<{ n: number }[]>`select count(*)::int as n from sessions where user_id = ${userId}`)[0]!.n;

describe("an existing account", () => {
  test("through the client: the link arrives, lasts 10 minutes, and signs in through the browser redirect", async () => {
    const { email, userId } = await signUp(t);
    await t.smtp.waitForMail(email); // sign-up verification
    await t.db.sql`update users set email_verified = true where id = ${userId}`;
    const { client } = createTestClient({ baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) });

    const { error } = await client.signIn.magicLink({ email, callbackURL: `${SITE_ORIGIN}/home` });
    expect(error).toBeNull();
    const mail = await t.smtp.waitForMail(email);
    expect(mail.subject).toBe("Your sign-in link for Learn");
    expect(mail.text).toContain("expires in 10 minutes");
    const link = linkIn(mail);
    expect(new URL(link).pathname).toBe("/api/auth/magic-link/verify");

    const sessions = await sessionsOf(t, userId);
    const opened = await t.request(link, { redirect: "manual" });
    expect(opened.status).toBe(302);
    expect(opened.headers.get("location")).toBe(`${SITE_ORIGIN}/home`);
    expect(opened.headers.getSetCookie().some((cookie) => cookie.startsWith("better-auth.session_token="))).toBe(true);
    expect(await sessionsOf(t, userId)).toBe(sessions + 1);
  });

  test("the client's magicLink.verify (an API call, no callback) answers JSON with the session", async () => {
    const { email, userId } = await signUp(t);
    await t.smtp.waitForMail(email);
    const { client } = createTestClient({ baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) });
    await requestLink(t, email);
    const token = new URL(linkIn(await t.smtp.waitForMail(email))).searchParams.get("token")!;

    const { data, error } = await client.magicLink.verify({ query: { token } });
    expect(error).toBeNull();
    expect((data as { user: { id: string } }).user.id).toBe(userId);
    expect((await client.getSession()).data?.user.id).toBe(userId);
  });

  test("the token is stored hashed; the link works once; a used or expired link answers INVALID_TOKEN", async () => {
    const { email, userId } = await signUp(t);
    await t.smtp.waitForMail(email);
    await requestLink(t, email);
    const link = linkIn(await t.smtp.waitForMail(email));
    const token = new URL(link).searchParams.get("token")!;
    const [leak] = await t.db.sql`select 1 from verifications where identifier like ${`%${token}%`}`;
    expect(leak).toBeUndefined();

    expect((await t.request(link, { redirect: "manual" })).status).toBe(302);
    const sessions = await sessionsOf(t, userId);
    const reused = await t.request(link, { redirect: "manual" });
    expect(reused.headers.get("location")).toBe(`${SITE_ORIGIN}/home?error=INVALID_TOKEN`);
    const api = await t.request(`/api/auth/magic-link/verify?token=${token}`);
    await expectError(api, 401, "INVALID_TOKEN");
    expect(await sessionsOf(t, userId)).toBe(sessions);

    await requestLink(t, email);
    const late = linkIn(await t.smtp.waitForMail(email));
    await t.db.sql`update verifications set expires_at = now() - interval '1 second' where identifier like 'magic-link:%'`;
    expect((await t.request(late, { redirect: "manual" })).headers.get("location")).toBe(`${SITE_ORIGIN}/home?error=INVALID_TOKEN`);
    expect(await sessionsOf(t, userId)).toBe(sessions);
  });
  test("on an unverified account the link proves the mailbox: the password and sessions from before are dropped", async () => {
    // Better Auth's defence against account pre-hijacking: whoever signed up with this address
    // without proving it keeps no way in once the mailbox owner signs in by link.
    const { email, userId } = await signUp(t);
    await t.smtp.waitForMail(email);
    await requestLink(t, email);
    expect((await t.request(linkIn(await t.smtp.waitForMail(email)), { redirect: "manual" })).status).toBe(302);

    const [user] = await users(t, email);
    expect(user?.email_verified).toBe(true);
    expect(await sessionsOf(t, userId)).toBe(1);
    const [accounts] = await t.db.sql<{ n: number }[]>`select count(*)::int as n from accounts where user_id = ${userId}`;
    expect(accounts!.n).toBe(0);
    const signIn = await attemptSignIn(t, email);
    expect(signIn.status).toBe(401);
  });
});

describe("an unknown address", () => {
  test("MAGIC_LINK_SIGN_UP off (default): the same answer, no mail, no account", async () => {
    const { email } = await signUp(t);
    const stranger = uniqueEmail("stranger");
    const known = await requestLink(t, email);
    const unknown = await requestLink(t, stranger);
    expect(unknown.status).toBe(known.status);
    expect(await unknown.json()).toEqual(await known.json());
    await Bun.sleep(300);
    expect(t.smtp.mailsTo(stranger)).toEqual([]);
    expect(await users(t, stranger)).toEqual([]);
  });

  test("MAGIC_LINK_SIGN_UP on: the link creates a verified account on first use, and only then", async () => {
    const stranger = uniqueEmail("newcomer");
    expect((await requestLink(open, stranger)).status).toBe(200);
    const link = linkIn(await open.smtp.waitForMail(stranger));
    expect(await users(open, stranger)).toEqual([]);

    const opened = await open.request(link, { redirect: "manual" });
    expect(opened.status).toBe(302);
    const [created] = await users(open, stranger);
    expect(created?.email_verified).toBe(true);
    expect(await sessionsOf(open, created!.id)).toBe(1);

    // A second link for the same address signs in to the same account.
    await requestLink(open, stranger);
    expect((await open.request(linkIn(await open.smtp.waitForMail(stranger)), { redirect: "manual" })).status).toBe(302);
    expect(await users(open, stranger)).toHaveLength(1);

    // ASVS 7.1.3: the audit trail has the sign-up once (the first link made the account), then two sign-ins.
    const events = await open.db.sql`select type, details from auth_events where user_id = ${created!.id} order by id`;
    expect([...events]).toEqual([
      { type: "sign_up", details: { method: "magic-link" } },
      { type: "sign_in", details: { method: "magic-link" } },
      { type: "sign_in", details: { method: "magic-link" } },
    ]);
  });
});
