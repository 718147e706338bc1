// The HTTP surface: Better Auth under /api/auth/*, /health, CORS from the one origin list, and JSON
// errors for everything else.
import { cors } from "@elysiajs/cors";
import { Elysia } from "elysia";
import { CLIENT_IP_HEADER, type Auth } from "./auth.ts";
import { clientIp } from "./client-ip.ts";
import type { Config } from "./config.ts";
import { checkDatabase, type Sql } from "./db.ts";
import { answeringMailFailures } from "./email-flows.ts";
import { errorResponse } from "./errors.ts";
import { createSessionFastPath } from "./fast-session.ts";
import { normaliseLinkResponse } from "./link-errors.ts";
import type { Logger } from "./log.ts";
import { guardAuthRequest, MAX_BODY_BYTES, payloadTooLarge } from "./request-guard.ts";

export { MAX_BODY_BYTES } from "./request-guard.ts";
// A successful database probe is reused this long, so a load balancer polling /health (or a load
// test) costs one query a second, not one per request. Failures are never reused.
export const HEALTH_PROBE_REUSE_MS = 1000;

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
  const databaseHealth = async () => {
    if (Date.now() - lastHealthy < HEALTH_PROBE_REUSE_MS) return { ok: true } as const;
    probe ??= checkDatabase(sql, 1000).finally(() => (probe = null));
    const result = await probe;
    if (result.ok) lastHealthy = Date.now();
    return result;
  };

  const fastPath = createSessionFastPath(auth, sql, logger).catch((error) => {
    logger.error("session fast path disabled", error);
    return null;
  });
  const toBetterAuth = async (received: Request, server: Parameters<typeof clientIp>[1]) => {
    const request = await guardAuthRequest(received);
    if (request instanceof Response) return request;
    const ip = clientIp(received, server, config.trustProxy);
    if (ip) request.headers.set(CLIENT_IP_HEADER, ip);
    else request.headers.delete(CLIENT_IP_HEADER);
    const response = await answeringMailFailures(() => auth.handler(request));
    // Better Auth answers an unknown endpoint (or a known one with the wrong method) with an empty 404.
    if (response.status === 404 && !response.headers.get("content-type")) return errorResponse(404, "NOT_FOUND", "no such route");
    return normaliseLinkResponse(request, response, config);
  };

  return new Elysia()
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
    .onError(({ code, error }) => {
      if (code === "NOT_FOUND") return errorResponse(404, "NOT_FOUND", "no such route");
      if (code === "PARSE") return errorResponse(400, "INVALID_BODY", "the request body could not be parsed");
      if (code === "VALIDATION") return errorResponse(400, "VALIDATION_ERROR", "the request is not valid");
      logger.error("unhandled error", error);
      return errorResponse(500, "INTERNAL_ERROR", "something went wrong; it has been logged");
    })
    .get("/health", async ({ set }) => {
      const database = await databaseHealth();
      const body = { status: database.ok ? "ok" : "degraded", service: "auth-server", version, timestamp: new Date().toISOString() };
      if (database.ok) return body;
      set.status = 503;
      return { ...body, reason: `database: ${database.reason}` };
    })
    .get("/api/auth/get-session", async ({ request, server }) => (await (await fastPath)?.getSession(request)) ?? toBetterAuth(request, server), {
      parse: "none",
    })
    .get("/api/auth/token", async ({ request, server }) => (await (await fastPath)?.token(request)) ?? toBetterAuth(request, server), {
      parse: "none",
    })
    .all("/api/auth/*", ({ request, server }) => toBetterAuth(request, server), { parse: "none" })
    .all("*", () => errorResponse(404, "NOT_FOUND", "no such route"));
}

export type App = ReturnType<typeof createApp>;
