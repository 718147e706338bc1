// The database gate: auth requests answer 503 (with Retry-After) when the database, or the rate-limit
// store, does not answer, instead of hanging or failing with a 500.
import { errorResponse, type ErrorCode } from "../errors.ts";
import type { InFlight } from "../ops/observe.ts";
import type { Logger } from "../ops/log.ts";
import { isDatabaseConnectionError } from "../db/request-failures.ts";
import { RateLimitStoreError } from "../security/rate-limit.ts";
import type { DatabaseHealth } from "./health.ts";

// What a client is told to wait when the database (or the rate-limit store) does not answer.
export const UNAVAILABLE_RETRY_AFTER_S = 5;
// How long an auth request runs before the database is probed; a failed probe answers 503 then.
export const DATABASE_WAIT_MS = 1000;
// Probes in a row that time out (no answer at all) while a request waits: the database hangs, 503.
export const DATABASE_HUNG_PROBES = 2;
// The longest an auth request waits on the database although probes pass: a query lost with its
// connection (a driver that never settles it) must not hold the request forever. 503 then.
export const DATABASE_REQUEST_LIMIT_MS = 10_000;

function serviceUnavailable(code: ErrorCode): Response {
  return errorResponse(code, { headers: { "retry-after": String(UNAVAILABLE_RETRY_AFTER_S) } });
}

export const noDatabase = () => serviceUnavailable("DATABASE_UNAVAILABLE");

export interface DatabaseGate {
  /** A 503 when the failure came from an unreachable database or rate-limit store, else null. */
  unavailable(error: unknown): Promise<Response | null>;
  /**
   * Runs an auth request, answering 503 at once while the database is known to be down, and after
   * each DATABASE_WAIT_MS the request is still running if a probe then fails (the request may still
   * finish in the background; it was answered 503, never 200). A busy but reachable database only waits,
   * up to DATABASE_REQUEST_LIMIT_MS.
   */
  whileDatabaseAnswers(work: () => Promise<Response>): Promise<Response>;
}

export function createDatabaseGate(database: DatabaseHealth, inFlight: InFlight, logger: Logger): DatabaseGate {
  return {
    async unavailable(error) {
      // A connection error is the database's, unless it is Redis's (the rate-limit store, answered below).
      if (isDatabaseConnectionError(error) && !(error instanceof RateLimitStoreError && error.store === "redis")) return noDatabase();
      if (!(await database.check(true, performance.now())).ok) return noDatabase();
      if (!(error instanceof RateLimitStoreError)) return null;
      logger.error(error.message);
      // The Postgres store failed although the probe now passes: the database is just back.
      if (error.store === "postgres") return noDatabase();
      return serviceUnavailable("RATE_LIMIT_UNAVAILABLE");
    },
    async whileDatabaseAnswers(work) {
      // A probe that fails (refused, closed) proves the database away; a slow one only proves load,
      // unless DATABASE_HUNG_PROBES of them in a row got no answer at all.
      let unanswered = 0;
      const failed = async () => {
        const health = await database.check(true);
        unanswered = health.ok ? 0 : unanswered + Number(health.timedOut);
        return !health.ok && (!health.timedOut || unanswered >= DATABASE_HUNG_PROBES);
      };
      if (database.down && (await failed())) return noDatabase();
      // Counted apart from its request: after a 503 it may still be running.
      const running = inFlight.track(work);
      const givesUpAt = performance.now() + DATABASE_REQUEST_LIMIT_MS;
      for (;;) {
        const waited = Bun.sleep(DATABASE_WAIT_MS).then(() => null);
        const done = await Promise.race([running, waited]);
        if (done) return done;
        if ((await failed()) || performance.now() >= givesUpAt) {
          running.catch(() => {}); // answered already; its failure is the database's
          return noDatabase();
        }
      }
    },
  };
}
