// Redis as Better Auth's secondary storage (REDIS_URL), through Bun's built-in client. Sessions stay
// in Postgres too (storeSessionInDatabase, src/auth/better-auth.ts), so Redis is a cache that may fail:
// - every command is bounded by a short timeout, and an unreachable Redis reads as a miss, which
//   Better Auth answers from Postgres; nobody is signed out and nothing waits on a dead socket;
// - a write or delete that failed (a revocation among them) could leave a stale copy behind, so from
//   then on this instance reads nothing from Redis until it answers again and this instance's keys
//   have been purged; only then is Redis trusted again;
// - a session entry follows the cookie cache's rule (src/session/change-notices.ts): each value is stored with
//   the time it was written, and an entry written before a change notice for its session or user (or
//   before a TRUNCATE's, which concerns them all), or while this instance's listener was not known
//   current, is a miss (Better Auth reads Postgres). No
//   entry lives longer than the notices are remembered, so a delete that never reached Redis (Redis
//   was down, the instance restarted before its purge, or the row was deleted in SQL) cannot revive
//   a revoked session once the notice is forgotten.
import { RedisClient } from "bun";
import { NEVER_TRUSTED, type ChangeNotices } from "./change-notices.ts";
import { withDeadline } from "../ops/deadline.ts";
import type { Logger } from "../ops/log.ts";

/** Every key this storage writes starts with this, so a purge touches nothing else (the rate-limit counters have RATE_LIMIT_KEY_PREFIX, src/security/rate-limit.ts). */
export const REDIS_KEY_PREFIX = "auth-server:secondary:";
// A cache lookup that takes longer than this is slower than asking Postgres.
const COMMAND_TIMEOUT_MS = 250;
const RECONNECT_EVERY_MS = 1000;
const PURGE_TIMEOUT_MS = 30_000;
const PURGE_BATCH = 500;
// INCR, with the TTL set only when the counter is created (Better Auth's increment contract).
const INCREMENT_SCRIPT = "local v = redis.call('INCR', KEYS[1]) if v == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return v";

type RedisState = "up" | "down";

export interface RedisSecondaryStorage {
  get(key: string): Promise<string | null>;
  getAndDelete(key: string): Promise<string | null>;
  /**
   * Atomic counter (Better Auth's secondary-storage contract). The rate-limit counters never come here:
   * src/security/rate-limit.ts keeps them in Postgres, or with REDIS_URL in Redis under their own prefix.
   */
  increment(key: string, ttl: number): Promise<number>;
  set(key: string, value: string, ttl?: number): Promise<void>;
  delete(key: string): Promise<void>;
  close(): void;
}

export interface RedisTrust {
  /** Which sessions and users changed; absent: no session entry is ever read back. */
  notices?: ChangeNotices;
  /** The longest TTL an entry is given (the change notices' window). */
  maxTtlSeconds?: number;
}

/** `<written at, epoch ms>:<value>`, as every value is stored. */
const stamp = (value: string) => `${Date.now()}:${value}`;

/**
 * The value of a stored entry, or null: an entry without a stamp (written by an older version), or a
 * session entry ({session, user}, as Better Auth stores it) that the notices do not vouch for.
 */
function unstamp(stored: string | null, notices: ChangeNotices): string | null {
  if (stored === null) return null;
  const colon = stored.indexOf(":");
  const writtenAt = colon > 0 ? Number(stored.slice(0, colon)) : NaN;
  if (!Number.isSafeInteger(writtenAt)) return null;
  const value = stored.slice(colon + 1);
  if (!value.startsWith('{"session":')) return value;
  let entry: { session?: { id?: unknown }; user?: { id?: unknown } };
  try {
    entry = JSON.parse(value);
  } catch {
    return null;
  }
  const sessionId = entry.session?.id;
  const userId = entry.user?.id;
  if (typeof sessionId !== "string" || typeof userId !== "string") return null;
  return notices.trusts(sessionId, userId, writtenAt) ? value : null;
}

