// The Better Auth plugins beyond email and password, in one list for src/auth.ts: two-factor,
// admin, organizations, OpenID Connect, passkeys, and the server's own rules around them.
import type { Config } from "./config.ts";
import type { Sql } from "./db.ts";
import type { Logger } from "./log.ts";
import { adminHooks, adminPlugin, liveSessionForTokens } from "./admin.ts";
import { activeOrganizationCacheRefresh, invitationRoleGuard, organizationPlugin } from "./organization.ts";
import { passkeyPlugin } from "./passkey.ts";
import { oidcPlugins } from "./social.ts";
import { twoFactorRules, twoFactorPlugin } from "./two-factor.ts";

export interface MailMessage {
  to: string;
  subject: string;
  text: string;
}
/** Sends one email; undefined where the server has no mail configured. */
export type SendMail = (message: MailMessage) => Promise<void>;

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
    adminHooks(config, sql, logger),
    liveSessionForTokens(),
    organizationPlugin(config, sendMail, logger),
    invitationRoleGuard(sql),
    activeOrganizationCacheRefresh(),
    passkeyPlugin(config),
    ...oidcPlugins(config),
  ] as const;
}
