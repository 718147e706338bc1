// Zero set-up development: with no DATABASE_URL outside production the server runs on the embedded
// database (PGlite over the Postgres wire protocol), prints its URL for other tools, and keeps its data
// and development secret under DATA_DIR across restarts.
import { describe, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import {
  cleanUpAfterFile,
  createTempDir,
  freePort,
  PASSWORD,
  type ProjectProcess,
  SITE_ORIGIN,
  spawnProject,
  uniqueEmail,
  waitForHealth,
} from "./helpers.ts";

cleanUpAfterFile();

// PGlite (Postgres in WebAssembly) takes several seconds to start on a busy machine.
const START_TIMEOUT_MS = 30_000;
const STEP_TIMEOUT_MS = 45_000;

// A nested folder that does not exist yet: the server creates it.
const dataDir = join(createTempDir("embedded"), "nested", "data");

/** `bun src/index.ts` with no DATABASE_URL and no secret, on free ports; healthy. */
async function startEmbedded() {
  const port = freePort();
  const databasePort = freePort();
  const child = spawnProject(["bun", "src/index.ts"], {
    NODE_ENV: "development",
    DATA_DIR: dataDir,
    EMBEDDED_DB_PORT: String(databasePort),
    HOST: "127.0.0.1",
    PORT: String(port),
    BETTER_AUTH_URL: `http://localhost:${port}`,
    CORS_ORIGINS: SITE_ORIGIN,
    LOG_LEVEL: "info",
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHealth(url, child, START_TIMEOUT_MS);
  return { child, url, databasePort };
}

async function stop(child: ProjectProcess): Promise<number> {
  child.process.kill("SIGTERM");
  return child.exited(15_000);
}

const post = (url: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${url}${path}`, { method: "POST", headers: { origin: SITE_ORIGIN, "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

describe("the embedded database", () => {
  const email = uniqueEmail("embedded");
  let first: Awaited<ReturnType<typeof startEmbedded>>;
  let cookie = "";

  test(
    "with no DATABASE_URL the server starts on PGlite, migrates it, and prints a postgres:// URL",
    async () => {
      first = await startEmbedded();
      const output = first.child.output();
      expect(output).toContain(`postgres://postgres@127.0.0.1:${first.databasePort}/postgres`);
      expect(output).toContain("applied migrations 0001");
      expect(output).toContain("BETTER_AUTH_SECRET is not set");
      const health = (await (await fetch(`${first.url}/health`)).json()) as { status: string };
      expect(health.status).toBe("ok");
    },
    STEP_TIMEOUT_MS,
  );

  test("sign-up and sign-in work over HTTP", async () => {
    const up = await post(first.url, "/api/auth/sign-up/email", { name: "Embedded", email, password: PASSWORD });
    expect(up.status).toBe(200);
    const wrong = await post(first.url, "/api/auth/sign-in/email", { email, password: "not the password" });
    expect(wrong.status).toBe(401);
    const signIn = await post(first.url, "/api/auth/sign-in/email", { email, password: PASSWORD });
    expect(signIn.status).toBe(200);
    cookie = signIn.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
    const session = await fetch(`${first.url}/api/auth/get-session`, { headers: { cookie, origin: SITE_ORIGIN } });
    expect(((await session.json()) as { user: { email: string } }).user.email).toBe(email);
  });

  test("the printed URL answers a plain postgres.js client from outside the server", async () => {
    const printed = /postgres:\/\/\S+/.exec(first.child.output())![0];
    // PGlite serves one backend to every socket connection: one connection keeps this client's statements in order.
    const sql = postgres(printed, { max: 1, onnotice: () => {} });
    try {
      const users = await sql<{ email: string }[]>`select email from users`;
      expect(users.map((user) => user.email)).toContain(email);
      const [sessions] = await sql<{ count: number }[]>`
        select count(*)::int as count from sessions join users on users.id = sessions.user_id where users.email = ${email}`;
      expect(sessions!.count).toBe(2);
    } finally {
      await sql.end({ timeout: 5 });
    }
    // The server keeps answering after an outside client came and went.
    expect((await fetch(`${first.url}/health`)).status).toBe(200);
  });

  test("SIGTERM stops the server and the embedded database with exit code 0", async () => {
    expect(await stop(first.child)).toBe(0);
    const secret = join(dataDir, "secret");
    expect(existsSync(secret)).toBe(true);
    expect(statSync(secret).mode & 0o777).toBe(0o600);
  }, 20_000);

  test(
    "restarted on the same DATA_DIR, the user still signs in and the earlier session cookie is still valid",
    async () => {
      const second = await startEmbedded();
      try {
        expect(second.child.output()).not.toContain("applied migrations");
        expect(second.child.output()).not.toContain("created the first JWT signing key");
        const signIn = await post(second.url, "/api/auth/sign-in/email", { email, password: PASSWORD });
        expect(signIn.status).toBe(200);
        const session = await fetch(`${second.url}/api/auth/get-session`, { headers: { cookie, origin: SITE_ORIGIN } });
        expect(((await session.json()) as { user: { email: string } } | null)?.user.email).toBe(email);
      } finally {
        expect(await stop(second.child)).toBe(0);
      }
    },
    STEP_TIMEOUT_MS,
  );
});
