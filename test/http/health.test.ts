// GET /health: liveness plus database reachability, answering 503 with a reason within about a second
// and a half when Postgres is refused, hangs or goes away; and the JSON 404 for unknown routes.
import { describe, expect, test } from "bun:test";
import { createServer, type Socket } from "node:net";
import { createApp, HEALTH_PROBE_REUSE_MS } from "../../src/http/app.ts";
import { createAuth } from "../../src/auth/better-auth.ts";
import type { Config } from "../../src/config.ts";
import { createDatabaseProbe, createPool } from "../../src/db/pool.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { ADMIN_URL, cleanUpAfterFile, createTestApp, createTestDatabase, freePort, onCleanup, quietLogger, SITE_ORIGIN, startTestServer, testConfig, expectError } from "../helpers.ts";
import { postgresProxy } from "../postgres-proxy.ts";

cleanUpAfterFile();

const t = await createTestApp();

/** The app in process on a pool and a probe connection (as the server opens them) to Postgres (or not) at `url`. */
function appOn(url: string) {
  const config = testConfig({ DATABASE_URL: url }) as Config & { secret: string };
  const sql = createPool(url, { max: 2 });
  const probe = createDatabaseProbe(url);
  onCleanup(() => Promise.all([sql.end({ timeout: 0 }), probe.close()]));
  const auth = createAuth({ config, sql, logger: quietLogger });
  const app = createApp({ config, auth, sql, probe, logger: quietLogger, version: "test" });
  const request = (path: string, init?: RequestInit) => app.handle(new Request(new URL(path, config.baseUrl).toString(), init));
  return Object.assign(request, { sql });
}

/** GET /health, with the time it took. */
async function health(request: ReturnType<typeof appOn>) {
  const started = performance.now();
  const response = await request("/health");
  const body = (await response.json()) as Record<string, unknown>;
  return { status: response.status, body, ms: performance.now() - started };
}

function withPort(url: string, port: number, database?: string): string {
  const target = new URL(url);
  target.hostname = "127.0.0.1";
  target.port = String(port);
  if (database) target.pathname = `/${database}`;
  return target.toString();
}

