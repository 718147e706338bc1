// Per-IP rate limits (src/security/rate-limit.ts), ASVS 2.2.1 / 11.1.4: the default budgets, 429 with
// Retry-After and a JSON code, one budget shared by every instance, atomic under concurrency, and
// counters that expire (Postgres rows are pruned; Redis keys always carry a TTL).
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { RedisClient } from "bun";
import { createPostgresRateLimitStore, createRedisRateLimitStore, PARAMETERISED_ROUTES, type RateLimitStore } from "../../src/security/rate-limit.ts";
import { runHousekeeping } from "../../src/ops/housekeeping.ts";
import { cleanUpAfterFile, createSecondInstance, createTestApp, onCleanup, uniqueEmail, type TestApp, expectError } from "../helpers.ts";

cleanUpAfterFile();
// Each test hashes passwords a dozen times or more; a loaded machine needs more than the default 5 s.
setDefaultTimeout(30_000);

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
// TRUST_PROXY lets in-process requests name their client IP in X-Forwarded-For.
const LIMITED = { RATE_LIMIT: "on", TRUST_PROXY: "on" };

type Send = TestApp["request"];

const wrongSignInFrom = (request: Send, ip: string, email = uniqueEmail()) =>
  request("/api/auth/sign-in/email", { method: "POST", headers: { "x-forwarded-for": ip }, json: { email, password: "wrong password" } });

async function statuses(count: number, send: () => Promise<Response>): Promise<number[]> {
  const result: number[] = [];
  for (let i = 0; i < count; i++) result.push((await send()).status);
  return result;
}

/** Another instance on `t`'s database, optionally with its own rate-limit store. */
const secondInstance = async (t: TestApp, rateLimitStore?: RateLimitStore): Promise<Send> =>
  (await createSecondInstance(t, {}, rateLimitStore ? { rateLimitStore } : {})).request;

