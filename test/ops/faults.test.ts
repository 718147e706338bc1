// Faults (ASVS 7.4.1: errors answer safely, 1.14.x / 11.1.x: availability): Postgres goes away in the
// middle of traffic, cut at a TCP proxy between the server and Postgres; and SIGTERM arrives while
// requests are in flight. The server is its own process, so a crash would show as an exit.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { cleanUpAfterFile, createTestDatabase, openRawPost, PASSWORD, SITE_ORIGIN, spawnServer, uniqueEmail, post } from "../helpers.ts";
import { postgresProxy } from "../postgres-proxy.ts";

cleanUpAfterFile();
setDefaultTimeout(120_000);

type Answer = { email: string; status: number; code: string | null; ms: number };

const signUpOnce = async (url: string): Promise<Answer> => {
  const email = uniqueEmail("fault");
  const started = performance.now();
  const response = await post(url, "/api/auth/sign-up/email", { name: "Fault", email, password: PASSWORD });
  const body = (await response.json().catch(() => null)) as { code?: string } | null;
  return { email, status: response.status, code: body?.code ?? null, ms: performance.now() - started };
};

describe("Postgres goes away mid-traffic", () => {
  test("requests answer 503 JSON quickly, /health reports degraded, the process lives, and it serves again once Postgres is back; every 200 sign-up exists", async () => {
    const db = await createTestDatabase("faults");
    const proxy = postgresProxy();
    const proxied = new URL(db.url);
    proxied.hostname = "127.0.0.1";
    proxied.port = String(await proxy.start());
    const { child, url } = await spawnServer(
      ["bun", "src/index.ts"],
      { DATABASE_URL: proxied.toString(), RATE_LIMIT: "on", RATE_LIMIT_SIGN_UP: "100000/1m", LOG_LEVEL: "error" },
      db,
    );

    const answers: Answer[] = [];
    let running = true;
    const workers = Array.from({ length: 3 }, async () => {
      while (running) answers.push(await signUpOnce(url));
    });

    await Bun.sleep(1500);
    const beforeCut = answers.length;
    await proxy.stop();
    // /health reuses a success for a second at most; within a few seconds it must say degraded.
    const cutAt = performance.now();
    let health = await fetch(`${url}/health`);
    while (health.status === 200 && performance.now() - cutAt < 3000) {
      await Bun.sleep(100);
      health = await fetch(`${url}/health`);
    }
    const healthBody = (await health.json()) as { status: string; reason?: string };
    await Bun.sleep(1500);
    const duringCut = answers.length;
    await proxy.start();

    // Back without a restart: health answers 200 again and new sign-ups succeed.
    const restoredAt = performance.now();
    while ((await fetch(`${url}/health`)).status !== 200) await Bun.sleep(100);
    const recoveryMs = performance.now() - restoredAt;
    await Bun.sleep(1000);
    running = false;
    await Promise.all(workers);

    expect(health.status).toBe(503);
    expect(healthBody.status).toBe("degraded");
    expect(healthBody.reason).toStartWith("database:");

    const unavailable = answers.filter((answer) => answer.status === 503);
    const statuses = [...new Set(answers.map((answer) => answer.status))].sort();
    console.log(
      `fault: ${answers.length} sign-ups, ${beforeCut} before the cut, ${duringCut - beforeCut} during, ${unavailable.length} answered 503 ` +
        `(slowest ${Math.round(Math.max(...unavailable.map((answer) => answer.ms)))} ms), healthy again ${Math.round(recoveryMs)} ms after the restore`,
    );
    expect(statuses).toEqual([200, 503]);
    expect(new Set(unavailable.map((answer) => answer.code))).toEqual(new Set(["DATABASE_UNAVAILABLE"]));
    // "Quickly": well under a client's timeout, not the 10 s connect timeout of the pool.
    expect(Math.max(...unavailable.map((answer) => answer.ms))).toBeLessThan(3000);
    expect(answers.slice(duringCut).some((answer) => answer.status === 200)).toBe(true);
    // The probe does not wait behind a connection attempt begun while Postgres was away.
    expect(recoveryMs).toBeLessThan(3000);
    expect(child.process.exitCode).toBeNull();

    const succeeded = answers.filter((answer) => answer.status === 200).map((answer) => answer.email.toLowerCase());
    const stored = new Set((await db.sql<{ email: string }[]>`select email from users`).map((row) => row.email));
    expect(succeeded.filter((email) => !stored.has(email))).toEqual([]);
    // And no half-written sign-up: every user has its credential account.
    const orphans = await db.sql`select u.id from users u where not exists (select 1 from accounts a where a.user_id = u.id)`;
    expect(orphans.length).toBe(0);
  });
});

describe("SIGTERM under load", () => {
  test("20 requests in flight when SIGTERM arrives all finish with 200; the server then exits 0", async () => {
    const { child, port } = await spawnServer(["bun", "src/index.ts"], { RATE_LIMIT: "off", LOG_LEVEL: "info" });
    // Headers now, the body after the signal: each request is surely in flight when it comes.
    const inFlight = await Promise.all(
      Array.from({ length: 20 }, () =>
        openRawPost(port, "/api/auth/sign-up/email", JSON.stringify({ name: "Load", email: uniqueEmail("term"), password: PASSWORD })),
      ),
    );
    await Bun.sleep(300);
    child.process.kill("SIGTERM");
    await Bun.sleep(100);
    for (const request of inFlight) request.send();
    await Promise.all(inFlight.map((request) => request.closed));

    const statusLines = inFlight.map((request) => request.answer().split("\r\n")[0]);
    expect(statusLines).toEqual(Array(20).fill("HTTP/1.1 200 OK"));
    expect(await child.exited(15_000)).toBe(0);
    expect(child.output()).toContain("SIGTERM: shutting down");
    expect(child.output()).not.toContain("closing them");
  });
});
