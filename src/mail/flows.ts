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
import { createAuthMiddleware, type APIError } from "better-auth/api";
import type { Config } from "../config.ts";
import type { Sql } from "../db/pool.ts";
import { apiError, errorResponse } from "../errors.ts";
import type { Logger } from "../ops/log.ts";
import { deleteAccountOptions, DELETE_ACCOUNT_PREFIX, requireFreshSessionToDelete } from "./delete-account-flow.ts";
import { returningToSite, type AuthHandle, type FlowContext, type HookContext, type SendOrRefuse } from "./flow-context.ts";
import { magicLinkPlugins } from "./magic-link-flow.ts";
import { MailDeliveryError, type Mailer } from "./mailer.ts";
import { noticeOfPasswordChange, passwordOptions, RESET_PASSWORD_PREFIX } from "./password-flow.ts";
import { spendVerificationLink, verificationOptions } from "./verification-flow.ts";

export type { AuthHandle, HookContext } from "./flow-context.ts";
export { SIGN_IN_RESEND_INTERVAL_SECONDS } from "./verification-flow.ts";

export interface EmailFlowDependencies {
  config: Config & { secret: string };
  mailer: Mailer;
  sql: Sql;
  logger: Logger;
  auth: AuthHandle;
  /** The role a new user is given (the admin plugin's default), which a made-up sign-up answer shows too. */
  defaultRole: string;
}

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
export function mailSenderOrRefusal(mailer: Mailer, logger: Logger): SendOrRefuse {
  return async function sendOrRefuse(kind, to, data, withdraw) {
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

/** The account mail flows as Better Auth options, plugins and hooks (one module per flow). */
export function emailFlows({ config, mailer, sql, logger, auth, defaultRole }: EmailFlowDependencies) {
  const mail = config.mail;
  const flow: FlowContext = {
    mail,
    mailer,
    sql,
    logger,
    auth,
    defaultRole,
    sendOrRefuse: mailSenderOrRefusal(mailer, logger),
    returningToSite: (link, path) => returningToSite(mail.appUrl, link, path),
  };
  const before = async (ctx: HookContext) => {
    if (ctx.path === "/verify-email") await spendVerificationLink(ctx);
    else if (ctx.path === "/delete-user") await requireFreshSessionToDelete(ctx);
  };
  return {
    emailVerification: verificationOptions(flow),
    emailAndPassword: passwordOptions(flow),
    user: { changeEmail: { enabled: mail.flows.has("change-email") }, deleteUser: deleteAccountOptions(flow) },
    // Better Auth stores these tokens as verification identifiers; store only their hash.
    verification: { storeIdentifier: { default: "plain" as const, overrides: { [RESET_PASSWORD_PREFIX]: "hashed" as const, [DELETE_ACCOUNT_PREFIX]: "hashed" as const } } },
    plugins: magicLinkPlugins(flow),
    hooks: { before, after: createAuthMiddleware(async (ctx) => noticeOfPasswordChange(mailer, ctx)) },
  };
}
