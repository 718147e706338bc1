// Scale benchmark: the same server at 1,000 users and at 1,000,000 users with 2,000,000 sessions
// (filled with SQL generate_series), under wrk. Measures migrations from empty, cold start on a
// migrated database, get-session (database path and cookie cache) at both sizes (also alternated on two
// servers), sign-in at 1M, 1,000 concurrent connections, memory idle and under a sign-in storm, and the cleanup job over
// 1,000,000 expired sessions. Bun's hello world runs in the same pass as the reference.
//   bun run bench:scale      env: DATABASE_URL (server to create bench_scale on), BENCH_ANCHORS (folder
//                            with harness/lua/auth.lua and limits/hello-bun.ts; default ../shared/bench),
//                            USERS=1000000 SMALL=1000 CONNS=64 DURATION=10s SAMPLE=1000 ROUNDS=4
// Prints a Markdown report on stdout; bench/RESULTS.md records a run.
import { createHmac } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import postgres from "postgres";
import { hash as argon2Hash } from "@node-rs/argon2";
import { ARGON2ID } from "../src/auth/password.ts";

const ROOT = resolve(import.meta.dir, "..");
const ANCHORS = process.env.BENCH_ANCHORS ?? resolve(ROOT, "..", "shared", "bench");
const LUA = join(ANCHORS, "harness", "lua", "auth.lua");
const HELLO = join(ANCHORS, "limits", "hello-bun.ts");
const ADMIN = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const USERS = Number(process.env.USERS ?? 1_000_000);
const SMALL = Number(process.env.SMALL ?? 1000);
const CONNS = Number(process.env.CONNS ?? 64);
const DURATION = process.env.DURATION ?? "10s";
const SAMPLE = Number(process.env.SAMPLE ?? 1000);
const PORT = 4230;
const HELLO_PORT = 4231;
const SMALL_PORT = 4232;
const QUIET_PORT = 4233;
const ORIGIN = "https://site.bench.test";
const PASSWORD = "bench-password-123";
const SECRET = `scale-${Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("hex")}`;
const DB_NAME = "bench_scale";
// A copy of the database at SMALL users, kept beside the large one for the alternated comparison.
const SMALL_DB_NAME = "bench_scale_small";
const work = mkdtempSync(join(tmpdir(), "auth-scale-"));

for (const file of [LUA, HELLO]) if (!existsSync(file)) throw new Error(`missing ${file} (set BENCH_ANCHORS)`);
const urlOf = (name: string) => {
  const url = new URL(ADMIN);
  url.pathname = `/${name}`;
  return url.toString();
};
const dbUrl = urlOf(DB_NAME);
const smallDbUrl = urlOf(SMALL_DB_NAME);

const report: string[] = [];
const say = (line: string) => {
  report.push(line);
  console.error(line);
};
const rss = (pid: number) => {
  const match = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Math.round(Number(match[1]) / 102.4) / 10 : NaN;
};
const ms = (start: number) => Math.round(performance.now() - start);

// --- the server, as the image runs it -------------------------------------------------------------
const build = Bun.spawnSync(["bun", "run", "build"], { cwd: ROOT, stdout: "ignore", stderr: "inherit" });
if (build.exitCode !== 0) throw new Error("bun run build failed");

