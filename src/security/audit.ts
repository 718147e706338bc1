// The audit trail: authentication events in the `auth_events` table, recorded from Better Auth's
// hooks. ASVS 7.1.3 / 7.2.1 (log authentication decisions, successes and failures), 7.1.1 / 7.1.2
// (never a password, token, cookie or secret): details hold only ids, reason classes and endpoint names.
import type { BetterAuthPlugin } from "better-auth";
import { createAuthMiddleware, getSessionFromCtx, isAPIError } from "better-auth/api";
import type { ErrorCode } from "../errors.ts";
import { decodeJwt } from "jose";
import { CLIENT_IP_HEADER } from "../ops/client-ip.ts";
import type { Sql } from "../db/pool.ts";
import type { Logger } from "../ops/log.ts";
import type { HookContext } from "../mail/flows.ts";

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

/** Who sent the request: the IP the app resolved (src/ops/client-ip.ts) and the User-Agent. */
export function requestOrigin(headers: Headers | undefined): Pick<AuthEvent, "ip" | "userAgent"> {
  return {
    ip: headers?.get(CLIENT_IP_HEADER) ?? null,
    userAgent: headers?.get("user-agent")?.slice(0, USER_AGENT_MAX) ?? null,
  };
}

export type AuditRecorder = (event: AuthEvent) => Promise<void>;

/**
 * Writes events; a failed write is logged, never turned into a failed sign-in.
 *
 * The row is written before the answer goes out, on purpose. Written after it (or batched in the
 * background) a sign-in would save one statement's wait, but an instance that stops between the answer and
 * the write (a crash, a kill past SHUTDOWN_TIMEOUT, a lost connection) would have acknowledged a sign-in the
 * trail never records, and ASVS 7.1.3 / 7.2.1 ask that every authentication decision is recorded. The cost is
 * one insert of a small row per sign-in (bench/RESULTS.md: the per-request breakdown of 2026-12-04).
 */
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

/** Endpoints whose event needs to know, before they run, whose session sent them. */
const SESSION_PATHS: Record<string, AuthEventType> = {
  "/sign-out": "sign_out",
  "/revoke-session": "session_revoked",
  "/revoke-sessions": "session_revoked",
  "/revoke-other-sessions": "session_revoked",
  "/change-password": "password_changed",
};
const isAdminPath = (path: string) => path.startsWith("/admin/");
const SIGN_IN_PREFIXES = ["/sign-in/", "/callback/", "/two-factor/verify-"];
/** The first of `prefixes` that `path` starts with. */
function prefixOf(prefixes: readonly string[], path: string): string | undefined {
  for (let i = 0; i < prefixes.length; i++) if (path.startsWith(prefixes[i]!)) return prefixes[i];
  return undefined;
}
const isSignIn = (path: string) => path === "/magic-link/verify" || prefixOf(SIGN_IN_PREFIXES, path) !== undefined;
/**
 * Endpoints whose event is what they changed, not what they were asked: delete-user only mails a
 * confirmation link (the callback deletes), two-factor/enable turns 2FA on only after a first valid
 * code (verify-totp), and verify-email answers success and failure alike with a redirect. For these the
 * subject's row is read before and after, and the difference is the event.
 */
const STATE_PATHS = new Set(["/verify-email", "/delete-user", "/delete-user/callback", "/admin/remove-user", "/two-factor/enable", "/two-factor/disable"]);
const isStatePath = (path: string) => STATE_PATHS.has(path) || path.startsWith("/two-factor/verify-");

interface UserState {
  email: string;
  emailVerified: boolean;
  twoFactorEnabled: boolean;
}

// A reason another module knows better than Better Auth's error code (the lockout: "account_locked").
const failureReasons = new WeakMap<Request, string>();
export function markSignInFailure(request: Request, reason: string): void {
  failureReasons.set(request, reason);
}

const origin = (ctx: HookContext) => requestOrigin(ctx.headers ?? ctx.request?.headers);

/**
 * Whether an endpoint refused the request. Better Auth answers some outcomes with a redirect (an
 * APIError of status 302): a provider callback or a mailed link that worked, or one that failed with
 * `?error=` in its Location.
 */
function refused(returned: unknown): boolean {
  const redirectsToError = (headers: ConstructorParameters<typeof Headers>[0]) => /[?&]error=/.test(new Headers(headers).get("location") ?? "");
  if (isAPIError(returned)) return returned.statusCode >= 400 || redirectsToError(returned.headers);
  return returned instanceof Response && (returned.status >= 400 || redirectsToError(returned.headers));
}

/** How a sign-in was made: `email`, `magic-link`..., a provider's id for its callback, `verify-totp`... */
function signInMethod(ctx: HookContext): string | null {
  const path = ctx.path ?? "";
  // The callback's path is the route pattern (/callback/:id); the provider is its parameter.
  if (path.startsWith("/callback/")) return (ctx.params as { id?: unknown } | undefined)?.id?.toString() ?? null;
  if (path === "/magic-link/verify") return "magic-link";
  return path.split("/")[2] ?? null;
}

