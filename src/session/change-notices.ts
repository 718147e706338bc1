// Which sessions and users changed recently, as Postgres announces it (sql/0006_change_notices.sql, and
// sql/0009_truncate_notices.sql for a TRUNCATE, which changes everything at once),
// so that no cached copy of the old state is answered: the cookie cache (session_data), the kept
// get-session answers (src/session/memo.ts), the JWTs /token hands out again, and Redis entries
// (src/session/redis-storage.ts). Each instance listens on a connection of its own and keeps, for the cache
// lifetime, when each session or user id changed. A copy issued at time T is trusted only when:
// - the listener is connected and has heard its own heartbeat within LISTENER_STALE_MS (a stalled
//   connection delivers nothing, so it proves nothing);
// - T is later than the moment the listener last started listening (a change made while it was not
//   listening, or before this instance started, was never heard), and
// - T is later than every notice heard for that session and for its user,
// each comparison with CLOCK_SKEW_MS of margin, because T comes from another instance's clock.
// Otherwise the request reads the rows (which also refreshes the cache). Checking is two Map lookups.
import postgres from "postgres";
import type { Logger } from "../ops/log.ts";

export const CHANGE_CHANNEL = "auth_changes";
/** The listener's application_name in pg_stat_activity. */
export const LISTENER_APPLICATION_NAME = "auth-server listener";
// How far the instances' clocks (which write the issue time into cache cookies and Redis entries)
// may disagree with this one, plus the time between reading a row and writing its copy.
export const CLOCK_SKEW_MS = 2000;
// The listener sends itself a notice this often; without one for LISTENER_STALE_MS nothing is trusted.
export const HEARTBEAT_MS = 1000;
export const LISTENER_STALE_MS = 3000;
const RECONNECT_MS = 500;
// The payload of a TRUNCATE of sessions or users (sql/0009_truncate_notices.sql), which names no row:
// every copy written before it is distrusted, as after an overflow.
export const EVERYTHING_CHANGED = "all";
// Past this many remembered ids (a mass delete), they are forgotten and every earlier copy is
// distrusted instead: the memory stays bounded and the answer errs towards a database read.
const MAX_REMEMBERED = 100_000;

/** How long a cached copy may live, and so how long changes are remembered: the cookie cache's lifetime (5 minutes when it is off). */
export function cachedCopyWindowSeconds(config: { sessionCookieCacheSeconds: number }): number {
  return config.sessionCookieCacheSeconds || 300;
}

