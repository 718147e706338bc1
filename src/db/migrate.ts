// Forward-only runner for the hand-written SQL in sql/: files apply in order, each in its own
// transaction, recorded with a sha256 checksum, under an advisory lock so instances starting together
// take turns. CLI: `bun run migrate` applies, `bun run migrate:status` lists.
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Sql } from "./pool.ts";

export const MIGRATIONS_DIR = resolve(import.meta.dir, "..", "..", "sql");
const FILE_PATTERN = /^(\d{4})_([a-z0-9_]+)\.sql$/;

export interface Migration {
  version: string;
  name: string;
  checksum: string;
  sql: string;
}

export interface MigrationState {
  version: string;
  name: string;
  state: "applied" | "pending" | "changed" | "missing";
  appliedAt: Date | null;
}

export class MigrationError extends Error {
  override name = "MigrationError";
}

export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const migrations: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith(".sql")) continue;
    const match = FILE_PATTERN.exec(file);
    if (!match) throw new MigrationError(`${file}: migration files are named NNNN_description.sql (lower case)`);
    const text = readFileSync(join(dir, file), "utf8");
    const previous = migrations.at(-1);
    if (previous?.version === match[1]) throw new MigrationError(`${file}: version ${match[1]} is used twice`);
    migrations.push({ version: match[1]!, name: match[2]!, checksum: new Bun.CryptoHasher("sha256").update(text).digest("hex"), sql: text });
  }
  return migrations;
}

/** Runs `work` on one connection that holds the migration lock for its duration. */
async function withMigrationLock<T>(sql: Sql, work: (connection: Sql) => Promise<T>): Promise<T> {
  const connection = await sql.reserve();
  try {
    await connection`select pg_advisory_lock(hashtext('auth-server:schema_migrations'))`;
    try {
      await connection`
        create table if not exists schema_migrations (
          version text primary key,
          name text not null,
          checksum text not null,
          applied_at timestamptz not null default now()
        )`;
      return await work(connection);
    } finally {
      await connection`select pg_advisory_unlock(hashtext('auth-server:schema_migrations'))`;
    }
  } finally {
    connection.release();
  }
}

type AppliedRow = { version: string; name: string; checksum: string; applied_at: Date };

function compare(migrations: Migration[], applied: AppliedRow[]): MigrationState[] {
  const byVersion = new Map(applied.map((row) => [row.version, row]));
  const states: MigrationState[] = migrations.map((migration) => {
    const row = byVersion.get(migration.version);
    byVersion.delete(migration.version);
    if (!row) return { version: migration.version, name: migration.name, state: "pending", appliedAt: null };
    const state = row.checksum === migration.checksum ? "applied" : "changed";
    return { version: migration.version, name: migration.name, state, appliedAt: row.applied_at };
  });
  for (const row of byVersion.values()) {
    states.push({ version: row.version, name: row.name, state: "missing", appliedAt: row.applied_at });
  }
  return states.sort((a, b) => a.version.localeCompare(b.version));
}

function refuseChanged(states: MigrationState[]): void {
  const changed = states.filter((state) => state.state === "changed");
  if (changed.length > 0) {
    const names = changed.map((state) => `${state.version}_${state.name}.sql`).join(", ");
    throw new MigrationError(
      `applied migration ${names} changed on disk since it ran (checksum differs); migrations are forward-only: restore the file and add a new one`,
    );
  }
}

export async function migrationStatus(sql: Sql, dir = MIGRATIONS_DIR): Promise<MigrationState[]> {
  const migrations = readMigrations(dir);
  return withMigrationLock(sql, async (connection) => {
    const applied = await connection<AppliedRow[]>`select version, name, checksum, applied_at from schema_migrations`;
    return compare(migrations, applied);
  });
}

/** Applies every pending migration; returns the versions it applied (empty when up to date). */
export async function applyMigrations(sql: Sql, dir = MIGRATIONS_DIR): Promise<string[]> {
  const migrations = readMigrations(dir);
  // The common start-up: everything applied, unchanged. One read answers that without the lock and
  // its DDL (cold start); anything else (no table yet, pending, changed) takes the locked path.
  const recorded = await sql<AppliedRow[]>`select version, name, checksum, applied_at from schema_migrations`.catch(() => null);
  if (recorded && compare(migrations, recorded).every((state) => state.state === "applied" || state.state === "missing")) return [];
  return withMigrationLock(sql, async (connection) => {
    const applied = await connection<AppliedRow[]>`select version, name, checksum, applied_at from schema_migrations`;
    const states = compare(migrations, applied);
    refuseChanged(states);
    const pending = new Set(states.filter((state) => state.state === "pending").map((state) => state.version));
    const done: string[] = [];
    for (const migration of migrations) {
      if (!pending.has(migration.version)) continue;
      await connection.unsafe("begin");
      try {
        await connection.unsafe(migration.sql);
        await connection`
          insert into schema_migrations (version, name, checksum)
          values (${migration.version}, ${migration.name}, ${migration.checksum})`;
        await connection.unsafe("commit");
      } catch (error) {
        await connection.unsafe("rollback");
        const reason = error instanceof Error ? error.message : String(error);
        throw new MigrationError(`${migration.version}_${migration.name}.sql failed and was rolled back: ${reason}`);
      }
      done.push(migration.version);
    }
    return done;
  });
}
