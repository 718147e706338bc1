// Configuration (src/config.ts): defaults for a laptop, a ConfigError naming the variable for every
// wrong value, and the production refusals; the entry point turns a refusal into one line and exit 1.
import { describe, expect, test } from "bun:test";
import { EXAMPLE_SECRET, loadConfig, MIN_SECRET_LENGTH, parseDuration } from "../../src/config.ts";
import { cleanUpAfterFile, configError, spawnProject } from "../helpers.ts";

cleanUpAfterFile();

const STRONG_SECRET = "Vq3xL9tR0mZ7pW2kY5sN8dF4hJ6gB1cTuE8iO3aQ7nXr";
/** A production environment that passes every check. */
const PRODUCTION = {
  NODE_ENV: "production",
  DATABASE_URL: "postgres://auth@db.internal:5432/auth",
  BETTER_AUTH_SECRET: STRONG_SECRET,
  BETTER_AUTH_URL: "https://auth.learn.test",
  CORS_ORIGINS: "https://learn.test",
  SMTP_URL: "smtps://mailer:relay-password@smtp.learn.test:465",
  MAIL_FROM: "Learn <no-reply@learn.test>",
  METRICS_TOKEN: "scrape-token-0123456789abcdef",
};

describe("defaults", () => {
  test("an empty environment is a development server on 127.0.0.1:3001 with the documented defaults", () => {
    const config = loadConfig({});
    expect(config).toEqual({
      nodeEnv: "development",
      port: 3001,
      host: "127.0.0.1",
      databaseUrl: undefined,
      databaseListenUrl: undefined,
      databasePoolMax: 10,
      secret: undefined,
      secrets: undefined,
      baseUrl: "http://localhost:3001",
      corsOrigins: ["http://localhost:3000"],
      trustProxy: false,
      rateLimit: true,
      rateLimitRules: {
        signIn: { max: 5, windowSeconds: 60 },
        signUp: { max: 5, windowSeconds: 60 },
        mail: { max: 3, windowSeconds: 60 },
        other: { max: 100, windowSeconds: 60 },
      },
      redisUrl: undefined,
      lockout: { maxFailures: 10, windowSeconds: 15 * 60, durationSeconds: 15 * 60 },
      auditRetentionSeconds: 90 * 86400,
      migrateOnStart: true,
      jwtExpiresInSeconds: 15 * 60,
      jwtAudience: "http://localhost:3001",
      sessionExpiresInSeconds: 7 * 86400,
      sessionUpdateAgeSeconds: 86400,
      passwordMinLength: 8,
      passwordMaxLength: 128,
      passwordHashQueue: 128,
      logFormat: "pretty",
      metricsToken: undefined,
      housekeepingIntervalSeconds: 3600,
      sessionCookieCacheSeconds: 300,
      shutdownTimeoutMs: 10_000,
      logLevel: "debug",
      dataDir: ".data",
      embeddedDatabasePort: 5433,
      plugins: {
        twoFactorIssuer: "auth-server",
        organizationLimit: 5,
        invitationUrl: "http://localhost:3000/accept-invitation?id={id}",
        adminEmails: [],
        github: undefined,
        google: undefined,
        oidc: undefined,
        trustedProviders: ["github", "google"],
        passkey: { rpId: "localhost", rpName: "auth-server", origins: ["http://localhost:3000"] },
      },
      mail: {
        smtpUrl: undefined,
        from: "auth-server <no-reply@localhost>",
        productName: "auth-server",
        sendTimeoutMs: 10_000,
        flows: new Set(["verification", "password-reset", "magic-link", "change-email", "delete-account"]),
        requireEmailVerification: false,
        autoSignInAfterVerification: true,
        magicLinkSignUp: false,
        appUrl: "http://localhost:3000",
        verificationExpiresInSeconds: 3600,
        passwordResetExpiresInSeconds: 3600,
        magicLinkExpiresInSeconds: 600,
        deleteAccountExpiresInSeconds: 3600,
      },
    });
  });

  test("the configuration object is frozen", () => {
    expect(Object.isFrozen(loadConfig({}))).toBe(true);
  });

  test("blank values count as unset", () => {
    expect(loadConfig({ PORT: "", RATE_LIMIT: "  ", LOG_LEVEL: "" })).toMatchObject({ port: 3001, rateLimit: true, logLevel: "debug" });
  });

  test("a valid production environment loads, listening on all interfaces and logging at info", () => {
    const config = loadConfig(PRODUCTION);
    expect(config).toMatchObject({
      nodeEnv: "production",
      host: "0.0.0.0",
      logLevel: "info",
      baseUrl: "https://auth.learn.test",
      corsOrigins: ["https://learn.test"],
      secret: STRONG_SECRET,
      jwtAudience: "https://auth.learn.test",
    });
  });
});

