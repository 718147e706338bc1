// Prometheus metrics of one server instance (prom-client, its own registry per app): HTTP requests
// by route and status, auth outcomes, sessions, the database pool and the process's memory.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { PoolStats } from "./pool-stats.ts";

export interface Metrics {
  registry: Registry;
  /** One finished HTTP request; `route` is a route template, never a raw path. */
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  sessionCreated(): void;
  sessionRevoked(): void;
  /** Prometheus text exposition of every metric. */
  render(): Promise<string>;
}

// Auth requests are a few milliseconds; an argon2id sign-in is tens; the tail is what matters.
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** "success", "failure" or "locked" (rate limited, ASVS 2.2.1) for a sign-in or sign-up answer. */
function outcome(status: number): "success" | "failure" | "locked" {
  if (status === 429) return "locked";
  return status >= 200 && status < 300 ? "success" : "failure";
}

export function createMetrics(pool?: () => PoolStats, poolMax?: number): Metrics {
  const registry = new Registry();
  // process_resident_memory_bytes, process_heap_bytes, nodejs_heap_size_used_bytes, GC, event loop lag...
  collectDefaultMetrics({ register: registry });

  const requests = new Counter({
    name: "http_requests_total",
    help: "HTTP requests answered, by method, route template and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: "http_request_duration_seconds",
    help: "Time from receiving a request to its response, by method, route template and status",
    labelNames: ["method", "route", "status"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const signIns = new Counter({
    name: "auth_sign_in_total",
    help: "Sign-in attempts by result: success, failure (refused credentials or input), locked (rate limited)",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  const signUps = new Counter({
    name: "auth_sign_up_total",
    help: "Sign-up attempts by result: success, failure, locked (rate limited)",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  const sessionsCreated = new Counter({ name: "auth_sessions_created_total", help: "Sessions created", registers: [registry] });
  const sessionsRevoked = new Counter({
    name: "auth_sessions_revoked_total",
    help: "Sessions ended through the server (sign-out, revocation, expiry noticed on use)",
    registers: [registry],
  });
  for (const result of ["success", "failure", "locked"] as const) {
    signIns.inc({ result }, 0);
    signUps.inc({ result }, 0);
  }
  if (pool) {
    new Gauge({
      name: "db_pool_connections_in_use",
      help: "Database connections of this instance busy with a query, a transaction or a reserved session",
      registers: [registry],
      collect() {
        this.set(pool().inUse);
      },
    });
    new Gauge({
      name: "db_pool_waiting",
      help: "Database requests of this instance waiting for a free connection",
      registers: [registry],
      collect() {
        this.set(pool().waiting);
      },
    });
    if (poolMax !== undefined) {
      new Gauge({ name: "db_pool_max", help: "Size of this instance's database pool", registers: [registry] }).set(poolMax);
    }
  }

  return {
    registry,
    observeRequest(method, route, status, seconds) {
      const labels = { method, route, status: String(status) };
      requests.inc(labels);
      duration.observe(labels, seconds);
      if (method !== "POST") return;
      if (route.startsWith("/api/auth/sign-in/")) signIns.inc({ result: outcome(status) });
      else if (route.startsWith("/api/auth/sign-up/")) signUps.inc({ result: outcome(status) });
    },
    sessionCreated: () => sessionsCreated.inc(),
    sessionRevoked: () => sessionsRevoked.inc(),
    render: () => registry.metrics(),
  };
}
