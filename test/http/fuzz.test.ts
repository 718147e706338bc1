// Property-based fuzzing of every public endpoint with fast-check (ASVS 5.1.3 / 5.1.4 input
// validation, 13.1.x API input handling, 7.4.1 generic errors): generated bodies, query strings,
// headers and cookies (wrong types, huge and deeply nested JSON, invalid UTF-8, NUL bytes, SQL and
// header-injection strings, prototype keys, oversized bodies). Invariants: never a 5xx, every error
// is JSON with exactly a code and a message, a refused request writes no identity row, a body over the
// limit answers 413, no prototype gains a property, every raw request gets an HTTP answer, and the
// server stays healthy. test/http/hostile-input.test.ts holds the hand-picked cases; this file searches.
//
// CI runs FUZZ_RUNS (default 2000) seeded cases in process and a few hundred raw-socket requests to
// a spawned server; set FUZZ_RUNS=50000 (and FUZZ_SEED) for a longer search.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import fc from "fast-check";
import { MAX_BODY_BYTES } from "../../src/http/app.ts";
import { createLogger } from "../../src/ops/log.ts";
import { cleanUpAfterFile, countIdentityRows, createTestApp, signUp, SITE_ORIGIN, spawnServer, type TestDatabase, expectError, ERROR_BODY } from "../helpers.ts";

cleanUpAfterFile();
setDefaultTimeout(10 * 60_000);

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const SEED = Number(process.env.FUZZ_SEED ?? 20240611);
const RAW_RUNS = Math.max(50, Math.round(RUNS / 8));

/** Every route a client can reach without an admin role, with the method it takes. */
const ENDPOINTS: [method: string, path: string][] = [
  ["POST", "/api/auth/sign-up/email"],
  ["POST", "/api/auth/sign-in/email"],
  ["POST", "/api/auth/sign-out"],
  ["POST", "/api/auth/request-password-reset"],
  ["POST", "/api/auth/reset-password"],
  ["POST", "/api/auth/send-verification-email"],
  ["GET", "/api/auth/verify-email"],
  ["POST", "/api/auth/change-password"],
  ["POST", "/api/auth/change-email"],
  ["POST", "/api/auth/update-user"],
  ["POST", "/api/auth/revoke-session"],
  ["POST", "/api/auth/revoke-sessions"],
  ["POST", "/api/auth/revoke-other-sessions"],
  ["POST", "/api/auth/delete-user"],
  ["GET", "/api/auth/get-session"],
  ["GET", "/api/auth/list-sessions"],
  ["GET", "/api/auth/token"],
  ["GET", "/api/auth/jwks"],
  ["GET", "/api/auth/ok"],
  ["GET", "/health"],
  ["POST", "/api/auth/no-such-endpoint"],
  ["GET", "/no-such-route"],
];

const INJECTIONS = [
  "' or 1=1 --",
  "'); drop table users; --",
  "\" or \"\"=\"",
  "1; select pg_sleep(5)",
  "$1",
  "\\x00",
  "\u0000",
  "a\u0000b",
  "\r\nSet-Cookie: injected=1",
  "%0d%0aSet-Cookie:%20injected=1",
  "<script>alert(1)</script>",
  "../../../../etc/passwd",
  "${jndi:ldap://x}",
  "__proto__",
  "constructor",
  "\uFFFF\uFFFE",
  "\uD800",
  "😀".repeat(50),
  // Return addresses that are not URLs (a callbackURL of these answered 500).
  "http://[",
  "http://%5B",
  "//[::1",
];

const hostileString = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.constantFrom(...INJECTIONS),
  fc.string({ minLength: 300, maxLength: 5000 }),
  fc.emailAddress(),
  fc.tuple(fc.emailAddress(), fc.constantFrom(...INJECTIONS)).map(([email, bad]) => email + bad),
);

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: hostileString },
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(hostileString, { maxLength: 5 }),
  fc.dictionary(fc.constantFrom("__proto__", "constructor", "email", "a"), hostileString, { maxKeys: 3 }),
);