describe("values are parsed", () => {
  test("durations accept plain seconds and s, m, h, d, w units", () => {
    expect(parseDuration("X", "900")).toBe(900);
    expect(parseDuration("X", "900s")).toBe(900);
    expect(parseDuration("X", "15m")).toBe(900);
    expect(parseDuration("X", "1h")).toBe(3600);
    expect(parseDuration("X", "7d")).toBe(604800);
    expect(parseDuration("X", "2w")).toBe(1209600);
  });

  test("each setting reaches the config in its typed form", () => {
    const config = loadConfig({
      PORT: "0",
      HOST: "::1",
      DATABASE_URL: "postgresql://u@h/db",
      DATABASE_POOL_MAX: "3",
      BETTER_AUTH_URL: "https://auth.learn.test/",
      CORS_ORIGINS: " http://localhost:3000 , https://learn.test/ ",
      TRUST_PROXY: "on",
      RATE_LIMIT: "off",
      MIGRATE_ON_START: "false",
      JWT_EXPIRES_IN: "5m",
      JWT_AUDIENCE: "https://api.learn.test",
      SESSION_EXPIRES_IN: "30d",
      SESSION_UPDATE_AGE: "12h",
      PASSWORD_MIN_LENGTH: "12",
      PASSWORD_MAX_LENGTH: "256",
      SHUTDOWN_TIMEOUT: "3s",
      LOG_LEVEL: "WARN",
      DATA_DIR: "/var/lib/auth",
      EMBEDDED_DB_PORT: "0",
    });
    expect(config).toMatchObject({
      port: 0,
      host: "::1",
      databaseUrl: "postgresql://u@h/db",
      databasePoolMax: 3,
      baseUrl: "https://auth.learn.test",
      corsOrigins: ["http://localhost:3000", "https://learn.test"],
      trustProxy: true,
      rateLimit: false,
      migrateOnStart: false,
      jwtExpiresInSeconds: 300,
      jwtAudience: "https://api.learn.test",
      sessionExpiresInSeconds: 30 * 86400,
      sessionUpdateAgeSeconds: 12 * 3600,
      passwordMinLength: 12,
      passwordMaxLength: 256,
      shutdownTimeoutMs: 3000,
      logLevel: "warn",
      dataDir: "/var/lib/auth",
      embeddedDatabasePort: 0,
    });
  });
});

