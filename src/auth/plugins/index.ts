// The Better Auth plugins beyond email and password, in one list for src/auth/better-auth.ts: two-factor,
// admin, organizations, OpenID Connect, passkeys, and the server's own rules around them.
import type { Config } from "../../config.ts";
import type { Sql } from "../../db/pool.ts";
import type { Logger } from "../../ops/log.ts";
import type { SendMail } from "../../mail/send-mail.ts";
import { adminHooks, adminPlugin, liveSessionForTokens } from "./admin.ts";
import { activeOrganizationCacheRefresh, invitationRoleGuard, organizationPlugin } from "./organization.ts";
import { passkeyOwnership, passkeyPlugin } from "./passkey.ts";
import { oidcPlugins } from "./social.ts";
import { twoFactorRules, twoFactorPlugin } from "./two-factor.ts";

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
