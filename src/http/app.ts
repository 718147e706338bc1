// The HTTP surface: Better Auth under /api/auth/*, /health, /metrics, the API reference, CORS from
// the one origin list, and JSON errors for everything else. Every request is observed (src/ops/observe.ts).
// The pieces live beside it (health, database gate, auth route, session route, metrics and reference
// routes); createApp composes them.
import { cors } from "@elysiajs/cors";
import { getCookies } from "better-auth/cookies";
import { Elysia } from "elysia";
import type { Auth } from "../auth/better-auth.ts";
import type { SocketInfo } from "../ops/client-ip.ts";
import type { Config } from "../config.ts";
import { poolProbe, type DatabaseProbe, type Sql } from "../db/pool.ts";
import { errorResponse } from "../errors.ts";
import { createSessionFastPath } from "../session/fast-path.ts";
import { NEVER_TRUSTED, type ChangeNotices } from "../session/change-notices.ts";
import { createRefusedOriginLog } from "./refused-origins.ts";
import type { Logger } from "../ops/log.ts";
import { createMetrics, type Metrics } from "../ops/metrics.ts";
import { createInFlight, createRouteResolver, observeRequests, type InFlight } from "../ops/observe.ts";
import { createSessionMemo, type SessionMemo } from "../session/memo.ts";
import { MAX_BODY_BYTES, payloadTooLarge } from "./request-guard.ts";
import { securityHeadersFor } from "./security-headers.ts";
import { createAuthRoute, createCookieResigner } from "./auth-route.ts";
import { createDatabaseGate } from "./database-gate.ts";
import { createHealthRoute, DatabaseHealth } from "./health.ts";
import { metricsRoute } from "./metrics-route.ts";
import { referenceRoute } from "./reference-route.ts";
import { createKeptSessionRoute } from "./session-route.ts";

export { MAX_BODY_BYTES } from "./request-guard.ts";
export { HEALTH_PROBE_REUSE_MS } from "./health.ts";
export { DATABASE_HUNG_PROBES, DATABASE_REQUEST_LIMIT_MS, DATABASE_WAIT_MS, UNAVAILABLE_RETRY_AFTER_S } from "./database-gate.ts";

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

export function createApp({ config, auth, sql, probe = poolProbe(sql), logger, version, metrics = createMetrics(), sessionMemo: memo = createSessionMemo({ cookies: getCookies(auth.options), trustedOrigins: config.corsOrigins }), inFlight = createInFlight(), notices = NEVER_TRUSTED }: AppDependencies) {
  const database = new DatabaseHealth(probe);
  const health = createHealthRoute(database, version);
  const gate = createDatabaseGate(database, inFlight, logger);
  const fastPath = createSessionFastPath(auth, sql, logger, notices).catch((error) => {
    logger.error("session fast path disabled", error);
    return null;
  });
  const authRoutes = Object.values(auth.api as Record<string, { path?: string }>).flatMap((endpoint) => (endpoint.path ? [`${AUTH_BASE_PATH}${endpoint.path}`] : []));
  const routeOf = createRouteResolver([...APP_ROUTES, ...authRoutes]);
  const resign = createCookieResigner(config);
  const toBetterAuth = createAuthRoute({ auth, config, notices, gate, resign, routeOf });

  // The listening server exists only after listen(); the observer asks for it per request.
  const listening: { app?: { server: SocketInfo | null; fetch(request: Request): Response | Promise<Response> } } = {};
  const observer = observeRequests({ logger, metrics, routeOf, trustProxy: config.trustProxy, server: () => listening.app?.server, inFlight });
  // On a listening server /health and get-session are plain Bun routes, outside Elysia's hooks: load
  // balancers poll /health, it needs no CORS, and the hooks cost a third of its throughput
  // (bench/RESULTS.md); get-session answers kept answers (src/http/session-route.ts).
  // app.handle() (tests, in-process use) reaches the Elysia routes below.
  const getSessionRoute = createKeptSessionRoute({ memo, notices, database, fastPath, observer, app: (request) => listening.app!.fetch(request) });

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
      const refused = await gate.unavailable(error);
      if (refused) return refused;
      logger.error("unhandled error", error);
      return errorResponse("INTERNAL_ERROR");
    })
    .get("/health", health)
    .use(metricsRoute(config, metrics))
    .use(referenceRoute(auth, config, AUTH_BASE_PATH, version))
    .get(
      "/api/auth/get-session",
      ({ request, server }) => gate.whileDatabaseAnswers(async () => (await (await fastPath)?.getSession(resign(request))) ?? toBetterAuth(request, server)),
      { parse: "none" },
    )
    .get(
      "/api/auth/token",
      ({ request, server }) => gate.whileDatabaseAnswers(async () => (await (await fastPath)?.token(resign(request))) ?? toBetterAuth(request, server)),
      { parse: "none" },
    )
    .all("/api/auth/*", ({ request, server }) => gate.whileDatabaseAnswers(() => toBetterAuth(request, server)), { parse: "none" })
    .all("*", () => errorResponse("NOT_FOUND"));
  listening.app = app as unknown as NonNullable<typeof listening.app>;
  return app;
}

export type App = ReturnType<typeof createApp>;