describe("a wrong value throws a ConfigError naming the variable", () => {
  test.each([
    ["PORT", "abc"],
    ["PORT", "70000"],
    ["PORT", "-1"],
    ["RATE_LIMIT", "maybe"],
    ["TRUST_PROXY", "sometimes"],
    ["MIGRATE_ON_START", "later"],
    ["JWT_EXPIRES_IN", "soon"],
    ["JWT_EXPIRES_IN", "0"],
    ["JWT_EXPIRES_IN", "15 minutes"],
    ["SESSION_EXPIRES_IN", "forever"],
    ["SHUTDOWN_TIMEOUT", "10ms"],
    ["LOG_LEVEL", "loud"],
    ["CORS_ORIGINS", "not-a-url"],
    ["CORS_ORIGINS", "http://localhost:3000/app"],
    ["CORS_ORIGINS", "ftp://files.learn.test"],
    ["DATABASE_URL", "mysql://x"],
    ["DATABASE_URL", "not a url"],
    ["NODE_ENV", "staging"],
    ["BETTER_AUTH_URL", "http://localhost:3001/api/auth"],
    ["BETTER_AUTH_URL", "localhost:3001"],
    ["DATABASE_POOL_MAX", "0"],
    ["PASSWORD_MAX_LENGTH", "32"],
    ["EMBEDDED_DB_PORT", "99999"],
  ])("%s=%s", (variable, value) => {
    const error = configError(() => loadConfig({ [variable]: value }));
    expect(error.variable).toBe(variable);
    expect(error.message).toStartWith(`${variable}: `);
  });

  test("BETTER_AUTH_SECRETS is parsed into versions, current first, and stands in for BETTER_AUTH_SECRET in production", () => {
    const rotated = `2:${STRONG_SECRET}x, 1:${STRONG_SECRET}`;
    const { BETTER_AUTH_SECRET: _, ...withoutSecret } = PRODUCTION;
    expect(loadConfig({ ...withoutSecret, BETTER_AUTH_SECRETS: rotated }).secrets).toEqual([
      { version: 2, value: `${STRONG_SECRET}x` },
      { version: 1, value: STRONG_SECRET },
    ]);
    expect(configError(() => loadConfig(withoutSecret)).variable).toBe("BETTER_AUTH_SECRET");
  });

  test.each([
    ["a secret shorter than 32 characters", "2:short-secret", "shorter than 32"],
    ["a duplicate version", `1:${STRONG_SECRET},1:${STRONG_SECRET}y`, "appears twice"],
    ["an entry without a version", STRONG_SECRET, "<version>:<secret>"],
    ["a version that is not a whole number", `v2:${STRONG_SECRET}`, "<version>:<secret>"],
    ["an example secret", `1:${EXAMPLE_SECRET}`, "example"],
  ])("BETTER_AUTH_SECRETS with %s is refused in every environment", (_, value, message) => {
    for (const nodeEnv of ["development", "test", "production"]) {
      const error = configError(() => loadConfig({ ...PRODUCTION, NODE_ENV: nodeEnv, BETTER_AUTH_SECRETS: value }));
      expect(error.variable).toBe("BETTER_AUTH_SECRETS");
      expect(error.message).toContain(message);
    }
  });

  test("rate-limit rules read requests/duration; a malformed rule names its variable", () => {
    expect(loadConfig({ RATE_LIMIT_SIGN_IN: "10/5m", RATE_LIMIT_OTHER: "1000 / 1h" }).rateLimitRules).toMatchObject({
      signIn: { max: 10, windowSeconds: 300 },
      other: { max: 1000, windowSeconds: 3600 },
    });
    for (const [variable, value] of [["RATE_LIMIT_SIGN_UP", "5"], ["RATE_LIMIT_MAIL", "0/1m"], ["RATE_LIMIT_OTHER", "5/soon"]] as const) {
      expect(configError(() => loadConfig({ [variable]: value })).variable).toBe(variable);
    }
  });

  test("REDIS_URL must be a redis:// or rediss:// URL; lockout and audit settings are validated", () => {
    expect(loadConfig({ REDIS_URL: "redis://127.0.0.1:6379" }).redisUrl).toBe("redis://127.0.0.1:6379");
    expect(configError(() => loadConfig({ REDIS_URL: "http://127.0.0.1:6379" })).variable).toBe("REDIS_URL");
    expect(loadConfig({ LOCKOUT_MAX_FAILURES: "5", LOCKOUT_WINDOW: "1h", LOCKOUT_DURATION: "30m", AUDIT_RETENTION: "30d" })).toMatchObject({
      lockout: { maxFailures: 5, windowSeconds: 3600, durationSeconds: 1800 },
      auditRetentionSeconds: 30 * 86400,
    });
    expect(configError(() => loadConfig({ LOCKOUT_MAX_FAILURES: "0" })).variable).toBe("LOCKOUT_MAX_FAILURES");
    expect(configError(() => loadConfig({ AUDIT_RETENTION: "forever" })).variable).toBe("AUDIT_RETENTION");
  });

  test("a minimum password length above the maximum names PASSWORD_MIN_LENGTH", () => {
    const error = configError(() => loadConfig({ PASSWORD_MIN_LENGTH: "200", PASSWORD_MAX_LENGTH: "128" }));
    expect(error.variable).toBe("PASSWORD_MIN_LENGTH");
    expect(error.message).toContain("PASSWORD_MAX_LENGTH");
  });

  test("a session update age longer than the session names SESSION_UPDATE_AGE", () => {
    const error = configError(() => loadConfig({ SESSION_EXPIRES_IN: "1d", SESSION_UPDATE_AGE: "2d" }));
    expect(error.variable).toBe("SESSION_UPDATE_AGE");
  });
});

