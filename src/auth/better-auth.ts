// Better Auth, configured for this server: Postgres through postgres.js, the hand-written snake_case
// schema in sql/, argon2id passwords, profile fields, RS256 JWTs for APIs and bearer tokens.
import { betterAuth } from "better-auth";
import { createAuthMiddleware, getSessionFromCtx, isAPIError } from "better-auth/api";
import { apiError } from "../errors.ts";
import { symmetricDecrypt, symmetricEncrypt } from "better-auth/crypto";
import { bearer, generateExportedKeyPair, jwt, openAPI } from "better-auth/plugins";
import type { JwtOptions } from "better-auth/plugins";
import type { SecondaryStorage } from "better-auth";
import { auditTrail, createAuditRecorder } from "../security/audit.ts";
import { CLIENT_IP_HEADER } from "../ops/client-ip.ts";
import type { Config } from "../config.ts";
import type { Sql } from "../db/pool.ts";
import { emailFlows } from "../mail/flows.ts";
import type { TransactionSql } from "postgres";
import { PostgresDialect } from "../db/kysely-dialect.ts";
import { accountLockout, logOnlyNotifier, mailingNotifier, type LockoutNotifier } from "../security/lockout.ts";
import type { Logger } from "../ops/log.ts";
import { authObserver, countLockouts } from "./observer.ts";
import type { Metrics } from "../ops/metrics.ts";
import { createMailer, type Mailer } from "../mail/mailer.ts";
import { memberRole } from "./plugins/organization.ts";
import { DEFAULT_PLATFORM_ROLE } from "./plugins/admin.ts";
import { createPasswordHasher, DEFAULT_HASHES_IN_FLIGHT, HashQueueFull } from "./password.ts";
import { platformPlugins } from "./plugins/index.ts";
import type { SendMail } from "../mail/send-mail.ts";
import { PROFILE_FIELDS, profileFields, roleOtherProblem } from "./profile.ts";
import { sessionHandles } from "../session/handles.ts";
import { createPostgresRateLimitStore, rateLimitOptions, type RateLimitStore } from "../security/rate-limit.ts";
import { betterAuthSecretOptions } from "../security/secrets.ts";
import { accountLinking, socialProviders } from "./plugins/social.ts";
import { noteRequestFailure } from "../db/request-failures.ts";

export interface AuthDependencies {
  config: Config & { secret: string };
  sql: Sql;
  logger: Logger;
  /** Delivers two-factor codes and organization invitations; without it, neither is emailed. */
  sendMail?: SendMail | undefined;
  /** Session counters; absent in tools that run Better Auth without serving (drift check, cleanup). */
  metrics?: Metrics;
  /** Redis (REDIS_URL, src/session/redis-storage.ts): sessions are kept there as well as in Postgres. */
  secondaryStorage?: SecondaryStorage;
  /** Sends the account mails; by default one built from `config.mail`. */
  mailer?: Mailer;
  /** Where rate-limit counters live; default the Postgres `rate_limits` table (src/security/rate-limit.ts). */
  rateLimitStore?: RateLimitStore;
  /** Tells an account's owner it was locked; default: a log line. */
  notifyLockout?: LockoutNotifier;
}

// Column names of the shared schema (sql/0001_core_schema.sql); the API stays camelCase.
const timestamps = { createdAt: "created_at", updatedAt: "updated_at" } as const;
export const schemaMapping = {
  user: { modelName: "users", fields: { emailVerified: "email_verified", ...timestamps } },
  session: {
    modelName: "sessions",
    fields: { userId: "user_id", expiresAt: "expires_at", ipAddress: "ip_address", userAgent: "user_agent", ...timestamps },
  },
  account: {
    modelName: "accounts",
    fields: {
      accountId: "account_id",
      providerId: "provider_id",
      userId: "user_id",
      accessToken: "access_token",
      refreshToken: "refresh_token",
      idToken: "id_token",
      accessTokenExpiresAt: "access_token_expires_at",
      refreshTokenExpiresAt: "refresh_token_expires_at",
      ...timestamps,
    },
  },
  verification: { modelName: "verifications", fields: { expiresAt: "expires_at", ...timestamps } },
  jwks: {
    modelName: "jwks",
    fields: { publicKey: "public_key", privateKey: "private_key", createdAt: "created_at", expiresAt: "expires_at" },
  },
} as const;

