// No account enumeration by timing (ASVS 2.2.x, 2.5; OWASP Authentication Cheat Sheet, "Authentication
// and error messages"): a sign-in for an unknown email hashes the password like one for a known
// account (Better Auth's sign-in/email), and a locked account verifies against a dummy hash
// (src/security/lockout.ts), so all three answers take the same time within measurement noise; with email
// verification required, a sign-up with a taken address hashes the password like a new one.
// Attempts are interleaved round by round, in a rotating order, and compared within a round, so that
// load from other processes falls on every kind alike; medians ignore the outliers such load produces.
import { expect, setDefaultTimeout, test } from "bun:test";
import { cleanUpAfterFile, createTestApp, PASSWORD, signUp, uniqueEmail } from "../helpers.ts";

cleanUpAfterFile();
setDefaultTimeout(120_000);

const ROUNDS = 30;
const WARM_UP = 3;
// The bound: medians within 30% of each other. A timing oracle (no hash for an unknown email)
// would make one median a small fraction of the other, far outside it.
const MAX_RATIO = 1.3;

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};

/**
 * Times each kind of request ROUNDS times, interleaved in a rotating order, and expects every kind's
 * median paired ratio to `reference` (measured moments apart, under the same load) within MAX_RATIO.
 */
async function expectSameTiming(label: string, kinds: Record<string, () => Promise<Response>>, reference: string, status: number, afterEach?: (name: string) => Promise<unknown>) {
  const names = Object.keys(kinds);
  const times: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < WARM_UP + ROUNDS; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length]!;
      const started = performance.now();
      const response = await kinds[name]!();
      const elapsed = performance.now() - started;
      expect([name, response.status]).toEqual([name, status]);
      if (round >= WARM_UP) times[name]!.push(elapsed);
      await afterEach?.(name); // outside the measurement
    }
  }
  // Per round, each kind against the reference measured moments apart (the same load), then the
  // median of those ratios over all rounds, and the plain medians for the record.
  const medians = Object.fromEntries(names.map((name) => [name, Math.round(median(times[name]!) * 10) / 10]));
  const ratios = Object.fromEntries(
    names.filter((name) => name !== reference).map((name) => [name, median(times[name]!.map((value, round) => value / times[reference]![round]!))]),
  );
  console.log(`${label} medians (ms): ${JSON.stringify(medians)}; median paired ratios to ${reference}: ${JSON.stringify(ratios)}`);
  for (const [name, ratio] of Object.entries(ratios)) {
    expect([name, ratio]).toEqual([name, expect.any(Number)]);
    expect(ratio).toBeLessThanOrEqual(MAX_RATIO);
    expect(ratio).toBeGreaterThanOrEqual(1 / MAX_RATIO);
  }
}

test("sign-in for an unknown email, a known email with a wrong password and a locked account take the same median time (within 30%)", async () => {
  const t = await createTestApp({ LOCKOUT_MAX_FAILURES: "3", LOCKOUT_DURATION: "1h" });
  const known = await signUp(t);
  const locked = await signUp(t);
  const attempt = (email: string, password: string) =>
    t.request("/api/auth/sign-in/email", { method: "POST", json: { email, password } });
  for (let i = 0; i < 3; i++) await attempt(locked.email, "wrong password");

  await expectSameTiming(
    "sign-in",
    {
      unknown: () => attempt(uniqueEmail("nobody"), "wrong password"),
      wrongPassword: () => attempt(known.email, "wrong password"),
      locked: () => attempt(locked.email, PASSWORD),
    },
    "wrongPassword",
    401,
    // The known account must never lock.
    async (name) => name === "wrongPassword" && (await t.db.sql`delete from account_lockouts where user_id = ${known.userId}`),
  );
});

test("with REQUIRE_EMAIL_VERIFICATION=on, sign-up with a taken address takes the same median time as with a new one (within 30%)", async () => {
  const t = await createTestApp({ REQUIRE_EMAIL_VERIFICATION: "on" });
  const attempt = (email: string) => t.request("/api/auth/sign-up/email", { method: "POST", json: { name: "Someone", email, password: PASSWORD } });
  const taken = uniqueEmail("taken");
  expect((await attempt(taken)).status).toBe(200);
  await expectSameTiming("sign-up", { fresh: () => attempt(uniqueEmail("fresh")), taken: () => attempt(taken) }, "fresh", 200);
});
