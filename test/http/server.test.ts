// The whole server on a real socket: CORS and Better Auth's trusted origins from one list, the client
// IP from the socket unless a proxy is trusted, and start/stop of the real entry point.
import { describe, expect, test } from "bun:test";
import packageJson from "../../package.json" with { type: "json" };
import { CLIENT_IP_HEADER } from "../../src/ops/client-ip.ts";
import {
  buildBundle,
  cleanUpAfterFile,
  createTestDatabase,
  freePort,
  openRawPost,
  PASSWORD,
  SITE_ORIGIN,
  spawnProject,
  spawnServer,
  startTestServer,
  TEST_SECRET,
  uniqueEmail,
  waitForHealth,
  expectError,
} from "../helpers.ts";

cleanUpAfterFile();

const server = await startTestServer();

function preflight(url: string, origin: string) {
  return fetch(`${url}/api/auth/sign-in/email`, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
  });
}

/** A POST as a browser page on `origin` sends it with fetch() (Fetch Metadata included). */
function postFromPage(url: string, path: string, origin: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${url}${path}`, {
    method: "POST",
    headers: {
      origin,
      "content-type": "application/json",
      "sec-fetch-site": origin === new URL(url).origin ? "same-origin" : "cross-site",
      "sec-fetch-mode": "cors",
      "sec-fetch-dest": "empty",
      ...headers,
    },
    body: JSON.stringify(body),
  });
}

async function signUpOverHttp(url: string, headers: Record<string, string> = {}) {
  const email = uniqueEmail("net");
  const response = await fetch(`${url}/api/auth/sign-up/email`, {
    method: "POST",
    headers: { origin: SITE_ORIGIN, "content-type": "application/json", ...headers },
    body: JSON.stringify({ name: "Net User", email, password: PASSWORD }),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { token: string };
  return { email, token: body.token, cookie: response.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ") };
}

describe("CORS and trusted origins are one list", () => {
  test("a preflight from a configured origin is allowed, with credentials", async () => {
    const response = await preflight(server.url, SITE_ORIGIN);
    expect(response.status).toBeLessThan(300);
    expect(response.headers.get("access-control-allow-origin")).toBe(SITE_ORIGIN);
    expect(response.headers.get("access-control-allow-credentials")).toBe("true");
    expect(response.headers.get("access-control-allow-methods")).toContain("POST");
    expect(response.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("content-type");
    expect(response.headers.get("vary")).toContain("Origin");
  });

  test("a preflight from any other origin gets no Access-Control-Allow-Origin", async () => {
    for (const origin of ["http://evil.test", "http://localhost:3001", "http://localhost:3000.evil.test", "null"]) {
      const response = await preflight(server.url, origin);
      expect(response.headers.get("access-control-allow-origin")).toBeNull();
    }
  });

  test("the actual response to a configured origin carries the CORS headers and exposes set-auth-token", async () => {
    const response = await postFromPage(server.url, "/api/auth/sign-in/email", SITE_ORIGIN, { email: uniqueEmail(), password: PASSWORD });
    expect(response.status).toBe(401);
    expect(response.headers.get("access-control-allow-origin")).toBe(SITE_ORIGIN);
    expect(response.headers.get("access-control-allow-credentials")).toBe("true");
    expect(response.headers.get("access-control-expose-headers")).toContain("set-auth-token");
  });

  test("sign-in from a configured origin succeeds; from an untrusted origin Better Auth answers 403 INVALID_ORIGIN", async () => {
    const { email } = await signUpOverHttp(server.url);
    const trusted = await postFromPage(server.url, "/api/auth/sign-in/email", SITE_ORIGIN, { email, password: PASSWORD });
    expect(trusted.status).toBe(200);

    const untrusted = await postFromPage(server.url, "/api/auth/sign-in/email", "http://evil.test", { email, password: PASSWORD });
    await expectError(untrusted, 403, "INVALID_ORIGIN");
  });

  test("a cookie-carrying POST without an Origin is refused with 403 MISSING_OR_NULL_ORIGIN", async () => {
    const { cookie } = await signUpOverHttp(server.url);
    const response = await fetch(`${server.url}/api/auth/sign-out`, {
      method: "POST",
      headers: { cookie, "content-type": "application/json" },
      body: "{}",
    });
    await expectError(response, 403, "MISSING_OR_NULL_ORIGIN");
  });

  test("with CORS_ORIGINS set to another site, that site is both the CORS origin and the trusted origin", async () => {
    const other = await startTestServer({ CORS_ORIGINS: "http://app.test:8080" });
    expect((await preflight(other.url, "http://app.test:8080")).headers.get("access-control-allow-origin")).toBe("http://app.test:8080");
    expect((await preflight(other.url, SITE_ORIGIN)).headers.get("access-control-allow-origin")).toBeNull();

    const email = uniqueEmail();
    const signUp = await postFromPage(other.url, "/api/auth/sign-up/email", "http://app.test:8080", { name: "A", email, password: PASSWORD });
    expect(signUp.status).toBe(200);
    const fromOldSite = await postFromPage(other.url, "/api/auth/sign-in/email", SITE_ORIGIN, { email, password: PASSWORD });
    expect(fromOldSite.status).toBe(403);
  });
});

describe("client IP", () => {
  const ipOf = async (sql: typeof server.db.sql, token: string) =>
    (await sql<{ ip_address: string | null }[]>`select ip_address from sessions where token = ${token}`)[0]?.ip_address;

  test("sessions.ip_address is the socket's address, whatever X-Forwarded-For or the internal header the client sends", async () => {
    const { token } = await signUpOverHttp(server.url, { "x-forwarded-for": "203.0.113.9", [CLIENT_IP_HEADER]: "198.51.100.7" });
    expect(await ipOf(server.db.sql, token)).toBe("127.0.0.1");
  });

  test("with TRUST_PROXY=on it is the first X-Forwarded-For hop, and the socket's address when that is not an IP", async () => {
    const proxied = await startTestServer({ TRUST_PROXY: "on" });
    const single = await signUpOverHttp(proxied.url, { "x-forwarded-for": "203.0.113.9" });
    expect(await ipOf(proxied.db.sql, single.token)).toBe("203.0.113.9");
    const chain = await signUpOverHttp(proxied.url, { "x-forwarded-for": "203.0.113.10, 10.0.0.2" });
    expect(await ipOf(proxied.db.sql, chain.token)).toBe("203.0.113.10");
    const junk = await signUpOverHttp(proxied.url, { "x-forwarded-for": "not-an-ip" });
    expect(await ipOf(proxied.db.sql, junk.token)).toBe("127.0.0.1");
  });

  test("with rate limiting on, a spoofed X-Forwarded-For does not buy a fresh rate-limit bucket", async () => {
    const limited = await startTestServer({ RATE_LIMIT: "on" });
    const statuses: number[] = [];
    for (let attempt = 1; attempt <= 6; attempt++) {
      const response = await postFromPage(limited.url, "/api/auth/sign-in/email", SITE_ORIGIN, { email: uniqueEmail(), password: "wrong password" }, {
        "x-forwarded-for": `203.0.113.${attempt}`,
      });
      statuses.push(response.status);
    }
    expect(statuses).toContain(429);
    expect(statuses.at(-1)).toBe(429);
  });

  test("behind a trusted proxy, clients with different forwarded addresses have separate rate-limit buckets", async () => {
    const limited = await startTestServer({ RATE_LIMIT: "on", TRUST_PROXY: "on" });
    const statuses: number[] = [];
    for (let attempt = 1; attempt <= 5; attempt++) {
      const response = await postFromPage(limited.url, "/api/auth/sign-in/email", SITE_ORIGIN, { email: uniqueEmail(), password: "wrong password" }, {
        "x-forwarded-for": `203.0.113.${attempt}`,
      });
      statuses.push(response.status);
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401]);
  });
});

describe("the entry point", () => {
  const accepts = (port: number) =>
    Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then(
      (socket) => (socket.end(), true),
      () => false,
    );

  test("SIGTERM lets an in-flight request finish, refuses new connections, and exits 0", async () => {
    const { child, url, port } = await spawnServer(["bun", "src/index.ts"]);
    expect(child.output()).toContain(`listening on http://127.0.0.1:${port}`);
    const { email } = await signUpOverHttp(url);

    // A sign-in whose body has not arrived yet when the signal comes.
    const signIn = await openRawPost(port, "/api/auth/sign-in/email", JSON.stringify({ email, password: PASSWORD }));
    await Bun.sleep(300);

    child.process.kill("SIGTERM");
    await Bun.sleep(500);
    expect(child.process.exitCode).toBeNull();
    expect(await accepts(port)).toBe(false);

    signIn.send();
    await signIn.closed;
    expect(signIn.answer()).toStartWith("HTTP/1.1 200");
    expect(signIn.answer()).toContain("better-auth.session_token=");

    expect(await child.exited(5000)).toBe(0);
    expect(child.output()).toContain("SIGTERM: shutting down");
    expect(await accepts(port)).toBe(false);
  });

  test("requests whose clients hung up still run to their end before the pool closes", async () => {
    const { child, url, db } = await spawnServer(["bun", "src/index.ts"], { RATE_LIMIT: "off" });
    const { email } = await signUpOverHttp(url);
    // Far more sign-ins than hashes run at once: most still wait for a hash when their clients give up
    // and the signal comes, so the server has no open connection left but work in progress.
    const abandoned = 24;
    const aborts = Array.from({ length: abandoned }, () => new AbortController());
    const requests = aborts.map((abort) =>
      fetch(`${url}/api/auth/sign-in/email`, {
        method: "POST",
        headers: { origin: SITE_ORIGIN, "content-type": "application/json" },
        body: JSON.stringify({ email, password: PASSWORD }),
        signal: abort.signal,
      }).then(
        (response) => response.status,
        () => "aborted" as const,
      ),
    );
    await Bun.sleep(50);
    for (const abort of aborts) abort.abort();
    const outcomes = await Promise.all(requests);
    child.process.kill("SIGTERM");
    expect(await child.exited(15_000)).toBe(0);
    expect(outcomes.filter((outcome) => outcome === "aborted").length).toBeGreaterThan(0);
    // Every sign-in ran to its end on an open pool: one session each, plus the sign-up's.
    const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from sessions`;
    expect(row!.n).toBe(abandoned + 1);
    expect(child.output()).not.toContain("CONNECTION_ENDED");
    expect(child.output()).not.toContain("requests still running");
  });

  test("a request that never completes is cut after SHUTDOWN_TIMEOUT, and the server still exits 0", async () => {
    const { child, port } = await spawnServer(["bun", "src/index.ts"], { SHUTDOWN_TIMEOUT: "1s" });
    const { promise: closed, resolve: onClose } = Promise.withResolvers<void>();
    await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: { data() {}, close: () => onClose(), error: () => onClose() },
    }).then((socket) =>
      socket.write(`POST /api/auth/sign-in/email HTTP/1.1\r\nHost: localhost:${port}\r\nOrigin: ${SITE_ORIGIN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`),
    );
    await Bun.sleep(300);

    const started = Date.now();
    child.process.kill("SIGTERM");
    expect(await child.exited(8000)).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(child.output()).toContain("requests still running after 1000 ms");
    await closed;
  });

  test("an idle server stops on SIGTERM within a few seconds, exit code 0, port closed", async () => {
    const { child, port } = await spawnServer(["bun", "src/index.ts"]);
    const started = Date.now();
    child.process.kill("SIGTERM");
    expect(await child.exited(5000)).toBe(0);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await accepts(port)).toBe(false);
  });

  test("SIGINT (Ctrl-C) stops it the same way", async () => {
    const { child, port } = await spawnServer(["bun", "src/index.ts"]);
    child.process.kill("SIGINT");
    expect(await child.exited(5000)).toBe(0);
    expect(await accepts(port)).toBe(false);
  });

  test("`bun run start` serves the same app from the production bundle, reports the package version, and stops on SIGTERM with exit 0", async () => {
    await buildBundle();
    const { child, url, port } = await spawnServer(["bun", "run", "start"]);
    const health = (await (await fetch(`${url}/health`)).json()) as { status: string; version: string };
    expect(health).toMatchObject({ status: "ok", version: packageJson.version });
    const { email } = await signUpOverHttp(url);
    expect(email).toContain("@");

    child.process.kill("SIGTERM");
    expect(await child.exited(5000)).toBe(0);
    expect(await accepts(port)).toBe(false);
  });
});
