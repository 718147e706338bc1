// The operations settings: log format, metrics token, housekeeping, Redis and the cookie cache are
// validated like every other setting, with one line naming the variable.
import { describe, expect, test } from "bun:test";
import { loadConfig } from "../../src/config.ts";
import { cleanUpAfterFile, configError, expectStartRefused } from "../helpers.ts";

cleanUpAfterFile();

const production = {
  NODE_ENV: "production",
  DATABASE_URL: "postgres://db.example/auth",
  BETTER_AUTH_SECRET: "a-long-random-production-value-0123456789abcdef",
  BETTER_AUTH_URL: "https://auth.example.org",
  CORS_ORIGINS: "https://learn.example.org",
  EMAIL_FLOWS: "none",
  METRICS_TOKEN: "scrape-token-0123456789abcdef",
};

const refused = (env: Record<string, string>) => configError(() => loadConfig(env));

describe("operations settings", () => {
  test("production logs JSON lines, development readable ones; LOG_FORMAT overrides", () => {
    expect(loadConfig(production).logFormat).toBe("json");
    expect(loadConfig({}).logFormat).toBe("pretty");
    expect(loadConfig({ LOG_FORMAT: "JSON" }).logFormat).toBe("json");
    expect(refused({ LOG_FORMAT: "xml" }).variable).toBe("LOG_FORMAT");
  });

  test("METRICS_TOKEN is optional outside production, at least 16 characters when set, and off turns /metrics off", () => {
    expect(loadConfig({}).metricsToken).toBeUndefined();
    expect(loadConfig({ METRICS_TOKEN: "0123456789abcdef" }).metricsToken).toBe("0123456789abcdef");
    expect(loadConfig({ METRICS_TOKEN: "off" }).metricsToken).toBe(false);
    expect(refused({ METRICS_TOKEN: "short" }).message).toContain("METRICS_TOKEN: must be at least 16 characters");
  });

  test("production without METRICS_TOKEN refuses to start, naming it; a token or off is accepted", () => {
    const error = refused({ ...production, METRICS_TOKEN: "" });
    expect(error.variable).toBe("METRICS_TOKEN");
    expect(error.message).toContain("required in production");
    expect(loadConfig({ ...production, METRICS_TOKEN: "off" }).metricsToken).toBe(false);
    expect(loadConfig(production).metricsToken).toBe(production.METRICS_TOKEN);
  });

  test("`bun src/index.ts` in production without METRICS_TOKEN exits 1 with one line naming METRICS_TOKEN, before touching the database", async () => {
    await expectStartRefused({ ...production, METRICS_TOKEN: "" }, "METRICS_TOKEN");
  }, 20_000);

  test("HOUSEKEEPING_INTERVAL is a duration or off; AUDIT_RETENTION a duration", () => {
    expect(loadConfig({ HOUSEKEEPING_INTERVAL: "15m" }).housekeepingIntervalSeconds).toBe(900);
    expect(loadConfig({ HOUSEKEEPING_INTERVAL: "off" }).housekeepingIntervalSeconds).toBe(0);
    expect(refused({ HOUSEKEEPING_INTERVAL: "sometimes" }).variable).toBe("HOUSEKEEPING_INTERVAL");
    expect(loadConfig({ AUDIT_RETENTION: "30d" }).auditRetentionSeconds).toBe(30 * 86400);
    expect(refused({ AUDIT_RETENTION: "0" }).variable).toBe("AUDIT_RETENTION");
  });

  test("REDIS_URL must be a redis:// or rediss:// URL", () => {
    expect(loadConfig({ REDIS_URL: "redis://127.0.0.1:6379/2" }).redisUrl).toBe("redis://127.0.0.1:6379/2");
    expect(loadConfig({ REDIS_URL: "rediss://cache.example:6380" }).redisUrl).toBe("rediss://cache.example:6380");
    expect(refused({ REDIS_URL: "http://127.0.0.1:6379" }).message).toContain("REDIS_URL: must start with redis:// or rediss://");
  });

  test("SESSION_COOKIE_CACHE is 5 minutes by default, a duration, or off", () => {
    expect(loadConfig({}).sessionCookieCacheSeconds).toBe(300);
    expect(loadConfig({ SESSION_COOKIE_CACHE: "1m" }).sessionCookieCacheSeconds).toBe(60);
    expect(loadConfig({ SESSION_COOKIE_CACHE: "off" }).sessionCookieCacheSeconds).toBe(0);
    expect(refused({ SESSION_COOKIE_CACHE: "soon" }).variable).toBe("SESSION_COOKIE_CACHE");
  });
});
