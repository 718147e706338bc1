// The one place that reads the environment: every setting is parsed and validated here and handed
// to the rest of the server as a typed, frozen object.

export type NodeEnv = "development" | "production" | "test";
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "json" | "pretty";

export interface Config {
  nodeEnv: NodeEnv;
  port: number;
  host: string;
  /** undefined: run on the embedded database (development and test only). */
  databaseUrl: string | undefined;
  databasePoolMax: number;
  /** undefined in development until `ensureSecret` generates or loads one. */
  secret: string | undefined;
  /** BETTER_AUTH_SECRETS, the versioned keyring (src/security/secrets.ts); the first entry is current. */
  secrets: VersionedSecret[] | undefined;
  baseUrl: string;
  corsOrigins: string[];
  trustProxy: boolean;
  rateLimit: boolean;
  rateLimitRules: RateLimitRules;
  /** redis:// or rediss:// URL: sessions are also kept there (Better Auth's secondary storage, next to
   * Postgres) and the rate-limit counters live there instead of Postgres; undefined: Postgres only. */
  redisUrl: string | undefined;
  /** Where the change listener connects (src/session/change-notices.ts): DATABASE_LISTEN_URL, else DATABASE_URL.
   * LISTEN needs a session of its own, which a transaction pooler (PgBouncer, Neon's -pooler host) does not keep. */
  databaseListenUrl: string | undefined;
  lockout: LockoutPolicy;
  auditRetentionSeconds: number;
  migrateOnStart: boolean;
  jwtExpiresInSeconds: number;
  jwtAudience: string;
  sessionExpiresInSeconds: number;
  sessionUpdateAgeSeconds: number;
  passwordMinLength: number;
  passwordMaxLength: number;
  /** Password hashes that may wait for a hashing slot; one more answers 503 SERVER_BUSY (src/auth/password.ts). */
  passwordHashQueue: number;
  shutdownTimeoutMs: number;
  logLevel: LogLevel;
  /** json: one JSON object per line (production default); pretty: readable lines for development. */
  logFormat: LogFormat;
  /** Bearer token that GET /metrics requires; false (METRICS_TOKEN=off): no /metrics; undefined: open (never in production). */
  metricsToken: string | false | undefined;
  /** Seconds between housekeeping runs; 0: no periodic run (`bun run cleanup` still works). */
  housekeepingIntervalSeconds: number;
  /** Lifetime of the signed session cookie cache in seconds; 0: off. */
  sessionCookieCacheSeconds: number;
  dataDir: string;
  embeddedDatabasePort: number;
  /** Two-factor, organizations, admin, social and OpenID sign-in, passkeys (src/auth/plugins/index.ts). */
  plugins: PluginConfig;
  mail: MailConfig;
}

/** The account flows that send mail (src/mail/flows.ts), each one switchable by EMAIL_FLOWS. */
export const EMAIL_FLOWS = ["verification", "password-reset", "magic-link", "change-email", "delete-account"] as const;
export type EmailFlow = (typeof EMAIL_FLOWS)[number];

export interface MailConfig {
  /** smtp:// or smtps:// relay; undefined: the development console transport (never in production). */
  smtpUrl: string | undefined;
  from: string;
  /** Signs every mail and names the product in subjects. */
  productName: string;
  /** Longest a request waits for the relay; a queued send is abandoned after the same bound. */
  sendTimeoutMs: number;
  flows: ReadonlySet<EmailFlow>;
  requireEmailVerification: boolean;
  autoSignInAfterVerification: boolean;
  magicLinkSignUp: boolean;
  /** Where emailed links return when the request named no callback URL (the site). */
  appUrl: string;
  verificationExpiresInSeconds: number;
  passwordResetExpiresInSeconds: number;
  magicLinkExpiresInSeconds: number;
  deleteAccountExpiresInSeconds: number;
}

export interface VersionedSecret {
  version: number;
  value: string;
}

export interface RateLimitRule {
  max: number;
  windowSeconds: number;
}

export interface RateLimitRules {
  signIn: RateLimitRule;
  signUp: RateLimitRule;
  /** Requests that send a mail: password reset, verification, magic link. */
  mail: RateLimitRule;
  /** Every other limited endpoint. */
  other: RateLimitRule;
}

