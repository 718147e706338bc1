// The app in process (one or two instances on one database) or the whole server on a real port, with
// the configuration the tests run it with.
import { expect } from "bun:test";
import { createApp, type App } from "../../src/http/app.ts";
import { createAuth, ensureSigningKey, type Auth, type AuthDependencies } from "../../src/auth/better-auth.ts";
import { ConfigError, loadConfig, type Config } from "../../src/config.ts";
import { createPool } from "../../src/db/pool.ts";
import { createLogger, type Logger } from "../../src/ops/log.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { trackPool } from "../../src/ops/pool-stats.ts";
import { createRedisStorage } from "../../src/session/redis-storage.ts";
import { cachedCopyWindowSeconds, listenForChanges, untilTrusting, type ChangeNotices } from "../../src/session/change-notices.ts";
import { startServer, type RunningServer } from "../../src/index.ts";
import { createRateLimitStore } from "../../src/security/rate-limit.ts";
import { onCleanup } from "./cleanup.ts";
import { createTestDatabase, type TestDatabase } from "./database.ts";

export const TEST_SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
export const SITE_ORIGIN = "http://localhost:3000";

const testEnvironments = new WeakMap<Config, Record<string, string | undefined>>();
const envOf = (config: Config) => testEnvironments.get(config) ?? {};

/** Config as the server would read it from an environment, with test defaults. */
export function testConfig(env: Record<string, string | undefined> = {}): Config {
  const full = {
    NODE_ENV: "test",
    BETTER_AUTH_SECRET: TEST_SECRET,
    BETTER_AUTH_URL: "http://localhost:3001",
    CORS_ORIGINS: SITE_ORIGIN,
    RATE_LIMIT: "off",
    LOG_LEVEL: "error",
    // Tests decide when housekeeping runs; a periodic run could delete rows a test set up.
    HOUSEKEEPING_INTERVAL: "off",
    ...env,
  };
  const config = loadConfig(full);
  testEnvironments.set(config, full);
  return config;
}

export const quietLogger: Logger = createLogger("error", () => {});

export interface TestApp {
  app: App;
  auth: Auth;
  /** The instance's change listener (src/session/change-notices.ts); `untilTrusting(notices)` before relying on cached answers. */
  notices: ChangeNotices;
  config: Config;
  db: TestDatabase;
  /** Sends a request through the app in process (no port). */
  request(path: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
}

/** Optional parts of Better Auth's set-up a test replaces (e.g. a lockout notifier that records). */
export type TestAuthDependencies = Partial<Pick<AuthDependencies, "rateLimitStore" | "notifyLockout" | "sendMail">>;

/** The app in process on a fresh, migrated database. */
export async function createTestApp(
  env: Record<string, string | undefined> = {},
  logger: Logger = quietLogger,
  dependencies: TestAuthDependencies = {},
): Promise<TestApp> {
  const db = await createTestDatabase("app");
  const config = testConfig({ DATABASE_URL: db.url, ...env }) as Config & { secret: string };
  const instance = await createInstance(db, config, logger, dependencies);
  return { ...instance, config, db };
}

/** The app (own pool, Better Auth, rate-limit store) on an existing, migrated-here database. */
async function createInstance(db: TestDatabase, config: Config & { secret: string }, logger: Logger, dependencies: TestAuthDependencies) {
  const notices = listenForChanges(db.url, cachedCopyWindowSeconds(config) * 1000, logger);
  onCleanup(() => notices.close());
  const appSql = createPool(db.url, { max: config.databasePoolMax });
  onCleanup(() => appSql.end({ timeout: 1 }));
  await applyMigrations(appSql);
  const pool = trackPool(appSql, config.databasePoolMax);
  const metrics = createMetrics(pool.stats, config.databasePoolMax);
  const redis = config.redisUrl ? createRedisStorage(config.redisUrl, logger, { notices, maxTtlSeconds: cachedCopyWindowSeconds(config) }) : undefined;
  if (redis) onCleanup(async () => redis.close());
  const rateLimitStore = dependencies.rateLimitStore ?? createRateLimitStore(config, pool.sql);
  onCleanup(() => rateLimitStore.close());
  const auth = createAuth({ config, sql: pool.sql, logger, metrics, secondaryStorage: redis, ...dependencies, rateLimitStore });
  await ensureSigningKey(auth, appSql, config);
  const app = createApp({ config, auth, sql: pool.sql, logger, version: "test", metrics, notices });
  await notices.ready;
  const request = (path: string, init: RequestInit & { json?: unknown } = {}) => {
    const { json, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (!headers.has("origin")) headers.set("origin", SITE_ORIGIN);
    if (json !== undefined) headers.set("content-type", "application/json");
    return app.handle(
      new Request(new URL(path, config.baseUrl).toString(), { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body }),
    );
  };
  return { app, auth, request, notices };
}

/**
 * Another instance of the server in process, on `t`'s database: its own pool, Better Auth and
 * rate-limit store, as a load balancer's second backend would be. `env` overrides `t`'s settings.
 */
export async function createSecondInstance(
  t: Pick<TestApp, "db" | "config">,
  env: Record<string, string | undefined> = {},
  dependencies: TestAuthDependencies = {},
  logger: Logger = quietLogger,
): Promise<Omit<TestApp, "db">> {
  const config = loadConfig({ ...envOf(t.config), ...env }) as Config & { secret: string };
  const instance = await createInstance(t.db, config, logger, dependencies);
  return { ...instance, config };
}

/** Two instances on one fresh database (createTestApp, createSecondInstance), both trusting cached copies. */
export async function createInstancePair(env: Record<string, string | undefined> = {}): Promise<{ a: TestApp; b: Omit<TestApp, "db"> }> {
  const a = await createTestApp(env);
  const b = await createSecondInstance(a);
  await Promise.all([untilTrusting(a.notices), untilTrusting(b.notices)]);
  return { a, b };
}

/** The whole server (src/index.ts) on a free loopback port and a fresh database; stopped after the file. */
export async function startTestServer(env: Record<string, string | undefined> = {}): Promise<RunningServer & { db: TestDatabase; config: Config }> {
  const db = await createTestDatabase("server");
  const config = testConfig({ DATABASE_URL: db.url, PORT: "0", HOST: "127.0.0.1", ...env });
  const running = await startServer(config, quietLogger);
  onCleanup(() => running.stop());
  return { ...running, db, config };
}

/** A fetch that answers from the in-process app, for the client without a port. */
export function inProcessFetch(app: App): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const request = input instanceof Request ? new Request(input, init) : new Request(String(input), init);
    const response = await app.handle(request);
    // A real fetch reports the URL it answered for; the cookie jar files cookies under it.
    Object.defineProperty(response, "url", { value: request.url });
    return response;
  }) as typeof fetch;
}

/** The ConfigError `load` throws; fails the test when it throws nothing or something else. */
export function configError(load: () => unknown): ConfigError {
  try {
    load();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError, but the configuration loaded");
}