describe("production refuses an unsafe configuration", () => {
  const refusal = (env: Record<string, string | undefined>) => configError(() => loadConfig({ ...PRODUCTION, ...env }));

  test("a missing secret", () => {
    const error = refusal({ BETTER_AUTH_SECRET: undefined });
    expect(error.variable).toBe("BETTER_AUTH_SECRET");
    expect(error.message).toContain("required");
  });

  test(`a secret shorter than ${MIN_SECRET_LENGTH} characters, but not one of exactly ${MIN_SECRET_LENGTH}`, () => {
    const error = refusal({ BETTER_AUTH_SECRET: STRONG_SECRET.slice(0, MIN_SECRET_LENGTH - 1) });
    expect(error.variable).toBe("BETTER_AUTH_SECRET");
    expect(error.message).toContain("short");
    expect(loadConfig({ ...PRODUCTION, BETTER_AUTH_SECRET: STRONG_SECRET.slice(0, MIN_SECRET_LENGTH) }).secret).toHaveLength(MIN_SECRET_LENGTH);
  });

  test.each([
    [EXAMPLE_SECRET],
    ["change-me-please-0123456789abcdefghijklmnop"],
    ["CHANGEME_0123456789abcdefghijklmnopqrstuvwxyz"],
    ["your-secret-goes-here-0123456789abcdefghijk"],
    ["this-is-an-example-secret-0123456789abcdefgh"],
  ])("an example secret (%s)", (secret) => {
    const error = refusal({ BETTER_AUTH_SECRET: secret });
    expect(error.variable).toBe("BETTER_AUTH_SECRET");
    expect(error.message).toContain("example");
  });

  test("an http:// BETTER_AUTH_URL, or none (which defaults to http://localhost)", () => {
    expect(refusal({ BETTER_AUTH_URL: "http://auth.learn.test" }).variable).toBe("BETTER_AUTH_URL");
    expect(refusal({ BETTER_AUTH_URL: undefined }).variable).toBe("BETTER_AUTH_URL");
  });

  test("no CORS origins: unset, empty, or only commas", () => {
    for (const origins of [undefined, "", " , "]) expect(refusal({ CORS_ORIGINS: origins }).variable).toBe("CORS_ORIGINS");
  });

  test("no DATABASE_URL (the embedded database is for development only)", () => {
    const error = refusal({ DATABASE_URL: undefined });
    expect(error.variable).toBe("DATABASE_URL");
    expect(error.message).toContain("production");
  });

  test("outside production a missing secret, http URL and example secret are allowed", () => {
    expect(loadConfig({ NODE_ENV: "development" }).secret).toBeUndefined();
    expect(loadConfig({ NODE_ENV: "test", BETTER_AUTH_SECRET: EXAMPLE_SECRET }).secret).toBe(EXAMPLE_SECRET);
  });
});

describe("the entry point", () => {
  test("with NODE_ENV=production and a short secret, `bun src/index.ts` exits non-zero quickly, printing one line that names BETTER_AUTH_SECRET", async () => {
    const started = Date.now();
    const child = spawnProject(["bun", "src/index.ts"], { ...PRODUCTION, BETTER_AUTH_SECRET: "too-short", PORT: "0" });
    const code = await child.exited(10_000);
    expect(code).not.toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    const lines = child.output().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("BETTER_AUTH_SECRET");
    expect(lines[0]).not.toContain("too-short");
  });

  test("a wrong value in development also stops it with one line naming the variable", async () => {
    const child = spawnProject(["bun", "src/index.ts"], { NODE_ENV: "development", PORT: "abc" });
    expect(await child.exited(10_000)).toBe(1);
    const lines = child.output().trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain("PORT");
  });
});