export function createRedisStorage(url: string, logger: Logger, { notices = NEVER_TRUSTED, maxTtlSeconds = 300 }: RedisTrust = {}): RedisSecondaryStorage {
  // No offline queue: a command sent while disconnected fails at once instead of waiting.
  const client = new RedisClient(url, { connectionTimeout: 1000, autoReconnect: true, maxRetries: 1_000_000, enableOfflineQueue: false });
  let state: RedisState = "up";
  let recovering: ReturnType<typeof setInterval> | undefined;
  let closed = false;

  const bounded = <T>(work: Promise<T>, timeoutMs = COMMAND_TIMEOUT_MS): Promise<T> =>
    withDeadline(work, timeoutMs, () => new Error(`redis did not answer within ${timeoutMs} ms`));

  /** Deletes every key under the prefix (SCAN, then DEL in batches). */
  async function purge(): Promise<number> {
    let cursor = "0";
    let removed = 0;
    do {
      const [next, keys] = (await client.send("SCAN", [cursor, "MATCH", `${REDIS_KEY_PREFIX}*`, "COUNT", String(PURGE_BATCH)])) as [string, string[]];
      if (keys.length) removed += (await client.send("DEL", keys)) as number;
      cursor = next;
    } while (cursor !== "0");
    return removed;
  }

  function markDown(error: unknown): void {
    if (state === "down" || closed) return;
    state = "down";
    logger.warn(`redis unreachable (${error instanceof Error ? error.message : String(error)}); sessions are read from Postgres until it recovers`);
    let probing = false;
    recovering = setInterval(async () => {
      if (probing) return;
      probing = true;
      try {
        if (!client.connected) await bounded(client.connect());
        await bounded(client.send("PING", []));
        const removed = await bounded(purge(), PURGE_TIMEOUT_MS);
        clearInterval(recovering);
        recovering = undefined;
        state = "up";
        logger.info(`redis reachable again; purged ${removed} possibly stale keys`);
      } catch {
        // still down: try again at the next tick
      } finally {
        probing = false;
      }
    }, RECONNECT_EVERY_MS);
    recovering.unref?.();
  }

  client.connect().catch(markDown);

  return {
    async get(key) {
      if (state === "down") return null;
      try {
        return unstamp(await bounded(client.get(REDIS_KEY_PREFIX + key)), notices);
      } catch (error) {
        markDown(error);
        return null;
      }
    },
    async getAndDelete(key) {
      if (state === "down") return null;
      try {
        return unstamp((await bounded(client.send("GETDEL", [REDIS_KEY_PREFIX + key]))) as string | null, notices);
      } catch (error) {
        markDown(error);
        return null;
      }
    },
    async increment(key, ttl) {
      // No fallback that could be wrong in either direction: a counter that cannot count says so.
      try {
        return (await bounded(client.send("EVAL", [INCREMENT_SCRIPT, "1", REDIS_KEY_PREFIX + key, String(Math.max(1, Math.ceil(ttl)))]))) as number;
      } catch (error) {
        markDown(error);
        throw error;
      }
    },
    async set(key, value, ttl) {
      if (state === "down") return;
      try {
        // Better Auth passes a TTL in seconds for every session key; none (or a longer one) gets the window.
        const seconds = ttl && ttl > 0 ? Math.min(Math.ceil(ttl), maxTtlSeconds) : maxTtlSeconds;
        await bounded(client.set(REDIS_KEY_PREFIX + key, stamp(value), "EX", seconds));
      } catch (error) {
        markDown(error);
      }
    },
    async delete(key) {
      if (state === "down") return;
      try {
        await bounded(client.del(REDIS_KEY_PREFIX + key));
      } catch (error) {
        markDown(error);
      }
    },
    close() {
      closed = true;
      clearInterval(recovering);
      client.close();
    },
  };
}