/** How long a retired signing key stays in the JWKS (`bun run keys:rotate`, src/security/signing-keys.ts). */
export const JWKS_GRACE_PERIOD_S = 30 * 86400;

/** `sql` answers the member role claim; without it (key generation only) no claims are built. */
export function jwtOptions(config: Config, sql?: Sql): JwtOptions {
  return {
    jwks: { keyPairConfig: { alg: "RS256", modulusLength: 2048 }, gracePeriod: JWKS_GRACE_PERIOD_S },
    jwt: {
      // RFC 7519 4.1.1 / 4.1.3: the issuer is this server; the audience is the APIs that accept it.
      issuer: config.baseUrl,
      audience: config.jwtAudience,
      expirationTime: `${config.jwtExpiresInSeconds}s`,
      // A trimmed payload: identity and profile, never the whole user row.
      definePayload: async ({ user, session }) => {
        const activeOrganizationId = (session.activeOrganizationId as string | null | undefined) ?? null;
        return {
          email: user.email,
          name: user.name,
          emailVerified: user.emailVerified,
          ...Object.fromEntries(PROFILE_FIELDS.map((field) => [field, user[field] ?? null])),
          sid: session.id,
          // Authorisation without a call back (docs/schema.md): the platform role, the active
          // organization and the user's role in it, and the admin behind an impersonation.
          role: (user.role as string | null | undefined) ?? null,
          activeOrganizationId,
          activeOrganizationRole: activeOrganizationId && sql ? await memberRole(sql, user.id, activeOrganizationId) : null,
          impersonatedBy: (session.impersonatedBy as string | null | undefined) ?? null,
        };
      },
    },
    // Clients fetch GET /api/auth/token; signing a JWT on every get-session costs an RSA signature.
    disableSettingJwtHeader: true,
    schema: { jwks: schemaMapping.jwks },
  };
}

/** Mail when a relay is configured (and the console transport outside production), else a log line. */
function lockoutNotifier(config: Config, mailer: Mailer, logger: Logger): LockoutNotifier {
  return mailer.transport === "smtp" || config.nodeEnv !== "production" ? mailingNotifier(mailer) : logOnlyNotifier(logger);
}