async function startServer(env: Record<string, string> = {}, { port = PORT, database = dbUrl } = {}) {
  const started = performance.now();
  // As the image runs it: `bun run start` runs the bundle as a child of its own.
  const child = Bun.spawn(["bun", "run", "--silent", "start"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH!,
      HOME: process.env.HOME ?? tmpdir(),
      NODE_ENV: "production",
      DATABASE_URL: database,
      BETTER_AUTH_SECRET: SECRET,
      BETTER_AUTH_URL: "https://auth.bench.test",
      CORS_ORIGINS: ORIGIN,
      // The benchmark sends no mail; production refuses to start with email flows on and no SMTP_URL.
      EMAIL_FLOWS: "none",
      RATE_LIMIT: "off",
      METRICS_TOKEN: "off",
      // The cleanup job is measured on its own, at the end, over the expired half of the sessions.
      HOUSEKEEPING_INTERVAL: "off",
      HOST: "127.0.0.1",
      PORT: String(port),
      // Production defaults otherwise: LOG_LEVEL info (a JSON line per request), migrations checked at start.
      ...env,
    },
    stdout: "ignore",
    stderr: "inherit",
  });
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const up = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status === 200, () => false);
    if (up) break;
    await Bun.sleep(2);
  }
  const coldStartMs = ms(started);
  await Bun.sleep(1000);
  const server = Number(readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, "utf8").trim().split(" ")[0]);
  if (!server) throw new Error("bun run start has no child process");
  return {
    /** The server process (memory is sampled there; `bun run`'s own parent holds about 9 MB more). */
    pid: server,
    launcherRssMb: rss(child.pid),
    coldStartMs,
    async stop() {
      child.kill("SIGTERM");
      await child.exited;
    },
  };
}

// --- load ---------------------------------------------------------------------------------------------
type WrkResult = { rps: number; ok_rps: number; p50_ms: number; p99_ms: number; max_ms: number; bad: number; socket_errors: number; timeouts: number };

async function wrk(scenario: string, files: { cookies?: string; users?: string }, options: { conns?: number; url?: string; pid?: number } = {}) {
  const conns = options.conns ?? CONNS;
  const env = {
    ...process.env,
    SCENARIO: scenario,
    ORIGIN,
    PASSWORD,
    CONNS: String(conns),
    COOKIES_FILE: files.cookies ?? "",
    USERS_FILE: files.users ?? "",
  };
  const url = options.url ?? `http://127.0.0.1:${PORT}`;
  const args = (duration: string) => ["wrk", "-t2", `-c${conns}`, `-d${duration}`, "--timeout", "10s", "--latency", "-s", LUA, url];
  Bun.spawnSync(args("2s"), { env, stdout: "ignore", stderr: "ignore" }); // warm-up
  await Bun.sleep(500);
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling && options.pid) {
      peak = Math.max(peak, rss(options.pid));
      await Bun.sleep(100);
    }
  })();
  const run = Bun.spawn(args(DURATION), { env, stdout: "pipe", stderr: "pipe" });
  const out = await new Response(run.stdout).text();
  await run.exited;
  sampling = false;
  await sampler;
  const line = out.split("\n").find((l) => l.startsWith("JSON:"));
  if (!line) throw new Error(`wrk ${scenario} printed no result:\n${out}`);
  return { ...(JSON.parse(line.slice(5)) as WrkResult), peakRssMb: peak };
}
type Measured = Awaited<ReturnType<typeof wrk>>;
/**
 * Runs each load `rounds` times, the order reversed every other round (A B C, C B A, A B C, ...), so that
 * a steady drift in the machine's load weighs on every load alike; returns each load's runs in order.
 */
async function alternate<K extends string>(rounds: number, loads: Record<K, () => Promise<Measured>>) {
  const keys = Object.keys(loads) as K[];
  const runs = Object.fromEntries(keys.map((key) => [key, [] as Measured[]])) as Record<K, Measured[]>;
  for (let round = 0; round < rounds; round++) {
    for (const key of round % 2 ? [...keys].reverse() : keys) runs[key].push(await loads[key]());
  }
  return runs;
}
const meanRps = (runs: Measured[]) => runs.reduce((sum, r) => sum + r.ok_rps, 0) / runs.length;
/** The run with the median req/s (the lower of the two middle ones), for the table. */
const medianRun = (runs: Measured[]) => [...runs].sort((a, b) => a.ok_rps - b.ok_rps)[Math.floor((runs.length - 1) / 2)]!;
const perRound = (runs: Measured[]) => runs.map((r) => r.ok_rps.toFixed(0)).join(" / ");
// Alternated rounds per comparison (even, so the order evens out).
const ROUNDS = Number(process.env.ROUNDS ?? 4);

