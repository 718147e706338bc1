// A real SMTP server for tests (smtp-server on a free loopback port) that parses every message it
// receives with mailparser and keeps it, so a test can wait for a mail, read it and follow its link.
//
//   const smtp = await startSmtpServer();           // stopped after the test file
//   const t = await createTestApp({ SMTP_URL: smtp.url });
//   const mail = await smtp.waitForMail("ada@example.test");
//   const link = linkIn(mail);
import { simpleParser, type ParsedMail } from "mailparser";
import { SMTPServer } from "smtp-server";
import type { Logger } from "../src/ops/log.ts";
import { createMailer } from "../src/mail/mailer.ts";
import { pluginMail } from "../src/mail/send-mail.ts";
import { createTestApp, onCleanup, quietLogger, testConfig } from "./helpers.ts";

export interface ReceivedMail {
  /** Envelope recipients (RCPT TO), lower-cased. */
  to: string[];
  /** Envelope sender (MAIL FROM). */
  from: string;
  subject: string;
  text: string;
  html: string;
  parsed: ParsedMail;
}

export interface SmtpServerOptions {
  /** Hold each message this long before accepting it: a slow relay. */
  delayMs?: number;
  /** Refuse every message with a 451 temporary failure. */
  refuse?: boolean;
  /** Listen on this port (to bring a stopped relay back where the server expects it); a free one when absent. */
  port?: number;
}

export interface TestSmtpServer {
  port: number;
  /** SMTP_URL for the server under test. */
  url: string;
  /** Every message received so far, oldest first. */
  messages: ReceivedMail[];
  /** The first message for `to` (or matching `match`) received from now on or already kept and not yet taken. */
  waitForMail(to: string | ((mail: ReceivedMail) => boolean), timeoutMs?: number): Promise<ReceivedMail>;
  /** Messages for `to` received so far. */
  mailsTo(to: string): ReceivedMail[];
  stop(): Promise<void>;
}

export async function startSmtpServer(options: SmtpServerOptions = {}): Promise<TestSmtpServer> {
  const messages: ReceivedMail[] = [];
  const taken = new Set<ReceivedMail>();
  const waiters = new Set<() => void>();
  const server = new SMTPServer({
    // Loopback and a test relay: no TLS (smtp-server's built-in certificate would be refused) and no AUTH.
    disabledCommands: ["STARTTLS", "AUTH"],
    logger: false,
    // Stopping waits at most this long for open connections (a slow-relay test holds one).
    closeTimeout: 1000,
    async onData(stream, session, callback) {
      try {
        const parsed = await simpleParser(stream);
        if (options.delayMs) await Bun.sleep(options.delayMs);
        if (options.refuse) {
          const error = new Error("mailbox temporarily unavailable") as Error & { responseCode: number };
          error.responseCode = 451;
          return callback(error);
        }
        messages.push({
          to: session.envelope.rcptTo.map((rcpt) => rcpt.address.toLowerCase()),
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          subject: parsed.subject ?? "",
          text: parsed.text ?? "",
          html: typeof parsed.html === "string" ? parsed.html : "",
          parsed,
        });
        for (const wake of waiters) wake();
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (server.server.address() as { port: number }).port;

  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= new Promise<void>((resolve) => server.close(() => resolve())));
  onCleanup(stop);

  const matcher = (to: string | ((mail: ReceivedMail) => boolean)) =>
    typeof to === "string" ? (mail: ReceivedMail) => mail.to.includes(to.toLowerCase()) : to;

  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    messages,
    mailsTo: (to) => messages.filter(matcher(to)),
    waitForMail(to, timeoutMs = 10_000) {
      const matches = matcher(to);
      return new Promise<ReceivedMail>((resolve, reject) => {
        const check = () => {
          const mail = messages.find((candidate) => !taken.has(candidate) && matches(candidate));
          if (!mail) return false;
          taken.add(mail);
          waiters.delete(check);
          clearTimeout(timer);
          resolve(mail);
          return true;
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no mail for ${typeof to === "string" ? to : "the predicate"} within ${timeoutMs} ms (received: ${messages.map((m) => `${m.to.join(",")} "${m.subject}"`).join("; ") || "none"})`));
        }, timeoutMs);
        if (!check()) waiters.add(check);
      });
    },
    stop,
  };
}

/** The first http(s) link in a message's plain-text part. */
export function linkIn(mail: ReceivedMail): string {
  const match = /https?:\/\/\S+/.exec(mail.text);
  if (!match) throw new Error(`no link in the mail "${mail.subject}":\n${mail.text}`);
  return match[0];
}

/**
 * The app in process with its mail going to a fresh real SMTP server: the account mails, and the
 * plugins' (two-factor codes, invitations) wired as src/index.ts wires them.
 */
export async function createMailTestApp(env: Record<string, string | undefined> = {}, smtpOptions: SmtpServerOptions = {}, logger: Logger = quietLogger) {
  const smtp = await startSmtpServer(smtpOptions);
  const fullEnv = { SMTP_URL: smtp.url, MAIL_FROM: "Learn <no-reply@learn.test>", APP_NAME: "Learn", ...env };
  const mailer = createMailer(testConfig(fullEnv), logger);
  onCleanup(() => mailer.close());
  const app = await createTestApp(fullEnv, logger, { sendMail: pluginMail(testConfig(fullEnv), mailer, logger) });
  return { ...app, smtp };
}

/**
 * The `verifications.identifier` Better Auth stores for a hashed identifier (storeIdentifier "hashed":
 * base64url SHA-256, no padding), to find the row of a token a test received by mail.
 */
export async function hashedIdentifier(identifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(identifier));
  return Buffer.from(digest).toString("base64url");
}
