// A fresh Postgres database per test file, and row counts to prove a refused request wrote nothing.
import postgres from "postgres";
import { createPool, type Sql } from "../../src/db/pool.ts";
import { onCleanup } from "./cleanup.ts";

/** The Postgres the tests create their databases in (DATABASE_URL, or the local one). */
export const ADMIN_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

export interface TestDatabase {
  name: string;
  url: string;
  /** A pool for the test's own queries (the "Python reader" view of the schema). */
  sql: Sql;
}

/** A new, empty database, dropped after the test file. */
export async function createTestDatabase(label = "t"): Promise<TestDatabase> {
  const name = `auth_test_${label.replace(/[^a-z0-9]/gi, "_").toLowerCase()}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  const url = databaseUrl(name);
  const sql = createPool(url, { max: 4 });
  onCleanup(async () => {
    await sql.end({ timeout: 1 });
    const dropper = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    await dropper.unsafe(`drop database if exists "${name}" with (force)`);
    await dropper.end();
  });
  return { name, url, sql };
}
export interface IdentityRowCounts {
  users: number;
  accounts: number;
  sessions: number;
}

/** Row counts of the identity tables, to prove that a refused request wrote nothing. */
export async function countIdentityRows(sql: Sql): Promise<IdentityRowCounts> {
  const [row] = await sql<IdentityRowCounts[]>`
    select (select count(*)::int from users) as users,
           (select count(*)::int from accounts) as accounts,
           (select count(*)::int from sessions) as sessions`;
  return row!;
}

