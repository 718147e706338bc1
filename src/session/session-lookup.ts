// One prepared statement for a live session and its user, returned exactly as Better Auth's
// get-session returns them, from the tables Better Auth's schema mapping names.
import type { Sql } from "../db/pool.ts";
import { noteRequestUser } from "../ops/observe.ts";

export type SessionPair = { session: Record<string, unknown>; user: Record<string, unknown> };
type Field = { key: string; column: string };
type Table = { modelName: string; fields: Record<string, { type: unknown; fieldName?: string; returned?: boolean; bigint?: boolean }> };
export type AuthTables = Record<string, Table>;

// Value types the lookup returns exactly as Better Auth's adapter does; anything else (json,
// bigint, arrays from future plugins) switches the fast path off rather than risk a different answer.
const PLAIN_TYPES = new Set(["string", "boolean", "date", "number"]);

export const quote = (identifier: string) => `"${identifier.replaceAll('"', '""')}"`;
/** The quoted column of a model's field. */
export const columnOf = (tables: AuthTables, model: string, key: string) => quote(tables[model]!.fields[key]!.fieldName ?? key);

function outputFields(table: Table): Field[] | null {
  const fields: Field[] = [{ key: "id", column: "id" }];
  for (const [key, field] of Object.entries(table.fields)) {
    if (field.returned === false) continue;
    if (typeof field.type !== "string" || !PLAIN_TYPES.has(field.type) || field.bigint) return null;
    fields.push({ key, column: field.fieldName ?? key });
  }
  return fields;
}

/**
 * The lookup of a session token: the live session and its user, or null (no such session, expired, or
 * a refresh due, which Better Auth handles). Null itself when the schema has fields it does not map.
 */
export function createSessionLookup(sql: Sql, tables: AuthTables, sessionConfig: { expiresIn: number; updateAge: number }): ((token: string) => Promise<SessionPair | null>) | null {
  const sessionFields = outputFields(tables.session!);
  const userFields = outputFields(tables.user!);
  if (!sessionFields || !userFields) return null;
  const column = (model: string, key: string) => columnOf(tables, model, key);
  const lookupText =
    `select ${[...sessionFields.map((f, i) => `s.${quote(f.column)} as s${i}`), ...userFields.map((f, i) => `u.${quote(f.column)} as u${i}`)].join(", ")}` +
    ` from ${quote(tables.session!.modelName)} s join ${quote(tables.user!.modelName)} u on u.id = s.${column("session", "userId")}` +
    ` where s.${column("session", "token")} = $1`;
  const { expiresIn, updateAge } = sessionConfig;
  return async (token) => {
    const [row] = await sql.unsafe(lookupText, [token], { prepare: true });
    if (!row) return null;
    const pair: SessionPair = { session: {}, user: {} };
    sessionFields.forEach((field, i) => (pair.session[field.key] = row[`s${i}`]));
    userFields.forEach((field, i) => (pair.user[field.key] = row[`u${i}`]));
    const expiresAt = (pair.session.expiresAt as Date).getTime();
    const now = Date.now();
    if (expiresAt <= now) return null; // expired: Better Auth deletes it and clears the cookie
    if (expiresAt - expiresIn * 1000 + updateAge * 1000 <= now) return null; // refresh due: Better Auth slides it
    noteRequestUser(pair.user.id);
    return pair;
  };
}
