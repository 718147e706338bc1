// Two-factor authentication: Better Auth's twoFactor plugin (TOTP, 10 backup codes, trust this device
// for 30 days, email codes when mail is configured) on the `two_factors` table, plus the rule the
// plugin lacks: a TOTP code is accepted once (RFC 6238 5.2, ASVS 2.8.4).
import type { BetterAuthPlugin } from "better-auth";
import { createAuthMiddleware, getSessionFromCtx } from "better-auth/api";
import { apiError } from "../../errors.ts";
import { symmetricDecrypt } from "better-auth/crypto";
import { twoFactor } from "better-auth/plugins";
import { Secret, TOTP } from "otpauth";
import type { Config } from "../../config.ts";
import type { Sql } from "../../db/pool.ts";
import type { SendMail } from "../../mail/send-mail.ts";
import type { HookContext } from "../../mail/flows.ts";

// RFC 6238 4: the plugin's defaults, fixed here so the replay guard computes the same steps.
export const TOTP_PERIOD_SECONDS = 30;
export const TOTP_DIGITS = 6;
// The plugin accepts the previous, current and next code (clock drift, RFC 6238 5.2).
const TOTP_WINDOW = 1;
// ASVS 2.8.x / 2.2.1: consecutive failures across factors and sign-in challenges lock the second
// factor for a while (the plugin's account lockout, counted in two_factors).
export const TWO_FACTOR_LOCKOUT = { maxFailedAttempts: 10, durationSeconds: 15 * 60 } as const;
// "Trust this device" lasts 30 days, and each sign-in on the device renews it.
export const TRUST_DEVICE_SECONDS = 30 * 86400;
export const BACKUP_CODE_COUNT = 10;
// An emailed code lasts this long (minutes).
const EMAIL_CODE_MINUTES = 5;

const TWO_FACTOR_COOKIE = "two_factor";

export const twoFactorSchema = {
  user: { fields: { twoFactorEnabled: "two_factor_enabled" } },
  twoFactor: {
    modelName: "two_factors",
    fields: {
      backupCodes: "backup_codes",
      userId: "user_id",
      failedVerificationCount: "failed_verification_count",
      lockedUntil: "locked_until",
    },
  },
};

export function twoFactorPlugin(config: Config, sendMail: SendMail | undefined) {
  return twoFactor({
    issuer: config.plugins.twoFactorIssuer,
    totpOptions: { period: TOTP_PERIOD_SECONDS, digits: TOTP_DIGITS },
    backupCodeOptions: { amount: BACKUP_CODE_COUNT, storeBackupCodes: "encrypted" },
    trustDeviceMaxAge: TRUST_DEVICE_SECONDS,
    accountLockout: { enabled: true, ...TWO_FACTOR_LOCKOUT },
    // Email codes are a second factor only where the server can send mail.
    otpOptions: sendMail
      ? {
          period: EMAIL_CODE_MINUTES,
          storeOTP: "hashed",
          sendOTP: ({ user, otp }) => sendMail("two-factor-code", user.email, { name: user.name, code: otp, expiresInSeconds: EMAIL_CODE_MINUTES * 60 }),
        }
      : undefined,
    schema: twoFactorSchema,
  });
}

/** The secret as the plugin keeps it: its raw characters, or base32 behind a "base32:" prefix. */
function totpSecret(decrypted: string): Secret {
  if (decrypted.startsWith("base32:")) return Secret.fromBase32(decrypted.slice("base32:".length).toUpperCase());
  return new Secret({ buffer: new TextEncoder().encode(decrypted).buffer });
}

/**
 * The otpauth URI with its query percent-encoded. Better Auth builds the query with URLSearchParams,
 * which writes a space as "+", and authenticator apps then show an issuer "Learn+Physics" (the Key
 * URI Format percent-encodes, as the label already is).
 */
export function percentEncodedOtpauthUri(uri: string): string {
  const at = uri.indexOf("?");
  if (at < 0) return uri;
  const query = [...new URLSearchParams(uri.slice(at + 1))].map(([key, value]) => `${key}=${encodeURIComponent(value)}`).join("&");
  return `${uri.slice(0, at)}?${query}`;
}

/**
 * RFC 6238 5.2 / ASVS 2.8.4: "a time-based OTP can be used only once within the validity period".
 * Before the plugin verifies a TOTP code, the time step the code belongs to is recorded in
 * `two_factors.last_totp_step` with a conditional update; a code from that step or an earlier one
 * (a replay, also one racing the first use) answers 401 TOTP_CODE_ALREADY_USED. A wrong code passes
 * through, so the plugin counts it towards the lockout.
 */
export function twoFactorRules(sql: Sql): BetterAuthPlugin {
  return {
    id: "two-factor-rules",
    hooks: {
      after: [
        {
          matcher: (context) => context.path === "/two-factor/enable" || context.path === "/two-factor/get-totp-uri",
          handler: createAuthMiddleware(async (ctx) => {
            const returned = ctx.context.returned as { totpURI?: unknown } | undefined;
            if (!returned || returned instanceof Response || typeof returned.totpURI !== "string") return;
            return ctx.json({ ...returned, totpURI: percentEncodedOtpauthUri(returned.totpURI) });
          }),
        },
      ],
      before: [
        {
          matcher: (context) => context.path === "/two-factor/verify-totp",
          handler: createAuthMiddleware(async (ctx) => {
            const code = (ctx.body as { code?: unknown } | undefined)?.code;
            if (typeof code !== "string" || !/^\d+$/.test(code)) return;
            const userId = await challengedUserId(ctx);
            if (!userId) return;
            const [row] = await sql<{ secret: string }[]>`select secret from two_factors where user_id = ${userId}`;
            if (!row) return;
            const secret = totpSecret(await symmetricDecrypt({ key: ctx.context.secretConfig, data: row.secret }));
            const now = Date.now();
            const delta = TOTP.validate({ token: code, secret, period: TOTP_PERIOD_SECONDS, digits: TOTP_DIGITS, timestamp: now, window: TOTP_WINDOW });
            if (delta === null) return;
            const step = Math.floor(now / 1000 / TOTP_PERIOD_SECONDS) + delta;
            const claimed = await sql`
              update two_factors set last_totp_step = ${step}
              where user_id = ${userId} and (last_totp_step is null or last_totp_step < ${step})
              returning id`;
            if (claimed.length === 0) {
              throw apiError("TOTP_CODE_ALREADY_USED");
            }
          }),
        },
      ],
    },
  };
}


/**
 * The user a TOTP code is for: the signed-in user, or the one half-way through a two-factor sign-in.
 * Read as the plugin reads it (verifyTwoFactor: the session row, never the cookie cache), so a cached
 * copy of a revoked session cannot point the guard at another user than the one the plugin verifies.
 */
async function challengedUserId(ctx: HookContext): Promise<string | null> {
  const session = await getSessionFromCtx(ctx, { disableCookieCache: true }).catch(() => null);
  if (session) return session.user.id;
  const cookie = ctx.context.createAuthCookie(TWO_FACTOR_COOKIE);
  const identifier = await ctx.getSignedCookie(cookie.name, ctx.context.secret);
  if (!identifier) return null;
  const challenge = await ctx.context.internalAdapter.findVerificationValue(identifier);
  return challenge?.value ?? null;
}