/** Better Auth's error code of a failed endpoint, as a reason class for the trail. */
function failureReason(error: { body?: { code?: unknown }; statusCode: number }): string {
  const code = typeof error.body?.code === "string" ? error.body.code : "";
  if (code === ("INVALID_EMAIL_OR_PASSWORD" satisfies ErrorCode)) return "invalid_credentials";
  if (code === ("EMAIL_NOT_VERIFIED" satisfies ErrorCode)) return "email_not_verified";
  return error.statusCode < 500 ? "invalid_request" : "server_error";
}

/** What the hooks learn of a request before its endpoint runs, for the event after it. */
interface RequestMemory {
  /** Whose session (or reset token) a request carried, read before the endpoint can delete it. */
  actors: WeakMap<Request, string | null>;
  /** Whom an admin stops impersonating (stop-impersonating names no user in its body). */
  impersonated: WeakMap<Request, string>;
  /** The user a state path acts on, and their row before it ran (null: no such user). */
  subjects: WeakMap<Request, { userId: string; before: UserState | null }>;
  /** When a provider callback or a magic link started: a user created after that was signed up by it. */
  started: WeakMap<Request, number>;
}

/** A request its endpoint carried out, and how to record an event of it. */
interface Outcome {
  ctx: HookContext;
  memory: RequestMemory;
  actor: string | null;
  newUserId: string | null;
  event(type: AuthEventType, userId: string | null, details?: AuthEvent["details"]): Promise<void>;
}
type EventOf = (outcome: Outcome) => Promise<void> | void;

const signUp: EventOf = ({ newUserId, event }) => (newUserId ? event("sign_up", newUserId) : undefined);
const signIn: EventOf = async ({ ctx, memory, newUserId, event }) => {
  if (!newUserId) return;
  // A provider's first sign-in, or a magic link for a new address, creates the user: a sign-up too.
  const begun = ctx.request ? memory.started.get(ctx.request) : undefined;
  const createdAt = ctx.context.newSession?.user.createdAt;
  if (begun !== undefined && createdAt && new Date(createdAt).getTime() >= begun) {
    await event("sign_up", newUserId, { method: signInMethod(ctx) });
  }
  await event("sign_in", newUserId, { method: signInMethod(ctx) });
};
const sessionEvent: EventOf = ({ ctx, actor, event }) => {
  const path = ctx.path!;
  const details = path.startsWith("/revoke-") ? { scope: path.slice("/revoke-".length) } : undefined;
  return event(SESSION_PATHS[path]!, actor, details);
};
const adminAction: EventOf = ({ ctx, memory, actor, event }) => {
  const body = (ctx.body as { userId?: unknown } | undefined)?.userId;
  const target = typeof body === "string" ? body : ctx.request ? memory.impersonated.get(ctx.request) ?? null : null;
  return event("admin_action", actor, { action: ctx.path!.slice("/admin/".length), targetUserId: target });
};
const passwordReset: EventOf = ({ actor, event }) => event("password_reset", actor);

/** The event an endpoint records when it carried out its request: by exact path, then by prefix. */
const EVENT_BY_PATH = new Map<string, EventOf>([
  ["/sign-up/email", signUp],
  ["/magic-link/verify", signIn],
  ["/reset-password", passwordReset],
  ...Object.keys(SESSION_PATHS).map((path): [string, EventOf] => [path, sessionEvent]),
]);
const EVENT_BY_PREFIX = new Map<string, EventOf>([...SIGN_IN_PREFIXES.map((prefix): [string, EventOf] => [prefix, signIn]), ["/admin/", adminAction]]);
const EVENT_PREFIXES = [...EVENT_BY_PREFIX.keys()];
const eventOf = (path: string) => EVENT_BY_PATH.get(path) ?? EVENT_BY_PREFIX.get(prefixOf(EVENT_PREFIXES, path) ?? "");

async function stateOf(sql: Sql, userId: string): Promise<UserState | null> {
  const [row] = await sql<UserState[]>`
    select email, email_verified as "emailVerified", two_factor_enabled as "twoFactorEnabled" from users where id = ${userId}`;
  return row ?? null;
}

async function userIdByEmail(sql: Sql, email: unknown): Promise<string | null> {
  if (typeof email !== "string") return null;
  const [row] = await sql<{ id: string }[]>`select id from users where email = ${email.toLowerCase()}`;
  return row?.id ?? null;
}

/** The user a verify-email link is for: the user id it is bound to, or its address. */
async function verifyEmailSubject(sql: Sql, token: unknown): Promise<string | null> {
  if (typeof token !== "string") return null;
  try {
    const claims = decodeJwt(token) as { email?: unknown; userId?: unknown };
    return typeof claims.userId === "string" ? claims.userId : await userIdByEmail(sql, claims.email);
  } catch {
    return null; // not a JWT: Better Auth refuses it, nothing changes
  }
}

