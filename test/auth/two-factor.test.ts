// Two-factor authentication through Better Auth's client: enabling with the password and a first
// code, TOTP sign-in (codes from `otpauth` with the secret the server returned), one use per code,
// single-use backup codes, trusting a device for 30 days, emailed codes, and the lockout.
import { describe, expect, test } from "bun:test";
import { TOTP, URI } from "otpauth";
import { BACKUP_CODE_COUNT, TOTP_PERIOD_SECONDS, TWO_FACTOR_LOCKOUT } from "../../src/auth/plugins/two-factor.ts";
import { cleanUpAfterFile, createTestApp, createTestClient, inProcessFetch, PASSWORD, signUp, uniqueEmail, expectError, attemptSignIn } from "../helpers.ts";
import { createMailTestApp } from "../smtp.ts";

cleanUpAfterFile();

// Emailed codes go out over real SMTP; sign-up verification mails are off so only codes arrive.
const t = await createMailTestApp({ TWO_FACTOR_ISSUER: "Learn Physics", EMAIL_FLOWS: "none" });
const target = { baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) };

type Client = ReturnType<typeof createTestClient>["client"];

async function signedUpClient(email = uniqueEmail("2fa")) {
  const { client, jar } = createTestClient(target);
  const { error } = await client.signUp.email({ name: "Two Factor", email, password: PASSWORD });
  expect(error).toBeNull();
  return { client, jar, email };
}

/** Enables TOTP for the signed-in client; returns the authenticator and the backup codes. */
/** The TOTP answer of two-factor/enable. */
async function enableAnswer(client: Client, password = PASSWORD) {
  const { data, error } = await client.twoFactor.enable({ password });
  if (error) return { data: null, error };
  if (data?.method !== "totp") throw new Error(`enable answered ${JSON.stringify(data)}`);
  return { data, error };
}

async function enableTotp(client: Client) {
  const { data, error } = await enableAnswer(client);
  expect(error).toBeNull();
  const totp = URI.parse(data!.totpURI) as TOTP;
  const first = totp.generate();
  const verified = await client.twoFactor.verifyTotp({ code: first });
  expect(verified.error).toBeNull();
  return { totp, backupCodes: data!.backupCodes, firstCode: first };
}

/** A code of the next time step: accepted (one step of clock drift), and not yet used. */
const nextCode = (totp: TOTP) => totp.generate({ timestamp: Date.now() + TOTP_PERIOD_SECONDS * 1000 });

const userRow = async (email: string) =>
  (await t.db.sql`
    select u.two_factor_enabled, tf.verified, tf.failed_verification_count, tf.locked_until, tf.secret, tf.backup_codes,
           (select count(*)::int from sessions s where s.user_id = u.id) as sessions
    from users u left join two_factors tf on tf.user_id = u.id where u.email = ${email}`)[0]!;

describe("enabling TOTP", () => {
  test("enable needs the password: a wrong one answers 400 INVALID_PASSWORD and writes nothing", async () => {
    const { client, email } = await signedUpClient();
    const { error } = await enableAnswer(client, "not the password");
    expect(error?.status).toBe(400);
    expect(error?.code).toBe("INVALID_PASSWORD");
    expect(await userRow(email)).toMatchObject({ two_factor_enabled: false, secret: null });
  });

  test("enable answers an otpauth URI with the configured issuer and 10 backup codes; 2FA is on only after a first valid code", async () => {
    const { client, email } = await signedUpClient();
    const { data } = await enableAnswer(client);
    const totp = URI.parse(data!.totpURI) as TOTP;
    expect(totp).toBeInstanceOf(TOTP);
    expect(totp.issuer).toBe("Learn Physics");
    expect(totp.label).toBe(email);
    expect(totp.period).toBe(TOTP_PERIOD_SECONDS);
    expect(data!.backupCodes).toHaveLength(BACKUP_CODE_COUNT);
    expect(new Set(data!.backupCodes).size).toBe(BACKUP_CODE_COUNT);

    // The secret and backup codes are stored encrypted, and 2FA is not on yet.
    const pending = await userRow(email);
    expect(pending).toMatchObject({ two_factor_enabled: false, verified: false });
    expect(pending.secret).not.toContain(totp.secret.base32);
    for (const code of data!.backupCodes) expect(pending.backup_codes).not.toContain(code);

    const wrong = await client.twoFactor.verifyTotp({ code: totp.generate() === "000000" ? "111111" : "000000" });
    expect(wrong.error?.status).toBe(401);
    expect(wrong.error?.code).toBe("INVALID_CODE");
    expect((await userRow(email)).two_factor_enabled).toBe(false);

    const { error } = await client.twoFactor.verifyTotp({ code: totp.generate() });
    expect(error).toBeNull();
    expect(await userRow(email)).toMatchObject({ two_factor_enabled: true, verified: true });
    const session = await client.getSession();
    expect((session.data?.user as { twoFactorEnabled?: boolean }).twoFactorEnabled).toBe(true);
  });
});

