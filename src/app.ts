// The HTTP surface: Better Auth under /api/auth/*, /health, CORS from the one origin list, and JSON
// errors for everything else.
import { cors } from "@elysiajs/cors";
import { Elysia } from "elysia";
import { CLIENT_IP_HEADER, type Auth } from "./auth.ts";
import { clientIp } from "./client-ip.ts";
import type { Config } from "./config.ts";
import { checkDatabase, type Sql } from "./db.ts";
import { errorResponse } from "./errors.ts";
import { createCookieKeyring } from "./cookie-keyring.ts";
import { createSessionFastPath } from "./fast-session.ts";
import type { Logger } from "./log.ts";
import { rateLimitedResponse, RateLimitStoreError } from "./rate-limit.ts";
import { guardAuthRequest, MAX_BODY_BYTES, payloadTooLarge } from "./request-guard.ts";
import { currentSecret, previousSecrets } from "./secrets.ts";
import { securityHeadersFor } from "./security-headers.ts";

export { MAX_BODY_BYTES } from "./request-guard.ts";
// A successful database probe is reused this long, so a load balancer polling /health (or a load
// test) costs one query a second, not one per request. Failures are never reused.
export const HEALTH_PROBE_REUSE_MS = 1000;
// What a client is told to wait when the database (or the rate-limit store) does not answer.
export const UNAVAILABLE_RETRY_AFTER_S = 5;
// How long an auth request runs before the database is probed; a failed probe answers 503 then.
export const DATABASE_WAIT_MS = 1000;

function serviceUnavailable(code: string, message: string): Response {
  return errorResponse(503, code, message, { "retry-after": String(UNAVAILABLE_RETRY_AFTER_S) });
}

export interface AppDependencies {
  config: Config;
  auth: Auth;
  sql: Sql;
  logger: Logger;
  version: string;
}