const row = (label: string, r: WrkResult & { peakRssMb?: number }) =>
  `| ${label} | ${r.rps.toFixed(0)} | ${r.ok_rps.toFixed(0)} | ${r.p50_ms.toFixed(2)} | ${r.p99_ms.toFixed(2)} | ${r.bad + r.socket_errors} | ${r.peakRssMb ? r.peakRssMb.toFixed(1) : ""} |`;

// --- data -------------------------------------------------------------------------------------------
const admin = postgres(ADMIN, { max: 1, onnotice: () => {} });
for (const name of [DB_NAME, SMALL_DB_NAME]) await admin.unsafe(`drop database if exists ${name} with (force)`);
await admin.unsafe(`create database ${DB_NAME}`);
let sql = postgres(dbUrl, { max: 4, onnotice: () => {} });

say(`# scale run ${new Date().toISOString()}, ${navigator.hardwareConcurrency} cores, load ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}, bun ${Bun.version}, CONNS=${CONNS} DURATION=${DURATION}`);

let started = performance.now();
const migrate = Bun.spawnSync(["bun", "src/cli/migrate.ts", "up"], { cwd: ROOT, env: { ...process.env, DATABASE_URL: dbUrl }, stdout: "pipe", stderr: "pipe" });
if (migrate.exitCode !== 0) throw new Error(`migrations failed: ${migrate.stderr}`);
say(`- migrations from empty (\`bun run migrate\`, process start to exit): ${ms(started)} ms`);

const hash = await argon2Hash(PASSWORD, ARGON2ID);
/**
 * Users [from, to] with an email, a credential account (all the same argon2id hash of PASSWORD) and two
 * sessions each: one live for a week, one that expired yesterday (the cleanup job's work).
 */
async function fill(from: number, to: number) {
  const step = 100_000;
  for (let lo = from; lo <= to; lo += step) {
    const hi = Math.min(to, lo + step - 1);
    await sql.begin(async (tx) => {
      await tx`
        insert into users (id, name, email, email_verified, experience_level, professional_role)
        select 'u' || g, 'User ' || g, 'user' || g || '@scale.test', true, 'beginner', 'student'
        from generate_series(${lo}::int, ${hi}::int) g`;
      await tx`
        insert into accounts (id, account_id, provider_id, user_id, password)
        select 'a' || g, 'u' || g, 'credential', 'u' || g, ${hash}
        from generate_series(${lo}::int, ${hi}::int) g`;
      await tx`
        insert into sessions (id, user_id, token, expires_at, ip_address, user_agent)
        select 's' || g || k, 'u' || g, 't' || g || k || md5(g::text || k), now() + case k when 'a' then interval '7 days' else interval '-1 day' end, '10.0.0.1', 'bench'
        from generate_series(${lo}::int, ${hi}::int) g, (values ('a'), ('b')) as kind(k)`;
    });
  }
  await sql`vacuum analyze users`;
  await sql`vacuum analyze accounts`;
  await sql`vacuum analyze sessions`;
  // The fill leaves gigabytes of dirty pages; written now, not by the background writer while the next
  // load is measured (on a 2-core machine that competes with the load for CPU and disk).
  await sql`checkpoint`;
}

const cookieName = "__Secure-better-auth.session_token";
const signedCookie = (token: string) => `${cookieName}=${encodeURIComponent(`${token}.${createHmac("sha256", SECRET).update(token).digest("base64")}`)}`;
/** SAMPLE live sessions spread evenly over users 1..upTo, as a file of Cookie lines and one of their emails. */
async function writeSample(label: string, upTo: number) {
  const ids = Array.from({ length: SAMPLE }, (_, i) => 1 + Math.floor(((i + 0.5) * upTo) / SAMPLE));
  const rows = await sql<{ token: string; email: string }[]>`
    select s.token, u.email from sessions s join users u on u.id = s.user_id
    where s.user_id = any(${ids.map((id) => `u${id}`)}) and s.expires_at > now()`;
  const cookies = join(work, `${label}-cookies.txt`);
  const users = join(work, `${label}-users.txt`);
  writeFileSync(cookies, rows.map((r) => signedCookie(r.token)).join("\n") + "\n");
  writeFileSync(users, rows.map((r) => r.email).join("\n") + "\n");
  return { cookies, users, count: rows.length };
}

