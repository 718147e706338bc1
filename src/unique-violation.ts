// A request that runs into one of the database's unique constraints (two members for one user in one
// organization, a second two-factor row, a passkey credential or provider account already stored ...)
// was refused by the database, not broken: its client gets 409 CONFLICT {code, message}, never a 500.
// Better Auth catches the error inside its router and answers an empty 500; it hands the error to
// `onAPIError.onError` first, which notes it here for the request that caused it. Some plugins catch
// it themselves and answer a 500 of their own (the passkey plugin's FAILED_TO_VERIFY_REGISTRATION),
// logging the original first: errors handed to Better Auth's logger are noted as well.
import { AsyncLocalStorage } from "node:async_hooks";
import { errorResponse } from "./errors.ts";

/** Postgres SQLSTATE unique_violation. */
const UNIQUE_VIOLATION = "23505";

const failures = new AsyncLocalStorage<unknown[]>();

/** Runs one request, keeping the errors Better Auth swallowed (if any) for `conflictFor`. */
export async function runNotingFailure(work: () => Promise<Response>): Promise<{ response: Response; errors: unknown[] }> {
  const errors: unknown[] = [];
  const response = await failures.run(errors, work);
  return { response, errors };
}

/** Called from Better Auth's onAPIError hook and its logger: remembers an error of the request. */
export function noteRequestFailure(error: unknown): void {
  if (error && typeof error === "object") failures.getStore()?.push(error);
}

function isUniqueViolation(error: unknown): boolean {
  for (let current = error, depth = 0; current && typeof current === "object" && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    if ((current as { code?: unknown }).code === UNIQUE_VIOLATION) return true;
  }
  return false;
}

/** 409 CONFLICT when one of the request's failures was a unique violation, else null. */
export function conflictFor(errors: unknown[]): Response | null {
  if (!errors.some(isUniqueViolation)) return null;
  return errorResponse(409, "CONFLICT", "the request conflicts with a record that already exists");
}
