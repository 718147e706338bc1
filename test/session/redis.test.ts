// REDIS_URL: sessions live in Redis and in Postgres. Against the real Redis at 127.0.0.1:6379, a
// session revoked on one instance is refused on another at once; against a Redis this test starts and
// stops (its own redis-server), the server keeps working from Postgres and never trusts a copy that
// may have gone stale while Redis was unreachable.
import { describe, expect, test } from "bun:test";
import { RedisClient } from "bun";
import { startServer, type RunningServer } from "../../src/index.ts";
import { REDIS_KEY_PREFIX } from "../../src/session/redis-storage.ts";
import { CLOCK_SKEW_MS } from "../../src/session/change-notices.ts";
import { cleanUpAfterFile, createTestDatabase, onCleanup, PASSWORD, quietLogger, sessionCookieOf, SITE_ORIGIN, testConfig, uniqueEmail, type TestDatabase, post, signUp, attemptSignIn } from "../helpers.ts";
import { redisServer } from "../redis-server.ts";

cleanUpAfterFile();

const SHARED_REDIS = "redis://127.0.0.1:6379";

/** An instance of the server on `db` (several may share it); the cookie cache is off so each read asks the server's stores. */
async function instance(db: TestDatabase, redisUrl: string): Promise<RunningServer> {
  const running = await startServer(
    testConfig({ DATABASE_URL: db.url, PORT: "0", HOST: "127.0.0.1", REDIS_URL: redisUrl, SESSION_COOKIE_CACHE: "off" }),
    quietLogger,
  );
  onCleanup(() => running.stop());
  return running;
}

const session = async (server: RunningServer, cookie: string) =>
  (await (await fetch(`${server.url}/api/auth/get-session`, { headers: { origin: SITE_ORIGIN, cookie } })).json()) as { session: { token: string } } | null;


describe("with the shared Redis", () => {
  test("a session is kept in Redis and in Postgres; revoked on one instance, it is refused on another at once", async () => {
    const db = await createTestDatabase("redis_two");
    const a = await instance(db, SHARED_REDIS);
    const b = await instance(db, SHARED_REDIS);
    const redis = new RedisClient(SHARED_REDIS);
    onCleanup(async () => redis.close());

    const { cookie, token } = await signUp(a);
    expect(await redis.get(`${REDIS_KEY_PREFIX}${token}`)).toContain(token);
    expect((await db.sql`select 1 from sessions where token = ${token}`).length).toBe(1);
    expect((await session(b, cookie))!.session.token).toBe(token);

    expect((await post(a, "/api/auth/sign-out", {}, cookie)).status).toBe(200);
    expect(await session(b, cookie)).toBeNull();
    expect(await redis.get(`${REDIS_KEY_PREFIX}${token}`)).toBeNull();
    expect((await db.sql`select 1 from sessions where token = ${token}`).length).toBe(0);
  });

  test("a session row deleted in SQL is refused by both instances within a second although Redis still holds its copy", async () => {
    const db = await createTestDatabase("redis_sql");
    const a = await instance(db, SHARED_REDIS);
    const b = await instance(db, SHARED_REDIS);
    const redis = new RedisClient(SHARED_REDIS);
    onCleanup(async () => redis.close());
    const { cookie, token } = await signUp(a);
    expect((await session(b, cookie))!.session.token).toBe(token);
    await db.sql`delete from sessions where token = ${token}`; // another writer: Redis is not told
    const from = Date.now();
    expect(await redis.get(`${REDIS_KEY_PREFIX}${token}`)).toContain(token); // the copy is still in Redis
    for (const server of [a, b]) {
      let answer = await session(server, cookie);
      while (answer !== null && Date.now() - from < 1000) answer = await session(server, cookie);
      expect(answer).toBeNull();
    }
  });

  test("no session entry outlives the change notices' window: its TTL is at most the cached-copy lifetime", async () => {
    const db = await createTestDatabase("redis_ttl");
    const a = await instance(db, SHARED_REDIS);
    const redis = new RedisClient(SHARED_REDIS);
    onCleanup(async () => redis.close());
    const { token } = await signUp(a);
    const ttl = (await redis.send("TTL", [`${REDIS_KEY_PREFIX}${token}`])) as number;
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(300);
  });

  test("a session evicted from Redis is still served from Postgres: nobody is signed out", async () => {
    const db = await createTestDatabase("redis_evict");
    const a = await instance(db, SHARED_REDIS);
    const redis = new RedisClient(SHARED_REDIS);
    onCleanup(async () => redis.close());
    const { cookie, token } = await signUp(a);
    await redis.del(`${REDIS_KEY_PREFIX}${token}`);
    expect((await session(a, cookie))!.session.token).toBe(token);
  });
});