describe("signing in with a second factor", () => {
  test("the password alone answers twoFactorRedirect and creates no session; a TOTP code completes the sign-in", async () => {
    const { client, email } = await signedUpClient();
    const { totp } = await enableTotp(client);
    await client.signOut();
    expect((await userRow(email)).sessions).toBe(0);

    const first = await client.signIn.email({ email, password: PASSWORD });
    expect(first.data).toMatchObject({ twoFactorRedirect: true, twoFactorMethods: ["totp", "otp"] });
    expect((await userRow(email)).sessions).toBe(0);
    expect((await client.getSession()).data).toBeNull();

    const { data, error } = await client.twoFactor.verifyTotp({ code: nextCode(totp) });
    expect(error).toBeNull();
    expect(data?.user.email).toBe(email);
    expect((await client.getSession()).data?.user.email).toBe(email);
    expect((await userRow(email)).sessions).toBe(1);
  });

  test("ASVS 2.8.4: a TOTP code works once; using it again, even in a new sign-in, answers 401 TOTP_CODE_ALREADY_USED", async () => {
    const { client, email } = await signedUpClient();
    const { totp, firstCode } = await enableTotp(client);
    // The code that enabled 2FA is spent already.
    const again = await client.twoFactor.verifyTotp({ code: firstCode });
    expect(again.error?.status).toBe(401);
    expect(again.error?.code).toBe("TOTP_CODE_ALREADY_USED");

    await client.signOut();
    await client.signIn.email({ email, password: PASSWORD });
    const code = nextCode(totp);
    expect((await client.twoFactor.verifyTotp({ code })).error).toBeNull();
    await client.signOut();

    // An attacker who watched the code go by signs in with the password and replays it.
    const { client: attacker } = createTestClient(target);
    expect((await attacker.signIn.email({ email, password: PASSWORD })).data).toMatchObject({ twoFactorRedirect: true });
    const replay = await attacker.twoFactor.verifyTotp({ code });
    expect(replay.error?.status).toBe(401);
    expect(replay.error?.code).toBe("TOTP_CODE_ALREADY_USED");
    // An older code of the window is refused as well: steps only move forward.
    const older = await attacker.twoFactor.verifyTotp({ code: totp.generate({ timestamp: Date.now() - TOTP_PERIOD_SECONDS * 1000 }) });
    expect(older.error?.code).toBe("TOTP_CODE_ALREADY_USED");
    expect((await attacker.getSession()).data).toBeNull();
    expect((await userRow(email)).sessions).toBe(0);
  });

  test("a used code replayed next to a revoked session's still-signed cookie cache answers 401 TOTP_CODE_ALREADY_USED", async () => {
    // The replay guard reads the signed-in user as the plugin does (the session row, not the cookie
    // cache): otherwise a cache naming another user sends the guard to that user's secret while the
    // plugin verifies the code for the user of the two-factor challenge.
    const { client, email } = await signedUpClient();
    const { totp } = await enableTotp(client);
    await client.signOut();
    await client.signIn.email({ email, password: PASSWORD });
    const code = nextCode(totp);
    expect((await client.twoFactor.verifyTotp({ code })).error).toBeNull();
    await client.signOut();

    // The attacker's own account: its session cookie and cookie cache, then its session row revoked.
    const own = await signUp(t);
    const ownCookies = own.response.headers.getSetCookie().map((cookie) => cookie.split(";")[0]!);
    expect(ownCookies.some((cookie) => cookie.includes("session_data="))).toBe(true);
    await t.db.sql`delete from sessions where user_id = ${own.userId}`;
    // The victim's password, then the code seen going by.
    const challenge = await attemptSignIn(t, email);
    expect(await challenge.json()).toMatchObject({ twoFactorRedirect: true });
    const twoFactorCookie = challenge.headers.getSetCookie().map((cookie) => cookie.split(";")[0]!).find((cookie) => cookie.includes("two_factor="))!;
    const replay = await t.request("/api/auth/two-factor/verify-totp", {
      method: "POST",
      headers: { cookie: [...ownCookies, twoFactorCookie].join("; ") },
      json: { code },
    });
    await expectError(replay, 401, "TOTP_CODE_ALREADY_USED");
    expect((await userRow(email)).sessions).toBe(0);
  });

  test("two sign-ins racing with the same code: exactly one gets a session", async () => {
    const { client, email } = await signedUpClient();
    const { totp } = await enableTotp(client);
    await client.signOut();
    const racers = [createTestClient(target).client, createTestClient(target).client];
    for (const racer of racers) await racer.signIn.email({ email, password: PASSWORD });
    const code = nextCode(totp);
    const results = await Promise.all(racers.map((racer) => racer.twoFactor.verifyTotp({ code })));
    expect(results.filter((result) => result.error === null)).toHaveLength(1);
    expect(results.find((result) => result.error)?.error?.code).toBe("TOTP_CODE_ALREADY_USED");
    expect((await userRow(email)).sessions).toBe(1);
  });

  test("a backup code signs in once; the same code again answers 401 INVALID_BACKUP_CODE", async () => {
    const { client, email } = await signedUpClient();
    const { backupCodes } = await enableTotp(client);
    await client.signOut();

    await client.signIn.email({ email, password: PASSWORD });
    expect((await client.twoFactor.verifyBackupCode({ code: backupCodes[0]! })).error).toBeNull();
    expect((await client.getSession()).data?.user.email).toBe(email);
    await client.signOut();

    await client.signIn.email({ email, password: PASSWORD });
    const reused = await client.twoFactor.verifyBackupCode({ code: backupCodes[0]! });
    expect(reused.error?.status).toBe(401);
    expect(reused.error?.code).toBe("INVALID_BACKUP_CODE");
    expect((await client.twoFactor.verifyBackupCode({ code: backupCodes[1]! })).error).toBeNull();
  });

  test("trust this device: a 30-day cookie skips the second factor on the next sign-in from this device only", async () => {
    const { client, jar, email } = await signedUpClient();
    const { totp } = await enableTotp(client);
    await client.signOut();

    await client.signIn.email({ email, password: PASSWORD });
    expect((await client.twoFactor.verifyTotp({ code: nextCode(totp), trustDevice: true })).error).toBeNull();
    const trust = (await jar.getCookies(t.config.baseUrl)).find((cookie) => cookie.key.endsWith("trust_device"));
    expect(trust?.httpOnly).toBe(true);
    expect(trust?.maxAge).toBe(30 * 86400);
    await client.signOut();

    const trusted = await client.signIn.email({ email, password: PASSWORD });
    expect(trusted.error).toBeNull();
    expect(trusted.data).not.toHaveProperty("twoFactorRedirect");
    expect((await client.getSession()).data?.user.email).toBe(email);

    // Another device (no trust cookie) still has to give a second factor.
    const { client: other } = createTestClient(target);
    expect((await other.signIn.email({ email, password: PASSWORD })).data).toMatchObject({ twoFactorRedirect: true });
  });

  test("with mail configured, an emailed code is a second factor", async () => {
    const { client, email } = await signedUpClient();
    await enableTotp(client);
    await client.signOut();

    expect((await client.signIn.email({ email, password: PASSWORD })).data).toMatchObject({ twoFactorMethods: ["totp", "otp"] });
    expect((await client.twoFactor.sendOtp()).error).toBeNull();
    const mail = await t.smtp.waitForMail(email);
    expect(mail.subject).toBe("Your Learn sign-in code");
    expect(t.smtp.mailsTo(email)).toHaveLength(1);
    const code = /code is (\d{6})/.exec(mail.text)?.[1];
    expect(code).toBeDefined();
    expect(mail.subject).not.toContain(code!);
    expect(mail.html).toContain(code!);
    expect(mail.text).toContain("expires in 5 minutes");

    const wrong = await client.twoFactor.verifyOtp({ code: code === "000000" ? "111111" : "000000" });
    expect(wrong.error?.status).toBe(401);
    expect((await client.twoFactor.verifyOtp({ code: code! })).error).toBeNull();
    expect((await client.getSession()).data?.user.email).toBe(email);
  });

  test("without mail, email codes are not offered and send-otp answers 400 OTP_NOT_CONFIGURED", async () => {
    const plain = await createTestApp();
    const plainTarget = { baseUrl: plain.config.baseUrl, fetch: inProcessFetch(plain.app) };
    const { client } = createTestClient(plainTarget);
    const email = uniqueEmail("nomail");
    await client.signUp.email({ name: "No Mail", email, password: PASSWORD });
    await enableTotp(client);
    await client.signOut();
    expect((await client.signIn.email({ email, password: PASSWORD })).data).toMatchObject({ twoFactorMethods: ["totp"] });
    const { error } = await client.twoFactor.sendOtp();
    expect(error?.status).toBe(400);
    expect(error?.code).toBe("OTP_NOT_CONFIGURED");
  });
});

