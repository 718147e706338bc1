// The native hash ceiling: argon2id hashes and verifications a second with 1, 2 and 4 in flight, with the
// library and parameters the server uses (src/auth/password.ts), under Bun, as the server runs them. One JSON line
// each, in the anchors' "hash" shape, so the anchors' summary lists them beside Bun.password and scrypt.
//   bun bench/hash-ceiling.ts        env: SECS=3, CONCS="1 2 4", WHEN (a label: before, after)
import { hash, verify } from "@node-rs/argon2";
import { ARGON2ID } from "../src/auth/password.ts";

const SECS = Number(process.env.SECS ?? 3);
const CONCS = (process.env.CONCS ?? "1 2 4").split(/\s+/).filter(Boolean).map(Number);
const stored = await hash("bench-password-123", ARGON2ID);
const work: Record<string, (n: number) => Promise<unknown>> = {
  "@node-rs/argon2 verify (m=19456,t=2,p=1)": () => verify(stored, "bench-password-123"),
  "@node-rs/argon2 hash (m=19456,t=2,p=1)": (n) => hash(`pw-${n}`, ARGON2ID),
};
for (const [impl, fn] of Object.entries(work)) {
  await fn(0); // warm up: load the binding, map the first 19 MiB
  for (const concurrency of CONCS) {
    let done = 0;
    const t0 = performance.now();
    const end = t0 + SECS * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) await fn(done++);
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    console.log(
      JSON.stringify({ scenario: "hash", runtime: `bun-${Bun.version}`, impl, when: process.env.WHEN, concurrency, hashes: done, seconds: +seconds.toFixed(2), hashes_per_s: +(done / seconds).toFixed(1) }),
    );
  }
}
