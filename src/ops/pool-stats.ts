// How busy this instance's postgres.js pool is. postgres.js keeps its connection queues private, so
// the pool handed to the rest of the server is wrapped: a query counts from the moment it runs until
// it settles, a reserved connection (Kysely, hence Better Auth, reserves one per query or
// transaction) and a transaction until released. What runs beyond the pool's size is waiting.
import type { Sql } from "../db/pool.ts";

export interface PoolStats {
  /** Connections busy with a query, a transaction or a reservation (at most the pool size). */
  inUse: number;
  /** Queries, transactions and reservations beyond the pool size: queued for a connection. */
  waiting: number;
}

export interface TrackedPool {
  sql: Sql;
  stats(): PoolStats;
}

type Runnable = { handle?: (...args: unknown[]) => unknown; then?: unknown };

export function trackPool(sql: Sql, max: number): TrackedPool {
  let busy = 0;
  const settle = () => {
    busy--;
  };
  /** Counts a postgres.js query once it actually runs (a fragment nested in another never does). */
  const track = <T>(query: T): T => {
    const runnable = query as T & Runnable;
    if (!runnable || typeof runnable.handle !== "function") return query;
    const handle = runnable.handle;
    let started = false;
    runnable.handle = function (this: unknown, ...args: unknown[]) {
      if (!started) {
        started = true;
        busy++;
        (runnable as unknown as Promise<unknown>).then(settle, settle);
      }
      return handle.apply(this, args);
    };
    return query;
  };
  const held = async <T>(work: () => Promise<T>): Promise<T> => {
    busy++;
    try {
      return await work();
    } finally {
      busy--;
    }
  };

  const tracked = new Proxy(sql, {
    apply: (target, thisArg, args) => track(Reflect.apply(target, thisArg, args)),
    get(target, property, receiver) {
      if (property === "unsafe") return (...args: Parameters<Sql["unsafe"]>) => track(target.unsafe(...args));
      if (property === "begin") return (...args: unknown[]) => held(() => (target.begin as (...a: unknown[]) => Promise<unknown>)(...args));
      if (property === "reserve") {
        return async () => {
          busy++;
          let reserved;
          try {
            reserved = await target.reserve();
          } catch (error) {
            busy--;
            throw error;
          }
          const release = reserved.release.bind(reserved);
          let released = false;
          reserved.release = () => {
            if (!released) {
              released = true;
              busy--;
            }
            release();
          };
          return reserved;
        };
      }
      return Reflect.get(target, property, receiver);
    },
  });
  return {
    sql: tracked,
    stats: () => ({ inUse: Math.min(busy, max), waiting: Math.max(0, busy - max) }),
  };
}
