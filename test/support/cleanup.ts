// What a test file started or created, undone after its last test, last registered first.
import { afterAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const cleanups: Array<() => Promise<unknown>> = [];
/** Runs every pending cleanup, last registered first. */
export async function runCleanups(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
}
// This hook belongs to the first test file that imports this module: in a run of several files the
// module is loaded once, so every other file's cleanups wait for that file's own `cleanUpAfterFile()`.
// Dropping databases and stopping servers can take longer than a hook's default 5 s on a loaded machine.
const CLEANUP_TIMEOUT_MS = 60_000;
afterAll(runCleanups, CLEANUP_TIMEOUT_MS);
/** Runs this file's cleanups after its last test; call once at the top of a test file. */
export function cleanUpAfterFile(): void {
  afterAll(runCleanups, CLEANUP_TIMEOUT_MS);
}
/** Runs `cleanup` after the current test file, last registered first. */
export function onCleanup(cleanup: () => Promise<unknown>): void {
  cleanups.push(cleanup);
}

/** A new temporary folder, removed after the test file. */
export function createTempDir(label = "tmp"): string {
  const dir = mkdtempSync(join(tmpdir(), `auth-test-${label}-`));
  onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

