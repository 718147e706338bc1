// Start and stop: config, database (embedded in development when no DATABASE_URL), migrations,
// the first signing key, then the HTTP server; SIGTERM/SIGINT drain in-flight requests and exit 0.
import packageJson from "../package.json" with { type: "json" };
import { MAX_BODY_BYTES, createApp } from "./http/app.ts";
import { createAuth, ensureSigningKey, SigningKeyError } from "./auth/better-auth.ts";
import { ConfigError, loadConfig, type Config } from "./config.ts";
import { openDatabase } from "./db/pool.ts";
import { createLogger, type Logger } from "./ops/log.ts";
import { createMailer } from "./mail/mailer.ts";
import { applyMigrations, MigrationError } from "./db/migrate.ts";
import { pluginMail } from "./mail/send-mail.ts";
import { createRateLimitStore } from "./security/rate-limit.ts";
import { ensureSecret } from "./security/development-secret.ts";
import { createMetrics } from "./ops/metrics.ts";
import { createInFlight } from "./ops/observe.ts";
import { trackPool } from "./ops/pool-stats.ts";
import { scheduleHousekeeping } from "./ops/housekeeping.ts";
import { createRedisStorage } from "./session/redis-storage.ts";
import { cachedCopyWindowSeconds, listenForChanges } from "./session/change-notices.ts";

export interface RunningServer {
  url: string;
  port: number;
  databaseUrl: string;
  stop(): Promise<void>;
}

export async function startServer(baseConfig: Config, logger: Logger = createLogger(baseConfig.logLevel, undefined, baseConfig.logFormat)): Promise<RunningServer> {
  const config = ensureSecret(baseConfig, logger);
  const database = await openDatabase(config, (message) => logger.info(message));
  let closeRedis = () => {};
  let closeNotices = async () => {};
  try {
    if (database.embedded) {
      logger.info(`embedded database (PostgreSQL, data in ${config.dataDir}) at ${database.url}`);
    }
    // The migration check waits on Postgres while the objects below are built (cold start); nothing
    // below queries the database before it is awaited.
    const migrating = config.migrateOnStart ? applyMigrations(database.sql) : Promise.resolve([]);
    migrating.catch(() => {}); // awaited below; a failure must not count as unhandled meanwhile
    const mailer = createMailer(config, logger);
    if (mailer.transport === "console" && config.mail.flows.size > 0) {
      logger.warn("no SMTP_URL: account emails are printed to this log, not sent");
    }
    const pool = trackPool(database.sql, database.poolMax);
    const metrics = createMetrics(pool.stats, database.poolMax);
    // Cached copies (the cookie cache, Redis) are trusted only while this listener hears every change.
    const notices = listenForChanges(config.databaseListenUrl ?? database.url, cachedCopyWindowSeconds(config) * 1000, logger);
    closeNotices = () => notices.close();
    const redis = config.redisUrl ? createRedisStorage(config.redisUrl, logger, { notices, maxTtlSeconds: cachedCopyWindowSeconds(config) }) : undefined;
    closeRedis = () => redis?.close();
    const rateLimitStore = createRateLimitStore(config, pool.sql); // through the tracked pool: its queries count in the pool metrics
    const sendMail = pluginMail(config, mailer, logger); // two-factor codes, organization invitations
    const auth = createAuth({ config, sql: pool.sql, logger, metrics, secondaryStorage: redis, mailer, rateLimitStore, sendMail });
    const applied = await migrating;
    if (applied.length) logger.info(`applied migrations ${applied.join(", ")}`);
    if ((await ensureSigningKey(auth, database.sql, config)) === "created") logger.info("created the first JWT signing key");
    const inFlight = createInFlight();
    const app = createApp({ config, auth, sql: pool.sql, probe: database.probe, logger, version: packageJson.version, metrics, inFlight, notices });
    app.listen({ port: config.port, hostname: config.host, maxRequestBodySize: MAX_BODY_BYTES });
    const server = app.server!;
    const url = `http://${config.host.includes(":") ? `[${config.host}]` : config.host}:${server.port}`;
    logger.info(`auth-server ${packageJson.version} listening on ${url} (${config.nodeEnv})`);
    const housekeeping = config.housekeepingIntervalSeconds
      ? scheduleHousekeeping(database.sql, logger, {
          intervalSeconds: config.housekeepingIntervalSeconds,
          auditRetentionSeconds: config.auditRetentionSeconds,
          lockoutWindowSeconds: config.lockout.windowSeconds,
        })
      : null;

    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        // Stop accepting, let in-flight requests finish up to the bound, then cut what is left. The
        // connections closing is not enough: a request whose client hung up still runs, and the pool
        // must stay open until it ends.
        const drained = server.stop(false).then(() => inFlight.settled());
        const timedOut = await Promise.race([
          drained.then(() => false),
          Bun.sleep(config.shutdownTimeoutMs).then(() => true),
        ]);
        if (timedOut) {
          logger.warn(`requests still running after ${config.shutdownTimeoutMs} ms (${inFlight.count} at work); closing them`);
          await server.stop(true);
        }
        await housekeeping?.stop();
        closeRedis();
        await closeNotices();
        await rateLimitStore.close();
        await mailer.close(); // queued mail, each bounded by MAIL_SEND_TIMEOUT
        await database.close();
      })());
    return { url, port: server.port!, databaseUrl: database.url, stop };
  } catch (error) {
    closeRedis();
    await closeNotices();
    await database.close();
    throw error;
  }
}

/** The server process: configuration, start, and the signals that stop it. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`auth-server: configuration error: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
  const logger = createLogger(config.logLevel, undefined, config.logFormat);
  let running: RunningServer;
  try {
    running = await startServer(config, logger);
  } catch (error) {
    if (error instanceof MigrationError) logger.error(`migrations: ${error.message}`);
    else if (error instanceof SigningKeyError) logger.error(`signing keys: ${error.message}`);
    else logger.error("start-up failed", error);
    process.exit(1);
  }
  const shutdown = (signal: string) => {
    logger.info(`${signal}: shutting down`);
    running.stop().then(
      () => process.exit(0),
      (error) => {
        logger.error("shutdown failed", error);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
}

// A function, not top-level await: the production bundle is CommonJS (package.json build), which has none.
if (import.meta.main) void main();
