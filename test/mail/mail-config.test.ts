// Mail settings (src/config.ts, loadMailConfig): production refuses to start with email flows on and
// no SMTP_URL (or no MAIL_FROM), names the variable, and the entry point turns that into one line.
import { describe, expect, test } from "bun:test";
import { loadConfig } from "../../src/config.ts";
import { cleanUpAfterFile, configError, expectStartRefused } from "../helpers.ts";

cleanUpAfterFile();

const PRODUCTION = {
  NODE_ENV: "production",
  DATABASE_URL: "postgres://auth@db.internal:5432/auth",
  BETTER_AUTH_SECRET: "Vq3xL9tR0mZ7pW2kY5sN8dF4hJ6gB1cTuE8iO3aQ7nXr",
  BETTER_AUTH_URL: "https://auth.learn.test",
  CORS_ORIGINS: "https://learn.test,https://www.learn.test",
  SMTP_URL: "smtps://mailer:relay-password@smtp.learn.test:465",
  MAIL_FROM: "Learn <no-reply@learn.test>",
  METRICS_TOKEN: "scrape-token-0123456789abcdef",
};

const refusal = (env: Record<string, string | undefined>) => configError(() => loadConfig(env));

describe("production", () => {
  test("with a relay and a sender it loads, every flow on, links returning to the first CORS origin", () => {
    const { mail } = loadConfig(PRODUCTION);
    expect(mail.smtpUrl).toBe(PRODUCTION.SMTP_URL);
    expect(mail.from).toBe(PRODUCTION.MAIL_FROM);
    expect([...mail.flows].sort()).toEqual(["change-email", "delete-account", "magic-link", "password-reset", "verification"]);
    expect(mail.appUrl).toBe("https://learn.test");
  });

  test("no SMTP_URL while any email flow is on is refused, naming SMTP_URL and the flows", () => {
    const error = refusal({ ...PRODUCTION, SMTP_URL: undefined });
    expect(error.variable).toBe("SMTP_URL");
    expect(error.message).toContain("required in production");
    expect(error.message).toContain("password-reset");
    expect(refusal({ ...PRODUCTION, SMTP_URL: undefined, EMAIL_FLOWS: "magic-link" }).message).toContain("(magic-link)");
  });

  test("EMAIL_FLOWS=none runs without a relay", () => {
    const config = loadConfig({ ...PRODUCTION, SMTP_URL: undefined, MAIL_FROM: undefined, EMAIL_FLOWS: "none" });
    expect(config.mail.flows.size).toBe(0);
    expect(config.mail.smtpUrl).toBeUndefined();
  });

  test("SMTP_URL without MAIL_FROM is refused", () => {
    expect(refusal({ ...PRODUCTION, MAIL_FROM: undefined }).variable).toBe("MAIL_FROM");
  });

  test("`bun src/index.ts` in production without SMTP_URL exits 1 with one line naming SMTP_URL, before touching the database", async () => {
    await expectStartRefused({ ...PRODUCTION, SMTP_URL: "" }, "SMTP_URL");
  });
});

describe("values are checked", () => {
  test("SMTP_URL must be smtp:// or smtps:// with a host", () => {
    expect(refusal({ SMTP_URL: "http://smtp.learn.test" }).variable).toBe("SMTP_URL");
    expect(refusal({ SMTP_URL: "not a url" }).variable).toBe("SMTP_URL");
    expect(loadConfig({ SMTP_URL: "smtp://127.0.0.1:2525" }).mail.smtpUrl).toBe("smtp://127.0.0.1:2525");
  });

  test("EMAIL_FLOWS accepts a list of known flows or none", () => {
    expect([...loadConfig({ EMAIL_FLOWS: "password-reset, verification" }).mail.flows]).toEqual(["password-reset", "verification"]);
    const error = refusal({ EMAIL_FLOWS: "password-reset,sms" });
    expect(error.variable).toBe("EMAIL_FLOWS");
    expect(error.message).toContain('"sms"');
  });

  test("REQUIRE_EMAIL_VERIFICATION needs the verification flow", () => {
    expect(refusal({ REQUIRE_EMAIL_VERIFICATION: "on", EMAIL_FLOWS: "password-reset" }).variable).toBe("REQUIRE_EMAIL_VERIFICATION");
    expect(loadConfig({ REQUIRE_EMAIL_VERIFICATION: "on" }).mail.requireEmailVerification).toBe(true);
  });

  test("MAIL_FROM must be an address, bare or with a display name", () => {
    expect(refusal({ MAIL_FROM: "no-reply" }).variable).toBe("MAIL_FROM");
    expect(loadConfig({ MAIL_FROM: "no-reply@learn.test" }).mail.from).toBe("no-reply@learn.test");
    expect(loadConfig({ MAIL_FROM: "Learn <no-reply@learn.test>" }).mail.from).toBe("Learn <no-reply@learn.test>");
  });

  test("APP_URL must be on a trusted origin, since Better Auth redirects nowhere else", () => {
    expect(refusal({ APP_URL: "https://elsewhere.test/account" }).variable).toBe("APP_URL");
    expect(loadConfig({ APP_URL: "http://localhost:3000/account/" }).mail.appUrl).toBe("http://localhost:3000/account");
  });

  test("link lifetimes and the send timeout are durations", () => {
    const { mail } = loadConfig({ MAGIC_LINK_EXPIRES_IN: "5m", PASSWORD_RESET_EXPIRES_IN: "30m", MAIL_SEND_TIMEOUT: "3s" });
    expect(mail.magicLinkExpiresInSeconds).toBe(300);
    expect(mail.passwordResetExpiresInSeconds).toBe(1800);
    expect(mail.sendTimeoutMs).toBe(3000);
    expect(refusal({ MAIL_SEND_TIMEOUT: "soon" }).variable).toBe("MAIL_SEND_TIMEOUT");
  });
});
