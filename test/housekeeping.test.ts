// Housekeeping deletes what has expired and nothing else, once across instances, in batches, from
// the periodic job and from `bun run cleanup`.
import { describe, expect, test } from "bun:test";
import { runHousekeeping } from "../src/housekeeping.ts";
import { applyMigrations } from "../src/migrate.ts";
import type { Sql } from "../src/db.ts";
import { cleanUpAfterFile, createTestDatabase, spawnProject, startTestServer } from "./helpers.ts";

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
    insert into rate_limits (key, count, last_request) values
      ('idle', 3, ${now - 2 * DAY * 1000}), ('recent', 1, ${now - 5000})`;
}

const count = async (sql: Sql, table: string) => Number((await sql.unsafe(`select count(*)::int as n from ${table}`))[0]!.n);

describe("runHousekeeping", () => {
  test("deletes expired sessions and verifications and idle rate-limit rows, keeps live ones, and records the run", async () => {
    const db = await createTestDatabase("hk_basic");
    await applyMigrations(db.sql);
    await seedSessions(db.sql, 3, 5);
    await seedOthers(db.sql);

    const result = await runHousekeeping(db.sql, { auditRetentionSeconds: 90 * DAY });

    expect(result).toMatchObject({ ran: true, deleted: { sessions: 5, verifications: 1, rate_limits: 1 } });
    expect(await count(db.sql, "sessions")).toBe(3);
    expect((await db.sql`select identifier from verifications`).map((row) => row.identifier)).toEqual(["live"]);
    expect((await db.sql`select key from rate_limits`).map((row) => row.key)).toEqual(["recent"]);
    const [run] = await db.sql`select instance, finished_at, deleted, error from housekeeping_runs`;
    expect(run!.finished_at).not.toBeNull();
    expect(run!.error).toBeNull();
    expect(run!.deleted).toEqual({ sessions: 5, verifications: 1, rate_limits: 1 });
  });

  test("prunes audit rows older than the retention when an auth_events table exists", async () => {
    const db = await createTestDatabase("hk_audit");
    await applyMigrations(db.sql);
    await db.sql`create table auth_events (id bigint generated always as identity primary key, kind text, created_at timestamptz not null default now())`;
    await db.sql`insert into auth_events (kind, created_at) values ('old', now() - interval '40 days'), ('recent', now() - interval '10 days')`;

    const result = await runHousekeeping(db.sql, { auditRetentionSeconds: 30 * DAY });

    expect(result).toMatchObject({ ran: true, deleted: { auth_events: 1 } });
    expect((await db.sql`select kind from auth_events`).map((row) => row.kind)).toEqual(["recent"]);
  });

  test("without an auth_events table the audit step is skipped", async () => {
    const db = await createTestDatabase("hk_noaudit");
    await applyMigrations(db.sql);
    const result = await runHousekeeping(db.sql, { auditRetentionSeconds: DAY });
    expect(result.ran).toBe(true);
    expect(result.ran && Object.keys(result.deleted).sort()).toEqual(["rate_limits", "sessions", "verifications"]);
  });

  test("a backlog larger than a batch is deleted completely, batch by batch", async () => {
    const db = await createTestDatabase("hk_batches");
    await applyMigrations(db.sql);
    await seedSessions(db.sql, 2, 53);
    const result = await runHousekeeping(db.sql, { auditRetentionSeconds: DAY, batchSize: 10 });
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
      expect(await runHousekeeping(db.sql, { auditRetentionSeconds: DAY })).toEqual({ ran: false, reason: "another instance is running it" });
      expect(await count(db.sql, "sessions")).toBe(4);
      await other`select pg_advisory_unlock(hashtext('auth-server:housekeeping'))`;
    } finally {
      other.release();
    }
    expect(await runHousekeeping(db.sql, { auditRetentionSeconds: DAY })).toMatchObject({ ran: true, deleted: { sessions: 4 } });
  });

  test("the periodic job skips when any instance finished a run within the interval", async () => {
    const db = await createTestDatabase("hk_recent");
    await applyMigrations(db.sql);
    expect((await runHousekeeping(db.sql, { auditRetentionSeconds: DAY })).ran).toBe(true);
    await seedSessions(db.sql, 0, 2);
    expect(await runHousekeeping(db.sql, { auditRetentionSeconds: DAY, skipIfRunWithinSeconds: 3600 })).toEqual({
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
