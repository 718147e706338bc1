// Account lockout: failed email sign-ins are counted per account in Postgres (so a guess spread over
// many IPs and instances still adds up), and an account with too many in a window refuses sign-in for a
// while. ASVS 2.2.1 (brute force per account), 2.2.3 (notify the owner), and no lockout oracle: a locked
// account answers exactly like a wrong password, after the same hashing work.
//
// Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies"): a browser that signed
// in to the account before carries a signed cookie naming the account and a nonce; it has a failure count
// of its own (the account_lockouts row of that nonce), so the lock that guesses from everywhere else bring
// on (the row of device '') does not keep the owner out, and guesses from the owner's browser lock only it.
import type { BetterAuthPlugin } from "better-auth";
import { createAuthMiddleware, isAPIError } from "better-auth/api";
import type { ErrorCode } from "../errors.ts";
import { markSignInFailure, requestOrigin, type AuditRecorder } from "./audit.ts";
import type { LockoutPolicy } from "../config.ts";
import type { Sql } from "../db/pool.ts";
import type { Logger } from "../ops/log.ts";
import type { Mailer } from "../mail/mailer.ts";
import type { HookContext } from "../mail/flows.ts";

export interface LockedAccount {
  id: string;
  email: string;
  name: string;
  lockedUntil: Date;
}

/** Tells the owner that their account was locked (a mail, when mail is configured). */
export type LockoutNotifier = (account: LockedAccount) => Promise<void>;

export interface FailureResult {
  failedCount: number;
  /** Set when this failure locked the account (once per lock, whichever instance saw it). */
  lockedUntil: Date | null;
}

/** The failure count of clients without a device cookie for the account. */
export const UNTRUSTED_CLIENTS = "";
// A device cookie outlives sessions: it is what lets the owner in while strangers are locked out.
export const DEVICE_COOKIE_MAX_AGE_SECONDS = 365 * 24 * 3600;
const DEVICE_COOKIE = "device";

/**
 * Counts one failed sign-in for `userId` from `device` (a device cookie's nonce, or UNTRUSTED_CLIENTS) in
 * a fixed window, in one upsert (atomic across instances). The failure that reaches the maximum sets
 * `locked_until` and starts a new count. `now()` is the statement's time, so `locked_until = now() +
 * duration` is true only for the statement that locked.
 */
export async function recordFailedSignIn(sql: Sql, policy: LockoutPolicy, userId: string, device = UNTRUSTED_CLIENTS): Promise<FailureResult> {
  const window = sql`${policy.windowSeconds} * interval '1 second'`;
  const duration = sql`${policy.durationSeconds} * interval '1 second'`;
  // The failure count including this one, from the row's values before the update. Failures that
  // were already past the check when another one locked the account count for nothing.
  const count = sql`(case when a.window_started_at <= now() - ${window} then 1 else a.failed_count + 1 end)`;
  const lockRunning = sql`(a.locked_until is not null and a.locked_until > now())`;
  const locks = policy.maxFailures <= 1;
  const [row] = await sql<{ failed_count: number; newly_locked: boolean; locked_until: Date | null }[]>`
    insert into account_lockouts as a (user_id, device, failed_count, window_started_at, locked_until, updated_at)
    values (${userId}, ${device}, ${locks ? 0 : 1}, now(), ${locks ? sql`now() + ${duration}` : null}, now())
    on conflict (user_id, device) do update set
      failed_count = case when ${lockRunning} then a.failed_count when ${count} >= ${policy.maxFailures} then 0 else ${count} end,
      window_started_at = case when ${lockRunning} then a.window_started_at when ${count} = 1 or ${count} >= ${policy.maxFailures} then now() else a.window_started_at end,
      locked_until = case when not ${lockRunning} and ${count} >= ${policy.maxFailures} then now() + ${duration} else a.locked_until end,
      updated_at = now()
    returning failed_count, coalesce(locked_until = now() + ${duration}, false) as newly_locked, locked_until`;
  return { failedCount: row!.failed_count, lockedUntil: row!.newly_locked ? row!.locked_until : null };
}

export interface LockoutDependencies {
  sql: Sql;
  policy: LockoutPolicy;
  record: AuditRecorder;
  notify: LockoutNotifier;
  logger: Logger;
}

const SIGN_IN_EMAIL = "/sign-in/email";
const INVALID_CREDENTIALS: ErrorCode = "INVALID_EMAIL_OR_PASSWORD";


/** The device a sign-in came from: the nonce of a valid device cookie and the account it names. */
async function deviceOf(ctx: HookContext): Promise<{ userId: string; nonce: string } | null> {
  const value = await ctx.getSignedCookie(ctx.context.createAuthCookie(DEVICE_COOKIE).name, ctx.context.secret);
  if (typeof value !== "string") return null; // absent, or not signed by this server (tampered, another secret)
  const colon = value.lastIndexOf(":");
  return colon > 0 ? { userId: value.slice(0, colon), nonce: value.slice(colon + 1) } : null;
}

