// Test helpers, defined once: a fresh Postgres database per test file, the app in process or on a
// real port, and Better Auth's own client with a cookie jar.
import { afterAll, expect } from "bun:test";
import type { Subprocess } from "bun";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createAuthClient } from "better-auth/client";
import { passkeyClient } from "@better-auth/passkey/client";
import { adminClient, jwtClient, magicLinkClient, organizationClient, twoFactorClient } from "better-auth/client/plugins";
import type { BetterAuthClientPlugin } from "better-auth/client";
import makeFetchCookie from "fetch-cookie";
import postgres from "postgres";
import { CookieJar } from "tough-cookie";
import { createApp, type App } from "../src/http/app.ts";
import { createAuth, ensureSigningKey, type Auth, type AuthDependencies } from "../src/auth/better-auth.ts";
import { ConfigError, loadConfig, type Config } from "../src/config.ts";
import { createPool, type Sql } from "../src/db/pool.ts";
import { createLogger, type Logger } from "../src/ops/log.ts";
import { applyMigrations } from "../src/db/migrate.ts";
import { createMetrics } from "../src/ops/metrics.ts";
import { trackPool } from "../src/ops/pool-stats.ts";
import { createRedisStorage } from "../src/session/redis-storage.ts";
import { cachedCopyWindowSeconds, listenForChanges, type ChangeNotices } from "../src/session/change-notices.ts";
import { startServer, type RunningServer } from "../src/index.ts";
import { platformRoles } from "../src/auth/plugins/admin.ts";
import { organizationAc, organizationRoles } from "../src/auth/plugins/organization.ts";
import type { SendMail } from "../src/mail/send-mail.ts";
import { profileFields } from "../src/auth/profile.ts";
import { createRateLimitStore } from "../src/security/rate-limit.ts";

/** The Postgres the tests create their databases in (DATABASE_URL, or the local one). */
export const ADMIN_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const TEST_SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
export const SITE_ORIGIN = "http://localhost:3000";
export const PASSWORD = "correct horse battery";

const cleanups: Array<() => Promise<unknown>> = [];
/** Runs every pending cleanup, last registered first. */
export async function runCleanups(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
}
// This hook belongs to the first test file that imports this module: in a run of several files the
// module is loaded once, so every other file's cleanups wait for that file's own `cleanUpAfterFile()`.
// Dropping databases and stopping servers can take longer than a hook's default 5 s on a loaded machine.
const CLEANUP_TIMEOUT_MS = 60_000;
afterAll(runCleanups, CLEANUP_TIMEOUT_MS);
/** Runs this file's cleanups after its last test; call once at the top of a test file. */
export function cleanUpAfterFile(): void {
  afterAll(runCleanups, CLEANUP_TIMEOUT_MS);
}
/** Runs `cleanup` after the current test file, last registered first. */
export function onCleanup(cleanup: () => Promise<unknown>): void {
  cleanups.push(cleanup);
}

function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export interface TestDatabase {
  name: string;
  url: string;
  /** A pool for the test's own queries (the "Python reader" view of the schema). */
  sql: Sql;
}

