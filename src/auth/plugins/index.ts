// The Better Auth plugins beyond email and password, in one list for src/auth/better-auth.ts: two-factor,
// admin, organizations, OpenID Connect, passkeys, and the server's own rules around them.
import type { Config } from "../../config.ts";
import type { Sql } from "../../db/pool.ts";
import { mailSenderOrRefusal } from "../../mail/flows.ts";
import type { Logger } from "../../ops/log.ts";
import type { Mailer, MailKind, MailTemplateData } from "../../mail/mailer.ts";
import { adminHooks, adminPlugin, liveSessionForTokens } from "./admin.ts";
import { activeOrganizationCacheRefresh, invitationRoleGuard, organizationPlugin } from "./organization.ts";
import { passkeyOwnership, passkeyPlugin } from "./passkey.ts";
import { oidcPlugins } from "./social.ts";
import { twoFactorRules, twoFactorPlugin } from "./two-factor.ts";

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

export interface PluginDependencies {
  config: Config;
  sql: Sql;
  logger: Logger;
  sendMail?: SendMail | undefined;
}

export function platformPlugins({ config, sql, logger, sendMail }: PluginDependencies) {
  return [
    twoFactorPlugin(config, sendMail),
    twoFactorRules(sql),
    adminPlugin(),
    adminHooks(config, logger),
    liveSessionForTokens(),
    organizationPlugin(config, sql, sendMail, logger),
    invitationRoleGuard(sql),
    activeOrganizationCacheRefresh(),
    passkeyPlugin(config),
    passkeyOwnership(),
    ...oidcPlugins(config),
  ] as const;
}
