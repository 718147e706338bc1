// Password hashes in flight are bounded: a sign-in storm queues hashes instead of holding 19 MiB of
// argon2id memory for every waiting request at once.
import { expect, test } from "bun:test";
import { HASHES_IN_FLIGHT, hashesInFlight, hashPassword } from "../src/password.ts";

test("at most HASHES_IN_FLIGHT hashes run at once; every one of a burst completes", async () => {
  expect(HASHES_IN_FLIGHT).toBeGreaterThanOrEqual(2);
  expect(HASHES_IN_FLIGHT).toBeLessThanOrEqual(8);
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, hashesInFlight());
      await Bun.sleep(1);
    }
  })();
  const burst = await Promise.all(Array.from({ length: HASHES_IN_FLIGHT * 3 }, (_, i) => hashPassword(`burst password ${i}`)));
  sampling = false;
  await sampler;
  expect(peak).toBe(HASHES_IN_FLIGHT);
  expect(hashesInFlight()).toBe(0);
  expect(new Set(burst).size).toBe(HASHES_IN_FLIGHT * 3);
  expect(await Bun.password.verify("burst password 5", burst[5]!)).toBe(true);
}, 60_000);
