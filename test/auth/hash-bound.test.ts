// Password hashes are bounded twice: at most `inFlight` run at once (19 MiB of argon2id memory each), and at
// most `queue` more wait; past that a sign-in or sign-up answers 503 SERVER_BUSY with Retry-After at once
// instead of queueing without limit (OWASP Denial of Service Cheat Sheet; ASVS 11.1.4; RFC 9110 §15.6.4).
import { describe, expect, test } from "bun:test";
import { hash as argon2Hash, verify as argon2Verify } from "@node-rs/argon2";
import { isAPIError } from "better-auth/api";
import {
  ARGON2ID,
  createHashSlots,
  DEFAULT_HASHES_IN_FLIGHT,
  HashQueueFull,
  SERVER_BUSY,
  SERVER_BUSY_RETRY_AFTER_S,
  STORM_COLLECTION_INTERVAL_MS,
} from "../../src/auth/password.ts";
import { PASSWORD, SITE_ORIGIN, startTestServer, post, expectError, attemptSignIn } from "../helpers.ts";

describe("hash slots", () => {
  test("at most inFlight hashes run at once; every one of a burst within the queue completes", async () => {
    const slots = createHashSlots({ inFlight: 2, queue: 10 });
    let peak = 0;
    const burst = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        slots.run(async () => {
          peak = Math.max(peak, slots.inFlight());
          return argon2Hash(`burst password ${i}`, ARGON2ID);
        }),
      ),
    );
    expect(peak).toBe(2);
    expect(slots.inFlight()).toBe(0);
    expect(slots.waiting()).toBe(0);
    expect(slots.refused()).toBe(0);
    expect(new Set(burst).size).toBe(12);
    expect(await argon2Verify(burst[5]!, "burst password 5")).toBe(true);
  }, 60_000);

  test("a hash beyond inFlight + queue is refused at once with a 503 SERVER_BUSY and Retry-After, and the slots recover", async () => {
    const slots = createHashSlots({ inFlight: 1, queue: 1 });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const running = slots.run(() => held);
    const queued = slots.run(async () => "queued ran");
    expect(slots.inFlight()).toBe(1);
    expect(slots.waiting()).toBe(1);
    const refused = await slots.run(async () => "must not run").catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(HashQueueFull);
    if (!isAPIError(refused)) throw new Error("not an APIError");
    expect(refused.statusCode).toBe(503);
    expect(refused.body).toEqual({ code: SERVER_BUSY.code, message: SERVER_BUSY.message });
    expect(new Headers(refused.headers).get("retry-after")).toBe(String(SERVER_BUSY_RETRY_AFTER_S));
    expect(slots.refused()).toBe(1);
    release();
    await running;
    expect(await queued).toBe("queued ran");
    expect(await slots.run(async () => "after")).toBe("after");
    expect(slots.inFlight()).toBe(0);
  });
});

/** About 30 MB of JS heap, kept alive while `work` runs. */
async function withHeapGrown<T>(work: () => Promise<T>): Promise<T> {
  const held = Array.from({ length: 300_000 }, (_, i) => ({ i, text: `held object ${i}` }));
  try {
    return await work();
  } finally {
    held.length = 0;
  }
}

describe("collections during a storm", () => {
  test("hashes one after another (no queue) never force a collection, however large the heap", async () => {
    const slots = createHashSlots({ inFlight: 2, queue: 100 });
    await withHeapGrown(async () => {
      for (let i = 0; i < 4; i++) await slots.run(() => argon2Hash(`one at a time ${i}`, ARGON2ID));
    });
    expect(slots.stormCollections()).toBe(0);
  }, 60_000);

  test("while hashes queue and the heap has grown, it is collected, at most once per interval", async () => {
    const slots = createHashSlots({ inFlight: 2, queue: 100 });
    const started = performance.now();
    await withHeapGrown(() => Promise.all(Array.from({ length: 48 }, (_, i) => slots.run(() => argon2Hash(`storm password ${i}`, ARGON2ID)))));
    const elapsed = performance.now() - started;
    expect(slots.stormCollections()).toBeGreaterThanOrEqual(1);
    expect(slots.stormCollections()).toBeLessThanOrEqual(Math.floor(elapsed / STORM_COLLECTION_INTERVAL_MS) + 1);
  }, 60_000);
});

