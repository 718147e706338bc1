// The mailer (src/mail/mailer.ts) against a real SMTP server: both parts, the subject, the link and its
// lifetime arrive; a stopped or slow relay is a bounded, logged MailDeliveryError that names the kind
// and the recipient's domain only; queued mail does not hold up the caller; and without SMTP_URL
// outside production the console transport logs the message instead.
import { describe, expect, test } from "bun:test";
import { createLogger } from "../../src/ops/log.ts";
import { humanDuration, templates, type MailKind, type MailTemplateData } from "../../src/mail/templates.ts";
import { createMailer, MailDeliveryError, recipientDomain } from "../../src/mail/mailer.ts";
import { cleanUpAfterFile, testConfig } from "../helpers.ts";
import { linkIn, startSmtpServer } from "../smtp.ts";

cleanUpAfterFile();

const TOKEN = "tok3nS3cretValue0123456789abcdef";
const LINK = `http://localhost:3001/api/auth/reset-password/${TOKEN}?callbackURL=http%3A%2F%2Flocalhost%3A3000%2Freset-password`;

function capture() {
  const lines: string[] = [];
  return { lines, logger: createLogger("debug", (line) => lines.push(line)) };
}

function mailerFor(env: Record<string, string | undefined>) {
  const { lines, logger } = capture();
  const config = testConfig({ APP_NAME: "Learn", MAIL_FROM: "Learn <no-reply@learn.test>", ...env });
  return { mailer: createMailer(config, logger), lines };
}

/** Sample data for every kind of message, so each template is exercised. */
const SAMPLES: { [K in MailKind]: MailTemplateData[K] } = {
  "verify-email": { name: "Ada", url: LINK, expiresInSeconds: 3600 },
  "change-email-verify": { name: "Ada", newEmail: "ada@new.test", url: LINK, expiresInSeconds: 3600 },
  "email-change-requested": { name: "Ada", newEmail: "ada@new.test" },
  "password-reset": { name: "Ada", url: LINK, expiresInSeconds: 3600 },
  "password-changed": { name: "Ada", how: "changed" },
  "magic-link": { url: LINK, expiresInSeconds: 600 },
  "delete-account": { name: "Ada", url: LINK, expiresInSeconds: 3600 },
  "two-factor-code": { name: "Ada", code: "492817", expiresInSeconds: 300 },
  "organization-invitation": {
    inviterName: "Grace",
    inviterEmail: "grace@example.test",
    organizationName: "Physics School",
    role: "student",
    url: "http://localhost:3000/accept-invitation?id=inv_0123456789",
    expiresInSeconds: 48 * 3600,
  },
  "account-locked": { name: "Ada", unlocksInSeconds: 900 },
  "sign-up-attempt": { name: "Ada", url: "http://localhost:3000" },
};

describe("SMTP transport", () => {
  test("a message arrives with a subject, a plain-text and an HTML part, the link and how long it lasts", async () => {
    const smtp = await startSmtpServer();
    const { mailer } = mailerFor({ SMTP_URL: smtp.url });
    expect(mailer.transport).toBe("smtp");

    await mailer.send("password-reset", "ada@example.test", { name: "Ada", url: LINK, expiresInSeconds: 3600 });

    const mail = await smtp.waitForMail("ada@example.test");
    expect(mail.from).toBe("no-reply@learn.test");
    expect(mail.parsed.from?.text).toBe('"Learn" <no-reply@learn.test>');
    expect(mail.subject).toBe("Reset your Learn password");
    expect(linkIn(mail)).toBe(LINK);
    expect(mail.text).toContain("expires in 1 hour");
    expect(mail.html).toContain(`href="${LINK.replaceAll("&", "&amp;")}"`);
    expect(mail.html).toContain("expires in 1 hour");
    expect(mail.parsed.headers.get("content-type")).toMatchObject({ value: "multipart/alternative" });
  });

  test("every kind of message renders through the relay with its own subject, and its link when it has one", async () => {
    const smtp = await startSmtpServer();
    const { mailer } = mailerFor({ SMTP_URL: smtp.url });
    const kinds = Object.keys(SAMPLES) as MailKind[];
    for (const kind of kinds) await mailer.send(kind, `${kind}@example.test`, SAMPLES[kind] as never);

    const subjects = new Set<string>();
    for (const kind of kinds) {
      const mail = await smtp.waitForMail(`${kind}@example.test`);
      subjects.add(mail.subject);
      expect(mail.subject).toContain("Learn");
      expect(mail.text.length).toBeGreaterThan(40);
      expect(mail.html).toContain("<html>");
      const data = SAMPLES[kind] as { url?: string; expiresInSeconds?: number };
      if (data.url) {
        expect(linkIn(mail)).toBe(data.url);
        // A one-time link says how long it lasts; a plain link to the site says nothing of the kind.
        if (data.expiresInSeconds) expect(mail.text).toContain(`expires in ${humanDuration(data.expiresInSeconds)}`);
        else expect(mail.text).not.toContain("expires in");
      } else {
        expect(mail.text).not.toContain("http");
      }
    }
    expect(subjects.size).toBe(kinds.length);
  });

  test("names are escaped in the HTML part", () => {
    const content = templates["verify-email"]({ name: `<script>alert("x")</script>`, url: LINK, expiresInSeconds: 60 }, "Learn");
    expect(content.html).not.toContain("<script>");
    expect(content.html).toContain("&lt;script&gt;");
    expect(content.text).toContain(`<script>alert("x")</script>`);
  });

  test("humanDuration says how long a link lasts in words", () => {
    expect(humanDuration(3600)).toBe("1 hour");
    expect(humanDuration(600)).toBe("10 minutes");
    expect(humanDuration(5400)).toBe("90 minutes");
    expect(humanDuration(86400 * 2)).toBe("2 days");
    expect(humanDuration(61)).toBe("61 seconds");
  });
});

