// The migration runner (src/db/migrate.ts): forward-only files applied in order, each in one transaction,
// recorded with a sha256 checksum, under an advisory lock; and its CLI (`bun run migrate`, `migrate:status`).
import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createPool, type Sql } from "../../src/db/pool.ts";
import { applyMigrations, MigrationError, MIGRATIONS_DIR, migrationStatus, readMigrations } from "../../src/db/migrate.ts";
import { cleanUpAfterFile, createTempDir, createTestDatabase, onCleanup, spawnProject, TEST_SECRET } from "../helpers.ts";

cleanUpAfterFile();

/** A folder of migration files of the test's own. */
function migrationsDir(files: Record<string, string>): string {
  const dir = createTempDir("migrations");
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

type Recorded = { version: string; name: string; checksum: string; applied_at: Date };
const recorded = (sql: Sql) => sql<Recorded[]>`select version, name, checksum, applied_at from schema_migrations order by version`;
const tableExists = async (sql: Sql, table: string) => (await sql`select to_regclass(${table}) as oid`)[0]!.oid !== null;
const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

const SQL_FILES = readdirSync(MIGRATIONS_DIR).filter((file) => file.endsWith(".sql")).sort();
const SQL_VERSIONS = SQL_FILES.map((file) => file.slice(0, 4));

describe("applyMigrations on the project's sql/", () => {
  test("a fresh database gets every file applied in order, each recorded with version, name, sha256 checksum and applied_at", async () => {
    const db = await createTestDatabase("migrate_fresh");
    const before = Date.now();
    expect(await applyMigrations(db.sql)).toEqual(SQL_VERSIONS);

    const rows = await recorded(db.sql);
    expect(rows.map((row) => `${row.version}_${row.name}.sql`)).toEqual(SQL_FILES);
    for (const [i, row] of rows.entries()) {
      expect(row.checksum).toMatch(/^[0-9a-f]{64}$/);
      expect(row.checksum).toBe(sha256(readFileSync(join(MIGRATIONS_DIR, SQL_FILES[i]!), "utf8")));
      expect(row.applied_at).toBeInstanceOf(Date);
      expect(row.applied_at.getTime()).toBeGreaterThan(before - 60_000);
      expect(row.applied_at.getTime()).toBeLessThan(Date.now() + 60_000);
    }
    for (const table of ["users", "sessions", "accounts", "verifications", "jwks", "rate_limits"]) {
      expect(await tableExists(db.sql, table)).toBe(true);
    }
  });

  test("a second run applies nothing and leaves the records as they were", async () => {
    const db = await createTestDatabase("migrate_rerun");
    await applyMigrations(db.sql);
    const first = await recorded(db.sql);
    expect(await applyMigrations(db.sql)).toEqual([]);
    expect(await recorded(db.sql)).toEqual(first);
  });

  test("readMigrations lists sql/ in version order with the checksum of each file's text", () => {
    const migrations = readMigrations();
    expect(migrations.map((m) => `${m.version}_${m.name}.sql`)).toEqual(SQL_FILES);
    for (const migration of migrations) {
      const text = readFileSync(join(MIGRATIONS_DIR, `${migration.version}_${migration.name}.sql`), "utf8");
      expect(migration.sql).toBe(text);
      expect(migration.checksum).toBe(sha256(text));
    }
  });
});

describe("applyMigrations refuses what it must not run", () => {
  test("an applied file whose text changed stops the runner with a MigrationError naming it, and nothing else runs", async () => {
    const db = await createTestDatabase("migrate_changed");
    const dir = migrationsDir({ "0001_create_notes.sql": "create table notes (id int primary key);\n" });
    expect(await applyMigrations(db.sql, dir)).toEqual(["0001"]);

    writeFileSync(join(dir, "0001_create_notes.sql"), "create table notes (id int primary key, body text);\n");
    writeFileSync(join(dir, "0002_create_tags.sql"), "create table tags (id int primary key);\n");
    const error = await applyMigrations(db.sql, dir).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(MigrationError);
    expect((error as Error).message).toContain("0001_create_notes.sql");
    expect((error as Error).message).toMatch(/checksum|changed/);
    expect((error as Error).message).not.toContain("0002");
    expect(await tableExists(db.sql, "tags")).toBe(false);
    expect((await recorded(db.sql)).map((row) => row.version)).toEqual(["0001"]);
  });

  test("a failing file is rolled back entirely, earlier files stay applied and later files do not run", async () => {
    const db = await createTestDatabase("migrate_failing");
    const dir = migrationsDir({
      "0001_create_notes.sql": "create table notes (id int primary key);\n",
      "0002_half_done.sql": "create table half_done (id int);\ninsert into half_done values (1);\nselect 1 / 0;\n",
      "0003_create_tags.sql": "create table tags (id int primary key);\n",
    });

    const error = await applyMigrations(db.sql, dir).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(MigrationError);
    expect((error as Error).message).toContain("0002_half_done.sql");
    expect((error as Error).message).toContain("division by zero");
    expect(await tableExists(db.sql, "notes")).toBe(true);
    expect(await tableExists(db.sql, "half_done")).toBe(false);
    expect(await tableExists(db.sql, "tags")).toBe(false);
    expect((await recorded(db.sql)).map((row) => row.version)).toEqual(["0001"]);
  });

  test("after a failure the lock is released, and once the file is fixed the next run applies it and what follows", async () => {
    const db = await createTestDatabase("migrate_fixed");
    const dir = migrationsDir({
      "0001_create_notes.sql": "create table notes (id int primary key);\n",
      "0002_broken.sql": "create table broken (id int);\nselect no_such_function();\n",
      "0003_create_tags.sql": "create table tags (id int primary key);\n",
    });
    await expect(applyMigrations(db.sql, dir)).rejects.toBeInstanceOf(MigrationError);
    const [locks] = await db.sql<{ count: number }[]>`
      select count(*)::int as count from pg_locks
      where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())`;
    expect(locks!.count).toBe(0);

    writeFileSync(join(dir, "0002_broken.sql"), "create table broken (id int);\n");
    expect(await applyMigrations(db.sql, dir)).toEqual(["0002", "0003"]);
    expect((await recorded(db.sql)).map((row) => row.version)).toEqual(["0001", "0002", "0003"]);
  });

  test.each([
    ["1_too_short.sql"],
    ["0001_CamelCase.sql"],
    ["0001-dashed.sql"],
    ["0001_.sql"],
    ["abcd_no_version.sql"],
    ["0001_has space.sql"],
  ])("a badly named file (%s) is refused before anything is applied", async (badName) => {
    const dir = migrationsDir({ "0001_create_notes.sql": "create table notes (id int);\n", [badName]: "create table oops (id int);\n" });
    expect(() => readMigrations(dir)).toThrow(MigrationError);
    expect(() => readMigrations(dir)).toThrow(badName);
  });

  test("a badly named file stops applyMigrations without touching the database", async () => {
    const db = await createTestDatabase("migrate_badname");
    const dir = migrationsDir({ "0001_create_notes.sql": "create table notes (id int);\n", "2_later.sql": "select 1;\n" });
    await expect(applyMigrations(db.sql, dir)).rejects.toThrow("2_later.sql");
    expect(await tableExists(db.sql, "notes")).toBe(false);
    expect(await tableExists(db.sql, "schema_migrations")).toBe(false);
  });

  test("two files with one version number are refused", () => {
    const dir = migrationsDir({ "0001_first.sql": "select 1;\n", "0001_second.sql": "select 2;\n" });
    expect(() => readMigrations(dir)).toThrow(MigrationError);
    expect(() => readMigrations(dir)).toThrow("0001");
  });

  test("files that are not .sql are ignored", () => {
    const dir = migrationsDir({ "0001_create_notes.sql": "select 1;\n", "README.md": "notes\n", ".keep": "" });
    expect(readMigrations(dir).map((m) => m.version)).toEqual(["0001"]);
  });
});

describe("migrationStatus", () => {
  test("lists applied files with their time, pending files, changed files and recorded versions whose file is gone", async () => {
    const db = await createTestDatabase("migrate_status");
    const dir = migrationsDir({
      "0001_create_notes.sql": "create table notes (id int);\n",
      "0002_create_tags.sql": "create table tags (id int);\n",
    });
    const fresh = await migrationStatus(db.sql, dir);
    expect(fresh.map((s) => [s.version, s.name, s.state, s.appliedAt])).toEqual([
      ["0001", "create_notes", "pending", null],
      ["0002", "create_tags", "pending", null],
    ]);
    expect(await tableExists(db.sql, "notes")).toBe(false);

    await applyMigrations(db.sql, dir);
    writeFileSync(join(dir, "0003_create_links.sql"), "create table links (id int);\n");
    const after = await migrationStatus(db.sql, dir);
    expect(after.map((s) => [s.version, s.state])).toEqual([
      ["0001", "applied"],
      ["0002", "applied"],
      ["0003", "pending"],
    ]);
    expect(after[0]!.appliedAt).toBeInstanceOf(Date);
    expect(after[2]!.appliedAt).toBeNull();

    const onlyFirstChanged = migrationsDir({ "0001_create_notes.sql": "create table notes (id int, body text);\n" });
    const drifted = await migrationStatus(db.sql, onlyFirstChanged);
    expect(drifted.map((s) => [s.version, s.state])).toEqual([
      ["0001", "changed"],
      ["0002", "missing"],
    ]);
  });
});

describe("runners starting together", () => {
  test("two runners with separate pools on one fresh database apply each file of sql/ exactly once, without error", async () => {
    const db = await createTestDatabase("migrate_race");
    const a = createPool(db.url, { max: 2 });
    const b = createPool(db.url, { max: 2 });
    onCleanup(() => Promise.all([a.end({ timeout: 1 }), b.end({ timeout: 1 })]));

    const results = await Promise.all([applyMigrations(a), applyMigrations(b)]);

    expect(results.map((applied) => applied.length).sort()).toEqual([0, SQL_VERSIONS.length]);
    expect(results.flat()).toEqual(SQL_VERSIONS);
    expect((await recorded(db.sql)).map((row) => row.version)).toEqual(SQL_VERSIONS);
  });

  test("while one runner is inside a slow file the other waits for the lock, then finds nothing to do", async () => {
    const db = await createTestDatabase("migrate_wait");
    const dir = migrationsDir({ "0001_slow.sql": "select pg_sleep(0.4);\ncreate table slow_things (id int);\n" });
    const a = createPool(db.url, { max: 1 });
    const b = createPool(db.url, { max: 1 });
    onCleanup(() => Promise.all([a.end({ timeout: 1 }), b.end({ timeout: 1 })]));

    const started = Date.now();
    const finished: number[] = [];
    const results = await Promise.all(
      [a, b].map((pool) => applyMigrations(pool, dir).then((applied) => (finished.push(Date.now() - started), applied))),
    );

    expect(results.map((applied) => applied.join()).sort()).toEqual(["", "0001"]);
    expect(Math.min(...finished)).toBeGreaterThanOrEqual(350);
    const [row] = await db.sql<{ count: number }[]>`select count(*)::int as count from schema_migrations`;
    expect(row!.count).toBe(1);
  });
});

describe("the CLI", () => {
  const cliEnv = (databaseUrl: string) => ({ DATABASE_URL: databaseUrl, NODE_ENV: "test", BETTER_AUTH_SECRET: TEST_SECRET });
  const run = async (script: string[], env: Record<string, string>) => {
    const child = spawnProject(["bun", ...script], env);
    const code = await child.exited(20_000);
    return { code, output: child.output() };
  };

  test("`bun run migrate:status` lists pending files, `bun run migrate` applies them, and a second run says it is up to date", async () => {
    const db = await createTestDatabase("migrate_cli");
    const env = cliEnv(db.url);

    const pending = await run(["run", "migrate:status"], env);
    expect(pending.code).toBe(0);
    for (const file of SQL_FILES) expect(pending.output).toMatch(new RegExp(`pending\\s+${file}`));
    expect(pending.output).toContain(`0 applied, ${SQL_FILES.length} pending`);

    const up = await run(["run", "migrate"], env);
    expect(up.code).toBe(0);
    expect(up.output).toContain(`applied ${SQL_VERSIONS.join(", ")}`);
    expect((await recorded(db.sql)).map((row) => row.version)).toEqual(SQL_VERSIONS);

    const again = await run(["run", "migrate"], env);
    expect(again.code).toBe(0);
    expect(again.output).toContain("schema is up to date");

    const status = await run(["run", "migrate:status"], env);
    expect(status.code).toBe(0);
    for (const file of SQL_FILES) expect(status.output).toMatch(new RegExp(`applied\\s+${file} \\d{4}-\\d\\d-\\d\\dT`));
    expect(status.output).toContain(`${SQL_FILES.length} applied, 0 pending`);
  });

  test("a wrong DATABASE_URL makes `bun run migrate` exit 1 with a message naming it", async () => {
    const result = await run(["run", "migrate"], { ...cliEnv("mysql://root@127.0.0.1/app") });
    expect(result.code).toBe(1);
    expect(result.output).toContain("migrate: DATABASE_URL");
  });

  test("an unknown command exits 2 with the usage", async () => {
    const db = await createTestDatabase("migrate_cli_usage");
    const result = await run(["src/cli/migrate.ts", "down"], cliEnv(db.url));
    expect(result.code).toBe(2);
    expect(result.output).toContain("usage:");
  });
});
