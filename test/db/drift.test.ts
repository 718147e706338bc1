// Drift check: the hand-written schema in sql/ is exactly what Better Auth, as configured in
// src/auth/better-auth.ts, expects. Better Auth's own planner (getMigrations) finds missing tables and columns
// and only logs type and nullability drift; a missing index on an existing table it does not report
// at all, hence the pg_indexes comparison.
import { describe, expect, test } from "bun:test";
import type { BetterAuthOptions } from "better-auth";
import { getAuthTables } from "better-auth/db";
import { getMigrations } from "better-auth/db/migration";
import { createAuth } from "../../src/auth/better-auth.ts";
import type { Config } from "../../src/config.ts";
import type { Sql } from "../../src/db/pool.ts";
import type { Logger } from "../../src/ops/log.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { cleanUpAfterFile, createTestDatabase, testConfig } from "../helpers.ts";

cleanUpAfterFile();

type Entry = { level: Logger["level"]; message: string };

/** A Logger that keeps every line; Better Auth's logger (and so getMigrations') writes through it. */
function capturingLogger(): Logger & { entries: Entry[]; warnings(): string[] } {
  const entries: Entry[] = [];
  const keep = (level: Entry["level"]) => (message: string, ...details: unknown[]) =>
    entries.push({ level, message: [message, ...details.map(String)].join(" ") });
  return {
    level: "debug",
    entries,
    warnings: () => entries.filter((entry) => entry.level === "warn" || entry.level === "error").map((entry) => entry.message),
    debug: keep("debug"),
    info: keep("info"),
    warn: keep("warn"),
    error: keep("error"),
    request: (level, fields) => keep(level)("request", JSON.stringify(fields)),
  };
}

/** A database with sql/ applied and the server's Better Auth on it, logging everything into `logger`. */
async function migratedAuth(label: string) {
  const db = await createTestDatabase(label);
  await applyMigrations(db.sql);
  const logger = capturingLogger();
  // LOG_LEVEL debug: Better Auth's logger filters by this level before our logger sees a line.
  const config = testConfig({ DATABASE_URL: db.url, LOG_LEVEL: "debug" }) as Config & { secret: string };
  const auth = createAuth({ config, sql: db.sql, logger });
  return { db, auth, logger };
}

/**
 * Every field Better Auth declares `unique` or `index` (and every table-level index it declares)
 * that has no serving index in pg_indexes: a unique field needs a unique, non-partial index on
 * exactly its column; an indexed field needs a non-partial index that leads with its column.
 */
async function missingIndexes(sql: Sql, options: BetterAuthOptions): Promise<string[]> {
  const rows = await sql<{ tablename: string; indexdef: string }[]>`
    select tablename, indexdef from pg_indexes where schemaname = current_schema()`;
  const indexes = rows.map((row) => {
    const match = /^CREATE (UNIQUE )?INDEX .+ USING \w+ \((.+)\)( WHERE .+)?$/.exec(row.indexdef);
    if (!match) throw new Error(`unexpected index definition: ${row.indexdef}`);
    return {
      table: row.tablename,
      unique: match[1] !== undefined,
      partial: match[3] !== undefined,
      columns: match[2]!.split(", ").map((column) => column.replace(/^"(.*)"$/, "$1")),
    };
  });
  const served = (table: string, columns: string[], unique: boolean) =>
    indexes.some(
      (index) =>
        index.table === table &&
        !index.partial &&
        (unique
          ? index.unique && index.columns.join() === columns.join()
          : columns.every((column, position) => index.columns[position] === column)),
    );

  const missing: string[] = [];
  for (const table of Object.values(getAuthTables(options))) {
    if (table.disableMigrations) continue;
    const column = (field: string) => table.fields[field]?.fieldName ?? field;
    for (const [key, field] of Object.entries(table.fields)) {
      if (field.unique && !served(table.modelName, [column(key)], true)) missing.push(`${table.modelName}.${column(key)} (unique)`);
      else if (field.index && !field.unique && !served(table.modelName, [column(key)], false)) missing.push(`${table.modelName}.${column(key)} (index)`);
    }
    for (const index of table.indexes ?? []) {
      const columns = index.fields.map(column);
      if (!served(table.modelName, columns, index.unique ?? false)) {
        missing.push(`${table.modelName}(${columns.join(", ")}) (${index.unique ? "unique" : "index"})`);
      }
    }
  }
  return missing;
}

