// No account enumeration by timing (ASVS 2.2.x; OWASP Authentication Cheat Sheet, "Authentication
// and error messages"): a sign-in for an unknown email hashes the password like one for a known
// account (Better Auth's sign-in/email), and a locked account verifies against a dummy hash
// (src/lockout.ts), so all three answers take the same time within measurement noise.
// Attempts are interleaved round by round, in a rotating order, and compared within a round, so that
// load from other processes falls on every kind alike; medians ignore the outliers such load produces.
import { expect, setDefaultTimeout, test } from "bun:test";
import { cleanUpAfterFile, createTestApp, PASSWORD, signUp, uniqueEmail } from "./helpers.ts";

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

test("sign-in for an unknown email, a known email with a wrong password and a locked account take the same median time (within 30%)", async () => {
  const t = await createTestApp({ LOCKOUT_MAX_FAILURES: "3", LOCKOUT_DURATION: "1h" });
  const known = await signUp(t);
  const locked = await signUp(t);
  const attempt = (email: string, password: string) =>
    t.request("/api/auth/sign-in/email", { method: "POST", json: { email, password } });
  for (let i = 0; i < 3; i++) await attempt(locked.email, "wrong password");

  const kinds = {
    unknown: () => attempt(uniqueEmail("nobody"), "wrong password"),
    wrongPassword: () => attempt(known.email, "wrong password"),
    locked: () => attempt(locked.email, PASSWORD),
  };
  const names = Object.keys(kinds) as (keyof typeof kinds)[];
  const times: Record<string, number[]> = Object.fromEntries(names.map((name) => [name, []]));
  for (let round = 0; round < WARM_UP + ROUNDS; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length]!;
      const started = performance.now();
      const response = await kinds[name]();
      const elapsed = performance.now() - started;
      expect([name, response.status]).toEqual([name, 401]);
      if (round >= WARM_UP) times[name]!.push(elapsed);
      // Outside the measurement: the known account must never lock.
      if (name === "wrongPassword") await t.db.sql`delete from account_lockouts where user_id = ${known.userId}`;
    }
  }

  // Per round, each kind against the wrong password measured moments apart (the same load), then the
  // median of those ratios over all rounds, and the plain medians for the record.
  const medians = Object.fromEntries(names.map((name) => [name, Math.round(median(times[name]!) * 10) / 10]));
  const ratios = Object.fromEntries(
    (["unknown", "locked"] as const).map((name) => [name, median(times[name]!.map((value, round) => value / times.wrongPassword![round]!))]),
  );
  console.log(`sign-in medians (ms): ${JSON.stringify(medians)}; median paired ratios to a wrong password: ${JSON.stringify(ratios)}`);
  for (const [name, ratio] of Object.entries(ratios)) {
    expect([name, ratio]).toEqual([name, expect.any(Number)]);
    expect(ratio).toBeLessThanOrEqual(MAX_RATIO);
    expect(ratio).toBeGreaterThanOrEqual(1 / MAX_RATIO);
  }
});
