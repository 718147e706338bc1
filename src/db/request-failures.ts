// What went wrong inside a request that Better Auth answered with an empty 500. Better Auth catches an
// error inside an endpoint, hands it to its onAPIError hook (and some plugins log it and answer a 500 of
// their own, e.g. the passkey plugin's FAILED_TO_VERIFY_REGISTRATION), then answers 500 with no body.
// The hook and the logger note each error here, for the request they ran in, so the app can answer
// what it was:
// - the database went away (a connection lost or never opened): 503 DATABASE_UNAVAILABLE;
// - one of the database's unique constraints refused the request (two members for one user in one
//   organization, a passkey credential already stored ...): 409 CONFLICT, never a 500.
import { AsyncLocalStorage } from "node:async_hooks";
import { errorResponse } from "../errors.ts";

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
/** Postgres SQLSTATE unique_violation. */
const UNIQUE_VIOLATION = "23505";

/** Whether the error, or one of its causes, carries a code that `matches`. */
function hasCode(error: unknown, matches: (code: string) => boolean): boolean {
  for (let cause = error, depth = 0; cause && typeof cause === "object" && depth < 5; cause = (cause as { cause?: unknown }).cause, depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string" && matches(code)) return true;
  }
  return false;
}

/** The error, or one of its causes, says the connection to Postgres was lost or could not be opened. */
export const isDatabaseConnectionError = (error: unknown): boolean => hasCode(error, (code) => CONNECTION_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code));

const isUniqueViolation = (error: unknown): boolean => hasCode(error, (code) => code === UNIQUE_VIOLATION);

const failures = new AsyncLocalStorage<unknown[]>();

/** Runs one request, keeping the errors Better Auth swallowed while it ran (for `failureAnswer`). */
export async function runNotingFailures<T>(work: () => Promise<T>): Promise<{ result: T; errors: unknown[] }> {
  const errors: unknown[] = [];
  const result = await failures.run(errors, work);
  return { result, errors };
}

/** Called from Better Auth's onAPIError hook and its logger: remembers an error of the running request. */
export function noteRequestFailure(error: unknown): void {
  if (error && typeof error === "object") failures.getStore()?.push(error);
}

/**
 * What a request that Better Auth refused (`status` 4xx or 5xx) should answer instead, from the errors
 * noted while it ran, or null. A lost database answers `lostDatabase` whatever Better Auth made of it:
 * its session middleware reads a failed session lookup as "no session" and answers 401, which would tell
 * a signed-in client to sign in again. A unique violation behind a 5xx answers 409 CONFLICT.
 */
export function failureAnswer(status: number, errors: unknown[], lostDatabase: () => Response): Response | null {
  if (status < 400 || errors.length === 0) return null;
  if (errors.some(isDatabaseConnectionError)) return lostDatabase();
  if (status >= 500 && errors.some(isUniqueViolation)) return errorResponse("CONFLICT");
  return null;
}
