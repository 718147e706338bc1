// Password hashes in flight are bounded: a sign-in storm queues hashes instead of holding 19 MiB of
// argon2id memory for every waiting request at once.
import { expect, test } from "bun:test";
import { HASHES_IN_FLIGHT, hashesInFlight, hashPassword, STORM_COLLECTION_INTERVAL_MS, stormCollectionCount } from "../src/password.ts";

/** About 30 MB of JS heap, kept alive while `work` runs. */
async function withHeapGrown<T>(work: () => Promise<T>): Promise<T> {
  const held = Array.from({ length: 300_000 }, (_, i) => ({ i, text: `held object ${i}` }));
  try {
    return await work();
  } finally {
    held.length = 0;
  }
}

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

test("hashes one after another (no queue) never force a collection, however large the heap", async () => {
  const before = stormCollectionCount();
  await withHeapGrown(async () => {
    for (let i = 0; i < 4; i++) await hashPassword(`one at a time ${i}`);
  });
  expect(stormCollectionCount()).toBe(before);
}, 60_000);

test("while hashes queue and the heap has grown, it is collected, at most once per interval", async () => {
  await Bun.sleep(STORM_COLLECTION_INTERVAL_MS); // past any collection an earlier test forced
  const before = stormCollectionCount();
  const started = performance.now();
  await withHeapGrown(() => Promise.all(Array.from({ length: HASHES_IN_FLIGHT * 12 }, (_, i) => hashPassword(`storm password ${i}`))));
  const elapsed = performance.now() - started;
  const collections = stormCollectionCount() - before;
  expect(collections).toBeGreaterThanOrEqual(1);
  expect(collections).toBeLessThanOrEqual(Math.floor(elapsed / STORM_COLLECTION_INTERVAL_MS) + 1);
}, 60_000);
