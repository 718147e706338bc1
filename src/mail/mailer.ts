// Sends the server's mail. One object, two transports: SMTP through nodemailer (SMTP_URL; any relay:
// Resend, SendGrid, SES, Postfix...) and, outside production without SMTP_URL, a console transport that
// logs the message and its link instead of sending it.
//
//   const mailer = createMailer(config, logger);
//   await mailer.send("password-reset", "ada@example.com", { name, url, expiresInSeconds }); // waits, may throw
//   mailer.queue("password-changed", "ada@example.com", { name, how: "changed" });          // background
//   await mailer.close();                                                                    // at shutdown
//
// `send` waits for the relay at most MAIL_SEND_TIMEOUT and throws a MailDeliveryError when the relay
// fails or is too slow; `queue` never throws and logs failures. Failures are logged with the kind of
// message and the recipient's domain only: never the address's local part, the link or its token.
// Templates (subject, text and HTML parts) live in src/mail/templates.ts.
import type { Transporter } from "nodemailer";
import type { Config } from "../config.ts";
import { withDeadline } from "../ops/deadline.ts";
import type { Logger } from "../ops/log.ts";
import { renderMail, type MailKind, type MailTemplateData } from "./templates.ts";

export type { MailKind, MailTemplateData } from "./templates.ts";

export interface Mailer {
  readonly transport: "smtp" | "console";
  /** Renders and sends one message; resolves once the relay accepted it. */
  send<K extends MailKind>(kind: K, to: string, data: MailTemplateData[K]): Promise<void>;
  /** Sends in the background: the caller's response does not wait; a failure is logged, then `onFailure` runs. */
  queue<K extends MailKind>(kind: K, to: string, data: MailTemplateData[K], onFailure?: () => Promise<unknown>): void;
  /** Waits for queued messages (each bounded by the send timeout), then closes the transport. */
  close(): Promise<void>;
}

/** The relay refused the message, failed, or did not answer within the bound. Already logged. */
export class MailDeliveryError extends Error {
  override name = "MailDeliveryError";

  constructor(
    readonly kind: MailKind,
    readonly recipientDomain: string,
    reason: string,
  ) {
    super(`could not send the ${kind} email to a recipient at ${recipientDomain}: ${reason}`);
  }
}

/** The part after the last @, lower-cased: what a log line may say about a recipient. */
export function recipientDomain(address: string): string {
  const at = address.lastIndexOf("@");
  return at === -1 ? "(no domain)" : address.slice(at + 1).toLowerCase();
}

/** An error's message with every secret value (a link, a token) cut out. */
function redact(message: string, secrets: string[]): string {
  let result = message;
  for (const secret of secrets) if (secret.length >= 8) result = result.split(secret).join("[redacted]");
  return result;
}

/** The secret strings in a message's data: links and the tokens inside them. */
function secretsOf(data: object): string[] {
  const secrets: string[] = [];
  for (const value of Object.values(data)) {
    if (typeof value !== "string" || !/^https?:\/\//.test(value)) continue;
    secrets.push(value);
    const url = new URL(value);
    for (const param of url.searchParams.values()) secrets.push(param);
    secrets.push(url.pathname.split("/").pop() ?? "");
  }
  return secrets;
}

export function createMailer(config: Pick<Config, "nodeEnv" | "mail">, logger: Logger): Mailer {
  const { mail } = config;
  const timeoutMs = mail.sendTimeoutMs;
  // nodemailer is loaded with the first message, so a server that sends none does not hold it in memory.
  let transporter: Promise<Transporter> | null = null;
  const smtp = (smtpUrl: string) =>
    (transporter ??= import("nodemailer").then(({ default: nodemailer }) =>
      nodemailer.createTransport({
        url: smtpUrl,
        // Every phase of the SMTP dialogue is bounded, so a stalled relay frees its socket too.
        connectionTimeout: timeoutMs,
        greetingTimeout: timeoutMs,
        socketTimeout: timeoutMs,
        dnsTimeout: timeoutMs,
        // ASVS 9.2.1: in production, plain smtp:// must upgrade with STARTTLS or fail (smtps:// is TLS from the start).
        requireTLS: config.nodeEnv === "production",
      }),
    ));
  const pending = new Set<Promise<void>>();

  async function deliver<K extends MailKind>(kind: K, to: string, data: MailTemplateData[K]): Promise<void> {
    const content = renderMail(kind, data, mail.productName);
    const domain = recipientDomain(to);
    if (!mail.smtpUrl) {
      // Development without a relay: the developer follows the link from the log.
      logger.info(`mail (console transport, not sent) ${kind} to ${to}\nSubject: ${content.subject}\n\n${content.text}`);
      return;
    }
    const started = performance.now();
    const abort = new AbortController();
    try {
      await withDeadline(
        smtp(mail.smtpUrl).then((transport) => transport.sendMail({ from: mail.from, to, subject: content.subject, text: content.text, html: content.html, signal: abort.signal })),
        timeoutMs,
        () => new Error(`the relay did not accept the message within ${timeoutMs} ms`),
        () => abort.abort(), // frees the socket; the wait is already decided
      );
      logger.debug(`mail ${kind} sent to a recipient at ${domain} in ${Math.round(performance.now() - started)} ms`);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      const reason = redact(`${typeof code === "string" ? `${code}: ` : ""}${(error as Error).message ?? String(error)}`, secretsOf(data));
      logger.error(`mail ${kind} to a recipient at ${domain} failed after ${Math.round(performance.now() - started)} ms: ${reason}`);
      throw new MailDeliveryError(kind, domain, reason);
    }
  }

  return {
    transport: mail.smtpUrl ? "smtp" : "console",
    send: deliver,
    queue(kind, to, data, onFailure) {
      const sending = deliver(kind, to, data).catch(async () => {
        // deliver logged the failure; what the caller wrote for this mail may be undone
        await onFailure?.().catch((error) => logger.error(`after a failed ${kind} mail`, error));
      });
      pending.add(sending);
      void sending.finally(() => pending.delete(sending));
    },
    async close() {
      await Promise.all([...pending]);
      (await transporter)?.close();
    },
  };
}