describe("sql/ matches Better Auth's schema", () => {
  test("getMigrations on a freshly migrated database has nothing to create, add or index, no schema problems and logs no warnings", async () => {
    const { auth, logger } = await migratedAuth("drift_clean");
    await auth.$context;

    const plan = await getMigrations(auth.options);

    expect(plan.toBeCreated.map((table) => table.table)).toEqual([]);
    expect(plan.toBeAdded.map((table) => `${table.table}: ${Object.keys(table.fields).join(", ")}`)).toEqual([]);
    expect(plan.toBeAddedIndexes.map((index) => index.name)).toEqual([]);
    expect(plan.schemaProblems).toEqual([]);
    expect(plan.unsafeChanges).toEqual([]);
    expect((await plan.compileMigrations()).replace(/[;\s]/g, "")).toBe("");
    expect(logger.warnings()).toEqual([]);
    // The capture is live: getMigrations logs through auth.options.logger, which writes to our logger.
    expect(logger.entries.some((entry) => entry.message.includes("PostgreSQL migration"))).toBe(true);
  });

  test("every field Better Auth marks unique or index has a serving index in pg_indexes", async () => {
    const { db, auth } = await migratedAuth("drift_indexes");
    const declared = Object.values(getAuthTables(auth.options)).flatMap((table) =>
      Object.values(table.fields).filter((field) => field.unique || field.index),
    );
    expect(declared.length).toBeGreaterThan(0);
    expect(await missingIndexes(db.sql, auth.options)).toEqual([]);
  });
});

describe("the drift check catches drift", () => {
  test("a dropped column (sessions.ip_address) is reported by getMigrations in toBeAdded", async () => {
    const { db, auth } = await migratedAuth("drift_column");
    await db.sql`alter table sessions drop column ip_address`;

    const plan = await getMigrations(auth.options);

    expect(plan.toBeCreated).toEqual([]);
    expect(plan.toBeAdded.map((table) => [table.table, Object.values(table.fields).map((field) => field.fieldName)])).toEqual([
      ["sessions", ["ip_address"]],
    ]);
  });

  test("a dropped index (sessions_user_id_idx) is missed by getMigrations and caught by the pg_indexes comparison", async () => {
    const { db, auth, logger } = await migratedAuth("drift_index");
    await db.sql`drop index sessions_user_id_idx`;

    const plan = await getMigrations(auth.options);
    expect([...plan.toBeCreated, ...plan.toBeAdded, ...plan.toBeAddedIndexes]).toEqual([]);
    expect(logger.warnings()).toEqual([]);

    expect(await missingIndexes(db.sql, auth.options)).toEqual(["sessions.user_id (index)"]);
  });

  test("a unique index replaced by a plain one (users.email) is caught by the pg_indexes comparison", async () => {
    const { db, auth } = await migratedAuth("drift_unique");
    await db.sql`drop index users_email_key`;
    await db.sql`create index users_email_idx on users (email)`;
    expect(await missingIndexes(db.sql, auth.options)).toEqual(["users.email (unique)"]);
  });

  test("type and nullability drift is only logged as a warning, and the captured log shows it", async () => {
    const { db, auth, logger } = await migratedAuth("drift_types");
    await db.sql`alter table users alter column email_verified drop not null`;
    await db.sql`alter table sessions alter column expires_at type text`;

    const plan = await getMigrations(auth.options);

    expect([...plan.toBeCreated, ...plan.toBeAdded]).toEqual([]);
    const warnings = logger.warnings();
    expect(warnings.some((line) => line.includes("email_verified") && line.includes("nullable"))).toBe(true);
    expect(warnings.some((line) => line.includes("expires_at") && line.includes("sessions") && line.includes("type"))).toBe(true);
  });
});
