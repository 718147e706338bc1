// Housekeeping deletes what has expired and nothing else, once across instances, in batches, from
// the periodic job and from `bun run cleanup`.
import { describe, expect, test } from "bun:test";
import { runHousekeeping } from "../../src/ops/housekeeping.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import type { Sql } from "../../src/db/pool.ts";
import { cleanUpAfterFile, createTestDatabase, spawnProject, startTestServer } from "../helpers.ts";

cleanUpAfterFile();

const DAY = 86_400;

/** A user with `live` sessions expiring tomorrow and `expired` ones that expired an hour ago. */
async function seedSessions(sql: Sql, live: number, expired: number): Promise<string> {
  const [user] = await sql<{ id: string }[]>`insert into users (name, email) values ('H', ${`h-${crypto.randomUUID()}@example.test`}) returning id`;
  await sql`
    insert into sessions (user_id, token, expires_at)
    select ${user!.id}, md5(random()::text || g), now() + case when g <= ${live} then interval '1 day' else interval '-1 hour' end
    from generate_series(1, ${live + expired}) g`;
  return user!.id;
}

async function seedOthers(sql: Sql): Promise<void> {
  await sql`
    insert into verifications (identifier, value, expires_at) values
      ('old', 'v', now() - interval '1 minute'), ('live', 'v', now() + interval '1 hour')`;
  const now = Date.now();
  await sql`
    insert into rate_limits (key, count, last_request, expires_at) values
      ('ended', 3, ${now - 120_000}, now() - interval '1 minute'), ('recent', 1, ${now - 5000}, now() + interval '1 minute')`;
  // Failed-sign-in counters: a window long over, a window over but the account still locked, a live window.
  const users = await sql<{ id: string }[]>`
    insert into users (name, email) select 'L', 'l-' || g || '-' || ${crypto.randomUUID()} || '@example.test' from generate_series(1, 3) g returning id`;
  await sql`
    insert into account_lockouts (user_id, failed_count, window_started_at, locked_until) values
      (${users[0]!.id}, 4, now() - interval '1 hour', null),
      (${users[1]!.id}, 10, now() - interval '1 hour', now() + interval '5 minutes'),
      (${users[2]!.id}, 2, now() - interval '1 minute', null)`;
}

const count = async (sql: Sql, table: string) => Number((await sql.unsafe(`select count(*)::int as n from ${table}`))[0]!.n);

