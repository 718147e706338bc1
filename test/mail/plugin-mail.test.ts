// The plugins' mail in the running server (src/index.ts): an organization invitation and a two-factor
// email code arrive over real SMTP, and what the mail holds accepts the invitation and completes the
// sign-in, through Better Auth's client on a real port. A relay that refuses answers 424 MAIL_NOT_SENT
// and leaves no pending invitation behind.
import { describe, expect, test } from "bun:test";
import { TOTP, URI } from "otpauth";
import { cleanUpAfterFile, createTestClient, freePort, inProcessFetch, PASSWORD, startTestServer, uniqueEmail } from "../helpers.ts";
import { createMailTestApp, linkIn, startSmtpServer } from "../smtp.ts";

cleanUpAfterFile();

const smtp = await startSmtpServer();
const port = freePort();
const AUTH_URL = `http://localhost:${port}`;
const server = await startTestServer({
  PORT: String(port),
  BETTER_AUTH_URL: AUTH_URL,
  SMTP_URL: smtp.url,
  APP_NAME: "Learn",
  MAIL_FROM: "Learn <no-reply@learn.test>",
  INVITATION_URL: "http://localhost:3000/join?invitation={id}",
});

async function signedUp(name: string) {
  const email = uniqueEmail(name.toLowerCase());
  const { client } = createTestClient({ baseUrl: AUTH_URL });
  const { data, error } = await client.signUp.email({ name, email, password: PASSWORD });
  expect(error).toBeNull();
  return { client, email, id: data!.user.id };
}

describe("plugin mail in the running server", () => {
  test("an invitation arrives by SMTP; its link's id lets the invitee join with the invited role", async () => {
    const owner = await signedUp("Owner");
    const { data: school } = await owner.client.organization.create({ name: "Evening Physics", slug: `evening-${Date.now().toString(36)}` });
    const pupil = await signedUp("Pupil");

    const invited = await owner.client.organization.inviteMember({ email: pupil.email, role: "student", organizationId: school!.id });
    expect(invited.error).toBeNull();
    const mail = await smtp.waitForMail((m) => m.to.includes(pupil.email.toLowerCase()) && m.subject.includes("invites you"));
    expect(mail.from).toBe("no-reply@learn.test");
    expect(mail.subject).toBe("Owner invites you to Evening Physics on Learn");
    expect(mail.text).toContain("as student");
    const link = new URL(linkIn(mail));
    expect(link.origin + link.pathname).toBe("http://localhost:3000/join");
    const invitationId = link.searchParams.get("invitation")!;
    expect(invitationId).toBe(invited.data!.id);

    const accepted = await pupil.client.organization.acceptInvitation({ invitationId });
    expect(accepted.error).toBeNull();
    const [member] = await server.db.sql`select role from members where organization_id = ${school!.id} and user_id = ${pupil.id}`;
    expect(member!.role).toBe("student");
    expect((await pupil.client.getSession()).data?.session).toMatchObject({ activeOrganizationId: school!.id });
  });

  test("a two-factor sign-in completes with the code from the mail; nothing but the mail knows it", async () => {
    const user = await signedUp("Otp");
    const { data } = await user.client.twoFactor.enable({ password: PASSWORD });
    const totp = URI.parse((data as { totpURI: string }).totpURI) as TOTP;
    expect((await user.client.twoFactor.verifyTotp({ code: totp.generate() })).error).toBeNull();
    await user.client.signOut();

    const { client } = createTestClient({ baseUrl: AUTH_URL });
    const first = await client.signIn.email({ email: user.email, password: PASSWORD });
    expect(first.data).toMatchObject({ twoFactorRedirect: true, twoFactorMethods: ["totp", "otp"] });
    expect((await client.getSession()).data).toBeNull();

    expect((await client.twoFactor.sendOtp()).error).toBeNull();
    const mail = await smtp.waitForMail((m) => m.to.includes(user.email.toLowerCase()) && m.subject === "Your Learn sign-in code");
    const code = /code is (\d{6})/.exec(mail.text)![1]!;
    // Stored hashed: the code is nowhere in the database.
    const [stored] = await server.db.sql<{ n: number }[]>`select count(*)::int as n from verifications where value like ${`%${code}%`}`;
    expect(stored!.n).toBe(0);

    const verified = await client.twoFactor.verifyOtp({ code });
    expect(verified.error).toBeNull();
    expect((await client.getSession()).data?.user.email).toBe(user.email);
  });
});

describe("relay refusing", () => {
  const refusing = createMailTestApp({ EMAIL_FLOWS: "none" }, { refuse: true });
  async function client() {
    const t = await refusing;
    return { t, ...createTestClient({ baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) }) };
  }

  test("an invitation answers 424 MAIL_NOT_SENT and is withdrawn: no pending invitation blocks the address", async () => {
    const { t, client: owner } = await client();
    await owner.signUp.email({ name: "Owner", email: uniqueEmail("owner"), password: PASSWORD });
    const { data: school } = await owner.organization.create({ name: "Refused", slug: `refused-${Date.now().toString(36)}` });

    const invitee = uniqueEmail("invitee");
    for (let attempt = 0; attempt < 2; attempt++) {
      // The second attempt is refused for the relay again, not as USER_IS_ALREADY_INVITED.
      const { error } = await owner.organization.inviteMember({ email: invitee, role: "student", organizationId: school!.id });
      expect(error?.status).toBe(424);
      expect(error?.code).toBe("MAIL_NOT_SENT");
    }
    expect(await t.db.sql`select status from invitations where organization_id = ${school!.id}`).toHaveLength(0);
  });

  test("send-otp answers 424 MAIL_NOT_SENT when the code could not be mailed", async () => {
    const { t, client: user } = await client();
    const email = uniqueEmail("otp-refused");
    await user.signUp.email({ name: "Otp", email, password: PASSWORD });
    const { data } = await user.twoFactor.enable({ password: PASSWORD });
    const totp = URI.parse((data as { totpURI: string }).totpURI) as TOTP;
    expect((await user.twoFactor.verifyTotp({ code: totp.generate() })).error).toBeNull();
    await user.signOut();
    expect((await user.signIn.email({ email, password: PASSWORD })).data).toMatchObject({ twoFactorRedirect: true });

    const { error } = await user.twoFactor.sendOtp();
    expect(error?.status).toBe(424);
    expect(error?.code).toBe("MAIL_NOT_SENT");
    expect(t.smtp.messages).toHaveLength(0);
  });
});