/** Before the endpoint: who sent the request, and the state of the user it acts on. */
async function rememberActor(sql: Sql, memory: RequestMemory, ctx: HookContext): Promise<void> {
  if (!ctx.request) return;
  if (ctx.path === "/reset-password") {
    const token = (ctx.body as { token?: unknown } | undefined)?.token ?? ctx.query?.token;
    if (typeof token !== "string") return;
    // Through Better Auth's adapter: reset tokens are stored under a hashed identifier.
    const row = await ctx.context.internalAdapter.findVerificationValue(`reset-password:${token}`);
    memory.actors.set(ctx.request, row?.value ?? null);
    return;
  }
  let subject: string | null;
  if (ctx.path === "/verify-email") subject = await verifyEmailSubject(sql, ctx.query?.token);
  else {
    const session = await getSessionFromCtx(ctx).catch(() => null);
    // Stopping an impersonation is the admin's action, sent with the impersonated user's session.
    const impersonatedBy = (session?.session as { impersonatedBy?: string | null } | undefined)?.impersonatedBy;
    const stopping = ctx.path === "/admin/stop-impersonating" && impersonatedBy;
    memory.actors.set(ctx.request, stopping || session?.user.id || null);
    if (stopping) memory.impersonated.set(ctx.request, session!.user.id);
    const target = (ctx.body as { userId?: unknown } | undefined)?.userId;
    subject = ctx.path === "/admin/remove-user" ? (typeof target === "string" ? target : null) : session?.user.id ?? null;
  }
  if (subject && isStatePath(ctx.path!)) memory.subjects.set(ctx.request, { userId: subject, before: await stateOf(sql, subject) });
}

/** After the endpoint: the events of what changed, of a failed sign-in, or of what it carried out. */
async function recordOutcome(sql: Sql, record: AuditRecorder, memory: RequestMemory, ctx: HookContext): Promise<void> {
  const path = ctx.path ?? "";
  const returned = ctx.context.returned;
  const failed = refused(returned);
  const actor = ctx.request ? memory.actors.get(ctx.request) ?? null : null;
  const event = (type: AuthEventType, userId: string | null, details?: AuthEvent["details"]) => record({ type, userId, ...origin(ctx), details });

  const subject = ctx.request ? memory.subjects.get(ctx.request) : undefined;
  if (subject?.before) {
    const { userId, before } = subject;
    const after = await stateOf(sql, userId);
    if (!after) await event("user_deleted", userId, { by: path.startsWith("/admin/") ? "admin" : "self" });
    else {
      if (after.email !== before.email) await event("email_changed", userId);
      else if (after.emailVerified && !before.emailVerified) await event("email_verified", userId);
      if (after.twoFactorEnabled !== before.twoFactorEnabled) await event(after.twoFactorEnabled ? "two_factor_enabled" : "two_factor_disabled", userId);
    }
  }
  // A signed-in user's verify-totp turns 2FA on (above); only a session-less one is a sign-in.
  if (isSignIn(path) && subject) return;
  // A sign-in refused because the hash queue was full decided nothing about the credentials, and a
  // flood of them must stay cheap: no row.
  if (isAPIError(returned) && returned.body?.code === ("SERVER_BUSY" satisfies ErrorCode)) return;
  if (isSignIn(path) && failed && isAPIError(returned)) {
    const userId = await userIdByEmail(sql, (ctx.body as { email?: unknown } | undefined)?.email);
    const reason = (ctx.request && failureReasons.get(ctx.request)) ?? failureReason(returned);
    return void (await event("sign_in_failed", userId, { method: signInMethod(ctx), reason }));
  }
  if (failed) return;
  const newUserId = (ctx.context.newSession?.user.id as string | undefined) ?? null;
  await eventOf(path)?.({ ctx, memory, actor, newUserId, event });
}

/** The Better Auth plugin that records events. */
export function auditTrail(record: AuditRecorder, sql: Sql): BetterAuthPlugin {
  const memory: RequestMemory = { actors: new WeakMap(), impersonated: new WeakMap(), subjects: new WeakMap(), started: new WeakMap() };
  return {
    id: "audit-trail",
    hooks: {
      before: [
        {
          matcher: (ctx) => Boolean(ctx.path && (ctx.path.startsWith("/callback/") || ctx.path === "/magic-link/verify")),
          handler: createAuthMiddleware(async (ctx) => {
            if (ctx.request) memory.started.set(ctx.request, Date.now());
          }),
        },
        {
          matcher: (ctx) => Boolean(ctx.path && (ctx.path in SESSION_PATHS || isAdminPath(ctx.path) || isStatePath(ctx.path) || ctx.path === "/reset-password")),
          handler: createAuthMiddleware((ctx) => rememberActor(sql, memory, ctx)),
        },
      ],
      after: [{ matcher: () => true, handler: createAuthMiddleware((ctx) => recordOutcome(sql, record, memory, ctx)) }],
    },
  };
}