const FIELDS = ["email", "password", "name", "newPassword", "currentPassword", "token", "newEmail", "image", "callbackURL", "rememberMe", "experienceLevel", "professionalRole", "roleOther", "organization", "revokeOtherSessions"];

/** A JSON object shaped like a real request, with hostile values. */
const shapedBody = fc.dictionary(fc.constantFrom(...FIELDS, "__proto__", "constructor", "extra"), hostileValue, { maxKeys: 6 }).map((body) => JSON.stringify(body));

const deepJson = fc.integer({ min: 100, max: 20_000 }).map((depth) => "[".repeat(depth) + "]".repeat(depth));
const deepObject = fc.integer({ min: 100, max: 5_000 }).map((depth) => '{"a":'.repeat(depth) + "1" + "}".repeat(depth));
const oversized = fc.integer({ min: MAX_BODY_BYTES + 1, max: MAX_BODY_BYTES * 4 }).map((size) => JSON.stringify({ email: "a@example.test", password: "x".repeat(size) }));

type Body = string | Uint8Array | undefined;
const body: fc.Arbitrary<Body> = fc.oneof(
  { weight: 6, arbitrary: shapedBody },
  { weight: 2, arbitrary: fc.jsonValue().map((value) => JSON.stringify(value)) },
  fc.string(),
  deepJson,
  deepObject,
  oversized,
  fc.uint8Array({ maxLength: 200 }), // mostly invalid UTF-8
  fc.tuple(shapedBody, fc.uint8Array({ minLength: 1, maxLength: 4 })).map(([json, bytes]) => {
    const text = new TextEncoder().encode(json);
    const out = new Uint8Array(text.length + bytes.length);
    out.set(text.subarray(0, Math.max(1, text.length - 2)));
    out.set(bytes.map((b) => b | 0x80), Math.max(1, text.length - 2));
    out.set(text.subarray(Math.max(1, text.length - 2)), Math.max(1, text.length - 2) + bytes.length);
    return out;
  }),
  fc.constant(undefined),
);

const contentType = fc.constantFrom("application/json", "application/json; charset=utf-8", "application/x-www-form-urlencoded", "text/plain", "application/xml", "multipart/form-data; boundary=x", "application/vnd.api+json", "", "json");
const queryString = fc.oneof(
  fc.constant(""),
  fc.dictionary(fc.constantFrom("token", "callbackURL", "disableCookieCache", "disableRefresh", "a"), hostileString, { maxKeys: 3 }).map((query) => `?${new URLSearchParams(query as Record<string, string>)}`),
  fc.string({ maxLength: 60 }).map((raw) => `?${encodeURI(raw.replace(/[\uD800-\uDFFF]/g, ""))}`),
);

interface FuzzRequest {
  endpoint: [string, string];
  query: string;
  contentType: string;
  body: Body;
  cookie: "valid" | "none" | string;
  origin: string | null;
  authorization: string | null;
}

/**
 * A session cookie of the signed shape better-call checks (`value.` + 44 characters ending in "="), its
 * characters anything, percent-encoded byte by byte: multi-byte signatures once answered 500.
 */
const signedShapeCookie = fc
  .tuple(fc.string({ maxLength: 40 }), fc.string({ unit: "grapheme", minLength: 43, maxLength: 43 }))
  .map(([token, signature]) => [...new TextEncoder().encode(`${token}.${signature}=`)].map((byte) => `%${byte.toString(16).padStart(2, "0")}`).join(""))
  .map((value) => `better-auth.session_token=${value}`);

const request: fc.Arbitrary<FuzzRequest> = fc.record({
  endpoint: fc.constantFrom(...ENDPOINTS),
  query: queryString,
  contentType,
  body,
  cookie: fc.oneof(fc.constantFrom("valid", "none"), hostileString.map((value) => `better-auth.session_token=${value}`), signedShapeCookie, hostileString),
  origin: fc.oneof(fc.constant(SITE_ORIGIN), fc.constant(null), fc.constantFrom("null", "http://evil.example", "http://localhost:3000.evil.example")),
  authorization: fc.oneof(fc.constant(null), hostileString.map((value) => `Bearer ${value}`)),
});

