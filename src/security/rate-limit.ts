// Per-IP rate limits for Better Auth: the rules (sign-in, sign-up, mail-sending requests, the rest),
// the counters' store shared by every instance (Postgres `rate_limits`, or Redis with REDIS_URL),
// and the 429 answer. ASVS 2.2.1 (anti-automation), 11.1.4 (limits on business functions).
//
// The store is Better Auth's `rateLimit.customStorage`, which Better Auth 1.7 consults before any
// `storage` or `secondaryStorage` (getRateLimitStorage in better-auth/dist/api/rate-limiter): adding
// Redis as secondary storage for sessions leaves these counters where this module puts them.
import type { BetterAuthRateLimitOptions, BetterAuthRateLimitStorage } from "better-auth";
import { RedisClient } from "bun";
import type { Config, RateLimitRule } from "../config.ts";
import type { Sql } from "../db/pool.ts";
import { errorResponse } from "../errors.ts";

export interface RateLimitStore extends BetterAuthRateLimitStorage {
  readonly kind: "postgres" | "redis";
  close(): Promise<void>;
}

/** Thrown when the counters cannot be read: the request is refused with 503, not let through. */
export class RateLimitStoreError extends Error {
  override name = "RateLimitStoreError";

  constructor(
    readonly store: RateLimitStore["kind"],
    cause: unknown,
  ) {
    super(`rate-limit store (${store}) unavailable: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** Paths (after /api/auth) that send a mail: they share the tightest budget. */
export const MAIL_PATHS = [
  "/sign-in/magic-link",
  "/request-password-reset",
  "/forget-password",
  "/forget-password/*",
  "/send-verification-email",
  "/change-email",
  "/email-otp/*",
];

/**
 * The auth routes with a path parameter. Better Auth keys a counter on `ip|path`, so every token in
 * /reset-password/<token> would write a counter row of its own (unbounded writes for anyone): these
 * count once per route instead. test/security/rate-limit.test.ts checks that the list names every such route.
 */
export const PARAMETERISED_ROUTES = ["/reset-password/:token", "/callback/:id"];
const parameterisedRoutes = PARAMETERISED_ROUTES.map((template) => ({
  template,
  prefix: template.slice(0, template.lastIndexOf("/") + 1),
}));

/** Better Auth's counter key `ip|path` with a parameterised path replaced by its route template. */
export function counterKey(key: string): string {
  const bar = key.indexOf("|"); // an IP address holds no "|"
  const path = key.slice(bar + 1);
  const route = parameterisedRoutes.find(({ prefix }) => path.startsWith(prefix) && !path.slice(prefix.length).includes("/"));
  return route ? `${key.slice(0, bar + 1)}${route.template}` : key;
}

/** Better Auth's rate-limit options for `config`; rules match in this order, the first one wins. */
export function rateLimitOptions(config: Pick<Config, "rateLimit" | "rateLimitRules">, store: BetterAuthRateLimitStorage): BetterAuthRateLimitOptions {
  const rule = ({ max, windowSeconds }: RateLimitRule) => ({ max, window: windowSeconds });
  const { signIn, signUp, mail, other } = config.rateLimitRules;
  return {
    enabled: config.rateLimit,
    window: other.windowSeconds,
    max: other.max,
    customStorage: { consume: (key, rule) => store.consume(counterKey(key), rule) },
    customRules: {
      ...Object.fromEntries(MAIL_PATHS.map((path) => [path, rule(mail)])),
      "/sign-in/*": rule(signIn),
      "/sign-up/*": rule(signUp),
      // Authenticated reads are not limited per IP: a classroom behind one address loads sessions
      // for every pupil on every page, and both verify the signed cookie before any lookup.
      "/get-session": false,
      "/token": false,
    },
  };
}

const retryAfterSeconds = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

/**
 * Fixed windows in the `rate_limits` table: one upsert per request, atomic under concurrency and
 * across instances, timed by the database's clock so instances with skewed clocks agree.
 */
export function createPostgresRateLimitStore(sql: Sql): RateLimitStore {
  return {
    kind: "postgres",
    async consume(key, rule) {
      const windowMs = rule.window * 1000;
      let row: { count: number; retry_ms: number } | undefined;
      try {
        [row] = await sql<{ count: number; retry_ms: number }[]>`
          insert into rate_limits as r (key, count, last_request, expires_at)
          values (${key}, 1, (extract(epoch from now()) * 1000)::bigint, now() + ${windowMs} * interval '1 millisecond')
          on conflict (key) do update set
            count = case when r.expires_at <= now() then 1 else least(r.count + 1, ${rule.max + 1}) end,
            last_request = excluded.last_request,
            expires_at = case when r.expires_at <= now() then excluded.expires_at else r.expires_at end
          returning count, (extract(epoch from (expires_at - now())) * 1000)::int as retry_ms`;
      } catch (error) {
        throw new RateLimitStoreError("postgres", error);
      }
      if (row!.count <= rule.max) return { allowed: true, retryAfter: null };
      return { allowed: false, retryAfter: retryAfterSeconds(row!.retry_ms) };
    },
    async close() {},
  };
}

// One round trip, atomic: count the request, start the window's TTL with the first one, and repair a
// key that has no TTL (Better Auth's secondary-storage counters once had none and grew forever).
const REDIS_CONSUME = `
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if count == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}`;

/** The counters' keys in Redis, apart from the session storage's (src/session/redis-storage.ts), which a purge clears. */
export const RATE_LIMIT_KEY_PREFIX = "auth-server:rate-limit:";

/** Fixed windows in Redis: a counter per key that expires with its window. */
export function createRedisRateLimitStore(url: string, prefix = RATE_LIMIT_KEY_PREFIX): RateLimitStore {
  // No offline queue: while Redis is away a request fails at once (503) instead of waiting for it.
  const client = new RedisClient(url, { connectionTimeout: 2000, autoReconnect: true, maxRetries: 3, enableOfflineQueue: false });
  let connecting: Promise<void> | undefined;
  const connected = () => {
    if (client.connected) return Promise.resolve();
    return (connecting ??= client.connect().finally(() => (connecting = undefined)));
  };
  return {
    kind: "redis",
    async consume(key, rule) {
      let reply: unknown;
      try {
        await connected();
        reply = await client.send("EVAL", [REDIS_CONSUME, "1", prefix + key, String(rule.window * 1000)]);
      } catch (error) {
        throw new RateLimitStoreError("redis", error);
      }
      const [count, ttlMs] = (reply as [number, number]).map(Number) as [number, number];
      if (count <= rule.max) return { allowed: true, retryAfter: null };
      return { allowed: false, retryAfter: retryAfterSeconds(ttlMs) };
    },
    async close() {
      client.close();
    },
  };
}

/** The store `config` asks for: Redis when REDIS_URL is set, Postgres otherwise. */
export function createRateLimitStore(config: Pick<Config, "redisUrl">, sql: Sql): RateLimitStore {
  return config.redisUrl ? createRedisRateLimitStore(config.redisUrl) : createPostgresRateLimitStore(sql);
}

/**
 * Better Auth's 429 (a bare message and an `X-Retry-After` header) as this server's JSON error with
 * the standard `Retry-After` header (RFC 6585 §4, RFC 9110 §10.2.3).
 */
export function rateLimitedResponse(limited: Response): Response {
  const seconds = Number(limited.headers.get("x-retry-after") ?? limited.headers.get("retry-after"));
  const retryAfter = Number.isFinite(seconds) && seconds > 0 ? Math.ceil(seconds) : 60;
  return errorResponse("RATE_LIMITED", { message: `too many requests; try again in ${retryAfter} s`, headers: { "retry-after": String(retryAfter) } });
}
