// docker-compose.yml stays a working example: its instances' settings pass the production checks and
// are the same on every instance, and the proxy forwards to exactly those instances.
import { expect, test } from "bun:test";
import { join } from "node:path";
import { loadConfig } from "../../src/config.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { buildBundle, cleanUpAfterFile, createTestDatabase, freePort, PASSWORD, PROJECT_DIR, SITE_ORIGIN, spawnProject, uniqueEmail, waitForHealth, post } from "../helpers.ts";
import { startSmtpServer } from "../smtp.ts";

cleanUpAfterFile();

type Service = { environment?: Record<string, string>; image?: string; build?: string };
const compose = Bun.YAML.parse(await Bun.file(join(PROJECT_DIR, "docker-compose.yml")).text()) as { services: Record<string, Service> };
const generatedSecret = Buffer.from(crypto.getRandomValues(new Uint8Array(48))).toString("base64");
const instances = Object.entries(compose.services).filter(([, service]) => service.build === ".");
/** The environment as Compose would pass it, with the required secret supplied and optional ones unset. */
const resolved = (environment: Record<string, string>) =>
  Object.fromEntries(
    Object.entries(environment).map(([name, value]) => [
      name,
      value.replace(/\$\{(\w+)(:[?-])([^}]*)\}/g, (_, variable: string, kind: string, fallback: string) =>
        variable === "BETTER_AUTH_SECRET" ? generatedSecret : kind === ":-" ? fallback : ""),
    ]),
  );

test("two auth-server instances with identical settings that pass the production checks", () => {
  expect(instances.map(([name]) => name)).toEqual(["auth1", "auth2"]);
  const [first, second] = instances.map(([, service]) => resolved(service.environment!));
  expect(second).toEqual(first!);
  const config = loadConfig(first!);
  expect(config.nodeEnv).toBe("production");
  expect(config.trustProxy).toBe(true);
  expect(config.redisUrl).toBe("redis://redis:6379");
  expect(config.baseUrl).toBe("https://auth.localhost");
});

test("the Caddyfile proxies the site of BETTER_AUTH_URL to every instance and hides /metrics", async () => {
  const caddyfile = await Bun.file(join(PROJECT_DIR, "deploy", "Caddyfile")).text();
  expect(caddyfile).toMatch(/^auth\.localhost \{/m);
  const upstreams = /reverse_proxy ([^{]+)\{/.exec(caddyfile)![1]!.trim().split(/\s+/);
  expect(upstreams).toEqual(instances.map(([name]) => `${name}:3001`));
  expect(caddyfile).toContain("@metrics path /metrics");
  expect(compose.services.proxy!.image).toStartWith("caddy:");
});

/** Builds the production bundle and starts it as the image does (`bun run --silent start`) on a fresh, migrated database with `env` (plus database and port). */
async function startBundle(label: string, env: (port: number) => Record<string, string>) {
  await buildBundle();
  const db = await createTestDatabase(label);
  await applyMigrations(db.sql);
  const port = freePort();
  const server = spawnProject(["bun", "run", "--silent", "start"], { DATABASE_URL: db.url, HOST: "127.0.0.1", PORT: String(port), ...env(port) });
  const url = `http://127.0.0.1:${port}`;
  await waitForHealth(url, server);
  return { server, url };
}

test("the production entry (`bun run build`, then `bun run start`, as the image runs it) starts on a migrated database and serves", async () => {
  const { server, url } = await startBundle("bundle", () => ({
    NODE_ENV: "production",
    BETTER_AUTH_SECRET: generatedSecret,
    BETTER_AUTH_URL: "https://auth.bundle.test",
    CORS_ORIGINS: SITE_ORIGIN,
    EMAIL_FLOWS: "none",
    METRICS_TOKEN: "scrape-token-0123456789abcdef",
    LOG_LEVEL: "info",
  }));
  const signUp = await post(url, "/api/auth/sign-up/email", { name: "Bundle", email: uniqueEmail("bundle"), password: PASSWORD });
  expect(signUp.status).toBe(200);
  // The passkey plugin's WebAuthn library is left out of the bundle and loaded on first use from
  // node_modules beside it (package.json build, --external).
  const passkeyOptions = await fetch(`${url}/api/auth/passkey/generate-authenticate-options`, { headers: { origin: SITE_ORIGIN } });
  expect(passkeyOptions.status).toBe(200);
  expect(((await passkeyOptions.json()) as { challenge?: unknown }).challenge).toBeString();
  server.process.kill("SIGTERM");
  expect(await server.exited(15_000)).toBe(0);
  // Production logs are JSON lines.
  const lines = server.output().trim().split("\n");
  expect(lines.every((line) => line.startsWith("{"))).toBe(true);
  expect(lines.map((line) => JSON.parse(line)).some((entry) => entry.msg === "request" && entry.route === "/api/auth/sign-up/email" && entry.status === 200)).toBe(true);
}, 90_000);

test("the production bundle sends mail: nodemailer, left out of the bundle, loads with the first message", async () => {
  const smtp = await startSmtpServer();
  // Development mode: production insists on STARTTLS, which the test relay does not offer.
  const { server, url } = await startBundle("bundle_mail", (port) => ({
    NODE_ENV: "development",
    BETTER_AUTH_SECRET: generatedSecret,
    BETTER_AUTH_URL: `http://127.0.0.1:${port}`,
    CORS_ORIGINS: SITE_ORIGIN,
    SMTP_URL: smtp.url,
    MAIL_FROM: "Auth <auth@bundle.test>",
    LOG_LEVEL: "error",
  }));
  const email = uniqueEmail("bundlemail");
  expect((await post(url, "/api/auth/sign-up/email", { name: "Bundle Mail", email, password: PASSWORD })).status).toBe(200);
  expect((await post(url, "/api/auth/request-password-reset", { email })).status).toBe(200);
  const mail = await smtp.waitForMail(email);
  expect(mail.from).toBe("auth@bundle.test");
  server.process.kill("SIGTERM");
  expect(await server.exited(15_000)).toBe(0);
}, 90_000);
