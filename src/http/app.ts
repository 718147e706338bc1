// The HTTP surface: Better Auth under /api/auth/*, /health, /metrics, the API reference, CORS from
// the one origin list, and JSON errors for everything else. Every request is observed (src/ops/observe.ts).
import { timingSafeEqual } from "node:crypto";
import { cors } from "@elysiajs/cors";
import { getCookies } from "better-auth/cookies";
import { Elysia } from "elysia";
import { CLIENT_IP_HEADER, type Auth } from "../auth/better-auth.ts";
import { clientIp, type SocketInfo } from "./client-ip.ts";
import type { Config } from "../config.ts";
import { poolProbe, type DatabaseProbe, type Sql } from "../db/pool.ts";
import { failureAnswer, isDatabaseConnectionError, runNotingFailures } from "../db/request-failures.ts";
import { answeringMailFailures } from "../mail/flows.ts";
import { createAuthHandler } from "../auth/handler.ts";
import { errorResponse, JSON_CONTENT_TYPE, type ErrorCode } from "../errors.ts";
import { createCookieKeyring } from "../security/keyring.ts";
import { pacingSignUps } from "../security/sign-up-pacing.ts";
import { createSessionFastPath } from "../session/fast-path.ts";
import { createCacheCookieFilter } from "../session/cache-trust.ts";
import { NEVER_TRUSTED, type ChangeNotices } from "../session/change-notices.ts";
import { normaliseLinkResponse } from "./link-errors.ts";
import { createRefusedOriginLog } from "./refused-origins.ts";
import type { Logger } from "../ops/log.ts";
import { completeReference, referencePage } from "./reference.ts";
import { createMetrics, METRICS_CONTENT_TYPE, type Metrics } from "../ops/metrics.ts";
import { createInFlight, createRouteResolver, observeRequests, UNMATCHED_ROUTE, type InFlight } from "../ops/observe.ts";
import { createSessionMemo, type SessionMemo } from "../session/memo.ts";
import { rateLimitedResponse, RateLimitStoreError } from "../security/rate-limit.ts";
import { guardAuthRequest, MAX_BODY_BYTES, payloadTooLarge } from "./request-guard.ts";
import { currentSecret, previousSecrets } from "../security/secrets.ts";
import { securityHeadersFor } from "./security-headers.ts";

export { MAX_BODY_BYTES } from "./request-guard.ts";
// A successful database probe is reused this long, so a load balancer polling /health (or a load
// test) costs one query a second, not one per request. Failures are never reused.
export const HEALTH_PROBE_REUSE_MS = 1000;
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

export interface AppDependencies {
  config: Config;
  auth: Auth;
  sql: Sql;
  /** What /health asks (`Database.probe`); the pool when absent. */
  probe?: DatabaseProbe;
  logger: Logger;
  version: string;
  /** Shared with Better Auth's session counters; created here when absent. */
  metrics?: Metrics;
  /** Requests and the work they leave running; the entry point waits for them at shutdown. */
  inFlight?: InFlight;
  /** The kept get-session answers of the listening server; created here when absent. */
  sessionMemo?: SessionMemo;
  /** Which sessions and users changed (src/session/change-notices.ts); absent: no cached copy is ever trusted. */
  notices?: ChangeNotices;
}

const APP_ROUTES = ["/health", "/metrics", "/api/auth/reference"];
const AUTH_BASE_PATH = "/api/auth";

