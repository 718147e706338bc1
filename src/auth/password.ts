// Password hashing: argon2id through @node-rs/argon2 (a Rust binding with prebuilt binaries) at OWASP's
// parameters, a bounded number of hashes at once behind a bounded queue, and Better Auth's legacy scrypt
// format still accepted and upgraded at the next successful sign-in.
import { heapSize } from "bun:jsc";
import { availableParallelism } from "node:os";
import type { Options as Argon2Options } from "@node-rs/argon2";
import { APIError } from "better-auth/api";
import { ERRORS, errorBody } from "../errors.ts";
import { verifyPassword as verifyScrypt } from "better-auth/crypto";
import type { Sql } from "../db/pool.ts";
import type { Logger } from "../ops/log.ts";

// OWASP Password Storage Cheat Sheet (argon2id): m=19 MiB, t=2, p=1. ASVS 2.4.1. The PHC strings are the
// ones Bun.password writes ($argon2id$v=19$m=19456,t=2,p=1$...), so hashes stored by either verify with the
// other and none needs a rehash.
// `algorithm: 2` is the library's Algorithm.Argon2id (a const enum, which this build cannot import).
export const ARGON2ID: Readonly<Argon2Options> = { algorithm: 2, memoryCost: 19 * 1024, timeCost: 2, parallelism: 1 };

const LEGACY_SCRYPT = /^[0-9a-f]{32}:[0-9a-f]{128}$/i;

// The binding is loaded with the first hash, not at start-up: an idle server does not hold it.
let argon2: Promise<typeof import("@node-rs/argon2")> | undefined;
const loadArgon2 = () => (argon2 ??= import("@node-rs/argon2"));

/**
 * At most `inFlight` hashes run at once (argon2id holds 19 MiB for each, legacy scrypt 16 MiB; more at
 * once than cores would not finish sooner), at most `queue` more wait for a turn. A sign-in flood beyond
 * that is answered 503 with Retry-After at once instead of queueing without limit (OWASP Denial of Service
 * Cheat Sheet: bound every queue; ASVS 11.1.4: excessive calls; RFC 9110 §15.6.4 and §10.2.3): a waiting
 * request holds its connection and memory, and one that waits longer than a client will is work for nothing.
 */
export interface HashLimits {
  inFlight: number;
  queue: number;
}

export const DEFAULT_HASHES_IN_FLIGHT = Math.min(8, Math.max(2, availableParallelism()));

/** What a sign-in or sign-up answers when the queue is full; the client may retry after this long. */
export const SERVER_BUSY = errorBody("SERVER_BUSY");
export const SERVER_BUSY_RETRY_AFTER_S = 1;

export class HashQueueFull extends APIError {
  constructor() {
    super(ERRORS.SERVER_BUSY.status, { ...SERVER_BUSY }, { "Retry-After": String(SERVER_BUSY_RETRY_AFTER_S) });
  }
}

// While hashes queue (a sign-in storm) the event loop mostly waits for the hashing threads, and the garbage
// of the requests around them piles up faster than JavaScriptCore collects it, most of all right after a
// get-session load whose garbage is still uncollected: with @node-rs/argon2, storms after a /token load
// peaked at 154, 262 and 265 MB without a forced collection and at 158 and 161 MB with one at most once a second
// (bench/RESULTS.md, 2026-12-04). Only while hashes queue: under other traffic a full collection every
// second would add tens of milliseconds to the slowest answers.
export const STORM_COLLECTION_INTERVAL_MS = 1000;
const STORM_COLLECTION_GROWTH_BYTES = 8 * 1024 * 1024;
// A heap this small (an idle server's is about 12 MB) is not worth a collection.
const STORM_COLLECTION_MIN_HEAP_BYTES = 16 * 1024 * 1024;

/** Hashes admitted in turn: `run` starts `work` when a slot is free, or throws HashQueueFull. */
export interface HashSlots {
  run<T>(work: () => Promise<T>): Promise<T>;
  /** Hashes being computed right now. */
  inFlight(): number;
  /** Hashes waiting for a slot. */
  waiting(): number;
  /** Hashes refused because the queue was full, since start. */
  refused(): number;
  /** Full collections run because hashes queued, since start. */
  stormCollections(): number;
}

export function createHashSlots({ inFlight: limit, queue }: HashLimits): HashSlots {
  let running = 0;
  let refused = 0;
  const waiting: Array<() => void> = [];
  let lastCollection = -Infinity;
  // The heap right after this storm's last forced collection; 0 once the queue has emptied, so the first
  // check of the next storm measures against the minimum, not against a figure of long ago.
  let heapAfterCollection = 0;
  let collections = 0;
  const collectDuringStorm = () => {
    if (waiting.length === 0) {
      heapAfterCollection = 0;
      return;
    }
    const now = performance.now();
    if (now - lastCollection < STORM_COLLECTION_INTERVAL_MS) return;
    if (heapSize() < Math.max(heapAfterCollection, STORM_COLLECTION_MIN_HEAP_BYTES) + STORM_COLLECTION_GROWTH_BYTES) return;
    lastCollection = now;
    Bun.gc(true);
    heapAfterCollection = heapSize();
    collections++;
  };
  return {
    async run(work) {
      if (running < limit) running++;
      else if (waiting.length < queue) await new Promise<void>((resolve) => waiting.push(resolve));
      else {
        refused++;
        throw new HashQueueFull();
      }
      try {
        return await work();
      } finally {
        collectDuringStorm();
        const next = waiting.shift();
        if (next) next(); // the slot passes straight to the next waiter
        else running--;
      }
    },
    inFlight: () => running,
    waiting: () => waiting.length,
    refused: () => refused,
    stormCollections: () => collections,
  };
}

export function isLegacyScryptHash(hash: string): boolean {
  return LEGACY_SCRYPT.test(hash);
}

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(input: { hash: string; password: string }): Promise<boolean>;
  readonly slots: HashSlots;
}

/**
 * Better Auth's `emailAndPassword.password` implementation, one per server with its own slots. A legacy
 * scrypt hash that verifies is replaced by an argon2id hash of the same password in `accounts`, so migrated
 * users keep their passwords and move to the stronger hash without noticing; when the queue is full at
 * that moment the sign-in still succeeds and the upgrade waits for the next one.
 */
export function createPasswordHasher(sql: Sql, logger: Logger, limits: HashLimits): PasswordHasher {
  const slots = createHashSlots(limits);
  const hash = (password: string) => slots.run(async () => (await loadArgon2()).hash(password, ARGON2ID));
  return {
    hash,
    slots,
    async verify({ hash: stored, password }) {
      if (stored.startsWith("$argon2")) {
        const { verify } = await loadArgon2();
        return slots.run(async () => {
          try {
            return await verify(stored, password);
          } catch {
            logger.warn("a stored argon2 password hash could not be read; the sign-in is refused");
            return false;
          }
        });
      }
      if (!isLegacyScryptHash(stored)) {
        logger.warn("a stored password hash has an unknown format; the sign-in is refused");
        return false;
      }
      if (!(await slots.run(() => verifyScrypt({ hash: stored, password })))) return false;
      let upgraded: string;
      try {
        upgraded = await hash(password);
      } catch (error) {
        if (!(error instanceof HashQueueFull)) throw error;
        logger.warn("a legacy scrypt password hash was not upgraded: the hash queue is full; it is upgraded at a later sign-in");
        return true;
      }
      await sql`
        update accounts set password = ${upgraded}, updated_at = now()
        where provider_id = 'credential' and password = ${stored}`;
      logger.info("upgraded a legacy scrypt password hash to argon2id");
      return true;
    },
  };
}
