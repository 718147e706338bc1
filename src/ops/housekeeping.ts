// Housekeeping: deletes expired sessions and verifications, ended rate-limit windows, lockout counters
// whose window and lock are over, and audit rows (auth_events) older than AUDIT_RETENTION. It runs every
// HOUSEKEEPING_INTERVAL on one instance at a time (a Postgres advisory lock; a run another instance
// finished within the interval counts for all), and once with `bun run cleanup`. Deletes go in
// batches, so a backlog of millions never holds long locks or one huge transaction.
import { hostname } from "node:os";
import type { Sql } from "../db/pool.ts";
import type { Logger } from "./log.ts";

const LOCK = "auth-server:housekeeping";
export const BATCH_SIZE = 10_000;

export interface HousekeepingOptions {
  auditRetentionSeconds: number;
  /** LOCKOUT_WINDOW: a failure counter older than this (and not locking) counts for nothing. */
  lockoutWindowSeconds: number;
  /** Skip when any instance finished a run this recently (the periodic job); 0: always run. */
  skipIfRunWithinSeconds?: number;
  batchSize?: number;
}

export type HousekeepingResult =
  | { ran: true; deleted: Record<string, number>; milliseconds: number }
  | { ran: false; reason: string };

export const instanceName = () => `${hostname()}:${process.pid}`;

/** Deletes the rows `select` picks, `batch` at a time, each batch its own statement; returns the count. */
async function deleteInBatches(connection: Sql, table: string, condition: string, params: unknown[], batch: number): Promise<number> {
  let total = 0;
  const statement =
    `delete from ${table} where ctid = any(array(select ctid from ${table} where ${condition} limit ${batch}))`;
  for (;;) {
    const result = await connection.unsafe(statement, params as never[]);
    total += result.count;
    if (result.count < batch) return total;
  }
}

export async function runHousekeeping(sql: Sql, options: HousekeepingOptions): Promise<HousekeepingResult> {
  const batch = options.batchSize ?? BATCH_SIZE;
  const connection = await sql.reserve();
  try {
    const [{ locked }] = (await connection`select pg_try_advisory_lock(hashtext(${LOCK})) as locked`) as unknown as [{ locked: boolean }];
    if (!locked) return { ran: false, reason: "another instance is running it" };
    try {
      if (options.skipIfRunWithinSeconds) {
        const [recent] = await connection`
          select 1 from housekeeping_runs
          where error is null and finished_at > now() - make_interval(secs => ${options.skipIfRunWithinSeconds})
          limit 1`;
        if (recent) return { ran: false, reason: "another instance ran it within the interval" };
      }
      const started = performance.now();
      const [run] = (await connection`insert into housekeeping_runs (instance) values (${instanceName()}) returning id`) as unknown as [{ id: string }];
      const deleted: Record<string, number> = {};
      try {
        deleted.sessions = await deleteInBatches(connection, "sessions", "expires_at < now()", [], batch);
        deleted.verifications = await deleteInBatches(connection, "verifications", "expires_at < now()", [], batch);
        // Ended windows (src/security/rate-limit.ts); a row past expires_at would restart at 1 anyway.
        deleted.rate_limits = await deleteInBatches(connection, "rate_limits", "expires_at < now()", [], batch);
        deleted.account_lockouts = await deleteInBatches(
          connection,
          "account_lockouts",
          "window_started_at < now() - make_interval(secs => $1) and (locked_until is null or locked_until < now())",
          [options.lockoutWindowSeconds],
          batch,
        );
        deleted.auth_events = await deleteInBatches(
          connection,
          "auth_events",
          "occurred_at < now() - make_interval(secs => $1)",
          [options.auditRetentionSeconds],
          batch,
        );
        await connection`update housekeeping_runs set finished_at = now(), deleted = ${connection.json(deleted)} where id = ${run.id}`;
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        await connection`update housekeeping_runs set finished_at = now(), deleted = ${connection.json(deleted)}, error = ${reason} where id = ${run.id}`.catch(() => {});
        throw error;
      }
      return { ran: true, deleted, milliseconds: Math.round(performance.now() - started) };
    } finally {
      await connection`select pg_advisory_unlock(hashtext(${LOCK}))`;
    }
  } finally {
    connection.release();
  }
}

export interface HousekeepingSchedule {
  stop(): Promise<void>;
}

/**
 * Runs the job every `intervalSeconds` (the first run after a random part of a minute, so instances
 * started together do not all knock at once). A failed run is logged and retried at the next tick.
 */
export function scheduleHousekeeping(
  sql: Sql,
  logger: Logger,
  options: { intervalSeconds: number } & Pick<HousekeepingOptions, "auditRetentionSeconds" | "lockoutWindowSeconds">,
): HousekeepingSchedule {
  let running: Promise<void> | null = null;
  let stopped = false;
  const tick = () => {
    if (stopped || running) return;
    running = runHousekeeping(sql, {
      auditRetentionSeconds: options.auditRetentionSeconds,
      lockoutWindowSeconds: options.lockoutWindowSeconds,
      // A little under the interval, so a run that finished just before this tick still counts.
      skipIfRunWithinSeconds: options.intervalSeconds * 0.9,
    })
      .then((result) => {
        if (result.ran) logger.info("housekeeping", { deleted: result.deleted, durationMs: result.milliseconds });
        else logger.debug(`housekeeping skipped: ${result.reason}`);
      })
      .catch((error) => logger.error("housekeeping failed", error))
      .finally(() => (running = null));
  };
  const intervalMs = options.intervalSeconds * 1000;
  const first = setTimeout(tick, Math.min(intervalMs, 60_000) * Math.random());
  const timer = setInterval(tick, intervalMs);
  first.unref?.();
  timer.unref?.();
  return {
    async stop() {
      stopped = true;
      clearTimeout(first);
      clearInterval(timer);
      await running;
    },
  };
}
