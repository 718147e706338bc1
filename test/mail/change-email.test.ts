// Change of email address over real mail: a verification link goes to the new address, the old one is
// notified at once (ASVS 2.2.3), and the address changes only when the link is opened, once.
import { describe, expect, test } from "bun:test";
import { cleanUpAfterFile, createTestClient, inProcessFetch, PASSWORD, SITE_ORIGIN, signUp, uniqueEmail, attemptSignIn } from "../helpers.ts";
import { createMailTestApp, linkIn } from "../smtp.ts";

cleanUpAfterFile();

const t = await createMailTestApp();

const emailOf = async (userId: string) => (await t.db.sql<{ email: string }[]>`select email from users where id = ${userId}`)[0]?.email;

async function signedInClient() {
  const email = uniqueEmail("change");
  const { client } = createTestClient({ baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) });
  const { data, error } = await client.signUp.email({ email, password: PASSWORD, name: "Ada" });
  expect(error).toBeNull();
  await t.smtp.waitForMail(email); // the sign-up verification mail
  return { client, email, userId: data!.user.id };
}

describe("change-email", () => {
  test("through the client: a link to the new address, a notice to the old one, the address changes only when the link is opened", async () => {
    const { client, email, userId } = await signedInClient();
    const newEmail = uniqueEmail("moved");

    const { error } = await client.changeEmail({ newEmail, callbackURL: `${SITE_ORIGIN}/account` });
    expect(error).toBeNull();

    const verify = await t.smtp.waitForMail(newEmail);
    expect(verify.subject).toBe("Confirm your new email address for Learn");
    expect(verify.text).toContain("expires in 1 hour");
    const notice = await t.smtp.waitForMail(email);
    expect(notice.subject).toBe("Your Learn email address is being changed");
    expect(notice.text).toContain(newEmail);
    expect(notice.text).not.toContain("http");
    expect(await emailOf(userId)).toBe(email);

    const opened = await t.request(linkIn(verify), { redirect: "manual" });
    expect(opened.status).toBe(302);
    expect(opened.headers.get("location")).toBe(`${SITE_ORIGIN}/account`);
    expect(await emailOf(userId)).toBe(newEmail);
    // The user signs in with the new address from now on.
    const signIn = await attemptSignIn(t, newEmail);
    expect(signIn.status).toBe(200);
  });

  test("the link works once: opened again it answers ?error=INVALID_TOKEN and changes nothing", async () => {
    const { client, userId } = await signedInClient();
    const newEmail = uniqueEmail("once");
    expect((await client.changeEmail({ newEmail })).error).toBeNull();
    const link = linkIn(await t.smtp.waitForMail(newEmail));
    expect((await t.request(link, { redirect: "manual" })).status).toBe(302);
    expect(await emailOf(userId)).toBe(newEmail);

    const again = await t.request(link, { redirect: "manual" });
    expect(again.status).toBe(302);
    expect(again.headers.get("location")).toBe(`${SITE_ORIGIN}/?error=INVALID_TOKEN`);
    expect(await emailOf(userId)).toBe(newEmail);
  });

  test("an address that already has an account gets no mail, and the answer is the same", async () => {
    const { client, email, userId } = await signedInClient();
    const taken = (await signUp(t)).email;
    await t.smtp.waitForMail(taken);

    const { data, error } = await client.changeEmail({ newEmail: taken });
    expect(error).toBeNull();
    expect(data).toMatchObject({ status: true });
    await Bun.sleep(300);
    expect(t.smtp.mailsTo(taken)).toHaveLength(1);
    expect(t.smtp.mailsTo(email)).toHaveLength(1);
    expect(await emailOf(userId)).toBe(email);
  });

  test("without a session the request is refused with 401 and sends nothing", async () => {
    const newEmail = uniqueEmail("anon");
    const response = await t.request("/api/auth/change-email", { method: "POST", json: { newEmail } });
    expect(response.status).toBe(401);
    await Bun.sleep(200);
    expect(t.smtp.mailsTo(newEmail)).toEqual([]);
  });
});
