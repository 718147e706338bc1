// The mails the Better Auth plugins send (two-factor codes, organization invitations), as one function
// the plugins take: they know what to send, not how it travels.
import type { Config } from "../config.ts";
import type { Logger } from "../ops/log.ts";
import { mailSenderOrRefusal } from "./flows.ts";
import type { Mailer, MailKind, MailTemplateData } from "./mailer.ts";

/** The mails the plugins send: two-factor codes and organization invitations. */
export type PluginMailKind = Extract<MailKind, "two-factor-code" | "organization-invitation">;
/**
 * Sends one plugin mail and waits for the relay; a failure answers 424 MAIL_NOT_SENT after `withdraw`
 * removed what the request wrote. Undefined where the server has no mail.
 */
export type SendMail = <K extends PluginMailKind>(kind: K, to: string, data: MailTemplateData[K], withdraw?: () => Promise<unknown>) => Promise<void>;

/**
 * The plugins' mail through the server's mailer: over SMTP when SMTP_URL is set, printed to the log
 * in development without it (like the account mails), and none in production without a relay, where
 * email codes are then not offered and invitations are only logged.
 */
export function pluginMail(config: Config, mailer: Mailer, logger: Logger): SendMail | undefined {
  if (mailer.transport === "console" && config.nodeEnv === "production") return undefined;
  return mailSenderOrRefusal(mailer, logger);
}
