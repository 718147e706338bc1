// The audit trail: authentication events in the `auth_events` table, recorded from Better Auth's
// hooks. ASVS 7.1.3 / 7.2.1 (log authentication decisions, successes and failures), 7.1.1 / 7.1.2
// (never a password, token, cookie or secret): details hold only ids, reason classes and endpoint names.
import type { BetterAuthPlugin } from "better-auth";
import { createAuthMiddleware, getSessionFromCtx, isAPIError } from "better-auth/api";
import { decodeJwt } from "jose";
import { CLIENT_IP_HEADER } from "./client-ip.ts";
import type { Sql } from "./db.ts";
import type { Logger } from "./log.ts";

export const AUTH_EVENT_TYPES = [
  "sign_up",
  "sign_in",
  "sign_in_failed",
  "sign_out",
  "session_revoked",
  "password_changed",
  "password_reset",
  "email_verified",
  "email_changed",
  "account_locked",
  "two_factor_enabled",
  "two_factor_disabled",
  "admin_action",
  "user_deleted",
] as const;
export type AuthEventType = (typeof AUTH_EVENT_TYPES)[number];

export interface AuthEvent {
  type: AuthEventType;
  userId: string | null;
  ip: string | null;
  userAgent: string | null;
  details?: Record<string, string | number | boolean | null>;
}

const USER_AGENT_MAX = 512;

/** Who sent the request: the IP the app resolved (src/client-ip.ts) and the User-Agent. */
export function requestOrigin(headers: Headers | undefined): Pick<AuthEvent, "ip" | "userAgent"> {
  return {
    ip: headers?.get(CLIENT_IP_HEADER) ?? null,
    userAgent: headers?.get("user-agent")?.slice(0, USER_AGENT_MAX) ?? null,
  };
}

export type AuditRecorder = (event: AuthEvent) => Promise<void>;

/** Writes events; a failed write is logged, never turned into a failed sign-in. */
export function createAuditRecorder(sql: Sql, logger: Logger): AuditRecorder {
  return async ({ type, userId, ip, userAgent, details = {} }) => {
    try {
      await sql`
        insert into auth_events (type, user_id, ip, user_agent, details)
        values (${type}, ${userId}, ${ip}, ${userAgent}, ${sql.json(details)})`;
    } catch (error) {
      logger.error(`audit: could not record ${type}`, error);
    }
  };
}

/** Deletes events older than the retention; the number deleted. */
export async function pruneAuthEvents(sql: Sql, retentionSeconds: number): Promise<number> {
  const deleted = await sql`delete from auth_events where occurred_at < now() - ${retentionSeconds} * interval '1 second'`;
  return deleted.count;
}

/** Endpoints whose event needs to know, before they run, whose session sent them. */
const SESSION_PATHS: Record<string, AuthEventType> = {
  "/sign-out": "sign_out",
  "/revoke-session": "session_revoked",
  "/revoke-sessions": "session_revoked",
  "/revoke-other-sessions": "session_revoked",
  "/change-password": "password_changed",
  "/delete-user": "user_deleted",
  "/two-factor/enable": "two_factor_enabled",
  "/two-factor/disable": "two_factor_disabled",
};
const isAdminPath = (path: string) => path.startsWith("/admin/");
const isSignIn = (path: string) => path.startsWith("/sign-in/") || path.startsWith("/callback/") || path.startsWith("/two-factor/verify-");

// A reason another module knows better than Better Auth's error code (the lockout: "account_locked").
const failureReasons = new WeakMap<Request, string>();
export function markSignInFailure(request: Request, reason: string): void {
  failureReasons.set(request, reason);
}

type HookContext = Parameters<Parameters<typeof createAuthMiddleware>[0]>[0];

