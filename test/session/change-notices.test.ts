// The rule that decides whether a cached copy may be answered from (src/session/change-notices.ts), and the
// listener's fault answers that the two-instance and revocation tests do not reach: a heartbeat that
// stops coming back, a flood of notices past the bound, a change heard over a real connection.
import { describe, expect, test } from "bun:test";
import { CLOCK_SKEW_MS, createChangeRegistry, LISTENER_STALE_MS, listenForChanges, untilTrusting } from "../../src/session/change-notices.ts";
import { cleanUpAfterFile, createTestDatabase, onCleanup, quietLogger } from "../helpers.ts";
import { applyMigrations } from "../../src/db/migrate.ts";

cleanUpAfterFile();

const WINDOW_MS = 300_000;

describe("the rule", () => {
  test("nothing is trusted before the listener listens, nor a copy written before it listened (with the clock margin)", () => {
    const registry = createChangeRegistry(WINDOW_MS);
    expect(registry.trusts("s1", "u1", Date.now())).toBe(false);
    registry.listening(true);
    expect(registry.trusts("s1", "u1", Date.now())).toBe(false); // within the margin
    expect(registry.trusts("s1", "u1", Date.now() - 60_000)).toBe(false);
    expect(registry.trusts("s1", "u1", Date.now() + CLOCK_SKEW_MS + 10)).toBe(true);
    expect(registry.trusts("s1", "u1", Number.NaN)).toBe(false);
  });

  test("a notice for the session or for its user distrusts every copy written before it, plus the margin", async () => {
    const registry = createChangeRegistry(WINDOW_MS);
    registry.listening(true);
    await Bun.sleep(CLOCK_SKEW_MS + 20);
    const copy = Date.now(); // written after the listener listened, just before the changes
    expect(registry.trusts("s1", "u1", copy)).toBe(true);
    registry.notice("session:s1");
    registry.notice("user:u2");
    expect(registry.trusts("s1", "u1", copy)).toBe(false);
    expect(registry.trusts("s9", "u2", copy)).toBe(false);
    expect(registry.trusts("s9", "u1", copy)).toBe(true);
    expect(registry.trusts("s1", "u1", copy + CLOCK_SKEW_MS - 10)).toBe(false); // within the margin
    expect(registry.trusts("s1", "u1", Date.now() + CLOCK_SKEW_MS + 10)).toBe(true); // written after the change
    registry.notice("beat:someone-else"); // other kinds change nothing
    registry.notice("nonsense");
    expect(registry.trusts("s9", "u1", copy)).toBe(true);
  });

  test("a disconnected listener trusts nothing; reconnected, only copies written after it listens again", () => {
    const registry = createChangeRegistry(WINDOW_MS);
    registry.listening(true);
    const before = Date.now() + CLOCK_SKEW_MS + 10;
    expect(registry.trusts("s1", "u1", before)).toBe(true);
    registry.listening(false);
    expect(registry.current()).toBe(false);
    expect(registry.trusts("s1", "u1", before)).toBe(false);
    registry.listening(true);
    expect(registry.trusts("s1", "u1", Date.now() - 1)).toBe(false);
  });

  test("a listener whose heartbeat has not come back for LISTENER_STALE_MS trusts nothing until it does", async () => {
    const registry = createChangeRegistry(WINDOW_MS);
    registry.listening(true);
    const copy = Date.now() + CLOCK_SKEW_MS + 10;
    expect(registry.trusts("s1", "u1", copy)).toBe(true);
    await Bun.sleep(LISTENER_STALE_MS + 50);
    expect(registry.current()).toBe(false);
    expect(registry.trusts("s1", "u1", copy)).toBe(false);
    registry.beat();
    expect(registry.trusts("s1", "u1", copy)).toBe(true);
  });

  test("past 100,000 remembered changes, they are forgotten and every copy written before is distrusted", () => {
    const registry = createChangeRegistry(WINDOW_MS);
    registry.listening(true);
    const copy = Date.now() + CLOCK_SKEW_MS + 10;
    for (let i = 0; i <= 100_000; i++) registry.notice(`session:flood-${i}`);
    expect(registry.trusts("untouched", "u1", copy)).toBe(false);
    expect(registry.trusts("untouched", "u1", Date.now() + CLOCK_SKEW_MS + 10)).toBe(true);
  });
});

describe("over a real connection", () => {
  test("an update in SQL is heard within a second; a rolled-back one is not", async () => {
    const db = await createTestDatabase("notices");
    await applyMigrations(db.sql);
    const notices = listenForChanges(db.url, WINDOW_MS, quietLogger);
    onCleanup(() => notices.close());
    await untilTrusting(notices);
    const [user] = await db.sql<{ id: string }[]>`
      insert into users (id, name, email, email_verified) values ('notice-user', 'N', 'n@example.test', false) returning id`;
    const copy = Date.now();
    expect(notices.trusts("s1", user!.id, copy)).toBe(true);
    await db.sql.begin(async (tx) => {
      await tx`update users set name = 'rolled back' where id = ${user!.id}`;
      await tx`select pg_notify('unrelated', 'x')`;
      throw new Error("roll back");
    }).catch(() => {});
    await Bun.sleep(300);
    expect(notices.trusts("s1", user!.id, copy)).toBe(true);
    await db.sql`update users set name = 'changed' where id = ${user!.id}`;
    const changedAt = Date.now();
    while (notices.trusts("s1", user!.id, copy) && Date.now() - changedAt < 1000) await Bun.sleep(10);
    expect(notices.trusts("s1", user!.id, copy)).toBe(false);
  });
});
