// Account deletion by mail: the confirmation link (waited for: the signed-in user must know if it
// failed), and a fresh session or the password before deletion starts.
import type { BetterAuthOptions } from "better-auth";
import { getSessionFromCtx } from "better-auth/api";
import { apiError } from "../errors.ts";
import type { FlowContext, HookContext } from "./flow-context.ts";

/** Better Auth's identifier prefix for deletion tokens in `verifications`; these are stored hashed. */
export const DELETE_ACCOUNT_PREFIX = "delete-account-";

/** Better Auth's `user.deleteUser` options. */
export function deleteAccountOptions({ mail, auth, sendOrRefuse, returningToSite }: FlowContext): NonNullable<BetterAuthOptions["user"]>["deleteUser"] {
  return {
    enabled: mail.flows.has("delete-account"),
    deleteTokenExpiresIn: mail.deleteAccountExpiresInSeconds,
    ...(mail.flows.has("delete-account") && {
      sendDeleteAccountVerification: async ({ user, url, token }) =>
        sendOrRefuse(
          "delete-account",
          user.email,
          { name: user.name, url: returningToSite(url), expiresInSeconds: mail.deleteAccountExpiresInSeconds },
          () => auth.deleteVerification(`${DELETE_ACCOUNT_PREFIX}${token}`),
        ),
    }),
  };
}

/** Refuses deletion by a stale session without the password (ASVS 3.7.1: re-authenticate first). */
export async function requireFreshSessionToDelete(ctx: HookContext): Promise<void> {
  const body = (ctx.body ?? {}) as Record<string, unknown>;
  // Read as Better Auth's delete-user reads them (`if (ctx.body.password)`): "" is no password there,
  // so it is none here. A non-string is refused by its body schema.
  if (body.password || body.token) return;
  const freshAge = ctx.context.sessionConfig.freshAge;
  if (freshAge === 0) return;
  const session = await getSessionFromCtx(ctx);
  if (!session) return; // the endpoint answers 401
  if (Date.now() - new Date(session.session.createdAt).getTime() >= freshAge * 1000) {
    throw apiError("SESSION_NOT_FRESH");
  }
}