export interface LockoutPolicy {
  /** Failed sign-ins within `windowSeconds` that lock an account. */
  maxFailures: number;
  windowSeconds: number;
  durationSeconds: number;
}

export interface OAuthClientConfig {
  clientId: string;
  clientSecret: string;
}

export interface OidcConfig extends OAuthClientConfig {
  /** The provider id in URLs: /api/auth/callback/{providerId}, signIn.social({ provider }). */
  providerId: string;
  /** The provider's OpenID discovery document (.../.well-known/openid-configuration). */
  discoveryUrl: string;
  scopes: string[];
}

export interface PluginConfig {
  /** The issuer shown in authenticator apps next to the account. */
  twoFactorIssuer: string;
  /** How many organizations one user may belong to and still create another. */
  organizationLimit: number;
  /** The site's page that accepts an organization invitation; `{id}` is the invitation id. */
  invitationUrl: string;
  /** Verified addresses promoted to the platform role "admin" when they sign in. */
  adminEmails: string[];
  github: OAuthClientConfig | undefined;
  google: OAuthClientConfig | undefined;
  oidc: OidcConfig | undefined;
  /** Providers whose verified emails link to an existing user with that (verified) email. */
  trustedProviders: string[];
  passkey: { rpId: string; rpName: string; origins: string[] };
}

export class ConfigError extends Error {
  override name = "ConfigError";

  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
  }
}

/** The value shipped in `.env.example`; refused in production like any known example secret. */
export const EXAMPLE_SECRET = "change-me-to-a-random-string-of-at-least-32-characters";
const EXAMPLE_SECRET_PATTERN = /change[-_ ]?me|example|your[-_ ]?secret|^(secret|password)$/i;
// ASVS 2.10.4 / 6.2.x: the signing and encryption secret is random and long enough not to be guessed.
export const MIN_SECRET_LENGTH = 32;

type Env = Record<string, string | undefined>;

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** "900", "900s", "15m", "1h", "7d", "2w" -> seconds. */
export function parseDuration(variable: string, raw: string): number {
  const match = /^(\d+)\s*(s|m|h|d|w)?$/i.exec(raw.trim());
  if (!match) throw new ConfigError(variable, `"${raw}" is not a duration (use e.g. 900, 15m, 1h, 7d)`);
  const seconds = Number(match[1]) * UNIT_SECONDS[(match[2] ?? "s").toLowerCase()]!;
  if (seconds <= 0) throw new ConfigError(variable, "must be greater than zero");
  return seconds;
}

function parseBoolean(variable: string, raw: string): boolean {
  const value = raw.trim().toLowerCase();
  if (["1", "true", "on", "yes"].includes(value)) return true;
  if (["0", "false", "off", "no"].includes(value)) return false;
  throw new ConfigError(variable, `"${raw}" is not on/off (use on, off, true, false, 1 or 0)`);
}

function parseInteger(variable: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(variable, `"${raw}" is not a whole number`);
  const value = Number(raw);
  if (value < min || value > max) throw new ConfigError(variable, `must be between ${min} and ${max}`);
  return value;
}

function parseUrl(variable: string, raw: string, protocols: string[]): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(variable, `"${raw}" is not a URL`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(variable, `must start with ${protocols.map((p) => `${p}//`).join(" or ")}`);
  }
  return url;
}

/** "5/1m", "100/60s", "3/60" -> at most 5 requests per minute. */
function parseRateLimitRule(variable: string, raw: string): RateLimitRule {
  const match = /^(\d+)\s*\/\s*(.+)$/.exec(raw.trim());
  if (!match) throw new ConfigError(variable, `"${raw}" is not a limit (use requests/duration, e.g. 5/1m)`);
  return { max: parseInteger(variable, match[1]!, 1, 1_000_000), windowSeconds: parseDuration(variable, match[2]!) };
}