describe("runHousekeeping", () => {
  test("deletes expired sessions and verifications, ended rate-limit windows and stale lockout counters, keeps live ones, and records the run", async () => {
    const db = await createTestDatabase("hk_basic");
    await applyMigrations(db.sql);
    await seedSessions(db.sql, 3, 5);
    await seedOthers(db.sql);

    const result = await runHousekeeping(db.sql, { lockoutWindowSeconds: 900, auditRetentionSeconds: 90 * DAY });

    const deleted = { sessions: 5, verifications: 1, rate_limits: 1, account_lockouts: 1, auth_events: 0 };
    expect(result).toEqual({ ran: true, deleted, milliseconds: expect.any(Number) });
    expect(await count(db.sql, "sessions")).toBe(3);
    expect(await count(db.sql, "account_lockouts")).toBe(2);
    expect((await db.sql`select identifier from verifications`).map((row) => row.identifier)).toEqual(["live"]);
    expect((await db.sql`select key from rate_limits`).map((row) => row.key)).toEqual(["recent"]);
    const [run] = await db.sql`select instance, finished_at, deleted, error from housekeeping_runs`;
    expect(run!.finished_at).not.toBeNull();
    expect(run!.error).toBeNull();
    expect(run!.deleted).toEqual(deleted);
  });

  test("prunes audit rows older than AUDIT_RETENTION and keeps newer ones", async () => {
    const db = await createTestDatabase("hk_audit");
    await applyMigrations(db.sql);
    await db.sql`insert into auth_events (type, occurred_at) values ('sign_in', now() - interval '40 days'), ('sign_up', now() - interval '10 days')`;

    const result = await runHousekeeping(db.sql, { lockoutWindowSeconds: 900, auditRetentionSeconds: 30 * DAY });

    expect(result).toMatchObject({ ran: true, deleted: { auth_events: 1 } });
    expect((await db.sql`select type from auth_events`).map((row) => row.type)).toEqual(["sign_up"]);
  });

  test("a backlog larger than a batch is deleted completely, batch by batch", async () => {
    const db = await createTestDatabase("hk_batches");
    await applyMigrations(db.sql);
    await seedSessions(db.sql, 2, 53);
    const result = await runHousekeeping(db.sql, { lockoutWindowSeconds: 900, auditRetentionSeconds: DAY, batchSize: 10 });
    expect(result).toMatchObject({ ran: true, deleted: { sessions: 53 } });
    expect(await count(db.sql, "sessions")).toBe(2);
  });

  test("while another instance holds the job's lock, a run skips and deletes nothing", async () => {
    const db = await createTestDatabase("hk_lock");
    await applyMigrations(db.sql);
    await seedSessions(db.sql, 0, 4);
    const other = await db.sql.reserve();
    try {
      await other`select pg_advisory_lock(hashtext('auth-server:housekeeping'))`;
      expect(await runHousekeeping(db.sql, { lockoutWindowSeconds: 900, auditRetentionSeconds: DAY })).toEqual({ ran: false, reason: "another instance is running it" });
      expect(await count(db.sql, "sessions")).toBe(4);
      await other`select pg_advisory_unlock(hashtext('auth-server:housekeeping'))`;
    } finally {
      other.release();
    }
    expect(await runHousekeeping(db.sql, { lockoutWindowSeconds: 900, auditRetentionSeconds: DAY })).toMatchObject({ ran: true, deleted: { sessions: 4 } });
  });

  test("the periodic job skips when any instance finished a run within the interval", async () => {
    const db = await createTestDatabase("hk_recent");
    await applyMigrations(db.sql);
    expect((await runHousekeeping(db.sql, { lockoutWindowSeconds: 900, auditRetentionSeconds: DAY })).ran).toBe(true);
    await seedSessions(db.sql, 0, 2);
    expect(await runHousekeeping(db.sql, { lockoutWindowSeconds: 900, auditRetentionSeconds: DAY, skipIfRunWithinSeconds: 3600 })).toEqual({
      ran: false,
      reason: "another instance ran it within the interval",
    });
    expect(await count(db.sql, "sessions")).toBe(2);
  });
});

describe("running it", () => {
  test("`bun run cleanup` runs the job once and prints what it deleted", async () => {
    const db = await createTestDatabase("hk_cli");
    await applyMigrations(db.sql);
    await seedSessions(db.sql, 1, 6);
    const child = spawnProject(["bun", "run", "cleanup"], { DATABASE_URL: db.url });
    expect(await child.exited(30_000)).toBe(0);
    expect(child.output()).toContain("cleanup: deleted sessions 6, verifications 0, rate_limits 0");
    expect(await count(db.sql, "sessions")).toBe(1);
  });

  test("the server runs it periodically (HOUSEKEEPING_INTERVAL)", async () => {
    const server = await startTestServer({ HOUSEKEEPING_INTERVAL: "1s" });
    await seedSessions(server.db.sql, 2, 7);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await count(server.db.sql, "sessions")) > 2) await Bun.sleep(200);
    expect(await count(server.db.sql, "sessions")).toBe(2);
    expect(await count(server.db.sql, "housekeeping_runs")).toBeGreaterThan(0);
  });

  test("HOUSEKEEPING_INTERVAL=off starts no periodic job", async () => {
    const server = await startTestServer({ HOUSEKEEPING_INTERVAL: "off" });
    await seedSessions(server.db.sql, 0, 3);
    await Bun.sleep(1500);
    expect(await count(server.db.sql, "sessions")).toBe(3);
    expect(await count(server.db.sql, "housekeeping_runs")).toBe(0);
  });
});
