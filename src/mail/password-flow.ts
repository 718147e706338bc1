// Passwords by mail: the reset link, the notice after a reset or a change (ASVS 2.2.3), and the mail
// to the owner of an address someone tried to sign up with again.
import type { BetterAuthOptions } from "better-auth";
import { isAPIError } from "better-auth/api";
import type { FlowContext, HookContext } from "./flow-context.ts";
import type { Mailer } from "./mailer.ts";
import { markSignUpTaken } from "./sign-up-pacing.ts";

/** Better Auth's identifier prefix for reset tokens in `verifications`; these are stored hashed. */
export const RESET_PASSWORD_PREFIX = "reset-password:";

/** Better Auth's `emailAndPassword` options that concern mail. */
export function passwordOptions({ mail, mailer, auth, defaultRole, returningToSite }: FlowContext): Partial<NonNullable<BetterAuthOptions["emailAndPassword"]>> {
  return {
    requireEmailVerification: mail.requireEmailVerification,
    // ASVS 2.5.x: a reset ends every session of the account.
    revokeSessionsOnPasswordReset: true,
    resetPasswordTokenExpiresIn: mail.passwordResetExpiresInSeconds,
    ...(mail.flows.has("password-reset") && {
      sendResetPassword: async ({ user, url, token }) => {
        mailer.queue(
          "password-reset",
          user.email,
          { name: user.name, url: returningToSite(url, "/reset-password"), expiresInSeconds: mail.passwordResetExpiresInSeconds },
          // A link that never arrived is withdrawn, so no usable token outlives the failure.
          () => auth.deleteVerification(`${RESET_PASSWORD_PREFIX}${token}`),
        );
      },
    }),
    // ASVS 2.5 / OWASP Authentication Cheat Sheet (account enumeration): with verification required, Better
    // Auth answers a taken address exactly as a new one (after hashing the password anyway) and calls this;
    // the owner is told instead. Queued, so the answer does not wait for the relay; and held until it took as
    // long as a new address's answer does (src/mail/sign-up-pacing.ts).
    onExistingUserSignUp: async ({ user }) => {
      markSignUpTaken();
      mailer.queue("sign-up-attempt", user.email, { name: user.name, url: mail.appUrl });
    },
    // The made-up user of that answer has every field a new user's answer has: the admin plugin gives a new
    // user its role in a database hook, which the made-up one never passes (test/security/sign-up-enumeration.test.ts).
    customSyntheticUser: ({ coreFields, additionalFields, id }) => ({ ...coreFields, role: defaultRole, ...additionalFields, id }),
    // ASVS 2.2.3: tell the user after a credential reset.
    onPasswordReset: async ({ user }) => mailer.queue("password-changed", user.email, { name: user.name, how: "reset" }),
  };
}

/** After change-password: ASVS 2.2.3, tell the user after a password change. */
export function noticeOfPasswordChange(mailer: Mailer, ctx: HookContext): void {
  if (ctx.path !== "/change-password" || isAPIError(ctx.context.returned)) return;
  const changed = ctx.context.returned as { user?: { email?: string; name?: string } } | undefined;
  if (changed?.user?.email) mailer.queue("password-changed", changed.user.email, { name: changed.user.name ?? "", how: "changed" });
}