/** Headers as a client can send them; values a Headers object refuses are left out (raw-socket test sends those). */
function headersOf(r: FuzzRequest, validCookie: string): Headers {
  const headers = new Headers();
  const set = (name: string, value: string | null) => {
    if (value === null) return;
    try {
      headers.set(name, value);
    } catch {
      // not a legal header value for fetch; the raw-socket test covers it
    }
  };
  set("content-type", r.contentType || null);
  set("origin", r.origin);
  set("authorization", r.authorization);
  set("cookie", r.cookie === "valid" ? validCookie : r.cookie === "none" ? null : r.cookie);
  return headers;
}

const verificationCount = async (sql: TestDatabase["sql"]) =>
  Number((await sql<{ count: number }[]>`select count(*)::int as count from verifications`)[0]!.count);

describe(`fuzzing every public endpoint (${RUNS} cases, seed ${SEED})`, () => {
  test("never a 5xx, every error is JSON, refused requests write nothing, every error body is exactly {code, message}, oversized bodies answer 413, no prototype is polluted, and the server stays healthy", async () => {
    const serverErrors: string[] = [];
    const t = await createTestApp({}, createLogger("error", (line) => void serverErrors.push(line)));
    const { cookie: validCookie } = await signUp(t);
    const statuses = new Map<number, number>();
    // Bodies carry "__proto__" and "constructor" keys with objects under them (keys such as "email").
    const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).sort();

    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const [method, path] = r.endpoint;
        const before = { ...(await countIdentityRows(t.db.sql)), verifications: await verificationCount(t.db.sql) };
        const response = await t.app.handle(
          new Request(`${t.config.baseUrl}${path}${r.query}`, {
            method,
            headers: headersOf(r, validCookie),
            body: method === "GET" ? undefined : r.body,
          }),
        );
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        const text = await response.text();
        if (response.status >= 500) throw new Error(`${method} ${path} answered ${response.status}: ${text.slice(0, 300)}\n${serverErrors.slice(-3).join("\n")}`);
        if (response.status >= 400) {
          expect(response.headers.get("content-type") ?? "").toStartWith("application/json");
          expect(JSON.parse(text)).toEqual(ERROR_BODY);
          const after = { ...(await countIdentityRows(t.db.sql)), verifications: await verificationCount(t.db.sql) };
          // A refused sign-out may still have ended a session (sign-out clears what it can); nothing else removes rows.
          expect(after.users).toBe(before.users);
          expect(after.accounts).toBe(before.accounts);
          expect(after.sessions).toBeLessThanOrEqual(before.sessions);
          expect(after.verifications).toBeLessThanOrEqual(before.verifications);
        }
        const size = typeof r.body === "string" ? Buffer.byteLength(r.body) : r.body?.byteLength ?? 0;
        if (method !== "GET" && size > MAX_BODY_BYTES && path.startsWith("/api/auth/")) expect(response.status).toBe(413);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );

    console.log(`fuzz statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)))}`);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(prototypeKeys);
    expect((await t.request("/health")).status).toBe(200);
    // Still serving real work: a new user signs up and reads their session.
    const { cookie } = await signUp(t);
    const session = (await (await t.request("/api/auth/get-session", { headers: { cookie } })).json()) as { user?: unknown } | null;
    expect(session?.user).toBeDefined();
  });

  test(`raw HTTP to a spawned server (${RAW_RUNS} cases): illegal header bytes, CRLF injection, bad request lines; always an answer, never a 5xx, never a crash`, async () => {
    const { child, port } = await spawnServer(["bun", "src/index.ts"], { RATE_LIMIT: "off", LOG_LEVEL: "error" });
    const rawByte = fc.integer({ min: 0, max: 255 });
    const headerValue = fc.oneof(
      fc.constantFrom("\r\nSet-Cookie: injected=1", "\nX-Injected: 1", "a\u0000b", "\u00ff\u00fe", "\r\r\n"),
      fc.array(rawByte, { maxLength: 40 }).map((bytes) => String.fromCharCode(...bytes)),
    );
    const rawRequest = fc.record({
      endpoint: fc.constantFrom(...ENDPOINTS),
      pathSuffix: fc.oneof(fc.constant(""), fc.constantFrom("%00", "%", "/..%2f..", "?a=%zz", "#frag", "%20HTTP/1.0")),
      headerName: fc.constantFrom("Cookie", "Origin", "Content-Type", "X-Forwarded-For", "Authorization", "User-Agent", "X-\u00ff"),
      headerValue,
      body: fc.oneof(shapedBody, fc.array(rawByte, { maxLength: 200 }).map((bytes) => String.fromCharCode(...bytes))),
    });

    await fc.assert(
      fc.asyncProperty(rawRequest, async (r) => {
        const [method, path] = r.endpoint;
        const payload = Buffer.from(r.body, "latin1");
        const head =
          `${method} ${path}${r.pathSuffix} HTTP/1.1\r\nHost: localhost:${port}\r\nOrigin: ${SITE_ORIGIN}\r\n` +
          `${r.headerName}: ${r.headerValue}\r\nContent-Type: application/json\r\nContent-Length: ${payload.length}\r\nConnection: close\r\n\r\n`;
        const answer = await rawExchange(port, Buffer.concat([Buffer.from(head, "latin1"), payload]));
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? 0);
        // Every request, however malformed, gets an HTTP answer (a 4xx for what the server refuses), never a 5xx.
        if (status === 0 || status >= 500) throw new Error(`raw ${method} ${path}${r.pathSuffix} (${r.headerName}: ${JSON.stringify(r.headerValue)}) answered ${status || "nothing"}: ${JSON.stringify(answer.slice(0, 300))}`);
        expect(answer).not.toMatch(/\r\nSet-Cookie: injected=1/i);
        expect(answer).not.toMatch(/\r\nX-Injected: 1/i);
      }),
      { numRuns: RAW_RUNS, seed: SEED, endOnFailure: true },
    );

    expect(child.process.exitCode).toBeNull();
    expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
  });
});

