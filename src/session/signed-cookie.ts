// Better Auth's signed cookie values, as better-call writes and reads them: `value "." base64(HMAC-SHA256(
// secret, value))`, a 44-character signature ending in "=", and the session cookie cache's signature.
// One check for every place this server verifies one (the session fast path, the cookie cache filter,
// the secret-rotation keyring), safe on any input a client sends.
import { createHmac, timingSafeEqual } from "node:crypto";

const SIGNATURE_LENGTH = 44; // base64 of a SHA-256 HMAC

/** The base64 HMAC-SHA256 signature `secret` gives `value`. */
export function cookieSignature(secret: string, value: string): string {
  return createHmac("sha256", secret).update(value).digest("base64");
}

/** The value and signature of a decoded signed cookie value, or null when it has not that shape (as better-call). */
export function splitSignedValue(signed: string): { value: string; signature: string } | null {
  const dot = signed.lastIndexOf(".");
  if (dot < 1) return null;
  const signature = signed.slice(dot + 1);
  if (signature.length !== SIGNATURE_LENGTH || !signature.endsWith("=")) return null;
  return { value: signed.slice(0, dot), signature };
}

/**
 * Whether `secret` signed `value` with `signature`, in constant time (ASVS 6.2.x). Compares bytes,
 * not characters: a signature of the right length in characters but not in bytes (multi-byte
 * characters) is simply false.
 */
export function isSignedBy(secret: string, value: string, signature: string): boolean {
  return sameBytes(cookieSignature(secret, value), signature);
}

/**
 * The signature of a session_data cookie ("compact" strategy, as Better Auth 1.7 writes it in
 * cookies/index.mjs setCookieCache): unpadded base64url HMAC-SHA256 of its JSON text under the secret.
 */
export function cacheCookieSignature(secret: string, text: string): string {
  return createHmac("sha256", secret).update(text).digest("base64url");
}

/** Whether `secret` gave the session_data JSON `text` this `signature`, in constant time. */
export function isCacheCookieSignedBy(secret: string, text: string, signature: string): boolean {
  return sameBytes(cacheCookieSignature(secret, text), signature);
}

function sameBytes(expected: string, given: string): boolean {
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}
