// Platform administration: Better Auth's admin plugin with the roles user, teacher and admin (list
// and search users, set roles, ban and unban, revoke sessions, impersonate, remove), ADMIN_EMAILS
// promotion at sign-in, and an audit line for every impersonation.
import type { BetterAuthPlugin } from "better-auth";
import { createAuthMiddleware, getSessionFromCtx, isAPIError } from "better-auth/api";
import { apiError } from "../../errors.ts";
import { admin } from "better-auth/plugins";
import { getCurrentAdapter } from "@better-auth/core/context";
import { adminAc, defaultStatements } from "better-auth/plugins/admin/access";
import { createAccessControl } from "better-auth/plugins/access";
import type { Config } from "../../config.ts";
import type { Logger } from "../../ops/log.ts";

const platformAc = createAccessControl(defaultStatements);
/** Platform roles in `users.role` (comma-separated when a user holds several). */
export const platformRoles = {
  user: platformAc.newRole({ user: [], session: [] }),
  // A label for the course services (e.g. who may publish a course); no user administration.
  teacher: platformAc.newRole({ user: [], session: [] }),
  admin: adminAc,
};
export const DEFAULT_PLATFORM_ROLE = "user";
/** How long an impersonation session lasts before the admin must start again. */
export const IMPERSONATION_SECONDS = 60 * 60;

export const adminSchema = {
  user: { fields: { banReason: "ban_reason", banExpires: "ban_expires" } },
  session: { fields: { impersonatedBy: "impersonated_by" } },
};

export function adminPlugin() {
  return admin({
    ac: platformAc,
    roles: platformRoles,
    defaultRole: DEFAULT_PLATFORM_ROLE,
    adminRoles: ["admin"],
    impersonationSessionDuration: IMPERSONATION_SECONDS,
    bannedUserMessage: "This account is banned",
    schema: adminSchema,
  });
}

/** `role` with "admin" added (kept as is when already there). */
export function withAdminRole(role: string | null | undefined): string {
  const roles = (role ?? "").split(",").map((item) => item.trim()).filter(Boolean);
  return roles.includes("admin") ? roles.join(",") : [...roles.filter((item) => item !== DEFAULT_PLATFORM_ROLE), "admin"].join(",");
}

/**
 * ADMIN_EMAILS: a listed address becomes an admin when a session is created for it, provided the
 * address is verified (an unverified one could belong to anybody; ASVS 2.5.4, no shared admin).
 * Impersonation: every start and stop is logged with both user ids; the impersonation session
 * carries the admin's id in `sessions.impersonated_by`.
 */
export function adminHooks(config: Config, logger: Logger): BetterAuthPlugin {
  const adminEmails = config.plugins.adminEmails;
  return {
    id: "platform-admin",
    init: (auth) => ({
      options: {
        databaseHooks: {
          session: {
            create: {
              // Better Auth creates the session inside a transaction that holds a pool connection: the
              // promotion goes through that same transaction (getCurrentAdapter), never a second
              // connection, or as many concurrent sign-ins as the pool is large would wait on each other
              // for good (OWASP Denial of Service Cheat Sheet: no request may exhaust a shared resource).
              async before(session) {
                if (adminEmails.length === 0) return;
                const adapter = await getCurrentAdapter(auth.adapter);
                const byId = [{ field: "id", value: session.userId }];
                const user = await adapter.findOne<{ email: string; emailVerified: boolean; role?: string | null }>({ model: "user", where: byId });
                if (!user?.emailVerified || !adminEmails.includes(user.email)) return;
                const role = user.role ?? null;
                if (withAdminRole(role) === role) return;
                await adapter.update({ model: "user", where: byId, update: { role: withAdminRole(role), updatedAt: new Date() } });
                logger.info(`ADMIN_EMAILS: user ${session.userId} is now an admin`);
              },
            },
          },
        },
      },
    }),
    hooks: {
      before: [
        {
          // Better Auth answers 500 when the admin session an impersonation started from is gone (the
          // admin signed out, was revoked, banned or removed): a state a client can reach, so a 4xx.
          matcher: (context) => context.path === "/admin/stop-impersonating",
          handler: createAuthMiddleware(async (ctx) => {
            const current = await getSessionFromCtx(ctx).catch(() => null);
            const adminId = (current?.session as { impersonatedBy?: string | null } | undefined)?.impersonatedBy;
            // Without a session, or outside an impersonation, Better Auth's own 401 / 400 stand.
            if (!adminId) return;
            const signed = await ctx.getSignedCookie(ctx.context.createAuthCookie("admin_session").name, ctx.context.secret);
            const adminSession = signed ? await ctx.context.internalAdapter.findSession(signed.split(":")[0]!) : null;
            if (adminSession?.session.userId !== adminId) throw apiError("ADMIN_SESSION_NOT_FOUND");
          }),
        },
      ],
      after: [
        {
          matcher: (context) => context.path === "/admin/impersonate-user" || context.path === "/admin/stop-impersonating",
          handler: createAuthMiddleware(async (ctx) => {
            const started = ctx.context.newSession;
            if (!started || isAPIError(ctx.context.returned)) return;
            if (ctx.path === "/admin/impersonate-user") {
              const adminId = (started.session as { impersonatedBy?: string }).impersonatedBy;
              logger.info(`audit: admin ${adminId} started impersonating user ${started.user.id} (session ${started.session.id})`);
            } else {
              // The request's session was the impersonation one; the new session is the admin's again.
              const impersonated = ctx.context.session?.user.id ?? "(unknown)";
              logger.info(`audit: admin ${started.user.id} stopped impersonating user ${impersonated}`);
            }
          }),
        },
      ],
    },
  };
}

/**
 * GET /api/auth/token mints a JWT only for a session that still has its row. Better Auth would answer
 * from the signed session cookie cache (SESSION_COOKIE_CACHE), so a banned, revoked or signed-out
 * session could keep minting fresh JWTs until its cached copy expired (ASVS 3.3.1: logout and
 * invalidation end the session for every use).
 */
export function liveSessionForTokens(): BetterAuthPlugin {
  return {
    id: "live-session-for-tokens",
    hooks: {
      before: [
        {
          matcher: (context) => context.path === "/token",
          handler: createAuthMiddleware(async (ctx) => {
            if (!ctx.context.options.session?.cookieCache?.enabled) return;
            // Without a cached copy in the request (e.g. a bearer token), Better Auth reads the row anyway.
            const cached = (ctx.headers?.get("cookie") ?? "").includes(ctx.context.authCookies.sessionData.name);
            if (!cached) return;
            const live = await getSessionFromCtx(ctx, { disableCookieCache: true }).catch(() => null);
            if (!live) throw apiError("UNAUTHORIZED");
          }),
        },
      ],
    },
  };
}
