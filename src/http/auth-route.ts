// Forwards a request to Better Auth: guarded, cookies re-signed and filtered, the client IP set, and
// Better Auth's answers normalised (empty 404s, its rate limiter's 429, 5xx from a database that went away).
import type { Auth } from "../auth/better-auth.ts";
import { createAuthHandler } from "../auth/handler.ts";
import { pacingSignUps } from "../mail/sign-up-pacing.ts";
import type { Config } from "../config.ts";
import { failureAnswer, runNotingFailures } from "../db/request-failures.ts";
import { errorResponse, withErrorCode } from "../errors.ts";
import { answeringMailFailures } from "../mail/flows.ts";
import { UNMATCHED_ROUTE } from "../ops/observe.ts";
import { createCookieKeyring } from "../security/keyring.ts";
import { rateLimitedResponse } from "../security/rate-limit.ts";
import { currentSecret, previousSecrets } from "../security/secrets.ts";
import { createCacheCookieFilter } from "../session/cache-trust.ts";
import type { ChangeNotices } from "../session/change-notices.ts";
import { CLIENT_IP_HEADER, clientIp } from "../ops/client-ip.ts";
import { noDatabase, type DatabaseGate } from "./database-gate.ts";
import { normaliseLinkResponse } from "./link-errors.ts";
import { guardAuthRequest } from "./request-guard.ts";

export type ServerInfo = Parameters<typeof clientIp>[1];

/** With BETTER_AUTH_SECRETS, cookies signed by a previous secret are re-signed before any lookup. */
export function createCookieResigner(config: Config): (request: Request) => Request {
  const keyring = createCookieKeyring(currentSecret(config), previousSecrets(config));
  return (request) => keyring?.resign(request) ?? request;
}

export interface AuthRouteOptions {
  auth: Auth;
  config: Config;
  notices: ChangeNotices;
  gate: DatabaseGate;
  resign: (request: Request) => Request;
  routeOf: (path: string) => string;
}

/** The handler that answers a request through Better Auth. */
export function createAuthRoute({ auth, config, notices, gate, resign, routeOf }: AuthRouteOptions) {
  // A taken address is answered no sooner than a new one (ASVS 2.5; src/mail/sign-up-pacing.ts).
  const authHandler = pacingSignUps(createAuthHandler(auth));
  // Better Auth trusts any validly signed session_data cookie; it sees only those the notices vouch for.
  const cacheCookieFilter = createCacheCookieFilter(auth, notices);
  return async (received: Request, server: ServerInfo): Promise<Response> => {
    const guarded = await guardAuthRequest(resign(received));
    const request = guarded instanceof Response ? guarded : (await cacheCookieFilter)(guarded);
    if (request instanceof Response) return request;
    // A path that is no auth route is answered here: Better Auth would count it in the rate limiter
    // first, one `rate_limits` row per path anyone makes up.
    if (routeOf(new URL(received.url).pathname) === UNMATCHED_ROUTE) return errorResponse("NOT_FOUND");
    const ip = clientIp(received, server, config.trustProxy);
    if (ip) request.headers.set(CLIENT_IP_HEADER, ip);
    else request.headers.delete(CLIENT_IP_HEADER);
    let response: Response;
    let failures: unknown[] = [];
    try {
      ({ result: response, errors: failures } = await runNotingFailures(() => answeringMailFailures(() => authHandler(request))));
    } catch (error) {
      // Better Auth's rate limiter runs outside its own error handling.
      const refused = await gate.unavailable(error);
      if (refused) return refused;
      throw error;
    }
    const failed = failureAnswer(response.status, failures, noDatabase);
    if (failed) return failed;
    // Better Auth answers an unknown endpoint (or a known one with the wrong method, or a disabled one
    // such as delete-user) with an empty 404.
    if (response.status === 404 && !(await response.clone().text())) return errorResponse("NOT_FOUND");
    // Better Auth's rate limiter answers 429 with X-Retry-After and no code; other 429s (the two-factor
    // lockout's ACCOUNT_TEMPORARILY_LOCKED) already carry their own code and pass through.
    if (response.status === 429 && response.headers.has("x-retry-after")) return rateLimitedResponse(response);
    // A 503 is the password hash queue's SERVER_BUSY (src/auth/password.ts), which no probe would change.
    if (response.status >= 500 && response.status !== 503) return (await gate.unavailable(null)) ?? withErrorCode(response);
    // Every error answer carries { code, message }, whatever Better Auth wrote (docs/errors.md).
    return withErrorCode(await normaliseLinkResponse(request, response, config));
  };
}