// --- 1k users -----------------------------------------------------------------------------------------
started = performance.now();
await fill(1, SMALL);
say(`- filled ${SMALL} users, ${2 * SMALL} sessions in ${ms(started)} ms`);
const small = await writeSample("small", SMALL);
// The copy at SMALL users (a template copy needs the database without connections).
await sql.end();
await admin.unsafe(`create database ${SMALL_DB_NAME} template ${DB_NAME}`);
sql = postgres(dbUrl, { max: 4, onnotice: () => {} });
// The first start on a database also creates the first JWT signing key (an RSA key pair, 25-120 ms);
// every later start finds it. Both are reported.
let server = await startServer({ SESSION_COOKIE_CACHE: "off" });
const firstStart = { ms: server.coldStartMs, rss: rss(server.pid), launcher: server.launcherRssMb };
await server.stop();
server = await startServer({ SESSION_COOKIE_CACHE: "off" });
say(`- first start on the migrated database (creates the signing key): ${firstStart.ms} ms; idle RSS ${firstStart.rss} MB (and ${firstStart.launcher} MB of the \`bun run\` parent)`);
say(`- cold start, ${SMALL} users (\`bun run start\` to first /health 200): ${server.coldStartMs} ms; idle RSS ${rss(server.pid)} MB`);
say("");
say("| scenario | rps | ok rps | p50 ms | p99 ms | errors | peak RSS MB |");
say("|---|---:|---:|---:|---:|---:|---:|");
const smallDb = await wrk("get-session", small, { pid: server.pid });
say(row(`get-session, database, ${SMALL} users`, smallDb));
await server.stop();

// --- 1M users -----------------------------------------------------------------------------------------
started = performance.now();
await fill(SMALL + 1, USERS);
const fillMs = ms(started);
const large = await writeSample("large", USERS);
server = await startServer({ SESSION_COOKIE_CACHE: "off" });
const largeCold = server.coldStartMs;
const largeIdle = rss(server.pid);
const largeDb = await wrk("get-session", large, { pid: server.pid });
say(row(`get-session, database, ${USERS} users`, largeDb));
const signIn = await wrk("sign-in", large, { pid: server.pid });
say(row(`sign-in, ${USERS} users (argon2id)`, signIn));
await Bun.sleep(2000);
const afterStorm = rss(server.pid);
await server.stop();

// Database-checked get-session at both sizes, alternated on two servers (the 1k one on a template copy),
// so a change in the machine's load between the rows above cannot pass for an effect of the table sizes.
const smallServer = await startServer({ SESSION_COOKIE_CACHE: "off" }, { port: SMALL_PORT, database: smallDbUrl });
server = await startServer({ SESSION_COOKIE_CACHE: "off" });
const sizes = await alternate(ROUNDS, {
  small: () => wrk("get-session", small, { url: `http://127.0.0.1:${SMALL_PORT}` }),
  large: () => wrk("get-session", large),
});
await Promise.all([smallServer.stop(), server.stop()]);

