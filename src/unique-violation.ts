// A request that runs into one of the database's unique constraints (two members for one user in one
// organization, a second two-factor row, a passkey credential or provider account already stored ...)
// was refused by the database, not broken: its client gets 409 CONFLICT {code, message}, never a 500.
// Better Auth catches the error inside its router and answers an empty 500; it hands the error to
// `onAPIError.onError` first, which notes it here for the request that caused it.
import { AsyncLocalStorage } from "node:async_hooks";
import { errorResponse } from "./errors.ts";

/** Postgres SQLSTATE unique_violation. */
const UNIQUE_VIOLATION = "23505";

const failures = new AsyncLocalStorage<{ error?: unknown }>();

/** Runs one request, keeping the error Better Auth swallowed (if any) for `conflictFor`. */
export async function runNotingFailure(work: () => Promise<Response>): Promise<{ response: Response; error: unknown }> {
  const slot: { error?: unknown } = {};
  const response = await failures.run(slot, work);
  return { response, error: slot.error };
}

/** Called from Better Auth's onAPIError hook: remembers the request's error. */
export function noteRequestFailure(error: unknown): void {
  const slot = failures.getStore();
  if (slot) slot.error = error;
}

function isUniqueViolation(error: unknown): boolean {
  for (let current = error, depth = 0; current && typeof current === "object" && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    if ((current as { code?: unknown }).code === UNIQUE_VIOLATION) return true;
  }
  return false;
}

/** 409 CONFLICT when the request's failure was a unique violation, else null. */
export function conflictFor(error: unknown): Response | null {
  if (!isUniqueViolation(error)) return null;
  return errorResponse(409, "CONFLICT", "the request conflicts with a record that already exists");
}