/** A new, empty database, dropped after the test file. */
export async function createTestDatabase(label = "t"): Promise<TestDatabase> {
  const name = `auth_test_${label.replace(/[^a-z0-9]/gi, "_").toLowerCase()}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  const url = databaseUrl(name);
  const sql = createPool(url, { max: 4 });
  onCleanup(async () => {
    await sql.end({ timeout: 1 });
    const dropper = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    await dropper.unsafe(`drop database if exists "${name}" with (force)`);
    await dropper.end();
  });
  return { name, url, sql };
}

const testEnvironments = new WeakMap<Config, Record<string, string | undefined>>();
const envOf = (config: Config) => testEnvironments.get(config) ?? {};

/** Config as the server would read it from an environment, with test defaults. */
export function testConfig(env: Record<string, string | undefined> = {}): Config {
  const full = {
    NODE_ENV: "test",
    BETTER_AUTH_SECRET: TEST_SECRET,
    BETTER_AUTH_URL: "http://localhost:3001",
    CORS_ORIGINS: SITE_ORIGIN,
    RATE_LIMIT: "off",
    LOG_LEVEL: "error",
    // Tests decide when housekeeping runs; a periodic run could delete rows a test set up.
    HOUSEKEEPING_INTERVAL: "off",
    ...env,
  };
  const config = loadConfig(full);
  testEnvironments.set(config, full);
  return config;
}

export const quietLogger: Logger = createLogger("error", () => {});

export interface TestApp {
  app: App;
  auth: Auth;
  /** The instance's change listener (src/session/change-notices.ts); `untilTrusting(notices)` before relying on cached answers. */
  notices: ChangeNotices;
  config: Config;
  db: TestDatabase;
  /** Sends a request through the app in process (no port). */
  request(path: string, init?: RequestInit & { json?: unknown }): Promise<Response>;
}

/** Optional parts of Better Auth's set-up a test replaces (e.g. a lockout notifier that records). */
export type TestAuthDependencies = Partial<Pick<AuthDependencies, "rateLimitStore" | "notifyLockout" | "sendMail">>;

/** The app in process on a fresh, migrated database. */
export async function createTestApp(
  env: Record<string, string | undefined> = {},
  logger: Logger = quietLogger,
  dependencies: TestAuthDependencies = {},
): Promise<TestApp> {
  const db = await createTestDatabase("app");
  const config = testConfig({ DATABASE_URL: db.url, ...env }) as Config & { secret: string };
  const instance = await createInstance(db, config, logger, dependencies);
  return { ...instance, config, db };
}

/** The app (own pool, Better Auth, rate-limit store) on an existing, migrated-here database. */
async function createInstance(db: TestDatabase, config: Config & { secret: string }, logger: Logger, dependencies: TestAuthDependencies) {
  const notices = listenForChanges(db.url, cachedCopyWindowSeconds(config) * 1000, logger);
  onCleanup(() => notices.close());
  const appSql = createPool(db.url, { max: config.databasePoolMax });
  onCleanup(() => appSql.end({ timeout: 1 }));
  await applyMigrations(appSql);
  const pool = trackPool(appSql, config.databasePoolMax);
  const metrics = createMetrics(pool.stats, config.databasePoolMax);
  const redis = config.redisUrl ? createRedisStorage(config.redisUrl, logger, { notices, maxTtlSeconds: cachedCopyWindowSeconds(config) }) : undefined;
  if (redis) onCleanup(async () => redis.close());
  const rateLimitStore = dependencies.rateLimitStore ?? createRateLimitStore(config, pool.sql);
  onCleanup(() => rateLimitStore.close());
  const auth = createAuth({ config, sql: pool.sql, logger, metrics, secondaryStorage: redis, ...dependencies, rateLimitStore });
  await ensureSigningKey(auth, appSql, config);
  const app = createApp({ config, auth, sql: pool.sql, logger, version: "test", metrics, notices });
  await notices.ready;
  const request = (path: string, init: RequestInit & { json?: unknown } = {}) => {
    const { json, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (!headers.has("origin")) headers.set("origin", SITE_ORIGIN);
    if (json !== undefined) headers.set("content-type", "application/json");
    return app.handle(
      new Request(new URL(path, config.baseUrl).toString(), { ...rest, headers, body: json !== undefined ? JSON.stringify(json) : rest.body }),
    );
  };
  return { app, auth, request, notices };
}

/**
 * Another instance of the server in process, on `t`'s database: its own pool, Better Auth and
 * rate-limit store, as a load balancer's second backend would be. `env` overrides `t`'s settings.
 */
export async function createSecondInstance(
  t: Pick<TestApp, "db" | "config">,
  env: Record<string, string | undefined> = {},
  dependencies: TestAuthDependencies = {},
  logger: Logger = quietLogger,
): Promise<Omit<TestApp, "db">> {
  const config = loadConfig({ ...envOf(t.config), ...env }) as Config & { secret: string };
  const instance = await createInstance(t.db, config, logger, dependencies);
  return { ...instance, config };
}

/** The whole server (src/index.ts) on a free loopback port and a fresh database; stopped after the file. */
export async function startTestServer(env: Record<string, string | undefined> = {}): Promise<RunningServer & { db: TestDatabase; config: Config }> {
  const db = await createTestDatabase("server");
  const config = testConfig({ DATABASE_URL: db.url, PORT: "0", HOST: "127.0.0.1", ...env });
  const running = await startServer(config, quietLogger);
  onCleanup(() => running.stop());
  return { ...running, db, config };
}

/** Better Auth's own browser client, with a cookie jar, talking to `target` from the site's origin. */
export function createTestClient(target: { baseUrl: string; fetch?: typeof fetch }, origin = SITE_ORIGIN) {
  const jar = new CookieJar();
  const fetchWithCookies = makeFetchCookie(target.fetch ?? fetch, jar);
  const client = createAuthClient({
    baseURL: target.baseUrl,
    fetchOptions: { customFetchImpl: fetchWithCookies as unknown as typeof fetch, headers: { origin } },
    plugins: [
      jwtClient(),
      magicLinkClient(),
      profileFieldsClient,
      twoFactorClient(),
      adminClient({ roles: platformRoles }),
      organizationClient({ ac: organizationAc, roles: organizationRoles, teams: { enabled: true } }),
      passkeyClient(),
    ],
  });
  return { client, jar };
}

/** Lets the client send the server's profile fields with sign-up and update-user. */
const profileFieldsClient = {
  id: "profile-fields",
  $InferServerPlugin: {} as { id: "profile-fields"; schema: { user: { fields: typeof profileFields } } },
} satisfies BetterAuthClientPlugin;

/** A fetch that answers from the in-process app, for the client without a port. */
export function inProcessFetch(app: App): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const request = input instanceof Request ? new Request(input, init) : new Request(String(input), init);
    const response = await app.handle(request);
    // A real fetch reports the URL it answered for; the cookie jar files cookies under it.
    Object.defineProperty(response, "url", { value: request.url });
    return response;
  }) as typeof fetch;
}

let userCounter = 0;
export function uniqueEmail(prefix = "user"): string {
  return `${prefix}-${Date.now().toString(36)}-${++userCounter}@example.test`;
}

/** Signs a user up over HTTP; returns the user, the session token and the cookie header to send. */
export async function signUp(
  t: Pick<TestApp, "request">,
  fields: Record<string, unknown> = {},
): Promise<{ email: string; userId: string; token: string; cookie: string; response: Response }> {
  const email = (fields.email as string) ?? uniqueEmail();
  const response = await t.request("/api/auth/sign-up/email", {
    method: "POST",
    json: { name: "Test User", email, password: PASSWORD, ...fields },
  });
  if (response.status !== 200) throw new Error(`sign-up failed: ${response.status} ${await response.text()}`);
  const body = (await response.clone().json()) as { token: string; user: { id: string } };
  return { email, userId: body.user.id, token: body.token, cookie: sessionCookieOf(response), response };
}

/** The `token` list-sessions answers (a handle, src/session/handles.ts) for the session `token`, as `cookie`'s user sees it. */
export async function listedHandle(t: Pick<TestApp, "request" | "db">, cookie: string, token: string): Promise<string> {
  const [row] = await t.db.sql<{ id: string }[]>`select id from sessions where token = ${token}`;
  const listed = (await (await t.request("/api/auth/list-sessions", { headers: { cookie } })).json()) as Array<{ id: string; token: string }>;
  return listed.find((session) => session.id === row!.id)!.token;
}

/** The value of one sample in a Prometheus text exposition (the first with these labels), or undefined. */
export function metricSample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[3] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => have[key] === value)) return Number(match[4]);
  }
  return undefined;
}

/** The `name=value` of the session cookie a response sets. */
export function sessionCookieOf(response: Response): string {
  const cookie = response.headers.getSetCookie().find((c) => c.includes("session_token="));
  if (!cookie) throw new Error("no session cookie in the response");
  return cookie.split(";")[0]!;
}

/** The project folder, where `bun run ...` and `bun src/index.ts` are run from. */
export const PROJECT_DIR = resolve(import.meta.dir, "..");

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

/** A new temporary folder, removed after the test file. */
export function createTempDir(label = "tmp"): string {
  const dir = mkdtempSync(join(tmpdir(), `auth-test-${label}-`));
  onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
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

export interface IdentityRowCounts {
  users: number;
  accounts: number;
  sessions: number;
}

/** Row counts of the identity tables, to prove that a refused request wrote nothing. */
export async function countIdentityRows(sql: Sql): Promise<IdentityRowCounts> {
  const [row] = await sql<IdentityRowCounts[]>`
    select (select count(*)::int from users) as users,
           (select count(*)::int from accounts) as accounts,
           (select count(*)::int from sessions) as sessions`;
  return row!;
}

/** The ConfigError `load` throws; fails the test when it throws nothing or something else. */
export function configError(load: () => unknown): ConfigError {
  try {
    load();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error("expected a ConfigError, but the configuration loaded");
}

/** Starts `bun src/index.ts` with `env` and expects exit 1 with one line naming `variable`. */
export async function expectStartRefused(env: Record<string, string>, variable: string): Promise<void> {
  const child = spawnProject(["bun", "src/index.ts"], { ...env, PORT: "0" });
  expect(await child.exited(10_000)).toBe(1);
  const lines = child.output().trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toStartWith(`auth-server: configuration error: ${variable}`);
}

/**
 * A POST whose headers are on the wire but whose body is not: the request is surely in flight until
 * `send()` writes the body. `answer()` is everything the server sent; `closed` settles when it hangs up.
 */
export async function openRawPost(port: number, path: string, body: string) {
  let received = "";
  const { promise: closed, resolve } = Promise.withResolvers<void>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: { data: (_socket, chunk) => void (received += chunk.toString()), close: () => resolve(), error: () => resolve() },
  });
  socket.write(
    `POST ${path} HTTP/1.1\r\nHost: localhost:${port}\r\nOrigin: ${SITE_ORIGIN}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`,
  );
  return { closed, send: () => socket.write(body), answer: () => received };
}
