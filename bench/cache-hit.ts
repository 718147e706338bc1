// In-process CPU cost of one get-session answered from the cookie cache, by layer (sequential, no
// HTTP): Better Auth's handler, the fast path alone, and the whole app with request logs on and off.
//   bun bench/cache-hit.ts      env: DATABASE_URL (a server to create a scratch database on), N=5000
import postgres from "postgres";
import { createApp } from "../src/http/app.ts";
import { createAuth, ensureSigningKey } from "../src/auth/better-auth.ts";
import { loadConfig } from "../src/config.ts";
import { createPool } from "../src/db/pool.ts";
import { createSessionFastPath } from "../src/session/fast-path.ts";
import { cachedCopyWindowSeconds, listenForChanges, untilTrusting } from "../src/session/change-notices.ts";
import { createLogger } from "../src/ops/log.ts";
import { applyMigrations } from "../src/db/migrate.ts";

const N = Number(process.env.N ?? 5000);
const admin = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const name = `bench_cache_hit_${process.pid}`;
const root = postgres(admin, { max: 1, onnotice: () => {} });
await root.unsafe(`create database ${name}`);
const url = new URL(admin);
url.pathname = `/${name}`;
const env = {
  NODE_ENV: "production",
  DATABASE_URL: url.toString(),
  BETTER_AUTH_SECRET: "cache-hit-bench-0123456789abcdefghijklmnop",
  BETTER_AUTH_URL: "https://auth.bench.test",
  CORS_ORIGINS: "https://site.bench.test",
  EMAIL_FLOWS: "none",
  RATE_LIMIT: "off",
  METRICS_TOKEN: "off",
};
const config = loadConfig(env) as ReturnType<typeof loadConfig> & { secret: string };
const sql = createPool(config.databaseUrl!, { max: 4 });
await applyMigrations(sql);
const quiet = createLogger("error", () => {}, "json");
const auth = createAuth({ config, sql, logger: quiet });
await ensureSigningKey(auth, sql, config);
// Cached answers are trusted only with a change listener (src/session/change-notices.ts), as in the server.
const notices = listenForChanges(config.databaseUrl!, cachedCopyWindowSeconds(config) * 1000, quiet);
await untilTrusting(notices);
const fast = (await createSessionFastPath(auth, sql, quiet, notices))!;
let written = 0;
const apps = {
  "app, LOG_LEVEL=warn": createApp({ config, auth, sql, logger: quiet, version: "bench", notices }),
  "app, LOG_LEVEL=info (a JSON line per request, discarded)": createApp({ config, auth, sql, logger: createLogger("info", (line) => (written += line.length), "json"), version: "bench", notices }),
};
const origin = "https://site.bench.test";
const signUp = await apps["app, LOG_LEVEL=warn"].handle(
  new Request(`${config.baseUrl}/api/auth/sign-up/email`, {
    method: "POST",
    headers: { "content-type": "application/json", origin },
    body: JSON.stringify({ name: "Bench", email: "bench@example.test", password: "bench-password-123" }),
  }),
);
const token = signUp.headers.getSetCookie().find((line) => line.includes("session_token="))!.split(";")[0]!;
const first = await fast.getSession(new Request(`${config.baseUrl}/api/auth/get-session`, { headers: { cookie: token, origin } }));
const cache = first!.headers.getSetCookie()[0]!.split(";")[0]!;
const cookie = `${token}; ${cache}`;
const request = () => new Request(`${config.baseUrl}/api/auth/get-session`, { headers: { cookie, origin } });

async function measure(label: string, work: () => Promise<unknown>) {
  for (let i = 0; i < 500; i++) await work();
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < N; i++) await work();
  const cpu = process.cpuUsage(cpu0);
  console.log(`| ${label} | ${((cpu.user + cpu.system) / N).toFixed(1)} |`);
}
console.log(`N=${N}, bun ${Bun.version}\n\n| get-session from the cookie cache | CPU µs / request |\n|---|---:|`);
await measure("Better Auth handler", async () => (await auth.handler(request())).text());
await measure("fast path alone", async () => (await fast.getSession(request()))!.text());
for (const [label, app] of Object.entries(apps)) await measure(label, async () => (await app.handle(request())).text());
await measure("app, GET /health (routing, CORS, observation)", async () => (await apps["app, LOG_LEVEL=warn"].handle(new Request(`${config.baseUrl}/health`))).text());
console.log(`\n(${written} bytes of request log written)`);
await sql.end();
await root.unsafe(`drop database ${name} with (force)`);
await root.end();
process.exit(0);