// Default configuration: the cookie cache on. Each sampled client first gets its session_data cookie.
server = await startServer();
const cached = join(work, "cached-cookies.txt");
const lines: string[] = [];
for (const cookie of readFileSync(large.cookies, "utf8").trim().split("\n")) {
  const response = await fetch(`http://127.0.0.1:${PORT}/api/auth/get-session`, { headers: { cookie, origin: ORIGIN } });
  const data = response.headers.getSetCookie().find((line) => line.includes("session_data="));
  await response.arrayBuffer();
  lines.push(data ? `${cookie}; ${data.split(";")[0]}` : cookie);
}
writeFileSync(cached, lines.join("\n") + "\n");
// The cookie-cache load at production defaults (LOG_LEVEL=info: a JSON line per request), the same at
// LOG_LEVEL=warn (as `bun run bench` runs the server; the difference is what the request lines cost), and
// Bun's hello world, alternated.
const quiet = await startServer({ LOG_LEVEL: "warn" }, { port: QUIET_PORT });
const hello = Bun.spawn(["bun", HELLO], { env: { ...process.env, PORT: String(HELLO_PORT) }, stdout: "ignore", stderr: "ignore" });
await Bun.sleep(500);
const cache = await alternate(ROUNDS, {
  info: () => wrk("get-session", { cookies: cached }, { pid: server.pid }),
  warn: () => wrk("get-session", { cookies: cached }, { pid: quiet.pid, url: `http://127.0.0.1:${QUIET_PORT}` }),
  hello: () => wrk("health", {}, { url: `http://127.0.0.1:${HELLO_PORT}`, pid: hello.pid }),
});
hello.kill();
await Promise.all([hello.exited, quiet.stop()]);
say(row(`get-session, cookie cache, ${USERS} users (median of ${ROUNDS})`, medianRun(cache.info)));
say(row(`get-session, cookie cache, ${USERS} users, LOG_LEVEL=warn (median of ${ROUNDS})`, medianRun(cache.warn)));
say(row(`bun-hello, same wrk settings (median of ${ROUNDS})`, medianRun(cache.hello)));
const thousand = await wrk("get-session", { cookies: cached }, { pid: server.pid, conns: 1000 });
say(row(`get-session, cookie cache, 1000 connections`, thousand));
const thousandDb = await wrk("get-session", large, { pid: server.pid, conns: 1000 });
say(row(`get-session, cookie cache on, no cache cookie (lookup + cookie), 1000 connections`, thousandDb));
const cachedIdle = rss(server.pid);
await server.stop();

say("");
say(`- filled to ${USERS} users, ${2 * USERS} sessions (half expired), ${USERS} accounts in ${fillMs} ms (generate_series, 100k per transaction, then vacuum analyze and a checkpoint)`);
say(`- cold start, ${USERS} users: ${largeCold} ms; idle RSS ${largeIdle} MB; after the sign-in storm ${afterStorm} MB; cookie-cache server after 1000 connections ${cachedIdle} MB`);
say(`- get-session at ${USERS} users / at ${SMALL} users: ${(largeDb.ok_rps / smallDb.ok_rps).toFixed(3)} (the two table rows)`);
say(
  `- alternated, ${ROUNDS} rounds, req/s: ${SMALL} users ${perRound(sizes.small)}; ${USERS} users ${perRound(sizes.large)}; ` +
    `mean ${USERS} / mean ${SMALL}: ${(meanRps(sizes.large) / meanRps(sizes.small)).toFixed(3)}`,
);
say(
  `- cookie cache, alternated, ${ROUNDS} rounds, req/s: LOG_LEVEL=info ${perRound(cache.info)}; LOG_LEVEL=warn ${perRound(cache.warn)}; ` +
    `bun-hello ${perRound(cache.hello)}; mean / mean bun-hello: ${(meanRps(cache.info) / meanRps(cache.hello)).toFixed(3)} (info), ` +
    `${(meanRps(cache.warn) / meanRps(cache.hello)).toFixed(3)} (warn)`,
);

const expired = (await sql<{ n: number }[]>`select count(*)::int as n from sessions where expires_at < now()`)[0]!.n;
started = performance.now();
const cleanup = Bun.spawnSync(["bun", "src/cli/cleanup.ts"], { cwd: ROOT, env: { ...process.env, DATABASE_URL: dbUrl }, stdout: "pipe", stderr: "pipe" });
const cleanupMs = ms(started);
const left = (await sql<{ n: number }[]>`select count(*)::int as n from sessions where expires_at < now()`)[0]!.n;
say(`- cleanup over ${expired} expired sessions (\`bun run cleanup\`): ${cleanupMs} ms, ${left} left; it said: ${cleanup.stdout.toString().trim()}`);

await sql.end();
for (const name of [DB_NAME, SMALL_DB_NAME]) await admin.unsafe(`drop database if exists ${name} with (force)`);
await admin.end();
console.log(report.join("\n"));
