// The account flows that go through the user's mailbox, on Better Auth's own endpoints: email
// verification, password reset, the password-changed notice, email change, magic-link sign-in and
// account deletion. This module turns the mail settings into Better Auth options and hooks; src/auth/better-auth.ts
// merges them in. Mail goes out through src/mail/mailer.ts.
//
// Delivery rule: a flow started without a session answers the same whether or not the address has an
// account (ASVS 2.5.x, no enumeration), so its mail is queued and a relay failure is only logged. A
// signed-in user's request (change email, delete account, resend verification) waits for the relay
// (at most MAIL_SEND_TIMEOUT) and, if it fails, answers 424 MAIL_NOT_SENT and leaves no token behind.
import { AsyncLocalStorage } from "node:async_hooks";
import type { BetterAuthOptions } from "better-auth";
import { APIError, createAuthMiddleware, getSessionFromCtx, isAPIError } from "better-auth/api";
import { apiError, errorResponse } from "../errors.ts";
import { magicLink } from "better-auth/plugins";
import { decodeJwt, jwtVerify } from "jose";
import { DEFAULT_PLATFORM_ROLE } from "../auth/plugins/admin.ts";
import type { Config } from "../config.ts";
import type { Sql } from "../db/pool.ts";
import type { Logger } from "../ops/log.ts";
import { markSignUpTaken } from "../security/sign-up-pacing.ts";
import { MailDeliveryError, type Mailer, type MailKind, type MailTemplateData } from "./mailer.ts";

/** What the flows need from the Better Auth instance they are part of (created after them). */
export interface AuthHandle {
  /** Whether these request headers carry a live session. */
  hasSession(headers: Headers): Promise<boolean>;
  /** Deletes a verification row by the identifier Better Auth created it under (hashed or not). */
  deleteVerification(identifier: string): Promise<void>;
}

export interface EmailFlowDependencies {
  config: Config & { secret: string };
  mailer: Mailer;
  sql: Sql;
  logger: Logger;
  auth: AuthHandle;
}

type HookContext = Parameters<Parameters<typeof createAuthMiddleware>[0]>[0];

/** Better Auth's identifier prefixes for tokens it stores in `verifications`; these are stored hashed. */
const RESET_PASSWORD_PREFIX = "reset-password:";
const DELETE_ACCOUNT_PREFIX = "delete-account-";
/** A verification mail resent on sign-in at most this often per user. */
export const SIGN_IN_RESEND_INTERVAL_SECONDS = 60;

/** The answer when the relay failed for a request whose user must know. Not a 5xx: nothing crashed. */
export function mailNotSent(): APIError {
  // RFC 4918 11.4: 424, the request depended on another action (handing the mail to the relay) that failed.
  return apiError("MAIL_NOT_SENT");
}

/** Per request: whether a mail its user must know about failed (set by sendOrRefuse). */
const mailOutcome = new AsyncLocalStorage<{ failed: boolean }>();

/**
 * Runs one auth request so that a failed mail its user must know about answers 424 MAIL_NOT_SENT.
 * Needed because Better Auth sends the change-email and delete-account mails through
 * `runInBackgroundOrAwait`, which logs and swallows the callback's error and answers 200 anyway.
 */
export async function answeringMailFailures(handle: () => Promise<Response>): Promise<Response> {
  const outcome = { failed: false };
  const response = await mailOutcome.run(outcome, handle);
  if (!outcome.failed || !response.ok) return response;
  return errorResponse("MAIL_NOT_SENT");
}

/**
 * Sends and waits; a relay failure becomes 424 MAIL_NOT_SENT (through `answeringMailFailures`, also
 * where Better Auth swallows the callback's error) after `withdraw` removed what the request wrote.
 */
export function mailSenderOrRefusal(mailer: Mailer, logger: Logger) {
  return async function sendOrRefuse<K extends MailKind>(kind: K, to: string, data: MailTemplateData[K], withdraw?: () => Promise<unknown>) {
    try {
      await mailer.send(kind, to, data);
    } catch (error) {
      if (!(error instanceof MailDeliveryError)) throw error;
      await withdraw?.().catch((cause) => logger.error(`could not withdraw the ${kind} token after a failed send`, cause));
      const outcome = mailOutcome.getStore();
      if (outcome) outcome.failed = true;
      throw mailNotSent();
    }
  };
}

async function sha256Hex(value: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value));
  return Buffer.from(digest).toString("hex");
}

