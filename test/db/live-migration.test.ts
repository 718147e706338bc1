// Several instances share one Postgres, so a migration lands while others serve: an added column or
// index, or a changed column type, must not break the statements a running instance has prepared.
import { describe, expect, test } from "bun:test";
import { cleanUpAfterFile, createTestApp, PASSWORD, signUp, attemptSignIn } from "../helpers.ts";

cleanUpAfterFile();

const t = await createTestApp();

/** The statuses of the reads and writes a running instance serves, each twice (prepared, then reused). */
async function serve(email: string, cookie: string): Promise<number[]> {
  const statuses: number[] = [];
  for (let round = 0; round < 2; round++) {
    statuses.push((await t.request("/api/auth/get-session", { headers: { cookie } })).status);
    statuses.push((await t.request("/api/auth/token", { headers: { cookie } })).status);
    statuses.push((await t.request("/api/auth/list-sessions", { headers: { cookie } })).status);
    statuses.push((await attemptSignIn(t, email)).status);
    statuses.push((await t.request("/api/auth/update-user", { method: "POST", headers: { cookie }, json: { organization: `Org ${round}` } })).status);
  }
  return statuses;
}

describe("a schema change under a running instance", () => {
  test("added columns and an index, and a widened column type: every endpoint keeps answering 200", async () => {
    const { email, cookie } = await signUp(t);
    expect(await serve(email, cookie)).toEqual(Array(10).fill(200));

    await t.db.sql.unsafe("alter table users add column nickname text");
    await t.db.sql.unsafe("alter table sessions add column device text");
    await t.db.sql.unsafe("create index sessions_created_at_idx on sessions (created_at)");
    await t.db.sql.unsafe("alter table users alter column organization type varchar(300)");

    expect(await serve(email, cookie)).toEqual(Array(10).fill(200));
    const session = (await (await t.request("/api/auth/get-session", { headers: { cookie } })).json()) as { user: { organization: string } };
    expect(session.user.organization).toBe("Org 1");
  });
});
