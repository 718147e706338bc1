// Which failures mean the database went away (a 503 DATABASE_UNAVAILABLE, not a 500), and which
// request saw one: Better Auth turns an error inside an endpoint into an empty 500 and tells only its
// onAPIError hook, so the hook notes it for the request it ran in.
import { AsyncLocalStorage } from "node:async_hooks";

// postgres.js's codes for a connection lost or never opened, the socket errors beneath them, and the
// SQLSTATEs of a server shutting down or not yet accepting connections (57P01-57P03). Class 08
// (connection exception) is matched by its prefix below.
const CONNECTION_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "57P01",
  "57P02",
  "57P03",
]);

/** The error, or one of its causes, says the connection to Postgres was lost or could not be opened. */
export function isDatabaseConnectionError(error: unknown): boolean {
  for (let cause = error, depth = 0; cause && typeof cause === "object" && depth < 5; cause = (cause as { cause?: unknown }).cause, depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string" && (CONNECTION_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code))) return true;
  }
  return false;
}

const requestFailures = new AsyncLocalStorage<{ lostDatabase: boolean }>();

/** Runs `work`; `lostDatabase` is true when a connection error was noted while it ran. */
export async function watchingDatabaseErrors<T>(work: () => Promise<T>): Promise<{ result: T; lostDatabase: boolean }> {
  const seen = { lostDatabase: false };
  const result = await requestFailures.run(seen, work);
  return { result, lostDatabase: seen.lostDatabase };
}

/** Notes a connection error for the request running now (inside `watchingDatabaseErrors`). */
export function noteDatabaseError(error: unknown): void {
  if (!isDatabaseConnectionError(error)) return;
  const seen = requestFailures.getStore();
  if (seen) seen.lostDatabase = true;
}
