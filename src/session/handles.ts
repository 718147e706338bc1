// No endpoint hands out another session's credential (ASVS 3.2.x / 3.3: a session token is a bearer
// credential). Better Auth's list-sessions (and the admin plugin's list-user-sessions) answer each
// session's `token`, the very value that authenticates as it: one stolen or still-cached session could
// read the token of the victim's next one and become it. Here `token` in those lists is a handle
// instead: `<session id>.<HMAC-SHA256(secret, token), base64url>`. It authenticates nothing (the
// server accepts only the signed token as a cookie or bearer value), cannot be made without the secret,
// and names its session, so revoke-session (and admin/revoke-user-session) map it back to the token
// with one lookup. Those two endpoints take nothing else: any other value, or a handle of a session
// that is not the caller's, answers 404 SESSION_NOT_FOUND and revokes nothing.
import { createHmac, timingSafeEqual } from "node:crypto";
import type { BetterAuthPlugin } from "better-auth";
import { createAuthMiddleware, getSessionFromCtx, isAPIError } from "better-auth/api";
import { apiError } from "../errors.ts";
import type { Sql } from "../db/pool.ts";

/** The handle list-sessions answers for the session whose token is `token`. */
export function sessionHandle(secret: string, sessionId: string, token: string): string {
  return `${sessionId}.${createHmac("sha256", secret).update(`session-handle:${token}`).digest("base64url")}`;
}

const notFound = () => apiError("SESSION_NOT_FOUND");

export function sessionHandles(sql: Sql): BetterAuthPlugin {
  /** The session token `handle` names, with its user, or null when it names none (or a forged one). */
  async function resolve(secret: string, handle: unknown): Promise<{ token: string; userId: string } | null> {
    if (typeof handle !== "string") return null;
    const dot = handle.indexOf(".");
    if (dot < 1 || handle.length > 256) return null;
    const [row] = await sql<{ token: string; user_id: string }[]>`select token, user_id from sessions where id = ${handle.slice(0, dot)} and expires_at > now()`;
    if (!row) return null;
    const expected = Buffer.from(sessionHandle(secret, handle.slice(0, dot), row.token));
    const sent = Buffer.from(handle);
    return sent.length === expected.length && timingSafeEqual(sent, expected) ? { token: row.token, userId: row.user_id } : null;
  }

  return {
    id: "session-handles",
    hooks: {
      before: [
        {
          matcher: (context) => context.path === "/revoke-session" || context.path === "/admin/revoke-user-session",
          handler: createAuthMiddleware(async (ctx) => {
            const body = (ctx.body ?? {}) as Record<string, unknown>;
            const field = ctx.path === "/revoke-session" ? "token" : "sessionToken";
            const caller = await getSessionFromCtx(ctx).catch(() => null);
            if (!caller) return; // the endpoint answers 401 itself
            const found = await resolve(ctx.context.secret, body[field]);
            // The admin plugin checks the admin's permission itself; anyone else revokes only their own.
            if (!found || (ctx.path === "/revoke-session" && found.userId !== caller.user.id)) throw notFound();
            body[field] = found.token;
          }),
        },
      ],
      after: [
        {
          matcher: (context) => context.path === "/list-sessions" || context.path === "/admin/list-user-sessions",
          handler: createAuthMiddleware(async (ctx) => {
            const returned = ctx.context.returned;
            if (isAPIError(returned) || returned instanceof Response) return;
            const secret = ctx.context.secret;
            const toHandle = (session: { id: string; token: string }) => ({ ...session, token: sessionHandle(secret, session.id, session.token) });
            if (Array.isArray(returned)) return ctx.json(returned.map(toHandle));
            const listed = returned as { sessions?: { id: string; token: string }[] } | null;
            if (listed && Array.isArray(listed.sessions)) return ctx.json({ ...listed, sessions: listed.sessions.map(toHandle) });
          }),
        },
      ],
    },
  };
}