export function createApp({ config, auth, sql, probe: databaseProbe = poolProbe(sql), logger, version, metrics = createMetrics(), sessionMemo: memo = createSessionMemo({ cookies: getCookies(auth.options), trustedOrigins: config.corsOrigins }), inFlight = createInFlight(), notices = NEVER_TRUSTED }: AppDependencies) {
  let lastHealthy = 0;
  let probe: ReturnType<DatabaseProbe["check"]> | null = null;
  let probeStartedAt = 0;
  /**
   * `fresh`: after a failed query, a recent success proves nothing. `startedAfter`: nor does a probe
   * begun before then (one running when a query failed may have passed just before the connection went).
   */
  const databaseHealth = async (fresh = false, startedAfter = 0) => {
    if (!fresh && Date.now() - lastHealthy < HEALTH_PROBE_REUSE_MS) return { ok: true } as const;
    while (probe && probeStartedAt < startedAfter) await probe;
    probe ??= ((probeStartedAt = performance.now()), databaseProbe.check(1000).finally(() => (probe = null)));
    const result = await probe;
    lastHealthy = result.ok ? Date.now() : 0; // a failure also ends the reuse of an earlier success
    databaseDown = !result.ok;
    return result;
  };
  // Set while the last probe failed: requests then answer 503 after one probe (shared by all of them)
  // instead of queueing behind a pool that is reconnecting.
  let databaseDown = false;
  const JSON_TYPE = { "content-type": JSON_CONTENT_TYPE, ...securityHeadersFor("/health") };
  const healthBody = (status: string, now: number) =>
    `{"status":"${status}","service":"auth-server","version":${JSON.stringify(version)},"timestamp":"${new Date(now).toISOString()}"`;
  // The healthy body changes only with the clock's millisecond; under a load balancer's (or a load
  // test's) polling most answers reuse the string built for the same millisecond.
  let okAt = 0;
  let okBody = "";
  const healthyResponse = (now: number) => {
    if (now !== okAt) {
      okAt = now;
      okBody = `${healthBody("ok", now)}}`;
    }
    return new Response(okBody, { headers: JSON_TYPE });
  };
  // Synchronous while the last probe is fresh: no promise, no JSON.stringify of an object.
  const health = (): Response | Promise<Response> => {
    const now = Date.now();
    if (now - lastHealthy < HEALTH_PROBE_REUSE_MS) return healthyResponse(now);
    return databaseHealth().then((database) =>
      database.ok
        ? healthyResponse(Date.now())
        : new Response(`${healthBody("degraded", Date.now())},"reason":${JSON.stringify(`database: ${database.reason}`)}}`, { status: 503, headers: JSON_TYPE }),
    );
  };

  const fastPath = createSessionFastPath(auth, sql, logger, notices).catch((error) => {
    logger.error("session fast path disabled", error);
    return null;
  });
  /** A 503 when the failure came from an unreachable database or rate-limit store, else null. */
  const noDatabase = () => serviceUnavailable("DATABASE_UNAVAILABLE");
  const unavailable = async (error: unknown): Promise<Response | null> => {
    // A connection error is the database's, unless it is Redis's (the rate-limit store, answered below).
    if (isDatabaseConnectionError(error) && !(error instanceof RateLimitStoreError && error.store === "redis")) return noDatabase();
    if (!(await databaseHealth(true, performance.now())).ok) return noDatabase();
    if (!(error instanceof RateLimitStoreError)) return null;
    logger.error(error.message);
    // The Postgres store failed although the probe now passes: the database is just back.
    if (error.store === "postgres") return noDatabase();
    return serviceUnavailable("RATE_LIMIT_UNAVAILABLE");
  };
  /**
   * Runs an auth request, answering 503 at once while the database is known to be down, and after
   * each DATABASE_WAIT_MS the request is still running if a probe then fails (the request may still
   * finish in the background; it was answered 503, never 200). A busy but reachable database only waits,
   * up to DATABASE_REQUEST_LIMIT_MS.
   */
  const whileDatabaseAnswers = async (work: () => Promise<Response>): Promise<Response> => {
    // A probe that fails (refused, closed) proves the database away; a slow one only proves load,
    // unless DATABASE_HUNG_PROBES of them in a row got no answer at all.
    let unanswered = 0;
    const failed = async () => {
      const health = await databaseHealth(true);
      unanswered = health.ok ? 0 : unanswered + Number(health.timedOut);
      return !health.ok && (!health.timedOut || unanswered >= DATABASE_HUNG_PROBES);
    };
    if (databaseDown && (await failed())) return noDatabase();
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
  };
  // With BETTER_AUTH_SECRETS, cookies signed by a previous secret are re-signed before any lookup.
  const keyring = createCookieKeyring(currentSecret(config), previousSecrets(config));
  const resign = (request: Request) => keyring?.resign(request) ?? request;
  // A taken address is answered no sooner than a new one (ASVS 2.5; src/security/sign-up-pacing.ts).
  const authHandler = pacingSignUps(createAuthHandler(auth));

  // Better Auth trusts any validly signed session_data cookie; it sees only those the notices vouch for.
  const cacheCookieFilter = createCacheCookieFilter(auth, notices);
  const toBetterAuth = async (received: Request, server: Parameters<typeof clientIp>[1]) => {
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
      const refused = await unavailable(error);
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
    if (response.status >= 500 && response.status !== 503) return (await unavailable(null)) ?? response;
    return normaliseLinkResponse(request, response, config);
  };

  // On a listening server /health is answered by a plain Bun route, outside Elysia's hooks: load
  // balancers poll it, it needs no CORS, and the hooks cost a third of its throughput (bench/RESULTS.md).
  // app.handle() (tests, in-process use) reaches the same function through the Elysia route below.
  const authRoutes = Object.values(auth.api as Record<string, { path?: string }>).flatMap((endpoint) => (endpoint.path ? [`${AUTH_BASE_PATH}${endpoint.path}`] : []));
  const routeOf = createRouteResolver([...APP_ROUTES, ...authRoutes]);
  const expectedMetricsAuthorization = config.metricsToken ? Buffer.from(`Bearer ${config.metricsToken}`) : null;
  let reference: Promise<Record<string, unknown>> | undefined;
  const apiReference = () =>
    (reference ??= auth.api
      .generateOpenAPISchema()
      .then((generated) => completeReference(generated as Record<string, unknown>, { baseUrl: config.baseUrl, basePath: AUTH_BASE_PATH, version })));

  // The listening server exists only after listen(); the observer asks for it per request.
  const listening: { app?: { server: SocketInfo | null; fetch(request: Request): Response | Promise<Response> } } = {};
  const observer = observeRequests({ logger, metrics, routeOf, trustProxy: config.trustProxy, server: () => listening.app?.server, inFlight });

  // On a listening server get-session is a plain Bun route too: a request that repeats one the fast
  // path answered from the cookie cache gets the kept answer (src/session/memo.ts), observed like any
  // other request; everything else, and everything while the database is known to be down, goes
  // through the app below. app.handle() (tests, in-process use) always takes the app.
  const getSessionRoute = async (request: Request): Promise<Response> => {
    const hit = databaseDown ? null : memo.lookup(request);
    if (hit && notices.trusts(hit.sessionId, hit.userId, hit.issuedAt)) return observer.answered(request, hit.userId, hit.response);
    const response = await listening.app!.fetch(request);
    const answer = (await fastPath)?.cachedAnswerFor(request);
    if (answer) memo.remember(request, response, answer);
    return response;
  };

  const logRefusedOrigin = createRefusedOriginLog(config, logger);
  const app = new Elysia({ serve: { routes: { "/health": { GET: health }, "/api/auth/get-session": { GET: getSessionRoute } } } })
    .wrap(observer.wrap as never)
    // First, so that answers given before any route (CORS preflights, 413s) carry them too.
    .onRequest(({ request, set }) => void Object.assign(set.headers, securityHeadersFor(new URL(request.url).pathname)))
    .onRequest(({ request }) => logRefusedOrigin(request)) // before CORS, which answers preflights itself
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
      if (code === "NOT_FOUND") return errorResponse("NOT_FOUND");
      if (code === "PARSE") return errorResponse("INVALID_BODY");
      if (code === "VALIDATION") return errorResponse("VALIDATION_ERROR");
      const refused = await unavailable(error);
      if (refused) return refused;
      logger.error("unhandled error", error);
      return errorResponse("INTERNAL_ERROR");
    })
    .get("/health", health)
    .get("/metrics", async ({ request }) => {
      if (config.metricsToken === false) return errorResponse("NOT_FOUND");
      if (expectedMetricsAuthorization) {
        // RFC 6750 2.1 (bearer header) and 3 (WWW-Authenticate on a refused request); constant-time compare.
        const sent = Buffer.from(request.headers.get("authorization") ?? "");
        if (sent.length !== expectedMetricsAuthorization.length || !timingSafeEqual(sent, expectedMetricsAuthorization)) {
          return errorResponse("UNAUTHORIZED", { message: "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>", headers: { "www-authenticate": 'Bearer realm="metrics"' } });
        }
      }
      return new Response(metrics.render(), { headers: { "content-type": METRICS_CONTENT_TYPE, "cache-control": "no-store" } });
    })
    .get("/api/auth/reference", async ({ request }) => {
      const document = await apiReference();
      const wantsJson = new URL(request.url).searchParams.get("format") === "json" || /application\/json/.test(request.headers.get("accept") ?? "");
      if (wantsJson) return Response.json(document);
      return new Response(referencePage(document), { headers: { "content-type": "text/html; charset=utf-8" } });
    })
    .get("/api/auth/open-api/generate-schema", async () => Response.json(await apiReference()))
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
    .all("*", () => errorResponse("NOT_FOUND"));
  listening.app = app as unknown as NonNullable<typeof listening.app>;
  return app;
}

export type App = ReturnType<typeof createApp>;
