// Password hashing: argon2id through Bun.password at OWASP's recommended parameters, with Better
// Auth's legacy scrypt format still accepted and upgraded at the next successful sign-in.
import { heapSize } from "bun:jsc";
import { availableParallelism } from "node:os";
import { verifyPassword as verifyScrypt } from "better-auth/crypto";
import type { Sql } from "./db.ts";
import type { Logger } from "./log.ts";

// OWASP Password Storage Cheat Sheet (argon2id): m=19 MiB, t=2, p=1. ASVS 2.4.1.
// Bun.password always uses parallelism 1.
export const ARGON2ID = { algorithm: "argon2id", memoryCost: 19 * 1024, timeCost: 2 } as const;

const LEGACY_SCRYPT = /^[0-9a-f]{32}:[0-9a-f]{128}$/i;

// At most this many hashes run at once (argon2id takes 19 MiB each, legacy scrypt 16 MiB); the rest
// wait their turn. A sign-in storm then costs bounded memory (bench/RESULTS.md: peak RSS), and more
// hashes at once than cores would not finish sooner.
export const HASHES_IN_FLIGHT = Math.min(8, Math.max(2, availableParallelism()));
let inFlight = 0;
const waiting: Array<() => void> = [];

// While hashes queue (a sign-in storm) the event loop mostly waits for the hashing threads, and the
// garbage of the requests around the hashes (about 60 KB of JS heap per sign-in) piles up faster than
// JavaScriptCore collects it: a storm of 64 connections peaked at 185-203 MB RSS, and at 147-167 MB
// with a full collection at most once a second (bench/RESULTS.md). Only while hashes queue: under
// other traffic a full collection every second would add tens of milliseconds to the slowest answers.
export const STORM_COLLECTION_INTERVAL_MS = 1000;
const STORM_COLLECTION_GROWTH_BYTES = 8 * 1024 * 1024;
// A heap this small (an idle server's is about 12 MB) is not worth a collection.
const STORM_COLLECTION_MIN_HEAP_BYTES = 16 * 1024 * 1024;
let lastStormCollection = -Infinity;
// The heap right after this storm's last forced collection; 0 once the queue has emptied, so the first
// check of the next storm measures against the minimum, not against a figure of long ago.
let heapAfterCollection = 0;
let stormCollections = 0;

function collectDuringStorm(): void {
  if (waiting.length === 0) {
    heapAfterCollection = 0;
    return;
  }
  const now = performance.now();
  if (now - lastStormCollection < STORM_COLLECTION_INTERVAL_MS) return;
  if (heapSize() < Math.max(heapAfterCollection, STORM_COLLECTION_MIN_HEAP_BYTES) + STORM_COLLECTION_GROWTH_BYTES) return;
  lastStormCollection = now;
  Bun.gc(true);
  heapAfterCollection = heapSize();
  stormCollections++;
}

/** Full collections run because hashes queued (for tests and diagnostics). */
export const stormCollectionCount = () => stormCollections;

/** Runs `work` when fewer than HASHES_IN_FLIGHT hashes are running. */
async function hashSlot<T>(work: () => Promise<T>): Promise<T> {
  if (inFlight >= HASHES_IN_FLIGHT) await new Promise<void>((resolve) => waiting.push(resolve));
  else inFlight++;
  try {
    return await work();
  } finally {
    collectDuringStorm();
    const next = waiting.shift();
    if (next) next(); // the slot passes straight to the next waiter
    else inFlight--;
  }
}

/** Hashes being computed right now (for tests and diagnostics). */
export const hashesInFlight = () => inFlight;

export function hashPassword(password: string): Promise<string> {
  return hashSlot(() => Bun.password.hash(password, ARGON2ID));
}

export function isLegacyScryptHash(hash: string): boolean {
  return LEGACY_SCRYPT.test(hash);
}

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(input: { hash: string; password: string }): Promise<boolean>;
}

/**
 * Better Auth's `emailAndPassword.password` implementation. A legacy scrypt hash that verifies is
 * replaced by an argon2id hash of the same password in `accounts`, so migrated users keep their
 * passwords and move to the stronger hash without noticing.
 */
export function createPasswordHasher(sql: Sql, logger: Logger): PasswordHasher {
  return {
    hash: hashPassword,
    async verify({ hash, password }) {
      if (hash.startsWith("$argon2")) return hashSlot(() => Bun.password.verify(password, hash, "argon2id"));
      if (!isLegacyScryptHash(hash)) {
        logger.warn("a stored password hash has an unknown format; the sign-in is refused");
        return false;
      }
      if (!(await hashSlot(() => verifyScrypt({ hash, password })))) return false;
      const upgraded = await hashPassword(password);
      await sql`
        update accounts set password = ${upgraded}, updated_at = now()
        where provider_id = 'credential' and password = ${hash}`;
      logger.info("upgraded a legacy scrypt password hash to argon2id");
      return true;
    },
  };
}
