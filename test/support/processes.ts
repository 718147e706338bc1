// The project as its own process: `bun src/index.ts`, `bun run start`, a copy of the project, free ports.
import { expect } from "bun:test";
import type { Subprocess } from "bun";
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { TEST_SECRET, SITE_ORIGIN } from "./app.ts";
import { createTempDir, onCleanup } from "./cleanup.ts";
import { createTestDatabase, type TestDatabase } from "./database.ts";

/** The project folder, where `bun run ...` and `bun src/index.ts` are run from. */
export const PROJECT_DIR = resolve(import.meta.dir, "../..");

/**
 * A copy of the project as a newcomer has it after `bun install` (sources, migrations, the installed
 * node_modules linked), in a temporary folder of its own: `.data/` and edited files stay there. Readable
 * by others: run as root, the development Postgres runs as `postgres` and must reach `.data/`.
 */
export function createProjectCopy(label: string, paths: string[] = []): string {
  const dir = createTempDir(label);
  chmodSync(dir, 0o755);
  for (const path of ["package.json", "bunfig.toml", "tsconfig.json", "src", "sql", ...paths]) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    cpSync(join(PROJECT_DIR, path), join(dir, path), { recursive: true });
  }
  symlinkSync(join(PROJECT_DIR, "node_modules"), join(dir, "node_modules"));
  return dir;
}

/** A loopback port that is free right now (bound on port 0, then released). */
export function freePort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = listener;
  listener.stop(true);
  return port;
}

export interface ProjectProcess {
  process: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Waits for the exit code, or fails after `timeoutMs`. */
  exited(timeoutMs?: number): Promise<number>;
}

/**
 * Runs a command in the project folder with only `env` (plus PATH and HOME): nothing of the test
 * runner's own environment, DATABASE_URL included, leaks in. Killed after the test file if still running.
 */
export function spawnProject(command: string[], env: Record<string, string>): ProjectProcess {
  const child = Bun.spawn(command, {
    cwd: PROJECT_DIR,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? tmpdir(), ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let text = "";
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // `bun run start` runs the server as a child of its own: that one must not outlive the test.
      for (const pid of descendants(child.pid)) process.kill(pid, "SIGKILL");
      child.kill("SIGKILL");
    }
    await child.exited;
  });
  return {
    process: child,
    output: () => text,
    async exited(timeoutMs = 10_000) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${command.join(" ")} still running after ${timeoutMs} ms; output:\n${text}`)), timeoutMs);
      });
      try {
        const code = await Promise.race([child.exited, timeout]);
        await drained;
        return code;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** The processes `pid` started, and theirs (Linux: /proc/<pid>/task/<tid>/children). */
function descendants(pid: number): number[] {
  let children: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const listed = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
      if (listed) children = children.concat(listed.split(" ").map(Number));
    }
  } catch {
    return []; // already gone
  }
  return children.flatMap((child) => [...descendants(child), child]);
}

let bundle: Promise<void> | undefined;
/** Builds the production bundle once per test run (`bun run build`: dist/, what `bun run start` and the image run). */
export function buildBundle(): Promise<void> {
  return (bundle ??= (async () => {
    const build = spawnProject(["bun", "run", "build"], {});
    const code = await build.exited(60_000);
    if (code !== 0) throw new Error(`bun run build exited with ${code}:\n${build.output()}`);
  })());
}

/** Polls `url`/health until it answers 200; fails early if the process exits. */
export async function waitForHealth(url: string, child: ProjectProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.process.exitCode !== null) throw new Error(`server exited with ${child.process.exitCode}; output:\n${child.output()}`);
    const status = await fetch(`${url}/health`).then((response) => response.status, () => 0);
    if (status === 200) return;
    await Bun.sleep(100);
  }
  throw new Error(`${url}/health did not answer 200 within ${timeoutMs} ms; output:\n${child.output()}`);
}

/**
 * `command` (bun src/index.ts, or bun run start) as its own process on a free port, healthy, on a fresh
 * database or on `db` (a second instance); `env` overrides the test settings (DATABASE_URL included).
 */
export async function spawnServer(command: string[], env: Record<string, string> = {}, db?: TestDatabase) {
  const database = db ?? (await createTestDatabase("spawned"));
  const port = freePort();
  const child = spawnProject(command, {
    NODE_ENV: "test",
    DATABASE_URL: database.url,
    HOST: "127.0.0.1",
    PORT: String(port),
    BETTER_AUTH_SECRET: TEST_SECRET,
    BETTER_AUTH_URL: `http://localhost:${port}`,
    CORS_ORIGINS: SITE_ORIGIN,
    LOG_LEVEL: "info",
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHealth(url, child);
  return { child, url, port, db: database };
}
/** Starts `bun src/index.ts` with `env` and expects exit 1 with one line naming `variable`. */
export async function expectStartRefused(env: Record<string, string>, variable: string): Promise<void> {
  const child = spawnProject(["bun", "src/index.ts"], { ...env, PORT: "0" });
  expect(await child.exited(10_000)).toBe(1);
  const lines = child.output().trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toStartWith(`auth-server: configuration error: ${variable}`);
}

