// docker-compose.yml stays a working example: its instances' settings pass the production checks and
// are the same on every instance, and the proxy forwards to exactly those instances.
import { expect, test } from "bun:test";
import { join } from "node:path";
import { loadConfig } from "../src/config.ts";
import { PROJECT_DIR } from "./helpers.ts";

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