export function emailFlows({ config, mailer, sql, logger, auth }: EmailFlowDependencies) {
  const mail = config.mail;
  const on = (flow: Parameters<typeof mail.flows.has>[0]) => mail.flows.has(flow);

  /** The link with the site as its return address when the request named none (Better Auth puts "/"). */
  const returningToSite = (link: string, path = "") => {
    const url = new URL(link);
    const callback = url.searchParams.get("callbackURL");
    if (!callback || callback === "/") url.searchParams.set("callbackURL", `${mail.appUrl}${path}`);
    return url.toString();
  };

  const sendOrRefuse = mailSenderOrRefusal(mailer, logger);

  /**
   * Marks that a verification mail went to `userId` now. With `onlyIfQuiet`, marks (and answers true)
   * only when none went out in the last minute: one atomic statement, so instances cannot race.
   */
  async function markVerificationMail(userId: string, onlyIfQuiet: boolean): Promise<boolean> {
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

  const sendVerificationEmail: NonNullable<NonNullable<BetterAuthOptions["emailVerification"]>["sendVerificationEmail"]> = async (
    { user, url, token },
    request,
  ) => {
    const link = returningToSite(url);
    const claims = decodeJwt(token);
    if (typeof claims.updateTo === "string") {
      // Change of address: the link goes to the new address; the old one hears about it at once (ASVS 2.2.3).
      await sendOrRefuse("change-email-verify", user.email, { name: user.name, newEmail: user.email, url: link, expiresInSeconds: mail.verificationExpiresInSeconds });
      if (typeof claims.email === "string") mailer.queue("email-change-requested", claims.email, { name: user.name, newEmail: user.email });
      return;
    }
    if (!on("verification")) throw apiError("VERIFICATION_EMAIL_NOT_ENABLED");
    const data = { name: user.name, url: link, expiresInSeconds: mail.verificationExpiresInSeconds };
    const path = request ? new URL(request.url).pathname : "";
    if (path.endsWith("/sign-in/email")) {
      // Sign-in before verification answers 403 EMAIL_NOT_VERIFIED and resends, at most once a minute.
      if (await markVerificationMail(user.id, true)) mailer.queue("verify-email", user.email, data);
      else logger.debug("verification mail not resent on sign-in: one went out less than a minute ago");
      return;
    }
    await markVerificationMail(user.id, false);
    if (path.endsWith("/send-verification-email") && request && (await auth.hasSession(request.headers))) {
      await sendOrRefuse("verify-email", user.email, data);
      return;
    }
    mailer.queue("verify-email", user.email, data);
  };

  const emailVerification: BetterAuthOptions["emailVerification"] = {
    sendVerificationEmail,
    sendOnSignUp: on("verification"),
    sendOnSignIn: mail.requireEmailVerification,
    autoSignInAfterVerification: mail.autoSignInAfterVerification,
    expiresIn: mail.verificationExpiresInSeconds,
  };

  const emailAndPassword: Partial<NonNullable<BetterAuthOptions["emailAndPassword"]>> = {
    requireEmailVerification: mail.requireEmailVerification,
    // ASVS 2.5.x: a reset ends every session of the account.
    revokeSessionsOnPasswordReset: true,
    resetPasswordTokenExpiresIn: mail.passwordResetExpiresInSeconds,
    ...(on("password-reset") && {
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
    // long as a new address's answer does (src/security/sign-up-pacing.ts).
    onExistingUserSignUp: async ({ user }) => {
      markSignUpTaken();
      mailer.queue("sign-up-attempt", user.email, { name: user.name, url: mail.appUrl });
    },
    // The made-up user of that answer has every field a new user's answer has: the admin plugin gives a new
    // user its role in a database hook, which the made-up one never passes (test/security/sign-up-enumeration.test.ts).
    customSyntheticUser: ({ coreFields, additionalFields, id }) => ({ ...coreFields, role: DEFAULT_PLATFORM_ROLE, ...additionalFields, id }),
    // ASVS 2.2.3: tell the user after a credential reset.
    onPasswordReset: async ({ user }) => mailer.queue("password-changed", user.email, { name: user.name, how: "reset" }),
  };

  const user: Pick<NonNullable<BetterAuthOptions["user"]>, "changeEmail" | "deleteUser"> = {
    changeEmail: { enabled: on("change-email") },
    deleteUser: {
      enabled: on("delete-account"),
      deleteTokenExpiresIn: mail.deleteAccountExpiresInSeconds,
      ...(on("delete-account") && {
        sendDeleteAccountVerification: async ({ user, url, token }) =>
          sendOrRefuse(
            "delete-account",
            user.email,
            { name: user.name, url: returningToSite(url), expiresInSeconds: mail.deleteAccountExpiresInSeconds },
            () => auth.deleteVerification(`${DELETE_ACCOUNT_PREFIX}${token}`),
          ),
      }),
    },
  };

  const plugins = on("magic-link")
    ? [
        magicLink({
          expiresIn: mail.magicLinkExpiresInSeconds,
          storeToken: "hashed",
          disableSignUp: !mail.magicLinkSignUp,
          sendMagicLink: async ({ email, url }) => {
            if (!mail.magicLinkSignUp) {
              // No account and no sign-up by link: nothing to send, and the answer stays the same.
              const [known] = await sql`select 1 from users where email = ${email.toLowerCase()}`;
              if (!known) return logger.debug("magic link not sent: no account for the address and MAGIC_LINK_SIGN_UP is off");
            }
            mailer.queue("magic-link", email, { url: returningToSite(url), expiresInSeconds: mail.magicLinkExpiresInSeconds });
          },
        }),
      ]
    : [];

  /** Refuses a reused verification link: Better Auth's are stateless JWTs that would verify again. */
  async function spendVerificationLink(ctx: HookContext) {
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

  /** Refuses deletion by a stale session without the password (ASVS 3.7.1: re-authenticate first). */
  async function requireFreshSessionToDelete(ctx: HookContext) {
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

  const before = async (ctx: HookContext) => {
    if (ctx.path === "/verify-email") await spendVerificationLink(ctx);
    else if (ctx.path === "/delete-user") await requireFreshSessionToDelete(ctx);
  };

  const after = createAuthMiddleware(async (ctx) => {
    if (ctx.path === "/change-password" && !isAPIError(ctx.context.returned)) {
      // ASVS 2.2.3: tell the user after a password change.
      const changed = ctx.context.returned as { user?: { email?: string; name?: string } } | undefined;
      if (changed?.user?.email) mailer.queue("password-changed", changed.user.email, { name: changed.user.name ?? "", how: "changed" });
    }
  });

  return {
    emailVerification,
    emailAndPassword,
    user,
    // Better Auth stores these tokens as verification identifiers; store only their hash.
    verification: { storeIdentifier: { default: "plain" as const, overrides: { [RESET_PASSWORD_PREFIX]: "hashed" as const, [DELETE_ACCOUNT_PREFIX]: "hashed" as const } } },
    plugins,
    hooks: { before, after },
  };
}
