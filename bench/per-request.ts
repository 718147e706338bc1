// In-process cost per request (no HTTP, no load generator): CPU and wall time of each way of
// answering get-session and /token, and of the pieces they are made of. Sequential, so the wall time
// includes the database round trip and the CPU time is this process's own.
//   bun bench/per-request.ts        env: DATABASE_URL (a server to create a scratch database on), N=2000
import postgres from "postgres";
import { createApp } from "../src/http/app.ts";
import { createAuth, ensureSigningKey } from "../src/auth/better-auth.ts";
import { createAuthHandler } from "../src/auth/handler.ts";
import { loadConfig } from "../src/config.ts";
import { createPool } from "../src/db/pool.ts";
import { createSessionFastPath } from "../src/session/fast-path.ts";
import { cachedCopyWindowSeconds, listenForChanges, untilTrusting } from "../src/session/change-notices.ts";
import { createLogger } from "../src/ops/log.ts";
import { applyMigrations } from "../src/db/migrate.ts";
import { hash as argon2Hash, verify as argon2Verify } from "@node-rs/argon2";
import { ARGON2ID } from "../src/auth/password.ts";
import { createHmac } from "node:crypto";
import { SignJWT, generateKeyPair } from "jose";

const N = Number(process.env.N ?? 2000);
const admin = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const name = `bench_per_request_${process.pid}`;
const root = postgres(admin, { max: 1, onnotice: () => {} });
await root.unsafe(`drop database if exists ${name}`);
await root.unsafe(`create database ${name}`);
const url = new URL(admin);
url.pathname = `/${name}`;

const config = loadConfig({
  NODE_ENV: "production",
  DATABASE_URL: url.toString(),
  BETTER_AUTH_SECRET: "per-request-bench-0123456789abcdefghijklmnop",
  BETTER_AUTH_URL: "https://auth.bench.test",
  CORS_ORIGINS: "https://site.bench.test",
  // The benchmark sends no mail; production refuses to start with email flows on and no SMTP_URL.
  EMAIL_FLOWS: "none",
  RATE_LIMIT: "off",
  METRICS_TOKEN: "off",
  LOG_LEVEL: "error",
}) as ReturnType<typeof loadConfig> & { secret: string };
const logger = createLogger("error");
const sql = createPool(config.databaseUrl!, { max: 10 });
await applyMigrations(sql);
const auth = createAuth({ config, sql, logger });
await ensureSigningKey(auth, sql, config);
// Cached answers are trusted only with a change listener (src/session/change-notices.ts), as in the server.
const notices = listenForChanges(config.databaseUrl!, cachedCopyWindowSeconds(config) * 1000, logger);
await untilTrusting(notices);
const app = createApp({ config, auth, sql, logger, version: "bench", notices });
const fast = (await createSessionFastPath(auth, sql, logger, notices))!;

const origin = "https://site.bench.test";
const signUp = await app.handle(
  new Request(`${config.baseUrl}/api/auth/sign-up/email`, {
    method: "POST",
    headers: { "content-type": "application/json", origin },
    body: JSON.stringify({ name: "Bench", email: "bench@example.test", password: "bench-password-123", experienceLevel: "beginner" }),
  }),
);
const cookie = signUp.headers.getSetCookie()[0]!.split(";")[0]!;
const token = decodeURIComponent(cookie.slice(cookie.indexOf("=") + 1)).split(".")[0]!;
const request = (path: string) => new Request(`${config.baseUrl}${path}`, { headers: { cookie, origin } });

async function measure(label: string, work: () => Promise<unknown> | unknown, n = N) {
  for (let i = 0; i < Math.min(200, n); i++) await work(); // warm up (JIT, prepared statements)
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await work();
  const wall = (performance.now() - t0) / n;
  const cpu = process.cpuUsage(cpu0);
  const cpuMs = (cpu.user + cpu.system) / 1000 / n;
  console.log(`| ${label} | ${cpuMs.toFixed(3)} | ${wall.toFixed(3)} |`);
}

console.log(`N=${N} sequential requests each, bun ${Bun.version}\n`);
console.log("| what | CPU ms / request | wall ms / request |\n|---|---:|---:|");
await measure("get-session, Better Auth handler", async () => (await auth.handler(request("/api/auth/get-session"))).text());
await measure("get-session, app (fast path)", async () => (await app.handle(request("/api/auth/get-session"))).text());
await measure("/token, Better Auth handler (RS256 sign each time)", async () => (await auth.handler(request("/api/auth/token"))).text());
await measure("/token, app (fast path, reused token)", async () => (await app.handle(request("/api/auth/token"))).text());
await measure("Better Auth handler, GET /ok (router build + dispatch only)", async () => (await auth.handler(request("/api/auth/ok"))).text());
const builtOnce = createAuthHandler(auth);
await measure("Better Auth router built once (src/auth/handler.ts), GET /ok", async () => (await builtOnce(request("/api/auth/ok"))).text());
await measure("/health, app (probe reused)", async () => (await app.handle(new Request(`${config.baseUrl}/health`))).text());
await measure("piece: cookie HMAC-SHA256 check", () => createHmac("sha256", config.secret).update(token).digest("base64"));
await measure("piece: session+user lookup, one prepared statement", () =>
  sql`select s.*, u.* from sessions s join users u on u.id = s.user_id where s.token = ${token}`,
);
await measure("piece: Better Auth findSession (Kysely, join)", async () => (await auth.$context).internalAdapter.findSession(token));
// Password work: sign-in is one argon2id verification plus a session insert; sign-up one hash plus
// the user, account and session inserts.
const HASHES = Math.max(10, Math.round(N / 50));
const stored = await argon2Hash("bench-password-123", ARGON2ID);
const post = (path: string, body: unknown) =>
  new Request(`${config.baseUrl}${path}`, { method: "POST", headers: { "content-type": "application/json", origin }, body: JSON.stringify(body) });
await measure("sign-in/email, app", async () => (await app.handle(post("/api/auth/sign-in/email", { email: "bench@example.test", password: "bench-password-123" }))).text(), HASHES);
let signUps = 0;
await measure("sign-up/email, app", async () => (await app.handle(post("/api/auth/sign-up/email", { name: "Bench", email: `bench-${signUps++}@example.test`, password: "bench-password-123" }))).text(), HASHES);
await measure("piece: argon2id verify (@node-rs/argon2, m=19 MiB, t=2)", () => argon2Verify(stored, "bench-password-123"), HASHES);
const rsa = await generateKeyPair("RS256");
await measure("piece: RS256 JWT signature (jose)", () => new SignJWT({ sub: "x" }).setProtectedHeader({ alg: "RS256" }).sign(rsa.privateKey));
await measure("piece: fast-path session lookup without HTTP", () => fast.getSession(request("/api/auth/get-session")));

await sql.end();
await root.unsafe(`drop database ${name} with (force)`);
await root.end();
