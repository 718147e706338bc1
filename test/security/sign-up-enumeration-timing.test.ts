// Sign-up with REQUIRE_EMAIL_VERIFICATION=on must not tell who has an account by how long it takes either
// (ASVS 4.0 2.5 / V2 account enumeration; OWASP Authentication Cheat Sheet, "Authentication Responses":
// "the response time should be the same"). Better Auth hashes the password for a taken address too, but a
// new address also writes the user and account rows and signs a verification token, so a taken address is
// answered measurably sooner.
//
// The test is a sign test over interleaved pairs: each round sends one sign-up for a taken address and one
// for a new address of the same length (alternating which goes first), and counts the rounds in which the
// taken address was answered sooner. With equal timing that count is Binomial(n, 1/2); load on the machine
// only adds noise, which pulls it towards n/2, so it cannot make the test fail spuriously. The bound
// (70% of the rounds, 105 of 150) is almost five standard deviations above n/2.
import { expect, setDefaultTimeout, test } from "bun:test";
import { cleanUpAfterFile, PASSWORD } from "../helpers.ts";
import { createMailTestApp } from "../smtp.ts";

cleanUpAfterFile();
setDefaultTimeout(120_000);

const ROUNDS = 150;

test("with REQUIRE_EMAIL_VERIFICATION=on a taken address is not answered measurably sooner than a new one", async () => {
  const t = await createMailTestApp({ REQUIRE_EMAIL_VERIFICATION: "on" });
  const signUp = (email: string) =>
    t.request("/api/auth/sign-up/email", { method: "POST", json: { name: "Someone", email, password: PASSWORD } });
  const taken = "taken-0000@example.test";
  expect((await signUp(taken)).status).toBe(200);
  // Warm both paths (JIT, prepared statements, the mail queue).
  for (let i = 0; i < 5; i++) {
    await (await signUp(taken)).arrayBuffer();
    await (await signUp(`fresh-w${i}00@example.test`)).arrayBuffer();
  }

  const timed = async (email: string) => {
    const started = performance.now();
    const response = await signUp(email);
    await response.arrayBuffer();
    expect(response.status).toBe(200);
    return performance.now() - started;
  };
  let takenSooner = 0;
  const times: [number, number][] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const fresh = `fresh-${String(round).padStart(4, "0")}@example.test`; // as long as the taken address
    let takenMs: number;
    let freshMs: number;
    if (round % 2) {
      takenMs = await timed(taken);
      freshMs = await timed(fresh);
    } else {
      freshMs = await timed(fresh);
      takenMs = await timed(taken);
    }
    if (takenMs < freshMs) takenSooner++;
    times.push([takenMs, freshMs]);
  }
  const median = (i: 0 | 1) => times.map((pair) => pair[i]).sort((a, b) => a - b)[ROUNDS >> 1]!.toFixed(1);
  expect(takenSooner, `taken answered sooner in ${takenSooner}/${ROUNDS} rounds (median ${median(0)} ms vs ${median(1)} ms)`).toBeLessThan(Math.ceil(ROUNDS * 0.7));
});
