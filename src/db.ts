// The Postgres connection pool (postgres.js), shared by the migration runner, Better Auth (through
// Kysely) and the app's own queries.
import postgres from "postgres";
import type { Config } from "./config.ts";

export type Sql = postgres.Sql;

export interface PoolOptions {
  max: number;
  /** Named prepared statements; off for servers that share one backend between connections. */
  prepare?: boolean;
}

export function createPool(url: string, options: PoolOptions): Sql {
  return postgres(url, {
    max: options.max,
    prepare: options.prepare ?? true,
    idle_timeout: 60,
    connect_timeout: 10,
    // postgres.js waits up to 20 s between reconnection attempts after repeated failures; 2 s at most
    // lets the server serve again soon after the database is back.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 2),
    onnotice: () => {},
    connection: { application_name: "auth-server" },
  });
}

/**
 * Postgres answers within `timeoutMs`, or the reason it did not; `timedOut` tells a slow answer (a
 * busy pool, perhaps) from a failed one (refused, closed).
 */
export async function checkDatabase(sql: Sql, timeoutMs = 1000): Promise<{ ok: true } | { ok: false; reason: string; timedOut: boolean }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Error(`database did not answer within ${timeoutMs} ms`);
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut), timeoutMs);
  });
  try {
    await Promise.race([sql`select 1`, timeout]);
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error), timedOut: error === timedOut };
  } finally {
    clearTimeout(timer);
  }
}

export interface Database {
  sql: Sql;
  url: string;
  /** True when the server runs its own embedded database (no DATABASE_URL). */
  embedded: boolean;
  /** Connections the pool opens at most. */
  poolMax: number;
  close(): Promise<void>;
}

/** The configured database, or the embedded one when no DATABASE_URL is set outside production. */
export async function openDatabase(config: Pick<Config, "databaseUrl" | "databasePoolMax" | "dataDir" | "embeddedDatabasePort">): Promise<Database> {
  if (config.databaseUrl) {
    const sql = createPool(config.databaseUrl, { max: config.databasePoolMax });
    return { sql, url: config.databaseUrl, embedded: false, poolMax: config.databasePoolMax, close: () => sql.end({ timeout: 5 }) };
  }
  const { startEmbeddedDatabase, EMBEDDED_POOL_MAX } = await import("./embedded-db.ts");
  const embedded = await startEmbeddedDatabase(config.dataDir, config.embeddedDatabasePort);
  const sql = createPool(embedded.url, { max: EMBEDDED_POOL_MAX });
  return {
    sql,
    url: embedded.url,
    embedded: true,
    poolMax: EMBEDDED_POOL_MAX,
    async close() {
      await sql.end({ timeout: 5 });
      await embedded.stop();
    },
  };
}
