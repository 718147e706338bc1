// The count of running requests that shutdown waits for before it closes the pool.
import { expect, test } from "bun:test";
import { createInFlight } from "../../src/ops/observe.ts";

const settledWithin = (promise: Promise<void>, ms: number) => Promise.race([promise.then(() => true), Bun.sleep(ms).then(() => false)]);

test("settled() resolves at once with nothing running, and only when the last tracked work has ended", async () => {
  const inFlight = createInFlight();
  expect(await settledWithin(inFlight.settled(), 50)).toBe(true);

  const first = Promise.withResolvers<void>();
  const second = Promise.withResolvers<void>();
  const runs = [inFlight.track(() => first.promise), inFlight.track(() => second.promise)];
  expect(inFlight.count).toBe(2);
  const settled = inFlight.settled();

  first.resolve();
  await runs[0];
  expect(inFlight.count).toBe(1);
  expect(await settledWithin(settled, 50)).toBe(false);

  second.resolve();
  await runs[1];
  expect(inFlight.count).toBe(0);
  expect(await settledWithin(settled, 50)).toBe(true);
});

test("work that fails still stops counting, and its error reaches the caller", async () => {
  const inFlight = createInFlight();
  const failing = inFlight.track(async () => {
    await Bun.sleep(5);
    throw new Error("query failed");
  });
  expect(inFlight.count).toBe(1);
  await expect(failing).rejects.toThrow("query failed");
  expect(inFlight.count).toBe(0);
  expect(await settledWithin(inFlight.settled(), 50)).toBe(true);
});