describe("when Redis fails", () => {
  /** A redis-server of this test's own on a free loopback port, without persistence. */
  async function ownRedis() {
    const redis = redisServer();
    await redis.start();
    return { url: redis.url, child: redis.process()! };
  }

  test("with Redis stopped, sign-in, get-session and sign-out keep working from Postgres, quickly", async () => {
    const { url, child } = await ownRedis();
    const db = await createTestDatabase("redis_down");
    const server = await instance(db, url);
    const { cookie, token } = await signUp(server);
    expect((await session(server, cookie))!.session.token).toBe(token);

    child.kill("SIGKILL");
    await child.exited;

    const started = performance.now();
    expect((await session(server, cookie))!.session.token).toBe(token);
    const email = uniqueEmail("redis-down");
    expect((await post(server, "/api/auth/sign-up/email", { name: "D", email, password: PASSWORD })).status).toBe(200);
    const signIn = await attemptSignIn(server, email);
    expect(signIn.status).toBe(200);
    const second = sessionCookieOf(signIn);
    expect(await session(server, second)).not.toBeNull();
    expect((await post(server, "/api/auth/sign-out", {}, second)).status).toBe(200);
    expect(await session(server, second)).toBeNull();
    expect(performance.now() - started).toBeLessThan(5000);
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  test("a session revoked while Redis was unreachable is not served from Redis's stale copy when it comes back", async () => {
    const { url, child } = await ownRedis();
    const db = await createTestDatabase("redis_stale");
    const server = await instance(db, url);
    const { cookie, token } = await signUp(server);
    const inspect = new RedisClient(url);
    onCleanup(async () => inspect.close());
    expect(await inspect.get(`${REDIS_KEY_PREFIX}${token}`)).toContain(token);

    child.kill("SIGSTOP"); // unreachable, but keeps its data
    // The revocation reaches Postgres; Redis cannot be told.
    await db.sql`delete from sessions where token = ${token}`;
    expect(await session(server, cookie)).toBeNull();
    expect((await post(server, "/api/auth/sign-out", {}, cookie)).status).toBe(200);

    child.kill("SIGCONT");
    expect(await inspect.get(`${REDIS_KEY_PREFIX}${token}`)).toContain(token); // the stale copy is still there
    // Until the server has purged its keys it reads from Postgres; afterwards the stale copy is gone.
    for (let i = 0; i < 30 && (await inspect.get(`${REDIS_KEY_PREFIX}${token}`)) !== null; i++) {
      expect(await session(server, cookie)).toBeNull();
      await Bun.sleep(200);
    }
    expect(await inspect.get(`${REDIS_KEY_PREFIX}${token}`)).toBeNull();
    expect(await session(server, cookie)).toBeNull();
    // And Redis is used again for new sessions.
    const fresh = await signUp(server);
    expect(await inspect.get(`${REDIS_KEY_PREFIX}${fresh.token}`)).toContain(fresh.token);
  });

  test("a delete skipped while Redis was unreachable, then a restart before the purge: the next instance does not trust the stale copy", async () => {
    const { url, child } = await ownRedis();
    const db = await createTestDatabase("redis_restart");
    const first = await startServer(
      testConfig({ DATABASE_URL: db.url, PORT: "0", HOST: "127.0.0.1", REDIS_URL: url, SESSION_COOKIE_CACHE: "off" }),
      quietLogger,
    );
    const { cookie, token } = await signUp(first);
    const inspect = new RedisClient(url);
    onCleanup(async () => inspect.close());
    child.kill("SIGSTOP");
    expect((await post(first, "/api/auth/sign-out", {}, cookie)).status).toBe(200); // Redis cannot be told
    await first.stop(); // before its recovery purge
    child.kill("SIGCONT");
    expect(await inspect.get(`${REDIS_KEY_PREFIX}${token}`)).toContain(token); // the stale copy survived
    const next = await instance(db, url);
    expect(await session(next, cookie)).toBeNull();
    await Bun.sleep(CLOCK_SKEW_MS + 100); // even once it trusts copies written after it started
    expect(await session(next, cookie)).toBeNull();
  });
});
