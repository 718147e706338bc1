// GET /metrics: the Prometheus text, behind METRICS_TOKEN when one is set, absent when it is "off".
import { timingSafeEqual } from "node:crypto";
import { Elysia } from "elysia";
import type { Config } from "../config.ts";
import { errorResponse } from "../errors.ts";
import { METRICS_CONTENT_TYPE, type Metrics } from "../ops/metrics.ts";

export function metricsRoute(config: Config, metrics: Metrics) {
  const expectedMetricsAuthorization = config.metricsToken ? Buffer.from(`Bearer ${config.metricsToken}`) : null;
  return new Elysia({ name: "metrics-route" }).get("/metrics", async ({ request }) => {
    if (config.metricsToken === false) return errorResponse("NOT_FOUND");
    if (expectedMetricsAuthorization) {
      // RFC 6750 2.1 (bearer header) and 3 (WWW-Authenticate on a refused request); constant-time compare.
      const sent = Buffer.from(request.headers.get("authorization") ?? "");
      if (sent.length !== expectedMetricsAuthorization.length || !timingSafeEqual(sent, expectedMetricsAuthorization)) {
        return errorResponse("UNAUTHORIZED", { message: "GET /metrics needs Authorization: Bearer <METRICS_TOKEN>", headers: { "www-authenticate": 'Bearer realm="metrics"' } });
      }
    }
    return new Response(metrics.render(), { headers: { "content-type": METRICS_CONTENT_TYPE, "cache-control": "no-store" } });
  });
}