describe("GET /health", () => {
  test("answers 200 with status ok, the service name, its version and the current time", async () => {
    const response = await t.request("/health");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("application/json");
    const body = (await response.json()) as Record<string, string>;
    expect(Object.keys(body).sort()).toEqual(["service", "status", "timestamp", "version"]);
    expect(body).toMatchObject({ status: "ok", service: "auth-server", version: "test" });
    expect(body.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    expect(Math.abs(Date.parse(body.timestamp!) - Date.now())).toBeLessThan(5000);
  });

  test("a listening server answers it over the socket with the same body (a plain Bun route), and other methods get the JSON 404", async () => {
    const server = await startTestServer();
    const response = await fetch(`${server.url}/health`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("application/json");
    const body = (await response.json()) as Record<string, string>;
    expect(Object.keys(body).sort()).toEqual(["service", "status", "timestamp", "version"]);
    expect(body).toMatchObject({ status: "ok", service: "auth-server" });
    expect(Math.abs(Date.parse(body.timestamp!) - Date.now())).toBeLessThan(5000);
    const post = await fetch(`${server.url}/health`, { method: "POST" });
    await expectError(post, 404, "NOT_FOUND");
  });

  test("with the database refused it answers 503, status degraded and a reason, within 1.5 s", async () => {
    const request = appOn(withPort(ADMIN_URL, freePort()));
    const { status, body, ms } = await health(request);
    expect(status).toBe(503);
    expect(body).toMatchObject({ status: "degraded", service: "auth-server", version: "test" });
    expect(body.reason).toStartWith("database: ");
    expect(ms).toBeLessThan(1500);
  });

  test("with a database that accepts connections but never answers it answers 503 within 1.5 s", async () => {
    const silent = createServer(() => {});
    const held: Socket[] = [];
    silent.on("connection", (socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    onCleanup(() => new Promise((resolve) => (held.forEach((socket) => socket.destroy()), silent.close(resolve))));
    const request = appOn(withPort(ADMIN_URL, (silent.address() as { port: number }).port));

    const { status, body, ms } = await health(request);

    expect(status).toBe(503);
    expect(body.status).toBe("degraded");
    expect(body.reason).toContain("did not answer within");
    expect(ms).toBeLessThan(1500);
  });

  test("when the database goes away it turns 503 within 1.5 s of the last good probe's reuse window, and back to 200 when it returns", async () => {
    const db = await createTestDatabase("health_proxy");
    await applyMigrations(db.sql);
    const proxy = postgresProxy();
    const port = await proxy.start();
    const request = appOn(withPort(ADMIN_URL, port, db.name));

    expect((await health(request)).status).toBe(200);

    await proxy.stop();
    await Bun.sleep(HEALTH_PROBE_REUSE_MS + 50);
    const down = await health(request);
    expect(down.status).toBe(503);
    expect(down.body.status).toBe("degraded");
    expect(typeof down.body.reason).toBe("string");
    expect(down.ms).toBeLessThan(1500);

    // A failure is never reused: the next probe after the database returns answers 200.
    await proxy.start();
    let recovered = 0;
    for (let attempt = 0; attempt < 20 && recovered !== 200; attempt++) {
      recovered = (await health(request)).status;
      if (recovered !== 200) await Bun.sleep(100);
    }
    expect(recovered).toBe(200);
  });

  test("while the pool waits out its reconnection backoff, a refused database still reads as refused: /health and a sign-in answer 503 at once", async () => {
    const request = appOn(withPort(ADMIN_URL, freePort()));
    // Each refused attempt doubles the pool's wait before the next one (up to 2 s); a probe through
    // the pool would then time out and a refusal would look like a slow database.
    let poolWaitMs = 0;
    for (let attempt = 0; attempt < 10 && poolWaitMs <= 1000; attempt++) {
      const started = performance.now();
      await request.sql`select 1`.catch(() => {});
      poolWaitMs = performance.now() - started;
    }
    expect(poolWaitMs).toBeGreaterThan(1000);

    const down = await health(request);
    expect(down.status).toBe(503);
    expect(down.body.reason).toContain("ECONNREFUSED");
    expect(down.ms).toBeLessThan(500);

    const started = performance.now();
    const signIn = await request("/api/auth/sign-in/email", {
      method: "POST",
      headers: { "content-type": "application/json", origin: SITE_ORIGIN },
      body: JSON.stringify({ email: "nobody@example.com", password: "long enough password" }),
    });
    await expectError(signIn, 503, "DATABASE_UNAVAILABLE");
    expect(performance.now() - started).toBeLessThan(500);
  });

  test("a probe after one that hung opens a new connection instead of waiting behind the hung attempt", async () => {
    // The first connection is accepted and never answered; later ones reach Postgres.
    const proxy = postgresProxy({ silentFirst: true });
    const probe = createDatabaseProbe(withPort(ADMIN_URL, await proxy.start()));
    onCleanup(() => probe.close());

    const hung = await probe.check(300);
    expect(hung).toMatchObject({ ok: false, timedOut: true });
    const started = performance.now();
    expect(await probe.check(1000)).toEqual({ ok: true });
    expect(performance.now() - started).toBeLessThan(300);
    expect(proxy.accepted()).toBe(2);
  });

  test("concurrent probes while the database is refused all answer 503", async () => {
    const request = appOn(withPort(ADMIN_URL, freePort()));
    const results = await Promise.all(Array.from({ length: 5 }, () => health(request)));
    expect(results.map((result) => result.status)).toEqual([503, 503, 503, 503, 503]);
  });
});

describe("unknown routes", () => {
  test.each([
    ["GET", "/nope"],
    ["POST", "/nope/deeper"],
    ["DELETE", "/health"],
    ["GET", "/api/auth"],
    ["GET", "/api/auth/no-such-endpoint"],
    ["POST", "/api/auth/no-such-endpoint"],
    ["GET", "/api/auth/sign-in/email"],
  ])("%s %s answers a JSON 404 with code NOT_FOUND", async (method, path) => {
    const response = await t.request(path, { method });
    await expectError(response, 404, "NOT_FOUND");
  });
});