describe("cases the fuzzer found, kept as regressions", () => {
  test("a body nested 20 000 levels deep answers 400 (it overflowed the guard's recursion: a 500)", async () => {
    const t = await createTestApp();
    for (const body of ["[".repeat(20_000) + "]".repeat(20_000), '{"a":'.repeat(5_000) + "1" + "}".repeat(5_000)]) {
      const response = await t.request("/api/auth/sign-in/email", { method: "POST", headers: { "content-type": "application/json" }, body });
      await expectError(response, 400, "VALIDATION_ERROR");
    }
  });

  test("a disabled endpoint (delete-user, with account deletion off in EMAIL_FLOWS) answers a JSON 404, not Better Auth's empty one", async () => {
    const t = await createTestApp({ EMAIL_FLOWS: "verification" });
    const { cookie } = await signUp(t);
    const response = await t.request("/api/auth/delete-user", { method: "POST", headers: { cookie }, json: {} });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ code: "NOT_FOUND", message: "no such route" });
  });
});

/** Sends `bytes` on a new connection and returns everything the server answered before closing. */
async function rawExchange(port: number, bytes: Uint8Array): Promise<string> {
  let received = "";
  const { promise: closed, resolve } = Promise.withResolvers<void>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: { data: (_socket, chunk) => void (received += Buffer.from(chunk).toString("latin1")), close: () => resolve(), error: () => resolve() },
  });
  socket.write(bytes);
  const timer = setTimeout(() => socket.end(), 5000);
  await closed;
  clearTimeout(timer);
  return received;
}