describe("default budgets per client IP (ASVS 2.2.1)", () => {
  test("sign-in: 5 per minute, then 429 with Retry-After and a JSON error; another IP has its own budget", async () => {
    const t = await createTestApp(LIMITED);
    expect(await statuses(6, () => wrongSignInFrom(t.request, "203.0.113.1"))).toEqual([401, 401, 401, 401, 401, 429]);

    const limited = await wrongSignInFrom(t.request, "203.0.113.1");
    const retryAfter = Number(limited.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    await expectError(limited, 429, "RATE_LIMITED");

    expect((await wrongSignInFrom(t.request, "203.0.113.2")).status).toBe(401);
  });

  test("sign-up: 5 per minute", async () => {
    const t = await createTestApp(LIMITED);
    const signUp = () =>
      t.request("/api/auth/sign-up/email", { method: "POST", headers: { "x-forwarded-for": "203.0.113.3" }, json: { name: "R", email: uniqueEmail(), password: "correct horse battery" } });
    expect(await statuses(6, signUp)).toEqual([200, 200, 200, 200, 200, 429]);
  });

  test("requests that send mail (password reset, verification, magic link): 3 per minute, counted per endpoint", async () => {
    const t = await createTestApp(LIMITED);
    for (const path of ["/api/auth/request-password-reset", "/api/auth/send-verification-email", "/api/auth/sign-in/magic-link"]) {
      const answers = await statuses(4, () => t.request(path, { method: "POST", headers: { "x-forwarded-for": "203.0.113.4" }, json: { email: uniqueEmail() } }));
      expect(answers.slice(0, 3)).not.toContain(429);
      expect(answers[3]).toBe(429);
    }
  });

  test("everything else: 100 per minute; get-session and token are never limited", async () => {
    const t = await createTestApp(LIMITED);
    const jwks = await statuses(101, () => t.request("/api/auth/jwks", { headers: { "x-forwarded-for": "203.0.113.5" } }));
    expect(jwks.slice(0, 100).every((status) => status === 200)).toBe(true);
    expect(jwks[100]).toBe(429);
    const sessions = await statuses(120, () => t.request("/api/auth/get-session", { headers: { "x-forwarded-for": "203.0.113.5" } }));
    expect(sessions.every((status) => status === 200)).toBe(true);
  });

  test("the budgets are configurable (RATE_LIMIT_SIGN_IN=2/1m)", async () => {
    const t = await createTestApp({ ...LIMITED, RATE_LIMIT_SIGN_IN: "2/1m" });
    expect(await statuses(3, () => wrongSignInFrom(t.request, "203.0.113.6"))).toEqual([401, 401, 429]);
  });

  test("RATE_LIMIT=off turns the limits off", async () => {
    const t = await createTestApp({ TRUST_PROXY: "on", RATE_LIMIT: "off" });
    expect(await statuses(8, () => wrongSignInFrom(t.request, "203.0.113.7"))).not.toContain(429);
  });
});

describe("counters are bounded by the routes, not by the paths anyone makes up", () => {
  const rows = async (t: TestApp, like: string) =>
    (await t.db.sql<{ n: number }[]>`select count(*)::int as n from rate_limits where key like ${like}`)[0]!.n;

  test("200 distinct unknown /api/auth paths answer 404 JSON NOT_FOUND and write no rate_limits row", async () => {
    const t = await createTestApp(LIMITED);
    const before = await rows(t, "%");
    for (let i = 0; i < 200; i++) {
      const path = i % 2 ? `/api/auth/no-such-route-${i}` : `/api/auth/sign-in/email/${i}`;
      const response = await t.request(path, { method: i % 4 < 2 ? "GET" : "POST", headers: { "x-forwarded-for": "203.0.113.70" }, ...(i % 4 < 2 ? {} : { json: {} }) });
      await expectError(response, 404, "NOT_FOUND");
    }
    expect(await rows(t, "%")).toBe(before);
    // A known route is still counted.
    await wrongSignInFrom(t.request, "203.0.113.70");
    expect(await rows(t, "203.0.113.70|%")).toBe(1);
  });

  test("200 distinct reset-password tokens and callback ids count in one row per route", async () => {
    const t = await createTestApp(LIMITED);
    for (let i = 0; i < 100; i++) {
      expect((await t.request(`/api/auth/reset-password/token-${i}`, { headers: { "x-forwarded-for": "203.0.113.71" }, redirect: "manual" })).status).toBeLessThan(500);
      expect((await t.request(`/api/auth/callback/provider-${i}`, { headers: { "x-forwarded-for": "203.0.113.71" }, redirect: "manual" })).status).toBeLessThan(500);
    }
    const keys = (await t.db.sql<{ key: string }[]>`select key from rate_limits where key like '203.0.113.71|%' order by key`).map((row) => row.key);
    expect(keys).toEqual(["203.0.113.71|/callback/:id", "203.0.113.71|/reset-password/:token"]);
  });

  test("every auth route with a path parameter is one the counters collapse", async () => {
    const t = await createTestApp();
    const parameterised = Object.values(t.auth.api as Record<string, { path?: string }>)
      .flatMap((endpoint) => (endpoint.path?.includes(":") ? [endpoint.path] : []))
      .sort();
    expect(parameterised).toEqual([...PARAMETERISED_ROUTES].sort());
  });
});

describe("Postgres store (the default)", () => {
  test("two instances on one database share one budget", async () => {
    const t = await createTestApp(LIMITED);
    const other = await secondInstance(t);
    const answers: number[] = [];
    for (let i = 0; i < 6; i++) answers.push((await wrongSignInFrom(i % 2 ? other : t.request, "203.0.113.8")).status);
    expect(answers).toEqual([401, 401, 401, 401, 401, 429]);
  });

  test("concurrent requests cannot overrun the budget: 20 at once, exactly 5 get through", async () => {
    const t = await createTestApp(LIMITED);
    const answers = await Promise.all(Array.from({ length: 20 }, () => wrongSignInFrom(t.request, "203.0.113.9")));
    expect(answers.filter((response) => response.status === 401).length).toBe(5);
    expect(answers.filter((response) => response.status === 429).length).toBe(15);
  });

  test("a window ends: the budget is back after it, ended rows are pruned, and the table does not grow", async () => {
    const t = await createTestApp({ ...LIMITED, RATE_LIMIT_SIGN_IN: "1/1s" });
    expect(await statuses(2, () => wrongSignInFrom(t.request, "203.0.113.10"))).toEqual([401, 429]);
    const store = createPostgresRateLimitStore(t.db.sql);
    for (let i = 0; i < 20; i++) await store.consume(`198.51.100.${i}|/sign-in/email`, { window: 1, max: 1 });
    const { rows } = (await t.db.sql<{ rows: number }[]>`select count(*)::int as rows from rate_limits`)[0]!;
    expect(rows).toBe(21);
    const { future } = (await t.db.sql<{ future: boolean }[]>`select bool_and(expires_at > now()) as future from rate_limits`)[0]!;
    expect(future).toBe(true);

    await Bun.sleep(1100);
    expect((await wrongSignInFrom(t.request, "203.0.113.10")).status).toBe(401);
    const run = await runHousekeeping(t.db.sql, { auditRetentionSeconds: t.config.auditRetentionSeconds, lockoutWindowSeconds: t.config.lockout.windowSeconds });
    expect(run.ran && run.deleted.rate_limits).toBe(20); // every row but the one just renewed
    const { left } = (await t.db.sql<{ left: number }[]>`select count(*)::int as left from rate_limits`)[0]!;
    expect(left).toBe(1);
  });
});

describe("Redis store (REDIS_URL)", () => {
  /** A Redis store under a key prefix of its own, and a raw client to look at its keys. */
  function redisStore() {
    const prefix = `auth-server-test:${process.pid}:${Math.random().toString(36).slice(2)}:`;
    const store = createRedisRateLimitStore(REDIS_URL, prefix);
    const raw = new RedisClient(REDIS_URL);
    onCleanup(async () => {
      const keys = (await raw.send("KEYS", [`${prefix}*`])) as string[];
      if (keys.length) await raw.send("DEL", keys);
      raw.close();
      await store.close();
    });
    return { store, raw, prefix };
  }

  test("counts in Redis, not in Postgres; two instances share the budget; every key has a TTL within its window", async () => {
    const { store, raw, prefix } = redisStore();
    const t = await createTestApp(LIMITED);
    const first = await secondInstance(t, store);
    const otherStore = createRedisRateLimitStore(REDIS_URL, prefix);
    onCleanup(() => otherStore.close());
    const second = await secondInstance(t, otherStore);
    const answers: number[] = [];
    for (let i = 0; i < 6; i++) answers.push((await wrongSignInFrom(i % 2 ? second : first, "203.0.113.40")).status);
    expect(answers).toEqual([401, 401, 401, 401, 401, 429]);

    const { rows } = (await t.db.sql<{ rows: number }[]>`select count(*)::int as rows from rate_limits`)[0]!;
    expect(rows).toBe(0);
    const keys = (await raw.send("KEYS", [`${prefix}*`])) as string[];
    expect(keys.length).toBe(1);
    for (const key of keys) {
      const ttl = Number(await raw.send("PTTL", [key]));
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60_000);
    }
  });

  test("a counter left without a TTL gets one at its next request, and a key disappears when its window ends", async () => {
    const { store, raw, prefix } = redisStore();
    await raw.send("SET", [`${prefix}legacy`, "3"]);
    expect(Number(await raw.send("PTTL", [`${prefix}legacy`]))).toBe(-1);
    expect(await store.consume("legacy", { window: 1, max: 10 })).toEqual({ allowed: true, retryAfter: null });
    const ttl = Number(await raw.send("PTTL", [`${prefix}legacy`]));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(1000);

    expect((await store.consume("short", { window: 1, max: 1 })).allowed).toBe(true);
    expect(await store.consume("short", { window: 1, max: 1 })).toEqual({ allowed: false, retryAfter: 1 });
    await Bun.sleep(1100);
    expect(Number(await raw.send("EXISTS", [`${prefix}short`]))).toBe(0);
    expect((await store.consume("short", { window: 1, max: 1 })).allowed).toBe(true);
  });

  test("an unreachable Redis refuses the request with 503 RATE_LIMIT_UNAVAILABLE, not a 500 and not a free pass", async () => {
    const t = await createTestApp(LIMITED);
    const deadPort = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = deadPort.port;
    deadPort.stop(true);
    const store = createRedisRateLimitStore(`redis://127.0.0.1:${port}`);
    onCleanup(() => store.close());
    const response = await wrongSignInFrom(await secondInstance(t, store), "203.0.113.41");
    await expectError(response, 503, "RATE_LIMIT_UNAVAILABLE");
  });
});