/** "2:new-secret,1:old-secret": versioned secrets, current first (Better Auth's format). */
function parseSecrets(variable: string, raw: string): VersionedSecret[] {
  const seen = new Set<number>();
  return raw.split(",").map((entry, index) => {
    const colon = entry.indexOf(":");
    const version = entry.slice(0, colon).trim();
    const value = entry.slice(colon + 1).trim();
    if (colon < 0 || !/^\d+$/.test(version)) {
      throw new ConfigError(variable, `entry ${index + 1} is not "<version>:<secret>" with a whole-number version`);
    }
    // ASVS 2.10.4 / 6.2.x, as for BETTER_AUTH_SECRET, for every version that still signs or decrypts.
    if (value.length < MIN_SECRET_LENGTH) throw new ConfigError(variable, `the secret of version ${version} is shorter than ${MIN_SECRET_LENGTH} characters`);
    if (value === EXAMPLE_SECRET || EXAMPLE_SECRET_PATTERN.test(value)) {
      throw new ConfigError(variable, `the secret of version ${version} is an example value; generate a random one (openssl rand -base64 48)`);
    }
    if (seen.has(Number(version))) throw new ConfigError(variable, `version ${version} appears twice; versions must be unique`);
    seen.add(Number(version));
    return { version: Number(version), value };
  });
}

function parseOrigins(variable: string, raw: string): string[] {
  const origins = raw
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);
  return origins.map((origin) => {
    const url = parseUrl(variable, origin, ["http:", "https:"]);
    if (url.origin !== origin.replace(/\/$/, "")) {
      throw new ConfigError(variable, `"${origin}" must be an origin only (scheme://host[:port]), no path`);
    }
    return url.origin;
  });
}

