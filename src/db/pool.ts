// The Postgres connection pool (postgres.js), shared by the migration runner, Better Auth (through
// Kysely) and the app's own queries.
import postgres from "postgres";
import type { Config } from "../config.ts";
import { withDeadline } from "../ops/deadline.ts";

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

export type ProbeResult = { ok: true } | { ok: false; reason: string; timedOut: boolean };

/** Asks whether Postgres answers: what /health and the 503 answers of auth requests rely on. */
export interface DatabaseProbe {
  check(timeoutMs: number): Promise<ProbeResult>;
  close(): Promise<void>;
}

/** The pool itself as the probe: for an app built in-process without a probe of its own (tests). */
export function poolProbe(sql: Sql): DatabaseProbe {
  return { check: (timeoutMs) => checkDatabase(sql, timeoutMs), close: async () => {} };
}

/**
 * A probe on a connection of its own, apart from the pool. The pool, after failed connection attempts,
 * waits up to its backoff (2 s) before the next one, so a probe through it can time out while Postgres
 * refuses connections, and a refusal would then look like a slow database. After a failed check the
 * connection is dropped and the next check opens a new one, so no check waits behind an attempt that
 * hangs. The connection is opened on the first check and closed after a minute without checks.
 */
export function createDatabaseProbe(url: string): DatabaseProbe {
  let client: Sql | null = null;
  return {
    async check(timeoutMs) {
      client ??= postgres(url, {
        max: 1,
        prepare: false,
        fetch_types: false,
        idle_timeout: 60,
        connect_timeout: Math.max(1, Math.ceil(timeoutMs / 1000)),
        onnotice: () => {},
        connection: { application_name: "auth-server health" },
      });
      const checked = client;
      const result = await checkDatabase(checked, timeoutMs);
      if (!result.ok && client === checked) {
        client = null;
        void checked.end({ timeout: 0 }).catch(() => {});
      }
      return result;
    },
    async close() {
      const open = client;
      client = null;
      await open?.end({ timeout: 1 });
    },
  };
}

/**
 * Postgres answers within `timeoutMs`, or the reason it did not; `timedOut` tells a slow answer (a
 * busy pool, perhaps) from a failed one (refused, closed).
 */
export async function checkDatabase(sql: Sql, timeoutMs = 1000): Promise<ProbeResult> {
  const timedOut = new Error(`database did not answer within ${timeoutMs} ms`);
  try {
    await withDeadline(sql`select 1`, timeoutMs, () => timedOut);
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error), timedOut: error === timedOut };
  }
}

export interface Database {
  sql: Sql;
  /** What /health asks: a connection of its own, so a pool waiting to reconnect cannot delay it. */
  probe: DatabaseProbe;
  url: string;
  /** True when the server runs its own embedded database (no DATABASE_URL). */
  embedded: boolean;
  /** Connections the pool opens at most. */
  poolMax: number;
  close(): Promise<void>;
}

/** The configured database, or the embedded one when no DATABASE_URL is set outside production. */
export async function openDatabase(
  config: Pick<Config, "databaseUrl" | "databasePoolMax" | "dataDir" | "embeddedDatabasePort">,
  log: (message: string) => void = () => {},
): Promise<Database> {
  const embedded = config.databaseUrl
    ? null
    : await (await import("./embedded.ts")).startEmbeddedDatabase(config.dataDir, config.embeddedDatabasePort, log);
  const url = embedded?.url ?? config.databaseUrl!;
  const sql = createPool(url, { max: config.databasePoolMax });
  const probe = createDatabaseProbe(url);
  return {
    sql,
    probe,
    url,
    embedded: embedded !== null,
    poolMax: config.databasePoolMax,
    close: async () => {
      await Promise.all([sql.end({ timeout: 5 }), probe.close()]);
      await embedded?.stop();
    },
  };
}