export function createAuth({ config, sql, logger, metrics, secondaryStorage, rateLimitStore, notifyLockout, sendMail, mailer = createMailer(config, logger) }: AuthDependencies) {
  // The mail flows need the instance they belong to; they reach it only once requests arrive.
  const flows = emailFlows({
    config,
    mailer,
    sql,
    logger,
    auth: {
      hasSession: async (headers) => (await auth.api.getSession({ headers })) !== null,
      deleteVerification: async (identifier) => (await auth.$context).internalAdapter.deleteVerificationByIdentifier(identifier),
    },
    defaultRole: DEFAULT_PLATFORM_ROLE,
  });
  const recordEvent = createAuditRecorder(sql, logger);
  const auth = betterAuth({
    appName: "auth-server",
    baseURL: config.baseUrl,
    basePath: "/api/auth",
    ...betterAuthSecretOptions(config),
    database: { dialect: new PostgresDialect({ postgres: sql }), type: "postgres", transaction: true },
    trustedOrigins: config.corsOrigins,
    telemetry: { enabled: false },
    // With Redis, sessions stay in Postgres as well (storeSessionInDatabase below: the Python side reads
    // them there, and an evicted key must not sign anyone out), and so do verifications.
    ...(secondaryStorage ? { secondaryStorage } : {}),
    logger: {
      level: config.logLevel,
      log: (level, message, ...details) => {
        details.forEach(noteRequestFailure); // e.g. a unique violation a plugin logged before its own 500
        logger[level](`[better-auth] ${message}`, ...details);
      },
    },
    // Errors raised outside an endpoint (its middlewares, e.g. the origin check refusing a cookie-bearing
    // request) Better Auth prints as ERROR through its own console logger, bypassing `logger` below.
    // Client errors become debug lines here; server errors stay errors. The answer is unchanged: Better
    // Auth still turns the error into its response after this hook (better-call's router).
    onAPIError: {
      onError: (error) => {
        noteRequestFailure(error); // a lost database answers 503, a unique violation 409 (src/db/request-failures.ts)
        // A full hash queue is load, not a fault: its 503s show in http_requests_total, not as an error line each.
        if (isAPIError(error) && (error.statusCode < 500 || error instanceof HashQueueFull)) {
          logger.debug(`[better-auth] ${error.statusCode} ${String(error.body?.code ?? error.status)}: ${error.message}`);
        } else {
          logger.error("[better-auth] request failed", error);
        }
      },
    },
    emailAndPassword: {
      enabled: true,
      autoSignIn: true,
      // NIST SP 800-63B 5.1.1.2: at least 8 characters; ASVS 2.1.2: at least 64 permitted. Better
      // Auth checks both bounds before any hashing.
      minPasswordLength: config.passwordMinLength,
      maxPasswordLength: config.passwordMaxLength,
      password: createPasswordHasher(sql, logger, { inFlight: DEFAULT_HASHES_IN_FLIGHT, queue: config.passwordHashQueue }),
      ...flows.emailAndPassword,
    },
    emailVerification: flows.emailVerification,
    session: {
      ...schemaMapping.session,
      expiresIn: config.sessionExpiresInSeconds,
      updateAge: config.sessionUpdateAgeSeconds,
      ...(secondaryStorage ? { storeSessionInDatabase: true } : {}),
      // A signed copy of the session in a cookie answers get-session without a lookup for this long,
      // while the change notices vouch for it (src/session/change-notices.ts, docs/sessions.md "Revocation and cached copies").
      ...(config.sessionCookieCacheSeconds ? { cookieCache: { enabled: true, maxAge: config.sessionCookieCacheSeconds, strategy: "compact" as const } } : {}),
    },
    user: { ...schemaMapping.user, additionalFields: profileFields, ...flows.user },
    account: { ...schemaMapping.account, accountLinking: accountLinking(config) },
    socialProviders: socialProviders(config),
    // storeInDatabase matters only with Redis: one-time tokens must survive it (and Better Auth's
    // reserveVerificationValue refuses Redis-only verifications).
    verification: { ...schemaMapping.verification, storeInDatabase: true, ...flows.verification },
    rateLimit: rateLimitOptions(config, rateLimitStore ?? createPostgresRateLimitStore(sql)),
    advanced: {
      ipAddress: { ipAddressHeaders: [CLIENT_IP_HEADER] },
      // Better Auth skips its Origin/CSRF checks whenever NODE_ENV=test; this server keeps them on in
      // every environment (ASVS 4.2.2, 13.2.3), so what the tests prove is what production runs.
      disableOriginCheck: false,
      disableCSRFCheck: false,
      // A sign-in's user and accounts (and a session's user) in one joined query instead of one each.
      database: { joins: true },
    },
    hooks: {
      before: createAuthMiddleware(async (ctx) => {
        await flows.hooks.before(ctx);
        if (ctx.path !== "/sign-up/email" && ctx.path !== "/update-user") return;
        const body = (ctx.body ?? {}) as Record<string, unknown>;
        // Leaving "other" clears the free-text role, so a stale one never reaches a JWT.
        // (Set on the body itself: a hook's returned context is merged with defu, which drops nulls.)
        if (ctx.path === "/update-user" && body.professionalRole !== undefined && body.professionalRole !== "other" && !("roleOther" in body)) {
          body.roleOther = null;
          return;
        }
        if (body.roleOther === undefined || body.roleOther === null || body.roleOther === "") return;
        let role = body.professionalRole;
        if (role === undefined && ctx.path === "/update-user") {
          const current = await getSessionFromCtx(ctx);
          role = (current?.user as Record<string, unknown> | undefined)?.professionalRole;
        }
        const problem = roleOtherProblem(role, body.roleOther);
        if (problem) throw apiError("VALIDATION_ERROR", problem);
      }),
      after: flows.hooks.after,
    },
    plugins: [
      // Only the signed value (set-auth-token) is a bearer token; the bare token is refused, so a
      // session's token seen anywhere is not on its own a credential (docs/schema.md).
      bearer({ requireSignature: true }),
      // list-sessions answers handles, not tokens; revoke-session maps them back (src/session/handles.ts).
      sessionHandles(sql),
      jwt(jwtOptions(config, sql)),
      // openAPI: the app serves the reference page itself (src/http/reference.ts), with its own routes in it.
      openAPI({ disableDefaultReference: true }),
      authObserver(metrics),
      accountLockout({ sql, policy: config.lockout, record: recordEvent, notify: countLockouts(metrics, notifyLockout ?? lockoutNotifier(config, mailer, logger)), logger }),
      ...flows.plugins,
      ...platformPlugins({ config, sql, logger, sendMail }),
      // Last, so its after hooks see what the others made of a request: the two-factor plugin clears
      // newSession when a password sign-in still needs a second factor (no session is granted yet).
      auditTrail(recordEvent, sql),
    ],
  });
  return auth;
}