describe("a flood larger than the queue, on a real server", async () => {
  const QUEUE = 2;
  const FLOOD = 60;
  const server = await startTestServer({ PASSWORD_HASH_QUEUE: String(QUEUE) });

  /** Every answer is a 200 or a 503 SERVER_BUSY with Retry-After; some of each. */
  async function sortAnswers(responses: Response[]) {
    const ok: number[] = [];
    const busy: number[] = [];
    for (const [i, response] of responses.entries()) {
      if (response.status === 200) ok.push(i);
      else {
        expect((await expectError(response, 503, SERVER_BUSY.code)).message).toBe(SERVER_BUSY.message);
        expect(response.headers.get("retry-after")).toBe(String(SERVER_BUSY_RETRY_AFTER_S));
        busy.push(i);
      }
    }
    // The first inFlight + queue to reach the hash are always admitted.
    expect(ok.length).toBeGreaterThanOrEqual(DEFAULT_HASHES_IN_FLIGHT + QUEUE);
    expect(busy.length).toBeGreaterThan(0);
    return { ok, busy };
  }

  test("sign-in: the overflow answers 503 with Retry-After, the rest sign in, and only they have a session and a sign_in row", async () => {
    const email = "flooded@example.test";
    expect((await post(server, "/api/auth/sign-up/email", { name: "Flooded", email, password: PASSWORD })).status).toBe(200);
    const [user] = await server.db.sql<{ id: string }[]>`select id from users where email = ${email}`;
    const userId = user!.id;
    const { ok } = await sortAnswers(await Promise.all(Array.from({ length: FLOOD }, () => attemptSignIn(server, email))));
    const [sessions] = await server.db.sql<{ count: number }[]>`select count(*)::int as count from sessions where user_id = ${userId}`;
    expect(sessions!.count).toBe(ok.length + 1); // and the sign-up's
    const events = await server.db.sql<{ type: string; count: number }[]>`
      select type, count(*)::int as count from auth_events where user_id = ${userId} group by type order by type`;
    expect([...events]).toEqual([
      { type: "sign_in", count: ok.length },
      { type: "sign_up", count: 1 },
    ]);
    const [lockout] = await server.db.sql`select 1 from account_lockouts where user_id = ${userId}`;
    expect(lockout).toBeUndefined();
    // Once the flood has passed, the next sign-in goes through.
    expect((await attemptSignIn(server, email)).status).toBe(200);
  }, 60_000);

  test("sign-up: the overflow answers 503 with Retry-After and writes nothing; the rest are whole users", async () => {
    const emails = Array.from({ length: FLOOD }, (_, i) => `flood-${i}@example.test`);
    const { ok, busy } = await sortAnswers(await Promise.all(emails.map((email) => post(server, "/api/auth/sign-up/email", { name: "Flood", email, password: PASSWORD }))));
    const rows = await server.db.sql<{ email: string; accounts: number; sessions: number }[]>`
      select u.email,
        (select count(*)::int from accounts a where a.user_id = u.id and a.provider_id = 'credential' and a.password like '$argon2id$%') as accounts,
        (select count(*)::int from sessions s where s.user_id = u.id) as sessions
      from users u where u.email like 'flood-%' order by u.email`;
    expect(rows.map((row) => row.email).sort()).toEqual(ok.map((i) => emails[i]!).sort());
    for (const row of rows) expect({ email: row.email, accounts: row.accounts, sessions: row.sessions }).toEqual({ email: row.email, accounts: 1, sessions: 1 });
    // A refused address is free: signing up with it again now works.
    expect((await post(server, "/api/auth/sign-up/email", { name: "Flood", email: emails[busy[0]!]!, password: PASSWORD })).status).toBe(200);
  }, 60_000);
});
