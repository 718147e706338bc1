// What every account mail flow is given: the mail settings, the mailer, the Better Auth instance the
// flows are part of, and the two ways to send (queued, or waited for: `sendOrRefuse`).
import type { createAuthMiddleware } from "better-auth/api";
import type { MailConfig } from "../config.ts";
import type { Sql } from "../db/pool.ts";
import type { Logger } from "../ops/log.ts";
import type { Mailer, MailKind, MailTemplateData } from "./mailer.ts";

/** What the flows need from the Better Auth instance they are part of (created after them). */
export interface AuthHandle {
  /** Whether these request headers carry a live session. */
  hasSession(headers: Headers): Promise<boolean>;
  /** Deletes a verification row by the identifier Better Auth created it under (hashed or not). */
  deleteVerification(identifier: string): Promise<void>;
}

/** What a Better Auth before/after hook receives; the one spelling of it for every hook in src/ (mail sits lowest of them). */
export type HookContext = Parameters<Parameters<typeof createAuthMiddleware>[0]>[0];

/** Sends and waits; a relay failure refuses the request with 424 MAIL_NOT_SENT after `withdraw`. */
export type SendOrRefuse = <K extends MailKind>(kind: K, to: string, data: MailTemplateData[K], withdraw?: () => Promise<unknown>) => Promise<void>;

export interface FlowContext {
  mail: MailConfig;
  mailer: Mailer;
  sql: Sql;
  logger: Logger;
  auth: AuthHandle;
  /** The role a new user is given (the admin plugin's default). */
  defaultRole: string;
  sendOrRefuse: SendOrRefuse;
  /** The link with the site as its return address when the request named none (Better Auth puts "/"). */
  returningToSite(link: string, path?: string): string;
}

export function returningToSite(appUrl: string, link: string, path = ""): string {
  const url = new URL(link);
  const callback = url.searchParams.get("callbackURL");
  if (!callback || callback === "/") url.searchParams.set("callbackURL", `${appUrl}${path}`);
  return url.toString();
}