/** Better Auth's error code of a failed endpoint, as a reason class for the trail. */
function failureReason(error: { body?: { code?: unknown }; statusCode: number }): string {
  const code = typeof error.body?.code === "string" ? error.body.code : "";
  if (code === "INVALID_EMAIL_OR_PASSWORD") return "invalid_credentials";
  if (code === "EMAIL_NOT_VERIFIED") return "email_not_verified";
  return error.statusCode < 500 ? "invalid_request" : "server_error";
}

/** The Better Auth plugin that records events. */
export function auditTrail(record: AuditRecorder, sql: Sql): BetterAuthPlugin {
  // Whose session (or reset token) a request carried, read before the endpoint can delete it.
  const actors = new WeakMap<Request, string | null>();
  const origin = (ctx: HookContext) => requestOrigin(ctx.headers ?? ctx.request?.headers);
  const userIdByEmail = async (email: unknown) => {
    if (typeof email !== "string") return null;
    const [row] = await sql<{ id: string }[]>`select id from users where email = ${email.toLowerCase()}`;
    return row?.id ?? null;
  };

  return {
    id: "audit-trail",
    hooks: {
      before: [
        {
          matcher: (ctx) => Boolean(ctx.path && (ctx.path in SESSION_PATHS || isAdminPath(ctx.path) || ctx.path === "/reset-password")),
          handler: createAuthMiddleware(async (ctx) => {
            if (!ctx.request) return;
            if (ctx.path === "/reset-password") {
              const token = (ctx.body as { token?: unknown } | undefined)?.token ?? ctx.query?.token;
              if (typeof token !== "string") return;
              const [row] = await sql<{ value: string }[]>`select value from verifications where identifier = ${`reset-password:${token}`}`;
              actors.set(ctx.request, row?.value ?? null);
              return;
            }
            const session = await getSessionFromCtx(ctx).catch(() => null);
            actors.set(ctx.request, session?.user.id ?? null);
          }),
        },
      ],
      after: [
        {
          matcher: () => true,
          handler: createAuthMiddleware(async (ctx) => {
            const path = ctx.path ?? "";
            const returned = ctx.context.returned;
            const failed = isAPIError(returned) || (returned instanceof Response && returned.status >= 400);
            const actor = ctx.request ? actors.get(ctx.request) ?? null : null;
            const event = (type: AuthEventType, userId: string | null, details?: AuthEvent["details"]) =>
              record({ type, userId, ...origin(ctx), details });

            if (isSignIn(path) && failed && isAPIError(returned)) {
              const userId = await userIdByEmail((ctx.body as { email?: unknown } | undefined)?.email);
              const reason = (ctx.request && failureReasons.get(ctx.request)) ?? failureReason(returned);
              return void (await event("sign_in_failed", userId, { method: path.split("/")[2] ?? null, reason }));
            }
            if (failed) return;
            const newUserId = (ctx.context.newSession?.user.id as string | undefined) ?? null;
            if (path === "/sign-up/email" && newUserId) return void (await event("sign_up", newUserId));
            if (isSignIn(path) && newUserId) return void (await event("sign_in", newUserId, { method: path.split("/")[path.startsWith("/callback/") ? 1 : 2] ?? null }));
            if (path in SESSION_PATHS) {
              const details = path.startsWith("/revoke-") ? { scope: path.slice("/revoke-".length) } : undefined;
              return void (await event(SESSION_PATHS[path]!, actor, details));
            }
            if (isAdminPath(path)) {
              const target = (ctx.body as { userId?: unknown } | undefined)?.userId;
              return void (await event("admin_action", actor, { action: path.slice("/admin/".length), targetUserId: typeof target === "string" ? target : null }));
            }
            if (path === "/reset-password") return void (await event("password_reset", actor));
            if (path === "/verify-email") {
              const token = ctx.query?.token;
              if (typeof token !== "string") return;
              const claims = decodeJwt(token) as { email?: unknown; updateTo?: unknown };
              if (typeof claims.updateTo === "string") return void (await event("email_changed", await userIdByEmail(claims.updateTo)));
              return void (await event("email_verified", await userIdByEmail(claims.email)));
            }
          }),
        },
      ],
    },
  };
}