describe("relay failures", () => {
  test("a stopped relay: send rejects with a MailDeliveryError, logged with the kind and domain, never the address or token", async () => {
    const smtp = await startSmtpServer();
    await smtp.stop();
    const { mailer, lines } = mailerFor({ SMTP_URL: smtp.url });

    const error = await mailer.send("password-reset", "ada.lovelace@Example.TEST", SAMPLES["password-reset"]).then(
      () => null,
      (caught: unknown) => caught,
    );

    expect(error).toBeInstanceOf(MailDeliveryError);
    expect((error as MailDeliveryError).kind).toBe("password-reset");
    expect((error as MailDeliveryError).recipientDomain).toBe("example.test");
    const logged = lines.filter((line) => line.includes("ERROR"));
    expect(logged).toHaveLength(1);
    expect(logged[0]).toContain("mail password-reset to a recipient at example.test failed");
    expect(logged[0]).toContain("ECONNREFUSED");
    const everything = lines.join("\n") + (error as Error).message;
    expect(everything).not.toContain("ada.lovelace");
    expect(everything).not.toContain(TOKEN);
  });

  test("a relay that refuses the message: the SMTP error is reported, the token is not", async () => {
    const smtp = await startSmtpServer({ refuse: true });
    const { mailer, lines } = mailerFor({ SMTP_URL: smtp.url });
    const error = await mailer.send("magic-link", "bob@example.test", SAMPLES["magic-link"]).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(MailDeliveryError);
    expect(lines.join("\n")).toContain("451");
    expect(lines.join("\n")).not.toContain(TOKEN);
    expect(smtp.messages).toHaveLength(0);
  });

  test("a slow relay: send gives up after MAIL_SEND_TIMEOUT instead of holding the caller", async () => {
    const smtp = await startSmtpServer({ delayMs: 5_000 });
    const { mailer, lines } = mailerFor({ SMTP_URL: smtp.url, MAIL_SEND_TIMEOUT: "1s" });
    const started = performance.now();
    const error = await mailer.send("verify-email", "slow@example.test", SAMPLES["verify-email"]).catch((caught: unknown) => caught);
    const elapsed = performance.now() - started;

    expect(error).toBeInstanceOf(MailDeliveryError);
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(3_000);
    expect(lines.join("\n")).toContain("did not accept the message within 1000 ms");
  });

  test("queue returns at once, logs a failure instead of throwing, and close waits for queued mail", async () => {
    const smtp = await startSmtpServer({ delayMs: 300 });
    const { mailer, lines } = mailerFor({ SMTP_URL: smtp.url });
    const started = performance.now();
    mailer.queue("password-changed", "queued@example.test", SAMPLES["password-changed"]);
    expect(performance.now() - started).toBeLessThan(50);
    expect(smtp.messages).toHaveLength(0);
    await mailer.close();
    expect(smtp.mailsTo("queued@example.test")).toHaveLength(1);

    const down = await startSmtpServer();
    await down.stop();
    const failing = mailerFor({ SMTP_URL: down.url });
    failing.mailer.queue("password-changed", "queued@example.test", SAMPLES["password-changed"]);
    await failing.mailer.close();
    expect(failing.lines.join("\n")).toContain("mail password-changed to a recipient at example.test failed");
    expect(lines.join("\n")).not.toContain("failed");
  });
});

describe("console transport", () => {
  test("without SMTP_URL outside production the message and its link are logged, not sent", async () => {
    const { lines, logger } = capture();
    const mailer = createMailer(testConfig({ NODE_ENV: "development" }), logger);
    expect(mailer.transport).toBe("console");
    await mailer.send("magic-link", "dev@example.test", SAMPLES["magic-link"]);
    const logged = lines.join("\n");
    expect(logged).toContain("console transport, not sent");
    // Logs never carry a full address (the logger masks it); the link is what a developer needs.
    expect(logged).toContain("d***@example.test");
    expect(logged).not.toContain("dev@example.test");
    expect(logged).toContain(LINK);
    expect(logged).toContain("Subject: Your sign-in link for auth-server");
  });

  test("recipientDomain keeps only the lower-cased domain", () => {
    expect(recipientDomain("Ada.Lovelace@Example.COM")).toBe("example.com");
    expect(recipientDomain("a@b@c.test")).toBe("c.test");
    expect(recipientDomain("nobody")).toBe("(no domain)");
  });
});
