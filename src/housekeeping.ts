// Security housekeeping on a timer: ended rate-limit windows, stale lockout counters and audit events
// past their retention are deleted, so none of these tables grows without bound. Every instance runs
// it; the deletes are idempotent, so instances running it together only repeat each other's work.
import { pruneAuthEvents } from "./audit.ts";
import type { Config } from "./config.ts";
import type { Sql } from "./db.ts";
import { pruneLockouts } from "./lockout.ts";
import type { Logger } from "./log.ts";
import type { RateLimitStore } from "./rate-limit.ts";

export const HOUSEKEEPING_INTERVAL_MS = 5 * 60_000;

export interface PruneCounts {
  rateLimits: number;
  lockouts: number;
  authEvents: number;
}

export async function pruneSecurityTables(sql: Sql, store: RateLimitStore, config: Pick<Config, "lockout" | "auditRetentionSeconds">): Promise<PruneCounts> {
  return {
    rateLimits: await store.prune(),
    lockouts: await pruneLockouts(sql, config.lockout),
    authEvents: await pruneAuthEvents(sql, config.auditRetentionSeconds),
  };
}

/** Prunes now and then every `intervalMs`; returns the stop function. A failed run is logged and retried next time. */
export function startHousekeeping(
  sql: Sql,
  store: RateLimitStore,
  config: Pick<Config, "lockout" | "auditRetentionSeconds">,
  logger: Logger,
  intervalMs = HOUSEKEEPING_INTERVAL_MS,
): () => void {
  const run = () =>
    pruneSecurityTables(sql, store, config).then(
      (counts) => logger.debug(`housekeeping: pruned ${JSON.stringify(counts)}`),
      (error) => logger.warn("housekeeping: pruning failed; retrying at the next run", error),
    );
  void run();
  const timer = setInterval(run, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
