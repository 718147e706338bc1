// Email verification: the link mailed on sign-up, on sign-in before verification (at most once a
// minute) and on request, the change-of-address link, and each link verifying once.
import type { BetterAuthOptions } from "better-auth";
import { decodeJwt, jwtVerify } from "jose";
import type { Sql } from "../db/pool.ts";
import { apiError } from "../errors.ts";
import type { FlowContext, HookContext } from "./flow-context.ts";

/** A verification mail resent on sign-in at most this often per user. */
export const SIGN_IN_RESEND_INTERVAL_SECONDS = 60;

/**
 * Marks that a verification mail went to `userId` now. With `onlyIfQuiet`, marks (and answers true)
 * only when none went out in the last minute: one atomic statement, so instances cannot race.
 */
async function markVerificationMail(sql: Sql, userId: string, onlyIfQuiet: boolean): Promise<boolean> {
  const id = `verification-mail-sent:${userId}`;
  const rows = onlyIfQuiet
    ? await sql`
        insert into verifications (id, identifier, value, expires_at)
        values (${id}, ${id}, ${userId}, now() + make_interval(secs => ${SIGN_IN_RESEND_INTERVAL_SECONDS}))
        on conflict (id) do update set expires_at = excluded.expires_at, updated_at = now()
          where verifications.expires_at <= now()
        returning id`
    : await sql`
        insert into verifications (id, identifier, value, expires_at)
        values (${id}, ${id}, ${userId}, now() + make_interval(secs => ${SIGN_IN_RESEND_INTERVAL_SECONDS}))
        on conflict (id) do update set expires_at = excluded.expires_at, updated_at = now()
        returning id`;
  return rows.length > 0;
}

/** Better Auth's `emailVerification` options. */
export function verificationOptions({ mail, mailer, sql, logger, auth, sendOrRefuse, returningToSite }: FlowContext): BetterAuthOptions["emailVerification"] {
  const sendVerificationEmail: NonNullable<NonNullable<BetterAuthOptions["emailVerification"]>["sendVerificationEmail"]> = async ({ user, url, token }, request) => {
    const link = returningToSite(url);
    const claims = decodeJwt(token);
    if (typeof claims.updateTo === "string") {
      // Change of address: the link goes to the new address; the old one hears about it at once (ASVS 2.2.3).
      await sendOrRefuse("change-email-verify", user.email, { name: user.name, newEmail: user.email, url: link, expiresInSeconds: mail.verificationExpiresInSeconds });
      if (typeof claims.email === "string") mailer.queue("email-change-requested", claims.email, { name: user.name, newEmail: user.email });
      return;
    }
    if (!mail.flows.has("verification")) throw apiError("VERIFICATION_EMAIL_NOT_ENABLED");
    const data = { name: user.name, url: link, expiresInSeconds: mail.verificationExpiresInSeconds };
    const path = request ? new URL(request.url).pathname : "";
    if (path.endsWith("/sign-in/email")) {
      // Sign-in before verification answers 403 EMAIL_NOT_VERIFIED and resends, at most once a minute.
      if (await markVerificationMail(sql, user.id, true)) mailer.queue("verify-email", user.email, data);
      else logger.debug("verification mail not resent on sign-in: one went out less than a minute ago");
      return;
    }
    await markVerificationMail(sql, user.id, false);
    if (path.endsWith("/send-verification-email") && request && (await auth.hasSession(request.headers))) {
      await sendOrRefuse("verify-email", user.email, data);
      return;
    }
    mailer.queue("verify-email", user.email, data);
  };
  return {
    sendVerificationEmail,
    sendOnSignUp: mail.flows.has("verification"),
    sendOnSignIn: mail.requireEmailVerification,
    autoSignInAfterVerification: mail.autoSignInAfterVerification,
    expiresIn: mail.verificationExpiresInSeconds,
  };
}

async function sha256Hex(value: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value));
  return Buffer.from(digest).toString("hex");
}

/** Refuses a reused verification link: Better Auth's are stateless JWTs that would verify again. */
export async function spendVerificationLink(ctx: HookContext): Promise<void> {
  const token = (ctx.query as Record<string, unknown> | undefined)?.token;
  if (typeof token !== "string") return;
  let expiresAt: Date;
  let subject: string;
  try {
    // The key Better Auth signs and verifies these links with (its current secret, also under
    // BETTER_AUTH_SECRETS): a link it accepts is always spent here first.
    const { payload } = await jwtVerify(token, new TextEncoder().encode(ctx.context.secret), { algorithms: ["HS256"] });
    expiresAt = new Date((payload.exp ?? 0) * 1000);
    subject = String(payload.email ?? "");
  } catch {
    return; // Better Auth answers INVALID_TOKEN / TOKEN_EXPIRED itself
  }
  // Better Auth's replay tombstone: the first caller creates the row, every later one is refused.
  // Only a hash of the token is stored.
  const first = await ctx.context.internalAdapter.reserveVerificationValue({
    identifier: `email-link-used:${await sha256Hex(token)}`,
    value: subject,
    expiresAt,
  });
  // A JSON 401; src/http/link-errors.ts turns it into a redirect for a browser link.
  if (!first) throw apiError("INVALID_TOKEN", "This link was already used");
}