export function createApp({ config, auth, sql, logger, version }: AppDependencies) {
  let lastHealthy = 0;
  let probe: ReturnType<typeof checkDatabase> | null = null;
  /** `fresh`: after a failed query, a recent success proves nothing. */
  const databaseHealth = async (fresh = false) => {
    if (!fresh && Date.now() - lastHealthy < HEALTH_PROBE_REUSE_MS) return { ok: true } as const;
    probe ??= checkDatabase(sql, 1000).finally(() => (probe = null));
    const result = await probe;
    lastHealthy = result.ok ? Date.now() : 0; // a failure also ends the reuse of an earlier success
    databaseDown = !result.ok;
    return result;
  };
  // Set while the last probe failed: requests then answer 503 after one probe (shared by all of them)
  // instead of queueing behind a pool that is reconnecting.
  let databaseDown = false;

  const fastPath = createSessionFastPath(auth, sql, logger).catch((error) => {
    logger.error("session fast path disabled", error);
    return null;
  });
  /** A 503 when the failure came from an unreachable database or rate-limit store, else null. */
  const noDatabase = () => serviceUnavailable("DATABASE_UNAVAILABLE", "the database does not answer; try again shortly");
  const unavailable = async (error: unknown): Promise<Response | null> => {
    if (!(await databaseHealth(true)).ok) return noDatabase();
    if (!(error instanceof RateLimitStoreError)) return null;
    logger.error(error.message);
    // The Postgres store failed although the probe now passes: the database is just back.
    if (error.store === "postgres") return noDatabase();
    return serviceUnavailable("RATE_LIMIT_UNAVAILABLE", "the rate-limit store does not answer; try again shortly");
  };
  /**
   * Runs an auth request, answering 503 at once while the database is known to be down, and after
   * each DATABASE_WAIT_MS the request is still running if a probe then fails (the request may still
   * finish in the background; it was answered 503, never 200). A busy but reachable database only waits.
   */
  const whileDatabaseAnswers = async (work: () => Promise<Response>): Promise<Response> => {
    // A probe that fails (refused, closed) proves the database away; a slow one only proves load.
    const failed = async () => {
      const health = await databaseHealth(true);
      return !health.ok && !health.timedOut;
    };
    if (databaseDown && (await failed())) return noDatabase();
    const running = work();
    for (;;) {
      const waited = Bun.sleep(DATABASE_WAIT_MS).then(() => null);
      const done = await Promise.race([running, waited]);
      if (done) return done;
      if (await failed()) {
        running.catch(() => {}); // answered already; its failure is the database's
        return noDatabase();
      }
    }
  };
  // With BETTER_AUTH_SECRETS, cookies signed by a previous secret are re-signed before any lookup.
  const keyring = createCookieKeyring(currentSecret(config), previousSecrets(config));
  const resign = (request: Request) => keyring?.resign(request) ?? request;

  const toBetterAuth = async (received: Request, server: Parameters<typeof clientIp>[1]) => {
    const request = await guardAuthRequest(resign(received));
    if (request instanceof Response) return request;
    const ip = clientIp(received, server, config.trustProxy);
    if (ip) request.headers.set(CLIENT_IP_HEADER, ip);
    else request.headers.delete(CLIENT_IP_HEADER);
    let response: Response;
    try {
      response = await auth.handler(request);
    } catch (error) {
      // Better Auth's rate limiter runs outside its own error handling.
      const refused = await unavailable(error);
      if (refused) return refused;
      throw error;
    }
    // Better Auth answers an unknown endpoint (or a known one with the wrong method, or a disabled one
    // such as delete-user) with an empty 404.
    if (response.status === 404 && !(await response.clone().text())) return errorResponse(404, "NOT_FOUND", "no such route");
    if (response.status === 429) return rateLimitedResponse(response);
    if (response.status >= 500) return (await unavailable(null)) ?? response;
    return response;
  };

  return new Elysia()
    // First, so that answers given before any route (CORS preflights, 413s) carry them too.
    .onRequest(({ request, set }) => void Object.assign(set.headers, securityHeadersFor(new URL(request.url).pathname)))
    .use(
      cors({
        origin: config.corsOrigins,
        credentials: true,
        methods: ["GET", "POST", "OPTIONS"],
        allowedHeaders: ["content-type", "authorization", "accept", "cache-control", "x-requested-with", "x-request-id"],
        exposeHeaders: ["set-auth-token"],
        maxAge: 600,
      }),
    )
    .onRequest(({ request }) => {
      const length = Number(request.headers.get("content-length") ?? 0);
      if (length > MAX_BODY_BYTES) return payloadTooLarge();
    })
    .onError(async ({ code, error }) => {
      if (code === "NOT_FOUND") return errorResponse(404, "NOT_FOUND", "no such route");
      if (code === "PARSE") return errorResponse(400, "INVALID_BODY", "the request body could not be parsed");
      if (code === "VALIDATION") return errorResponse(400, "VALIDATION_ERROR", "the request is not valid");
      const refused = await unavailable(error);
      if (refused) return refused;
      logger.error("unhandled error", error);
      return errorResponse(500, "INTERNAL_ERROR", "something went wrong; it has been logged");
    })
    .get("/health", async ({ set }) => {
      const database = await databaseHealth(false);
      const body = { status: database.ok ? "ok" : "degraded", service: "auth-server", version, timestamp: new Date().toISOString() };
      if (database.ok) return body;
      set.status = 503;
      return { ...body, reason: `database: ${database.reason}` };
    })
    .get(
      "/api/auth/get-session",
      ({ request, server }) => whileDatabaseAnswers(async () => (await (await fastPath)?.getSession(resign(request))) ?? toBetterAuth(request, server)),
      { parse: "none" },
    )
    .get(
      "/api/auth/token",
      ({ request, server }) => whileDatabaseAnswers(async () => (await (await fastPath)?.token(resign(request))) ?? toBetterAuth(request, server)),
      { parse: "none" },
    )
    .all("/api/auth/*", ({ request, server }) => whileDatabaseAnswers(() => toBetterAuth(request, server)), { parse: "none" })
    .all("*", () => errorResponse(404, "NOT_FOUND", "no such route"));
}

export type App = ReturnType<typeof createApp>;