/** A new device cookie for `userId` (a fresh nonce after every successful sign-in, as OWASP's scheme has it). */
async function issueDeviceCookie(ctx: HookContext, userId: string) {
  const cookie = ctx.context.createAuthCookie(DEVICE_COOKIE, { maxAge: DEVICE_COOKIE_MAX_AGE_SECONDS });
  const nonce = Buffer.from(crypto.getRandomValues(new Uint8Array(18))).toString("base64url");
  await ctx.setSignedCookie(cookie.name, `${userId}:${nonce}`, ctx.context.secret, cookie.attributes);
}


/** The Better Auth plugin that counts failures, refuses locked accounts and resets on success. */
export function accountLockout({ sql, policy, record, notify, logger }: LockoutDependencies): BetterAuthPlugin {
  // The account a sign-in named and the failure count it answers to, looked up once before the endpoint runs.
  const accounts = new WeakMap<Request, { id: string; email: string; name: string; device: string; counted: boolean }>();

  return {
    id: "account-lockout",
    hooks: {
      before: [
        {
          matcher: (ctx) => ctx.path === SIGN_IN_EMAIL,
          handler: createAuthMiddleware(async (ctx) => {
            const { email } = (ctx.body ?? {}) as { email?: unknown };
            if (typeof email !== "string" || !ctx.request) return;
            // A device cookie counts only for the account it names; otherwise the client is untrusted.
            // The same one statement as without devices: the row joined is the one this client answers to.
            const device = await deviceOf(ctx);
            const [account] = await sql<{ id: string; email: string; name: string; device: string; locked: boolean; counted: boolean }[]>`
              select u.id, u.email, u.name, d.device, coalesce(l.locked_until > now(), false) as locked, l.user_id is not null as counted
              from users u
              cross join lateral (select case when u.id = ${device?.userId ?? null} then ${device?.nonce ?? UNTRUSTED_CLIENTS} else ${UNTRUSTED_CLIENTS} end as device) d
              left join account_lockouts l on l.user_id = u.id and l.device = d.device
              where u.email = ${email.toLowerCase()}`;
            if (!account) return;
            accounts.set(ctx.request, account);
            if (!account.locked) return;
            // Let Better Auth's own sign-in run with a password that cannot match: the same lookups,
            // the same hash verification and the same 401 as a wrong password, so neither the answer
            // nor its timing tells a locked account from a wrong guess.
            (ctx.body as Record<string, unknown>).password = `locked:${crypto.randomUUID()}`;
            markSignInFailure(ctx.request, "account_locked");
          }),
        },
      ],
      after: [
        {
          matcher: (ctx) => ctx.path === SIGN_IN_EMAIL,
          handler: createAuthMiddleware(async (ctx) => {
            const account = ctx.request ? accounts.get(ctx.request) : undefined;
            if (!account) return;
            const returned = ctx.context.returned;
            if (ctx.context.newSession) {
              // The count of the client that proved the password starts again; this browser is now trusted.
              // Most sign-ins have no counter to reset: no statement then (a failure counted while this
              // sign-in ran is left to expire with its window).
              if (account.counted) await sql`delete from account_lockouts where user_id = ${account.id} and device = ${account.device}`;
              await issueDeviceCookie(ctx, account.id);
              return;
            }
            if (!isAPIError(returned) || returned.body?.code !== INVALID_CREDENTIALS) return;
            // While locked this changes nothing (see recordFailedSignIn) but costs what a counted failure costs.
            const { lockedUntil } = await recordFailedSignIn(sql, policy, account.id, account.device);
            if (!lockedUntil) return;
            const trusted = account.device !== UNTRUSTED_CLIENTS;
            const scope = trusted ? "one device of account" : "account";
            logger.warn(`${scope} ${account.id} locked until ${lockedUntil.toISOString()} after ${policy.maxFailures} failed sign-ins`);
            const details = { lockedUntil: lockedUntil.toISOString(), failures: policy.maxFailures, clients: trusted ? "device" : "untrusted" };
            await record({ type: "account_locked", userId: account.id, ...requestOrigin(ctx.headers ?? ctx.request?.headers), details });
            // The owner is told when strangers lock the account; a lock of their own browser they see there.
            if (trusted) return;
            await notify({ id: account.id, email: account.email, name: account.name, lockedUntil }).catch((error) => logger.error("lockout: could not notify the account owner", error));
          }),
        },
      ],
    },
  };
}

/**
 * ASVS 2.2.3: the owner gets a mail (in the background: the 401 does not wait for the relay). The lock
 * time is rounded up to whole minutes for the message.
 */
export const mailingNotifier =
  (mailer: Pick<Mailer, "queue">): LockoutNotifier =>
  async (account) => {
    const seconds = Math.max(60, Math.ceil((account.lockedUntil.getTime() - Date.now()) / 60_000) * 60);
    mailer.queue("account-locked", account.email, { name: account.name, unlocksInSeconds: seconds });
  };

/** Without mail: the lock is logged and in the audit trail, and the owner learns of it from support. */
export const logOnlyNotifier =
  (logger: Logger): LockoutNotifier =>
  async (account) =>
    logger.info(`lockout: no mailer configured; account ${account.id} was not notified`);