export function loadConfig(env: Env = process.env): Config {
  const read = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  };
  const with_ = <T>(name: string, fallback: T, parse: (raw: string) => T): T => {
    const raw = read(name);
    return raw === undefined ? fallback : parse(raw);
  };

  const nodeEnv = with_<NodeEnv>("NODE_ENV", "development", (raw) => {
    if (raw === "development" || raw === "production" || raw === "test") return raw;
    throw new ConfigError("NODE_ENV", `"${raw}" is not one of development, production, test`);
  });
  const production = nodeEnv === "production";

  const port = with_("PORT", 3001, (raw) => parseInteger("PORT", raw, 0, 65535));
  const host = read("HOST") ?? (production ? "0.0.0.0" : "127.0.0.1");
  const databaseUrl = with_<string | undefined>("DATABASE_URL", undefined, (raw) => {
    parseUrl("DATABASE_URL", raw, ["postgres:", "postgresql:"]);
    return raw;
  });
  if (production && !databaseUrl) {
    throw new ConfigError("DATABASE_URL", "is required in production (the embedded database is for development only)");
  }

  const baseUrl = with_("BETTER_AUTH_URL", `http://localhost:${port || 3001}`, (raw) => {
    const url = parseUrl("BETTER_AUTH_URL", raw, ["http:", "https:"]);
    if (url.pathname !== "/" || url.search || url.hash) {
      throw new ConfigError("BETTER_AUTH_URL", "must be the server's origin without a path (the auth API lives under /api/auth)");
    }
    return url.origin;
  });
  if (production && !baseUrl.startsWith("https://")) {
    throw new ConfigError("BETTER_AUTH_URL", "must be an https:// URL in production (ASVS 9.1.1: cookies and tokens only over TLS)");
  }

  const corsOrigins = with_("CORS_ORIGINS", production ? [] : ["http://localhost:3000"], (raw) =>
    parseOrigins("CORS_ORIGINS", raw),
  );
  // ASVS 14.3.x / OWASP: operational data (request counts, users signed in, memory) is not for the public.
  if (production && read("METRICS_TOKEN") === undefined) {
    throw new ConfigError("METRICS_TOKEN", "is required in production: a bearer token of 16+ characters that GET /metrics will require (openssl rand -hex 24), or off to serve no /metrics");
  }
  if (production && corsOrigins.length === 0) {
    throw new ConfigError("CORS_ORIGINS", "must list the browser origins allowed to call the server in production");
  }

  // Better Auth would read BETTER_AUTH_SECRETS itself, unchecked; it is parsed and checked here and
  // passed on explicitly (src/auth/better-auth.ts), with BETTER_AUTH_SECRET as the pre-rotation secret.
  const secrets = with_<VersionedSecret[] | undefined>("BETTER_AUTH_SECRETS", undefined, (raw) => parseSecrets("BETTER_AUTH_SECRETS", raw));
  const secret = read("BETTER_AUTH_SECRET");
  if (production && (secret !== undefined || !secrets)) {
    if (!secret) throw new ConfigError("BETTER_AUTH_SECRET", "is required in production (generate one: openssl rand -base64 48)");
    if (secret.length < MIN_SECRET_LENGTH) {
      throw new ConfigError("BETTER_AUTH_SECRET", `is too short: at least ${MIN_SECRET_LENGTH} characters in production`);
    }
    if (secret === EXAMPLE_SECRET || EXAMPLE_SECRET_PATTERN.test(secret)) {
      throw new ConfigError("BETTER_AUTH_SECRET", "is an example value; generate a random one (openssl rand -base64 48)");
    }
  }

  const passwordMinLength = with_("PASSWORD_MIN_LENGTH", 8, (raw) => parseInteger("PASSWORD_MIN_LENGTH", raw, 1, 1024));
  // ASVS 2.1.2: permit at least 64 characters; the upper bound keeps hashing cost in check.
  const passwordMaxLength = with_("PASSWORD_MAX_LENGTH", 128, (raw) => parseInteger("PASSWORD_MAX_LENGTH", raw, 64, 4096));
  if (passwordMinLength > passwordMaxLength) {
    throw new ConfigError("PASSWORD_MIN_LENGTH", "must not be greater than PASSWORD_MAX_LENGTH");
  }

  const jwtExpiresInSeconds = with_("JWT_EXPIRES_IN", 15 * 60, (raw) => parseDuration("JWT_EXPIRES_IN", raw));
  const sessionExpiresInSeconds = with_("SESSION_EXPIRES_IN", 7 * 86400, (raw) => parseDuration("SESSION_EXPIRES_IN", raw));
  const sessionUpdateAgeSeconds = with_("SESSION_UPDATE_AGE", 86400, (raw) => parseDuration("SESSION_UPDATE_AGE", raw));
  if (sessionUpdateAgeSeconds > sessionExpiresInSeconds) {
    throw new ConfigError("SESSION_UPDATE_AGE", "must not be longer than SESSION_EXPIRES_IN");
  }

  const rule = (name: string, fallback: RateLimitRule) => with_(name, fallback, (raw) => parseRateLimitRule(name, raw));
  const minute = 60;

  return Object.freeze({
    nodeEnv,
    port,
    host,
    databaseUrl,
    databaseListenUrl: with_<string | undefined>("DATABASE_LISTEN_URL", databaseUrl, (raw) => {
      parseUrl("DATABASE_LISTEN_URL", raw, ["postgres:", "postgresql:"]);
      return raw;
    }),
    databasePoolMax: with_("DATABASE_POOL_MAX", 10, (raw) => parseInteger("DATABASE_POOL_MAX", raw, 1, 1000)),
    secret,
    secrets,
    baseUrl,
    corsOrigins,
    trustProxy: with_("TRUST_PROXY", false, (raw) => parseBoolean("TRUST_PROXY", raw)),
    rateLimit: with_("RATE_LIMIT", true, (raw) => parseBoolean("RATE_LIMIT", raw)),
    rateLimitRules: {
      signIn: rule("RATE_LIMIT_SIGN_IN", { max: 5, windowSeconds: minute }),
      signUp: rule("RATE_LIMIT_SIGN_UP", { max: 5, windowSeconds: minute }),
      mail: rule("RATE_LIMIT_MAIL", { max: 3, windowSeconds: minute }),
      other: rule("RATE_LIMIT_OTHER", { max: 100, windowSeconds: minute }),
    },
    redisUrl: with_<string | undefined>("REDIS_URL", undefined, (raw) => {
      parseUrl("REDIS_URL", raw, ["redis:", "rediss:"]);
      return raw;
    }),
    lockout: {
      maxFailures: with_("LOCKOUT_MAX_FAILURES", 10, (raw) => parseInteger("LOCKOUT_MAX_FAILURES", raw, 1, 1000)),
      windowSeconds: with_("LOCKOUT_WINDOW", 15 * minute, (raw) => parseDuration("LOCKOUT_WINDOW", raw)),
      durationSeconds: with_("LOCKOUT_DURATION", 15 * minute, (raw) => parseDuration("LOCKOUT_DURATION", raw)),
    },
    auditRetentionSeconds: with_("AUDIT_RETENTION", 90 * 86400, (raw) => parseDuration("AUDIT_RETENTION", raw)),
    migrateOnStart: with_("MIGRATE_ON_START", true, (raw) => parseBoolean("MIGRATE_ON_START", raw)),
    jwtExpiresInSeconds,
    jwtAudience: with_("JWT_AUDIENCE", baseUrl, (raw) => raw),
    sessionExpiresInSeconds,
    sessionUpdateAgeSeconds,
    passwordMinLength,
    passwordMaxLength,
    passwordHashQueue: with_("PASSWORD_HASH_QUEUE", 128, (raw) => parseInteger("PASSWORD_HASH_QUEUE", raw, 0, 100_000)),
    shutdownTimeoutMs: with_("SHUTDOWN_TIMEOUT", 10_000, (raw) => parseDuration("SHUTDOWN_TIMEOUT", raw) * 1000),
    logLevel: with_<LogLevel>("LOG_LEVEL", production ? "info" : "debug", (raw) => {
      const value = raw.toLowerCase();
      if (value === "debug" || value === "info" || value === "warn" || value === "error") return value;
      throw new ConfigError("LOG_LEVEL", `"${raw}" is not one of debug, info, warn, error`);
    }),
    logFormat: with_<LogFormat>("LOG_FORMAT", production ? "json" : "pretty", (raw) => {
      const value = raw.toLowerCase();
      if (value === "json" || value === "pretty") return value;
      throw new ConfigError("LOG_FORMAT", `"${raw}" is not one of json, pretty`);
    }),
    metricsToken: with_<string | false | undefined>("METRICS_TOKEN", undefined, (raw) => {
      if (raw.toLowerCase() === "off") return false;
      // ASVS 2.10.4: a service credential is long enough not to be guessed.
      if (raw.length < 16) throw new ConfigError("METRICS_TOKEN", "must be at least 16 characters (openssl rand -hex 24), or off");
      return raw;
    }),
    housekeepingIntervalSeconds: with_("HOUSEKEEPING_INTERVAL", 3600, (raw) =>
      /^\s*(0|off)\s*$/i.test(raw) ? 0 : parseDuration("HOUSEKEEPING_INTERVAL", raw),
    ),
    sessionCookieCacheSeconds: with_("SESSION_COOKIE_CACHE", 300, (raw) =>
      /^\s*(0|off)\s*$/i.test(raw) ? 0 : parseDuration("SESSION_COOKIE_CACHE", raw),
    ),
    dataDir: read("DATA_DIR") ?? ".data",
    embeddedDatabasePort: with_("EMBEDDED_DB_PORT", 5433, (raw) => parseInteger("EMBEDDED_DB_PORT", raw, 0, 65535)),
    plugins: loadPluginConfig(read, baseUrl, corsOrigins),
    mail: loadMailConfig(with_, { production, baseUrl, corsOrigins }),
  });
}