describe("wrong codes are limited", () => {
  test("5 wrong codes end a sign-in challenge; 10 across challenges and factors lock the second factor for 15 minutes", async () => {
    const { client, email } = await signedUpClient();
    const { totp, backupCodes } = await enableTotp(client);
    await client.signOut();
    const wrongCode = () => {
      const current = new Set([-1, 0, 1].map((step) => totp.generate({ timestamp: Date.now() + step * TOTP_PERIOD_SECONDS * 1000 })));
      for (let candidate = 0; ; candidate++) {
        const code = String(candidate).padStart(6, "0");
        if (!current.has(code)) return code;
      }
    };

    await client.signIn.email({ email, password: PASSWORD });
    for (let attempt = 1; attempt <= 5; attempt++) {
      expect((await client.twoFactor.verifyTotp({ code: wrongCode() })).error?.code).toBe("INVALID_CODE");
    }
    const sixth = await client.twoFactor.verifyTotp({ code: nextCode(totp) });
    expect(sixth.error?.code).toBe("TOO_MANY_ATTEMPTS_REQUEST_NEW_CODE");
    expect((await userRow(email)).failed_verification_count).toBe(5);

    // A new challenge, and wrong backup codes count towards the same lockout.
    await client.signIn.email({ email, password: PASSWORD });
    for (let attempt = 6; attempt <= TWO_FACTOR_LOCKOUT.maxFailedAttempts; attempt++) {
      expect((await client.twoFactor.verifyBackupCode({ code: `wrong-${attempt}` })).error?.status).toBe(401);
    }
    const locked = await userRow(email);
    expect(locked.failed_verification_count).toBe(TWO_FACTOR_LOCKOUT.maxFailedAttempts);
    const lockedFor = (locked.locked_until as Date).getTime() - Date.now();
    expect(lockedFor).toBeGreaterThan((TWO_FACTOR_LOCKOUT.durationSeconds - 60) * 1000);
    expect(lockedFor).toBeLessThanOrEqual(TWO_FACTOR_LOCKOUT.durationSeconds * 1000);

    // Locked: even a right backup code in a fresh challenge answers 429, and no session is made.
    await client.signIn.email({ email, password: PASSWORD });
    const refused = await client.twoFactor.verifyBackupCode({ code: backupCodes[0]! });
    expect(refused.error?.status).toBe(429);
    expect(refused.error?.code).toBe("ACCOUNT_TEMPORARILY_LOCKED");
    expect((await userRow(email)).sessions).toBe(0);
  });
});

describe("disabling", () => {
  test("disable needs the password, turns 2FA off and deletes the secret; the password alone signs in again", async () => {
    const { client, email } = await signedUpClient();
    await enableTotp(client);
    const wrong = await client.twoFactor.disable({ password: "not the password" });
    expect(wrong.error?.code).toBe("INVALID_PASSWORD");
    expect((await client.twoFactor.disable({ password: PASSWORD })).error).toBeNull();
    expect(await userRow(email)).toMatchObject({ two_factor_enabled: false, secret: null });
    await client.signOut();
    const signIn = await client.signIn.email({ email, password: PASSWORD });
    expect(signIn.data).not.toHaveProperty("twoFactorRedirect");
    expect((await client.getSession()).data?.user.email).toBe(email);
  });
});