export type Auth = ReturnType<typeof createAuth>;

export class SigningKeyError extends Error {
  override name = "SigningKeyError";
}

/** The advisory lock every writer of `jwks` holds: the first key at start-up and a rotation. */
export const SIGNING_KEY_LOCK = "auth-server:jwks";

/**
 * Creates the first JWT signing key at start-up, under a transaction-scoped advisory lock, so
 * instances starting together agree on one key instead of each minting its own on first use.
 */
export async function ensureSigningKey(auth: Auth, sql: Sql, config: Config): Promise<"created" | "present"> {
  const context = await auth.$context;
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext(${SIGNING_KEY_LOCK}))`;
    const [latest] = await tx<{ private_key: string }[]>`
      select private_key from jwks where expires_at is null or expires_at > now() order by created_at desc limit 1`;
    if (latest) {
      // A key this secret cannot decrypt would make every /token answer fail; say so at start-up.
      const readable = await symmetricDecrypt({ key: context.secretConfig, data: JSON.parse(latest.private_key) }).then(
        () => true,
        () => false,
      );
      if (!readable) {
        throw new SigningKeyError(
          "the JWT signing keys in the jwks table were encrypted with another BETTER_AUTH_SECRET; restore that secret (or delete the jwks rows to mint new keys, which invalidates issued JWTs)",
        );
      }
      return "present" as const;
    }
    await insertSigningKey(auth, tx, config);
    return "created" as const;
  });
}

/** A new key pair in `jwks`, its private key encrypted with the current secret; the new key's id. */
export async function insertSigningKey(auth: Auth, tx: Sql | TransactionSql, config: Config): Promise<string> {
  const context = await auth.$context;
  const { publicWebKey, privateWebKey, alg } = await generateExportedKeyPair(jwtOptions(config));
  const privateKey = await symmetricEncrypt({ key: context.secretConfig, data: JSON.stringify(privateWebKey) });
  const id = context.generateId({ model: "jwks" }) || crypto.randomUUID();
  await tx`
    insert into jwks (id, public_key, private_key, alg, created_at)
    values (${id}, ${JSON.stringify(publicWebKey)}, ${JSON.stringify(privateKey)}, ${alg}, now())`;
  return id;
}
