// The error vocabulary: every stable `code` this server answers with, its HTTP status and default
// message, and the one JSON shape `{ code, message }` they travel in. docs/errors.md explains each code
// to clients; test/http/error-codes.test.ts keeps the two in step and finds codes written elsewhere.
import { APIError } from "better-auth/api";
import { statusCodes } from "better-call";

export const JSON_CONTENT_TYPE = "application/json; charset=utf-8";

type Status = keyof typeof statusCodes;

interface ErrorDefinition {
  status: Status;
  message: string;
  /** A code of Better Auth's, listed because the server refers to it or also writes it (with its own message). */
  betterAuth?: true;
}

export const ERRORS = {
  NOT_FOUND: { status: "NOT_FOUND", message: "no such route" },
  INVALID_BODY: { status: "BAD_REQUEST", message: "the request body could not be parsed" },
  INVALID_JSON: { status: "BAD_REQUEST", message: "the request body is not valid JSON" },
  VALIDATION_ERROR: { status: "BAD_REQUEST", message: "the request is not valid" },
  BAD_REQUEST: { status: "BAD_REQUEST", message: "the request cannot be carried out" },
  PAYLOAD_TOO_LARGE: { status: "PAYLOAD_TOO_LARGE", message: "the request body is too large" },
  UNAUTHORIZED: { status: "UNAUTHORIZED", message: "Unauthorized" },
  FORBIDDEN: { status: "FORBIDDEN", message: "you may not do this" },
  CONFLICT: { status: "CONFLICT", message: "the request conflicts with a record that already exists" },
  RATE_LIMITED: { status: "TOO_MANY_REQUESTS", message: "too many requests; try again later" },
  MAIL_NOT_SENT: { status: "FAILED_DEPENDENCY", message: "Could not send the email; please try again in a moment." },
  INTERNAL_ERROR: { status: "INTERNAL_SERVER_ERROR", message: "something went wrong; it has been logged" },
  DATABASE_UNAVAILABLE: { status: "SERVICE_UNAVAILABLE", message: "the database does not answer; try again shortly" },
  RATE_LIMIT_UNAVAILABLE: { status: "SERVICE_UNAVAILABLE", message: "the rate-limit store does not answer; try again shortly" },
  SERVER_BUSY: { status: "SERVICE_UNAVAILABLE", message: "Too many password checks at once; retry shortly" },
  SESSION_NOT_FOUND: { status: "NOT_FOUND", message: "no session of yours has this token; pass a session's token as list-sessions answers it" },
  TOTP_CODE_ALREADY_USED: { status: "UNAUTHORIZED", message: "This code has already been used; wait for the next one" },
  ADMIN_SESSION_NOT_FOUND: { status: "UNAUTHORIZED", message: "The admin session this impersonation started from has ended; sign in again as the admin" },
  ROLE_NOT_ALLOWED: { status: "FORBIDDEN", message: "Only an admin or owner may invite admins and owners" },
  // Better Auth's codes that this server also writes (with its own message) or refers to.
  SESSION_NOT_FRESH: { status: "FORBIDDEN", message: "Sign in again or send your password to delete the account", betterAuth: true },
  INVALID_TOKEN: { status: "UNAUTHORIZED", message: "This link is invalid, has expired or was already used; ask for a new one.", betterAuth: true },
  TOKEN_EXPIRED: { status: "UNAUTHORIZED", message: "This link has expired; ask for a new one.", betterAuth: true },
  USER_NOT_FOUND: { status: "UNAUTHORIZED", message: "The account of this link no longer exists.", betterAuth: true },
  NEW_USER_SIGNUP_DISABLED: { status: "UNAUTHORIZED", message: "There is no account for this address, and signing up by email link is turned off.", betterAuth: true },
  FAILED_TO_GET_USER_INFO: { status: "NOT_FOUND", message: "Sign in first, then open the link again.", betterAuth: true },
  VERIFICATION_EMAIL_NOT_ENABLED: { status: "BAD_REQUEST", message: "Email verification is turned off", betterAuth: true },
  USER_IS_ALREADY_A_MEMBER_OF_THIS_ORGANIZATION: { status: "BAD_REQUEST", message: "User is already a member of this organization", betterAuth: true },
  PASSKEY_NOT_FOUND: { status: "NOT_FOUND", message: "Passkey not found", betterAuth: true },
  INVALID_EMAIL_OR_PASSWORD: { status: "UNAUTHORIZED", message: "Invalid email or password", betterAuth: true },
  EMAIL_NOT_VERIFIED: { status: "FORBIDDEN", message: "Email not verified", betterAuth: true },
  USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL: { status: "UNPROCESSABLE_ENTITY", message: "User already exists. Use another email.", betterAuth: true },
  MISSING_OR_NULL_ORIGIN: { status: "FORBIDDEN", message: "Missing or null Origin", betterAuth: true },
  INVALID_ORIGIN: { status: "FORBIDDEN", message: "Invalid origin", betterAuth: true },
  BANNED_USER: { status: "FORBIDDEN", message: "You have been banned from this application", betterAuth: true },
  PASSWORD_TOO_SHORT: { status: "BAD_REQUEST", message: "Password too short", betterAuth: true },
  PASSWORD_TOO_LONG: { status: "BAD_REQUEST", message: "Password too long", betterAuth: true },
  ROLE_NOT_FOUND: { status: "BAD_REQUEST", message: "Role not found", betterAuth: true },
} as const satisfies Record<string, ErrorDefinition>;

