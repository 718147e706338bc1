// Prometheus metrics of one server instance: HTTP requests by route and status, auth outcomes,
// sessions, the database pool and the process. Written in the Prometheus text exposition format
// (version 0.0.4) by this module: the few metric kinds it needs are a page of code, where prom-client
// added about 3 MB to an idle instance (bench/RESULTS.md), whose budget is 60 MB.
import type { PoolStats } from "./pool-stats.ts";

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export interface Metrics {
  /** One finished HTTP request; `route` is a route template, never a raw path. */
  observeRequest(method: string, route: string, status: number, seconds: number): void;
  sessionCreated(): void;
  sessionRevoked(): void;
  /** An account was locked after repeated failed sign-ins (src/security/lockout.ts). */
  accountLocked(): void;
  /** The text exposition of every metric. */
  render(): string;
}

// Auth requests are a few milliseconds; an argon2id sign-in is tens; the tail is what matters.
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type Labels = Record<string, string>;
const STANDARD_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

const escapeLabel = (value: string) => value.replaceAll("\\", "\\\\").replaceAll('"', '\\"').replaceAll("\n", "\\n");
const labelText = (labels: Labels) => {
  const entries = Object.entries(labels);
  return entries.length ? `{${entries.map(([key, value]) => `${key}="${escapeLabel(value)}"`).join(",")}}` : "";
};
const header = (name: string, help: string, type: string) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;

/** A counter or gauge family: one value per label set. */
class Family {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge",
  ) {}
  add(labels: Labels, amount = 1, key = labelText(labels)): void {
    const entry = this.values.get(key);
    if (entry) entry.value += amount;
    else this.values.set(key, { labels, value: amount });
  }
  set(labels: Labels, value: number): void {
    this.values.set(labelText(labels), { labels, value });
  }
  render(): string {
    let text = header(this.name, this.help, this.type);
    for (const [key, { value }] of this.values) text += `${this.name}${key} ${value}\n`;
    return text;
  }
}

/** A histogram family: cumulative buckets, sum and count per label set. */
class HistogramFamily {
  private readonly series = new Map<string, { labels: Labels; buckets: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly bounds: number[],
  ) {}
  observe(labels: Labels, value: number, key = labelText(labels)): void {
    let entry = this.series.get(key);
    if (!entry) this.series.set(key, (entry = { labels, buckets: this.bounds.map(() => 0), sum: 0, count: 0 }));
    const index = this.bounds.findIndex((bound) => value <= bound);
    if (index >= 0) entry.buckets[index]!++;
    entry.sum += value;
    entry.count++;
  }
  render(): string {
    let text = header(this.name, this.help, "histogram");
    for (const { labels, buckets, sum, count } of this.series.values()) {
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += buckets[i]!;
        text += `${this.name}_bucket${labelText({ ...labels, le: String(bound) })} ${cumulative}\n`;
      });
      text += `${this.name}_bucket${labelText({ ...labels, le: "+Inf" })} ${count}\n`;
      text += `${this.name}_sum${labelText(labels)} ${sum}\n`;
      text += `${this.name}_count${labelText(labels)} ${count}\n`;
    }
    return text;
  }
}

/** "success", "failure" or "rate_limited" (429, ASVS 2.2.1) for a sign-in or sign-up answer. */
function outcome(status: number): "success" | "failure" | "rate_limited" {
  if (status === 429) return "rate_limited";
  return status >= 200 && status < 300 ? "success" : "failure";
}

export function createMetrics(pool?: () => PoolStats, poolMax?: number): Metrics {
  const startTime = Math.round(Date.now() / 1000 - process.uptime());
  const requests = new Family("http_requests_total", "HTTP requests answered, by method, route template and status", "counter");
  const duration = new HistogramFamily(
    "http_request_duration_seconds",
    "Time from receiving a request to its response, by method, route template and status",
    LATENCY_BUCKETS,
  );
  const signIns = new Family("auth_sign_in_total", "Sign-in attempts by result: success, failure (refused credentials or input), rate_limited (429)", "counter");
  const signUps = new Family("auth_sign_up_total", "Sign-up attempts by result: success, failure, rate_limited (429)", "counter");
  const lockouts = new Family(
    "auth_account_lockouts_total",
    "Accounts locked after repeated failed sign-ins (their sign-ins then count as failures, answered like a wrong password)",
    "counter",
  );
  const created = new Family("auth_sessions_created_total", "Sessions created", "counter");
  const revoked = new Family("auth_sessions_revoked_total", "Sessions ended through the server (sign-out, revocation, expiry noticed on use)", "counter");
  for (const result of ["success", "failure", "rate_limited"]) {
    signIns.add({ result }, 0);
    signUps.add({ result }, 0);
  }
  for (const family of [lockouts, created, revoked]) family.add({}, 0);
  const seriesKeys = new Map<string, { labels: Labels; key: string }>();

  /** Gauges read when scraped: the pool and the process. */
  function gauges(): string {
    const memory = process.memoryUsage();
    const cpu = process.cpuUsage();
    const families: Family[] = [];
    const gauge = (name: string, help: string, values: Array<[Labels, number]>) => {
      const family = new Family(name, help, "gauge");
      for (const [labels, value] of values) family.set(labels, value);
      families.push(family);
    };
    if (pool) {
      const stats = pool();
      gauge("db_pool_connections_in_use", "Database connections of this instance busy with a query, a transaction or a reserved session", [[{}, stats.inUse]]);
      gauge("db_pool_waiting", "Database requests of this instance waiting for a free connection", [[{}, stats.waiting]]);
      if (poolMax !== undefined) gauge("db_pool_max", "Size of this instance's database pool", [[{}, poolMax]]);
    }
    gauge("process_resident_memory_bytes", "Resident memory size in bytes", [[{}, memory.rss]]);
    gauge("process_heap_bytes", "JavaScript heap in bytes, by kind: used, total", [
      [{ kind: "used" }, memory.heapUsed],
      [{ kind: "total" }, memory.heapTotal],
    ]);
    gauge("process_cpu_seconds_total", "User and system CPU time spent, in seconds", [[{}, (cpu.user + cpu.system) / 1e6]]);
    gauge("process_start_time_seconds", "Start time of the process, in seconds since the Unix epoch", [[{}, startTime]]);
    return families.map((family) => family.render()).join("");
  }

  return {
    observeRequest(sent, route, status, seconds) {
      // A client chooses the method; a label must not let it mint unbounded series.
      const method = STANDARD_METHODS.has(sent) ? sent : "OTHER";
      // The label text of a (method, route, status) is built once, not on every request.
      const id = `${method} ${route} ${status}`;
      let series = seriesKeys.get(id);
      if (!series) {
        const labels = { method, route, status: String(status) };
        seriesKeys.set(id, (series = { labels, key: labelText(labels) }));
      }
      requests.add(series.labels, 1, series.key);
      duration.observe(series.labels, seconds, series.key);
      if (method !== "POST") return;
      if (route.startsWith("/api/auth/sign-in/")) signIns.add({ result: outcome(status) });
      else if (route.startsWith("/api/auth/sign-up/")) signUps.add({ result: outcome(status) });
    },
    sessionCreated: () => created.add({}),
    sessionRevoked: () => revoked.add({}),
    accountLocked: () => lockouts.add({}),
    render: () => [requests, duration, signIns, signUps, lockouts, created, revoked].map((family) => family.render()).join("") + gauges(),
  };
}