export interface ChangeNotices {
  /**
   * True when a copy of session `sessionId` of user `userId`, issued at `issuedAt` (epoch ms, by any
   * instance's clock), may be answered from.
   */
  trusts(sessionId: string, userId: string, issuedAt: number): boolean;
  /** True while copies can be trusted at all (the listener is connected and current). */
  current(): boolean;
  /** Epoch ms after which a copy issued (by this clock) can be trusted, or null while not listening. */
  trustedFrom(): number | null;
  /** Resolves once the listener listens for the first time (or at once when it never will). */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

/** A registry fed by `notice(payload)`: the part of the listener that decides, apart from the connection. */
export function createChangeRegistry(windowMs: number) {
  const sessions = new Map<string, number>();
  const users = new Map<string, number>();
  /** Epoch ms from which copies may be trusted (the listener's start, or a forgetting); null: none. */
  let since: number | null = null;
  let lastBeat = 0;
  const retentionMs = windowMs + 2 * CLOCK_SKEW_MS;

  /** Forgets every remembered id and distrusts every copy issued before `now` (with CLOCK_SKEW_MS of margin, in trusts). */
  const forgetAll = (now: number) => {
    sessions.clear();
    users.clear();
    if (since !== null) since = Math.max(since, now);
  };
  const prune = (now: number) => {
    for (const map of [sessions, users]) {
      for (const [id, at] of map) {
        if (now - at <= retentionMs) break; // insertion order is time order
        map.delete(id);
      }
    }
  };
  return {
    notice(payload: string) {
      const now = Date.now();
      if (payload === EVERYTHING_CHANGED) return forgetAll(now);
      const colon = payload.indexOf(":");
      const kind = payload.slice(0, colon);
      const id = payload.slice(colon + 1);
      const map = kind === "session" ? sessions : kind === "user" ? users : null;
      if (!map || !id) return;
      map.delete(id);
      map.set(id, now);
      if (sessions.size + users.size > MAX_REMEMBERED) forgetAll(now);
    },
    beat() {
      lastBeat = Date.now();
      prune(lastBeat);
    },
    listening(value: boolean) {
      since = value ? Date.now() : null;
      if (value) lastBeat = Date.now();
    },
    current: () => since !== null && Date.now() - lastBeat <= LISTENER_STALE_MS,
    trustedFrom: () => (since === null ? null : since + CLOCK_SKEW_MS),
    trusts(sessionId: string, userId: string, issuedAt: number): boolean {
      if (since === null || Date.now() - lastBeat > LISTENER_STALE_MS) return false;
      const floor = issuedAt - CLOCK_SKEW_MS;
      if (!(floor > since)) return false; // also refuses NaN
      const session = sessions.get(sessionId);
      if (session !== undefined && floor <= session) return false;
      const user = users.get(userId);
      return user === undefined || floor > user;
    },
  };
}

/** Copies are never trusted: no listener (an embedded database, or a tool that does not serve). */
export const NEVER_TRUSTED: ChangeNotices = {
  trusts: () => false,
  current: () => false,
  trustedFrom: () => null,
  ready: Promise.resolve(),
  close: async () => {},
};

/**
 * Listens on `url` (a direct connection: LISTEN needs a session of its own, which a transaction
 * pooler does not keep) and remembers changes for `windowMs`, the longest a cached copy lives.
 */
export function listenForChanges(url: string, windowMs: number, logger: Logger): ChangeNotices {
  const registry = createChangeRegistry(windowMs);
  const beatPayload = `beat:${crypto.randomUUID()}`;
  let closed = false;
  let listening = false;
  let connecting: Promise<void> | null = null;
  let failing = false;
  let markReady: () => void;
  const ready = new Promise<void>((resolve) => (markReady = resolve));

  const client = postgres(url, {
    max: 1,
    prepare: false,
    fetch_types: false,
    idle_timeout: 0,
    max_lifetime: 0,
    connect_timeout: 5,
    onnotice: () => {},
    connection: { application_name: LISTENER_APPLICATION_NAME },
    onnotify: (channel: string, payload: string) => {
      if (channel !== CHANGE_CHANNEL) return;
      if (payload === beatPayload) registry.beat();
      else if (!payload.startsWith("beat:")) registry.notice(payload);
    },
    onclose: () => {
      if (listening) logger.warn("change listener disconnected; cached sessions are not trusted until it listens again");
      listening = false;
      registry.listening(false);
      if (!closed) setTimeout(connect, RECONNECT_MS).unref?.();
    },
  } as postgres.Options<{}>);

  function connect(): void {
    if (closed || listening || connecting) return;
    connecting = (async () => {
      try {
        await client.unsafe(`listen "${CHANGE_CHANNEL}"`);
        if (closed) return;
        listening = true;
        registry.listening(true);
        markReady();
        if (failing) logger.info("change listener listening again");
        failing = false;
      } catch (error) {
        if (!closed) {
          // Once per outage, not at every attempt.
          if (!failing) logger.warn(`change listener cannot listen (${error instanceof Error ? error.message : String(error)}); cached sessions are not trusted; retrying every ${RECONNECT_MS} ms`);
          failing = true;
          setTimeout(connect, RECONNECT_MS).unref?.();
        }
      } finally {
        connecting = null;
      }
    })();
  }

  const heartbeat = setInterval(() => {
    if (listening) client`select pg_notify(${CHANGE_CHANNEL}, ${beatPayload})`.catch(() => {});
  }, HEARTBEAT_MS);
  heartbeat.unref?.();
  connect();

  return {
    trusts: registry.trusts,
    current: registry.current,
    trustedFrom: registry.trustedFrom,
    ready,
    async close() {
      closed = true;
      clearInterval(heartbeat);
      markReady();
      await client.end({ timeout: 1 });
    },
  };
}

/** Resolves once copies issued from now on can be trusted (a listener that listens, CLOCK_SKEW_MS after it started). */
export async function untilTrusting(notices: ChangeNotices): Promise<void> {
  await notices.ready;
  const from = notices.trustedFrom();
  if (from !== null && from >= Date.now()) await Bun.sleep(from - Date.now() + 1);
}