type Reader = <T>(name: string, fallback: T, parse: (raw: string) => T) => T;

function loadMailConfig(with_: Reader, server: { production: boolean; baseUrl: string; corsOrigins: string[] }): MailConfig {
  const smtpUrl = with_<string | undefined>("SMTP_URL", undefined, (raw) => {
    const url = parseUrl("SMTP_URL", raw, ["smtp:", "smtps:"]);
    if (!url.hostname) throw new ConfigError("SMTP_URL", "names no host (e.g. smtps://user:pass@smtp.example.com:465)");
    return raw;
  });
  const flows = with_<ReadonlySet<EmailFlow>>("EMAIL_FLOWS", new Set(EMAIL_FLOWS), (raw) => {
    const names = raw.split(",").map((name) => name.trim().toLowerCase()).filter(Boolean);
    if (names.length === 1 && names[0] === "none") return new Set();
    for (const name of names) {
      if (!(EMAIL_FLOWS as readonly string[]).includes(name)) {
        throw new ConfigError("EMAIL_FLOWS", `"${name}" is not one of ${EMAIL_FLOWS.join(", ")} (or "none")`);
      }
    }
    return new Set(names as EmailFlow[]);
  });
  if (server.production && flows.size > 0 && !smtpUrl) {
    throw new ConfigError(
      "SMTP_URL",
      `is required in production while email flows are on (${[...flows].join(", ")}): set an smtp:// or smtps:// relay, or EMAIL_FLOWS=none`,
    );
  }
  const from = with_("MAIL_FROM", undefined as string | undefined, (raw) => {
    if (!/^[^<>@\s]+@[^<>@\s]+$|<[^<>@\s]+@[^<>@\s]+>$/.test(raw)) {
      throw new ConfigError("MAIL_FROM", `"${raw}" is not an address (e.g. no-reply@example.com or "Learn <no-reply@example.com>")`);
    }
    return raw;
  });
  if (server.production && smtpUrl && !from) {
    throw new ConfigError("MAIL_FROM", "is required in production with SMTP_URL (the sender address the relay accepts)");
  }
  const requireEmailVerification = with_("REQUIRE_EMAIL_VERIFICATION", false, (raw) => parseBoolean("REQUIRE_EMAIL_VERIFICATION", raw));
  if (requireEmailVerification && !flows.has("verification")) {
    throw new ConfigError("REQUIRE_EMAIL_VERIFICATION", "needs the verification flow in EMAIL_FLOWS");
  }
  const duration = (name: string, fallback: number) => with_(name, fallback, (raw) => parseDuration(name, raw));
  return Object.freeze({
    smtpUrl,
    from: from ?? `auth-server <no-reply@${new URL(server.baseUrl).hostname}>`,
    productName: with_("APP_NAME", "auth-server", (raw) => raw),
    sendTimeoutMs: duration("MAIL_SEND_TIMEOUT", 10) * 1000,
    flows,
    requireEmailVerification,
    autoSignInAfterVerification: with_("EMAIL_VERIFICATION_AUTO_SIGN_IN", true, (raw) => parseBoolean("EMAIL_VERIFICATION_AUTO_SIGN_IN", raw)),
    magicLinkSignUp: with_("MAGIC_LINK_SIGN_UP", false, (raw) => parseBoolean("MAGIC_LINK_SIGN_UP", raw)),
    appUrl: with_("APP_URL", server.corsOrigins[0] ?? server.baseUrl, (raw) => {
      const url = parseUrl("APP_URL", raw, ["http:", "https:"]);
      // Better Auth redirects only to trusted origins; a link returning elsewhere would always fail.
      if (url.origin !== server.baseUrl && !server.corsOrigins.includes(url.origin)) {
        throw new ConfigError("APP_URL", `must be on one of the CORS_ORIGINS (${server.corsOrigins.join(", ") || "none set"})`);
      }
      return url.href.replace(/\/$/, "");
    }),
    // ASVS 2.5.x / 2.7.x: links are short-lived; the defaults follow the issue (1 hour, magic link 10 minutes).
    verificationExpiresInSeconds: duration("EMAIL_VERIFICATION_EXPIRES_IN", 3600),
    passwordResetExpiresInSeconds: duration("PASSWORD_RESET_EXPIRES_IN", 3600),
    magicLinkExpiresInSeconds: duration("MAGIC_LINK_EXPIRES_IN", 600),
    deleteAccountExpiresInSeconds: duration("DELETE_ACCOUNT_EXPIRES_IN", 3600),
  });
}