export type ErrorCode = keyof typeof ERRORS;

export function errorStatus(code: ErrorCode): number {
  return statusCodes[ERRORS[code].status];
}

/** The `{ code, message }` body of an error. */
export function errorBody(code: ErrorCode, message: string = ERRORS[code].message): { code: ErrorCode; message: string } {
  return { code, message };
}

interface ErrorAnswer {
  message?: string;
  /** Where the same code answers another status on some routes (the mailed-link endpoints). */
  status?: number;
  headers?: Record<string, string>;
}

/** The JSON error response every route of this server answers with. */
export function errorResponse(code: ErrorCode, { message, status = errorStatus(code), headers = {} }: ErrorAnswer = {}): Response {
  return relayedErrorResponse(status, code, message ?? ERRORS[code].message, headers);
}

/** A code Better Auth chose (it may be one the registry lacks), answered in the same JSON shape. */
export function relayedErrorResponse(status: number, code: string, message: string, headers: ConstructorParameters<typeof Headers>[0] = {}): Response {
  const answered = new Headers(headers);
  answered.set("content-type", JSON_CONTENT_TYPE);
  answered.delete("content-length");
  return new Response(JSON.stringify({ code, message }), { status, headers: answered });
}

/** The registry's code for an error answer of Better Auth's that names none, by its status. */
const CODE_FOR_STATUS: Partial<Record<number, ErrorCode>> = {
  401: "UNAUTHORIZED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  409: "CONFLICT",
  413: "PAYLOAD_TOO_LARGE",
  429: "RATE_LIMITED",
};

/** A code Better Auth wrote only into the start of a message: "ROLE_NOT_FOUND: Admin". */
const CODE_IN_MESSAGE = /^([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+): (.+)$/s;

/**
 * An error answer of Better Auth's in the `{ code, message }` shape: as it is when it has both; else with
 * the code its message starts with, or the registry's code for its status (BAD_REQUEST for another 4xx,
 * INTERNAL_ERROR for a 5xx); a message that starts with a registry code gets the registry's words. Some of Better Auth's routes and plugins answer `{ message }` alone, or
 * an empty body (a route that needs a session, called without one). The status and headers stay.
 */
export async function withErrorCode(response: Response): Promise<Response> {
  if (response.status < 400) return response;
  let body: unknown = null;
  try {
    body = JSON.parse(await response.clone().text());
  } catch {
    // Empty or not JSON: no code and no message of its own.
  }
  const { code, message } = (typeof body === "object" && body !== null ? body : {}) as { code?: unknown; message?: unknown };
  const known = (candidate: string): candidate is ErrorCode => candidate in ERRORS;
  const prefixed = typeof message === "string" ? CODE_IN_MESSAGE.exec(message) : null;
  // A message that repeats a registry code ("ROLE_NOT_FOUND: Boss") gets the registry's words.
  const reworded = prefixed && known(prefixed[1]!) && (code === undefined || code === prefixed[1]);
  if (typeof code === "string" && typeof message === "string" && !reworded) return response;
  const chosen =
    typeof code === "string" ? code : prefixed ? prefixed[1]! : (CODE_FOR_STATUS[response.status] ?? (response.status >= 500 ? "INTERNAL_ERROR" : "BAD_REQUEST"));
  const text =
    reworded && known(chosen) ? `${ERRORS[chosen].message}: ${prefixed[2]}` : typeof message === "string" && message ? message : known(chosen) ? ERRORS[chosen].message : chosen;
  return relayedErrorResponse(response.status, chosen, text, response.headers);
}

/** The same error thrown inside a Better Auth hook or endpoint, which Better Auth then answers. */
export function apiError(code: ErrorCode, message?: string): APIError {
  return APIError.from(ERRORS[code].status, errorBody(code, message));
}
