// The first check on every body sent to Better Auth: its size (also when streamed without a
// Content-Length), its encoding, and the type and bounds of the identity fields, before any handler,
// hash or query runs. Better Auth validates most fields itself; these are the gaps where a hostile
// body reached Postgres (NUL bytes, invalid UTF-8, unbounded emails) or a wrong type was stored.
// OWASP ASVS 5.1.3 / 5.1.4 (validate type and length of every input), 13.1.x (API input handling).
import { errorResponse } from "../errors.ts";

// Largest request body accepted; auth requests are a few hundred bytes. Bun.serve enforces the same
// bound on the socket (src/index.ts); this covers in-process use and chunked bodies.
export const MAX_BODY_BYTES = 64 * 1024;
// RFC 5321 4.5.3.1.1 and 4.5.3.1.3: a local part of at most 64 octets, a path of at most 256, so an
// address of at most 254 characters (RFC 3696 errata 1690).
export const EMAIL_MAX = 254;
export const EMAIL_LOCAL_PART_MAX = 64;
export const NAME_MAX = 255;
export const IMAGE_URL_MAX = 2048;
// Auth requests are flat objects; a deeply nested body (64 KB of "[") only costs stack and CPU.
export const MAX_JSON_DEPTH = 32;

type Fields = Record<string, unknown>;
type FieldRule = (value: unknown, field: string) => string | null;

const isJson = (contentType: string) => /^application\/(?:[\w.+-]+\+)?json\b/i.test(contentType);
const isForm = (contentType: string) => /^application\/x-www-form-urlencoded\b/i.test(contentType);

const emailRule: FieldRule = (value, field) => {
  if (typeof value !== "string") return `${field} must be a string`;
  if (value.length > EMAIL_MAX) return `${field} must be at most ${EMAIL_MAX} characters`;
  const at = value.lastIndexOf("@");
  if (at > EMAIL_LOCAL_PART_MAX) return `${field} must have at most ${EMAIL_LOCAL_PART_MAX} characters before the @`;
  return null;
};

const textRule =
  (max: number, nullable: boolean): FieldRule =>
  (value, field) => {
    if (value === null && nullable) return null;
    if (typeof value !== "string") return `${field} must be a string`;
    return value.length > max ? `${field} must be at most ${max} characters` : null;
  };

/** Fields with one meaning on every Better Auth endpoint that takes them. */
const FIELD_RULES: Record<string, FieldRule> = {
  email: emailRule,
  newEmail: emailRule,
  name: textRule(NAME_MAX, false),
  image: textRule(IMAGE_URL_MAX, true),
};

/** The first string inside `value` that holds a NUL character, as a field path, or null. */
function nulField(value: unknown, path: string): string | null {
  if (typeof value === "string") return value.includes("\u0000") ? path || "body" : null;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = nulField(value[i], `${path}[${i}]`);
      if (found) return found;
    }
  } else if (value && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      if (key.includes("\u0000")) return path ? `${path}.(key)` : "(key)";
      const found = nulField(item, path ? `${path}.${key}` : key);
      if (found) return found;
    }
  }
  return null;
}

/** Whether `value` nests arrays or objects more than `max` levels deep (iterative: no recursion to overflow). */
function nestedDeeperThan(value: unknown, max: number): boolean {
  const pending: [unknown, number][] = [[value, 0]];
  while (pending.length) {
    const [item, depth] = pending.pop()!;
    if (!item || typeof item !== "object") continue;
    if (depth >= max) return true;
    for (const child of Array.isArray(item) ? item : Object.values(item)) pending.push([child, depth + 1]);
  }
  return false;
}

/** The problem with a parsed body, or null: Postgres text holds no NUL, and known fields have a type. */
export function fieldProblem(body: unknown): string | null {
  if (nestedDeeperThan(body, MAX_JSON_DEPTH)) return `the body is nested more than ${MAX_JSON_DEPTH} levels deep`;
  const withNul = nulField(body, "");
  if (withNul) return `${withNul} must not contain NUL characters`;
  if (!body || typeof body !== "object" || Array.isArray(body)) return null; // Better Auth answers these
  for (const [field, rule] of Object.entries(FIELD_RULES)) {
    if (!Object.hasOwn(body, field)) continue;
    const problem = rule((body as Fields)[field], field);
    if (problem) return problem;
  }
  return null;
}

/** The body's bytes, or null once it grows past `limit` (the rest is not read). */
async function readBounded(body: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array | null> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * The request to hand to Better Auth (the same request, its body re-attached once read), or the
 * 4xx response that refuses it.
 */
export async function guardAuthRequest(request: Request): Promise<Request | Response> {
  if (!request.body) return request;
  const declared = Number(request.headers.get("content-length") ?? 0);
  if (declared > MAX_BODY_BYTES) return payloadTooLarge();
  const bytes = await readBounded(request.body, MAX_BODY_BYTES);
  if (!bytes) return payloadTooLarge();
  const forward = () => new Request(request.url, { method: request.method, headers: request.headers, body: bytes, signal: request.signal });
  if (bytes.byteLength === 0) return forward();

  const contentType = request.headers.get("content-type") ?? "";
  const json = isJson(contentType);
  if (!json && !isForm(contentType)) return forward(); // Better Auth answers 415 for what it does not take
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return errorResponse("INVALID_BODY", { message: "the request body is not valid UTF-8" });
  }
  let body: unknown;
  if (json) {
    try {
      body = JSON.parse(text); // a RangeError (nesting beyond the parser's stack) lands here too
    } catch {
      return errorResponse("INVALID_JSON");
    }
  } else {
    body = Object.fromEntries(new URLSearchParams(text));
  }
  const problem = fieldProblem(body);
  return problem ? errorResponse("VALIDATION_ERROR", { message: problem }) : forward();
}

export function payloadTooLarge(): Response {
  return errorResponse("PAYLOAD_TOO_LARGE", { message: `request bodies are limited to ${MAX_BODY_BYTES} bytes` });
}