const PROVIDER_ID = /^[a-z0-9][a-z0-9_-]{0,62}$/;

function loadPluginConfig(read: (name: string) => string | undefined, baseUrl: string, corsOrigins: string[]): PluginConfig {
  const list = (name: string) => (read(name) ?? "").split(",").map((item) => item.trim()).filter(Boolean);
  /** Both halves of an OAuth client, or neither. */
  const client = (prefix: string): OAuthClientConfig | undefined => {
    const clientId = read(`${prefix}_CLIENT_ID`);
    const clientSecret = read(`${prefix}_CLIENT_SECRET`);
    if (!clientId && !clientSecret) return undefined;
    if (!clientId) throw new ConfigError(`${prefix}_CLIENT_ID`, `is required when ${prefix}_CLIENT_SECRET is set`);
    if (!clientSecret) throw new ConfigError(`${prefix}_CLIENT_SECRET`, `is required when ${prefix}_CLIENT_ID is set`);
    return { clientId, clientSecret };
  };

  const oidcClient = client("OIDC");
  const discoveryUrl = read("OIDC_DISCOVERY_URL");
  if (oidcClient && !discoveryUrl) throw new ConfigError("OIDC_DISCOVERY_URL", "is required when OIDC_CLIENT_ID is set");
  if (discoveryUrl && !oidcClient) throw new ConfigError("OIDC_CLIENT_ID", "is required when OIDC_DISCOVERY_URL is set");
  if (discoveryUrl) parseUrl("OIDC_DISCOVERY_URL", discoveryUrl, ["http:", "https:"]);
  const providerId = read("OIDC_PROVIDER_ID") ?? "oidc";
  if (!PROVIDER_ID.test(providerId)) throw new ConfigError("OIDC_PROVIDER_ID", `"${providerId}" must be lower-case letters, digits, - or _ (it appears in URLs)`);
  if (providerId === "github" || providerId === "google") throw new ConfigError("OIDC_PROVIDER_ID", `"${providerId}" is the built-in provider's id; choose another`);
  const scopes = read("OIDC_SCOPES") ? list("OIDC_SCOPES").flatMap((item) => item.split(/\s+/)) : ["openid", "email", "profile"];
  const oidc = oidcClient && discoveryUrl ? { ...oidcClient, providerId, discoveryUrl, scopes } : undefined;

  const known = new Set(["github", "google", providerId]);
  const trustedProviders = read("OAUTH_TRUSTED_PROVIDERS") === undefined ? ["github", "google"] : list("OAUTH_TRUSTED_PROVIDERS");
  for (const provider of trustedProviders) {
    if (!known.has(provider)) throw new ConfigError("OAUTH_TRUSTED_PROVIDERS", `"${provider}" is not a provider of this server (github, google or OIDC_PROVIDER_ID)`);
  }

  const adminEmails = list("ADMIN_EMAILS").map((email) => email.toLowerCase());
  for (const email of adminEmails) {
    if (!/^[^@\s]+@[^@\s]+$/.test(email)) throw new ConfigError("ADMIN_EMAILS", `"${email}" is not an email address`);
  }

  const twoFactorIssuer = read("TWO_FACTOR_ISSUER") ?? "auth-server";
  const invitationUrl = read("INVITATION_URL") ?? `${corsOrigins[0] ?? baseUrl}/accept-invitation?id={id}`;
  parseUrl("INVITATION_URL", invitationUrl.replace("{id}", "id"), ["http:", "https:"]);
  if (!invitationUrl.includes("{id}")) throw new ConfigError("INVITATION_URL", "must contain {id}, where the invitation id goes");
  // WebAuthn 5.1.4.1 / 13.4.9: the RP ID is the pages' host or a registrable suffix of it. By default it
  // is the first site origin's host, and passkeys work on the site origins under it.
  const explicitOrigins = read("PASSKEY_ORIGINS");
  const siteOrigins = explicitOrigins === undefined ? (corsOrigins.length ? corsOrigins : [baseUrl]) : parseOrigins("PASSKEY_ORIGINS", explicitOrigins);
  const explicitRpId = read("PASSKEY_RP_ID");
  const rpId = explicitRpId ?? new URL(siteOrigins[0]!).hostname;
  const fits = (origin: string) => {
    const host = new URL(origin).hostname;
    return host === rpId || host.endsWith(`.${rpId}`);
  };
  const misfit = siteOrigins.find((origin) => !fits(origin));
  if (misfit && (explicitRpId !== undefined || explicitOrigins !== undefined)) {
    throw new ConfigError(explicitRpId !== undefined ? "PASSKEY_RP_ID" : "PASSKEY_ORIGINS", `"${rpId}" is neither the host of ${misfit} nor a suffix of it`);
  }
  const origins = siteOrigins.filter(fits);

  return {
    twoFactorIssuer,
    organizationLimit: read("ORGANIZATION_LIMIT") === undefined ? 5 : parseInteger("ORGANIZATION_LIMIT", read("ORGANIZATION_LIMIT")!, 0, 10_000),
    invitationUrl,
    adminEmails,
    github: client("GITHUB"),
    google: client("GOOGLE"),
    oidc,
    trustedProviders,
    passkey: { rpId, rpName: read("PASSKEY_RP_NAME") ?? twoFactorIssuer, origins },
  };
}
