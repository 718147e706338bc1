// Request ids, one structured log line per request with nothing secret in it, Prometheus metrics,
// and the OpenAPI reference.
import { describe, expect, test } from "bun:test";
import { createLogger } from "../../src/ops/log.ts";
import { pathOf } from "../../src/ops/observe.ts";
import { trackPool } from "../../src/ops/pool-stats.ts";
import { createPool } from "../../src/db/pool.ts";
import { cleanUpAfterFile, createTestApp, createTestDatabase, metricSample, PASSWORD, SITE_ORIGIN, sessionCookieOf, signUp, startTestServer, TEST_SECRET, uniqueEmail, expectError, post, attemptSignIn } from "../helpers.ts";

cleanUpAfterFile();

const lines: string[] = [];
const t = await createTestApp({}, createLogger("debug", (line) => lines.push(line), "json"));
const parsed = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
const requestLines = () => parsed().filter((line) => line.msg === "request");

const metricsText = async () => (await t.request("/metrics")).text();

describe("request ids", () => {
  test("a request without X-Request-Id gets a new UUID, echoed in the response and its log line", async () => {
    lines.length = 0;
    const response = await t.request("/health");
    const id = response.headers.get("x-request-id");
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(requestLines().at(-1)!.requestId).toBe(id);
  });

  test("a sane client X-Request-Id is kept; one that could forge log content is replaced", async () => {
    const kept = await t.request("/health", { headers: { "x-request-id": "lb-1234.abc:9" } });
    expect(kept.headers.get("x-request-id")).toBe("lb-1234.abc:9");
    const forged = await t.request("/health", { headers: { "x-request-id": 'x" level=error {"user":"admin"}' } });
    expect(forged.headers.get("x-request-id")).not.toContain('"');
    expect(forged.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("errors and early refusals carry the id too", async () => {
    const missing = await t.request("/no/such/route", { headers: { "x-request-id": "req-404" } });
    expect(missing.status).toBe(404);
    expect(missing.headers.get("x-request-id")).toBe("req-404");
    const tooLarge = await t.request("/api/auth/sign-in/email", {
      method: "POST",
      headers: { "content-length": String(1024 * 1024), "x-request-id": "req-413" },
      json: {},
    });
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.headers.get("x-request-id")).toBe("req-413");
  });
});

describe("structured request logs", () => {
  test("one JSON line per request: time, request id, method, route template, status, duration, ip, user id", async () => {
    const { cookie, userId } = await signUp(t);
    lines.length = 0;
    const response = await t.request("/api/auth/get-session", { headers: { cookie, "x-request-id": "one-line" } });
    expect(response.status).toBe(200);
    const mine = requestLines().filter((line) => line.requestId === "one-line");
    expect(mine.length).toBe(1);
    const line = mine[0]!;
    expect(line).toMatchObject({ level: "info", method: "GET", route: "/api/auth/get-session", status: 200, userId });
    expect(new Date(line.time as string).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(typeof line.durationMs).toBe("number");
    expect("ip" in line).toBe(true);
  });

  test("the user id is known after sign-in and sign-up (Better Auth's answer), and null when anonymous", async () => {
    const email = uniqueEmail("logid");
    lines.length = 0;
    const { userId } = await signUp(t, { email });
    expect(requestLines().find((line) => line.route === "/api/auth/sign-up/email")!.userId).toBe(userId);
    await attemptSignIn(t, email);
    expect(requestLines().find((line) => line.route === "/api/auth/sign-in/email")!.userId).toBe(userId);
    await t.request("/api/auth/get-session");
    expect(requestLines().at(-1)!.userId).toBeNull();
  });

  test("the path of a request URL, without its query or fragment", () => {
    expect(pathOf("http://localhost:3001/api/auth/get-session?disableRefresh=true")).toBe("/api/auth/get-session");
    expect(pathOf("https://auth.example.com/health#x")).toBe("/health");
    expect(pathOf("http://[::1]:3001/metrics")).toBe("/metrics");
    expect(pathOf("http://localhost:3001")).toBe("/");
    expect(pathOf("http://localhost:3001/a?b=/c")).toBe("/a");
  });

  test("a path holding a token is logged as its route template, an unknown path as (unmatched)", async () => {
    lines.length = 0;
    await t.request("/api/auth/reset-password/secret-reset-token-123");
    await t.request("/private/ada@example.com/secret-path");
    const routes = requestLines().map((line) => line.route);
    expect(routes).toContain("/api/auth/reset-password/:token");
    expect(routes).toContain("(unmatched)");
    expect(lines.join("\n")).not.toContain("secret-reset-token-123");
    expect(lines.join("\n")).not.toContain("secret-path");
  });

  test("a whole session's logs at debug level hold no password, token, cookie, secret or full email address", async () => {
    lines.length = 0;
    const email = uniqueEmail("secret.person");
    const { cookie, token } = await signUp(t, { email });
    const signIn = await attemptSignIn(t, email);
    const signInCookie = sessionCookieOf(signIn);
    await t.request("/api/auth/sign-in/email", { method: "POST", json: { email, password: `${PASSWORD}-wrong` } });
    await t.request("/api/auth/sign-up/email", { method: "POST", json: { name: "Dup", email, password: PASSWORD } });
    const jwt = ((await (await t.request("/api/auth/token", { headers: { cookie } })).json()) as { token: string }).token;
    await t.request("/api/auth/get-session", { headers: { cookie: signInCookie } });
    await t.request("/api/auth/sign-out", { method: "POST", headers: { cookie } });
    const all = lines.join("\n");
    expect(lines.length).toBeGreaterThan(6);
    for (const secret of [PASSWORD, token, decodeURIComponent(cookie.split("=")[1]!), cookie.split("=")[1]!, TEST_SECRET, email, jwt]) {
      expect(all).not.toContain(secret);
    }
    expect(all).not.toContain(email.split("@")[0]!);
  });

  test("fields named like a secret are censored at any depth; emails are masked in messages, fields and errors", () => {
    const out: string[] = [];
    const logger = createLogger("debug", (line) => out.push(line), "json");
    logger.info("signed up ada.lovelace@example.com", { token: "tok-1", user: { email: "ada.lovelace@example.com", password: "pw-1", nested: [{ cookie: "c-1" }] } });
    logger.error("insert failed", new Error('duplicate key (email)=(grace@example.org)'));
    const [first, second] = out.map((line) => JSON.parse(line));
    expect(first).toMatchObject({ msg: "signed up a***@example.com", token: "[redacted]", user: { email: "a***@example.com", password: "[redacted]", nested: [{ cookie: "[redacted]" }] } });
    expect(second.err.type).toBe("Error");
    expect(second.err.message).toBe("duplicate key (email)=(g***@example.org)");
    expect(out.join("\n")).not.toMatch(/tok-1|pw-1|c-1|lovelace|grace@/);
  });

  test("LOG_LEVEL=warn writes no request lines; a pretty logger writes readable ones", async () => {
    const quiet: string[] = [];
    const warnApp = await createTestApp({}, createLogger("warn", (line) => quiet.push(line), "json"));
    await warnApp.request("/api/auth/get-session");
    expect(quiet.filter((line) => line.includes('"msg":"request"'))).toEqual([]);
    const pretty: string[] = [];
    const prettyApp = await createTestApp({}, createLogger("info", (line) => pretty.push(line), "pretty"));
    await prettyApp.request("/api/auth/get-session", { headers: { "x-request-id": "pretty-1" } });
    expect(pretty.some((line) => /^\d{4}-\d\d-\d\dT\S+ INFO  request \{.*"requestId":"pretty-1"/.test(line))).toBe(true);
  });

  test("on a real socket the client IP is the peer address", async () => {
    const served: string[] = [];
    const { startServer } = await import("../../src/index.ts");
    const db = await createTestDatabase("logip");
    const { testConfig, onCleanup } = await import("../helpers.ts");
    const running = await startServer(testConfig({ DATABASE_URL: db.url, PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info" }), createLogger("info", (line) => served.push(line), "json"));
    onCleanup(() => running.stop());
    const response = await fetch(`${running.url}/api/auth/get-session`, { headers: { origin: SITE_ORIGIN, "x-request-id": "socket-ip" } });
    expect(response.headers.get("x-request-id")).toBe("socket-ip");
    const line = served.map((text) => JSON.parse(text)).find((entry) => entry.requestId === "socket-ip");
    expect(line.ip).toBe("127.0.0.1");
  });
});

describe("metrics", () => {
  test("GET /metrics is Prometheus text with request counts and latency by route and status", async () => {
    await t.request("/api/auth/get-session");
    await t.request("/no/such/route");
    const response = await t.request("/metrics");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/plain");
    const text = await response.text();
    expect(text).toContain("# TYPE http_requests_total counter");
    expect(text).toContain("# TYPE http_request_duration_seconds histogram");
    expect(metricSample(text, "http_requests_total", { method: "GET", route: "/api/auth/get-session", status: "200" })).toBeGreaterThan(0);
    expect(metricSample(text, "http_requests_total", { route: "(unmatched)", status: "404" })).toBeGreaterThan(0);
    expect(metricSample(text, "http_request_duration_seconds_count", { route: "/api/auth/get-session", status: "200" })).toBeGreaterThan(0);
    expect(text).not.toContain("/no/such/route");
    // Histogram buckets are cumulative and end in +Inf = count.
    const labels = { method: "GET", route: "/api/auth/get-session", status: "200" };
    const buckets = ["0.001", "0.01", "0.1", "1", "10", "+Inf"].map((le) => metricSample(text, "http_request_duration_seconds_bucket", { ...labels, le })!);
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b));
    expect(buckets.at(-1)).toBe(metricSample(text, "http_request_duration_seconds_count", labels)!);
    expect(metricSample(text, "http_request_duration_seconds_sum", labels)).toBeGreaterThan(0);
    // Every sample line is `name{labels} value` with a HELP and TYPE before its family.
    for (const line of text.trim().split("\n")) {
      expect(line).toMatch(/^(# (HELP|TYPE) [a-z_:][a-z0-9_:]* .+|[a-z_:][a-z0-9_:]*(\{[a-z_]+="(?:[^"\\\n]|\\.)*"(,[a-z_]+="(?:[^"\\\n]|\\.)*")*\})? -?[0-9.e+-]+)$/);
    }
  });

  test("labels stay bounded: an unusual method is OTHER, an unknown path (unmatched)", async () => {
    await t.request("/health", { method: "PROPFIND" });
    await t.request(`/random/${crypto.randomUUID()}`);
    const text = await metricsText();
    expect(metricSample(text, "http_requests_total", { method: "OTHER" })).toBeGreaterThan(0);
    expect(text).not.toContain("PROPFIND");
  });

  test("sign-in and sign-up successes and failures, and sessions created and revoked, are counted", async () => {
    const before = await metricsText();
    const email = uniqueEmail("count");
    const { cookie } = await signUp(t, { email });
    await attemptSignIn(t, email);
    await t.request("/api/auth/sign-in/email", { method: "POST", json: { email, password: "wrong-password-1" } });
    await t.request("/api/auth/sign-up/email", { method: "POST", json: { name: "x", email, password: PASSWORD } });
    await t.request("/api/auth/sign-out", { method: "POST", headers: { cookie } });
    const after = await metricsText();
    const delta = (name: string, labels: Record<string, string> = {}) => (metricSample(after, name, labels) ?? 0) - (metricSample(before, name, labels) ?? 0);
    expect(delta("auth_sign_up_total", { result: "success" })).toBe(1);
    expect(delta("auth_sign_up_total", { result: "failure" })).toBe(1);
    expect(delta("auth_sign_in_total", { result: "success" })).toBe(1);
    expect(delta("auth_sign_in_total", { result: "failure" })).toBe(1);
    expect(delta("auth_sessions_created_total")).toBe(2);
    expect(delta("auth_sessions_revoked_total")).toBe(1);
  });

  test("sign-ins refused by the rate limiter count as rate_limited", async () => {
    const server = await startTestServer({ RATE_LIMIT: "on" });
    const email = uniqueEmail("rate-limited");
    await post(server, "/api/auth/sign-up/email", { name: "L", email, password: PASSWORD });
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await post(server, "/api/auth/sign-in/email", { email, password: "wrong-password-1" })).status);
    expect(statuses).toContain(429);
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(metricSample(text, "auth_sign_in_total", { result: "rate_limited" })).toBe(statuses.filter((s) => s === 429).length);
    expect(metricSample(text, "auth_sign_in_total", { result: "failure" })).toBe(statuses.filter((s) => s === 401).length);
  });

  test("an account locked after repeated failed sign-ins is counted once", async () => {
    const strict = await createTestApp({ LOCKOUT_MAX_FAILURES: "3" });
    const email = uniqueEmail("lockout");
    await signUp(strict, { email });
    for (let i = 0; i < 5; i++) {
      await strict.request("/api/auth/sign-in/email", { method: "POST", json: { email, password: `wrong-password-${i}` } });
    }
    const text = await (await strict.request("/metrics")).text();
    expect(metricSample(text, "auth_account_lockouts_total")).toBe(1);
    expect(metricSample(text, "auth_sign_in_total", { result: "failure" })).toBe(5);
  });

  test("process memory and the database pool are exported", async () => {
    const text = await metricsText();
    expect(metricSample(text, "process_resident_memory_bytes")).toBeGreaterThan(1024 * 1024);
    expect(metricSample(text, "db_pool_connections_in_use")).toBeGreaterThanOrEqual(0);
    expect(metricSample(text, "db_pool_waiting")).toBe(0);
    expect(metricSample(text, "db_pool_max")).toBe(t.config.databasePoolMax);
  });

  test("pool gauges: a transaction holds a connection; queries beyond the pool size wait", async () => {
    const db = await createTestDatabase("pool");
    const raw = createPool(db.url, { max: 2 });
    const pool = trackPool(raw, 2);
    try {
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const transaction = pool.sql.begin(async (tx) => {
        await tx`select 1`;
        await held;
      });
      await Bun.sleep(50);
      expect(pool.stats()).toEqual({ inUse: 1, waiting: 0 });
      const sleeps = [1, 2, 3].map(() => pool.sql`select pg_sleep(0.3)`.then(() => undefined));
      await Bun.sleep(100);
      expect(pool.stats()).toEqual({ inUse: 2, waiting: 2 });
      release();
      await Promise.all([transaction, ...sleeps]);
      const reserved = await pool.sql.reserve();
      expect(pool.stats().inUse).toBe(1);
      reserved.release();
      expect(pool.stats()).toEqual({ inUse: 0, waiting: 0 });
      // A fragment nested in another query is not a query of its own.
      const rows = await pool.sql`select one from (${pool.sql`select 1 as one`}) nested`;
      expect(rows[0]!.one).toBe(1);
      expect(pool.stats()).toEqual({ inUse: 0, waiting: 0 });
    } finally {
      await raw.end({ timeout: 1 });
    }
  });

  test("with METRICS_TOKEN=off there is no /metrics: a JSON 404, with or without a bearer token", async () => {
    const off = await createTestApp({ METRICS_TOKEN: "off" });
    for (const headers of [{}, { authorization: "Bearer off" }] as Record<string, string>[]) {
      const response = await off.request("/metrics", { headers });
      await expectError(response, 404, "NOT_FOUND");
    }
  });

  test("with METRICS_TOKEN, /metrics answers 401 without the bearer token and 200 with it", async () => {
    const token = "metrics-token-0123456789abcdef";
    const guarded = await createTestApp({ METRICS_TOKEN: token });
    const none = await guarded.request("/metrics");
    expect(none.headers.get("www-authenticate")).toContain("Bearer");
    await expectError(none, 401, "UNAUTHORIZED");
    expect((await guarded.request("/metrics", { headers: { authorization: "Bearer wrong-token-0123456789abcd" } })).status).toBe(401);
    const ok = await guarded.request("/metrics", { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("http_requests_total");
  });
});

describe("API reference", () => {
  test("GET /api/auth/reference?format=json is an OpenAPI 3.1 document of every auth endpoint and the app's routes", async () => {
    const response = await t.request("/api/auth/reference?format=json");
    expect(response.status).toBe(200);
    const document = (await response.json()) as { openapi: string; servers: { url: string }[]; paths: Record<string, Record<string, unknown>> };
    expect(document.openapi).toStartWith("3.1");
    expect(document.servers[0]!.url).toBe(t.config.baseUrl);
    for (const path of ["/api/auth/sign-up/email", "/api/auth/sign-in/email", "/api/auth/get-session", "/api/auth/sign-out", "/api/auth/token", "/api/auth/jwks"]) {
      expect(Object.keys(document.paths)).toContain(path);
    }
    expect(Object.keys(document.paths["/health"]!)).toEqual(["get"]);
    expect(Object.keys(document.paths["/metrics"]!)).toEqual(["get"]);
    // The same document with Accept: application/json, and at the plugin's own schema route.
    const viaAccept = await (await t.request("/api/auth/reference", { headers: { accept: "application/json" } })).json();
    expect(viaAccept).toEqual(document);
    expect(await (await t.request("/api/auth/open-api/generate-schema")).json()).toEqual(document);
  });

  test("GET /api/auth/reference in a browser is an HTML page embedding that document", async () => {
    const response = await t.request("/api/auth/reference");
    expect(response.headers.get("content-type")).toContain("text/html");
    const html = await response.text();
    const inline = /<script id="api-reference" type="application\/json">([\s\S]*?)<\/script>/.exec(html)![1]!;
    const document = JSON.parse(inline) as { paths: Record<string, unknown> };
    expect(Object.keys(document.paths)).toContain("/api/auth/sign-in/email");
    expect(Object.keys(document.paths)).toContain("/health");
  });
});
