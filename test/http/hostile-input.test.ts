// Hostile input against the four endpoints that write: sign-up, sign-in, update-user and
// change-password. Whatever arrives (broken JSON, wrong types, oversized or NUL-laden fields, SQL
// metacharacters, bytes that are not UTF-8), the answer is a 4xx JSON error with a code or message,
// never a 5xx, and no row is written or changed (OWASP ASVS 5.1.3 / 5.1.4 input validation, 13.1.x).
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { MAX_BODY_BYTES } from "../../src/http/app.ts";
import { countIdentityRows, createTestApp, PASSWORD, SITE_ORIGIN, signUp, startTestServer, TEST_SECRET, uniqueEmail, expectError, ERROR_BODY } from "../helpers.ts";
import { createMailTestApp } from "../smtp.ts";

const t = await createTestApp();
const victim = await signUp(t, { name: "Victim", email: uniqueEmail("victim") });

const SIGN_UP = "/api/auth/sign-up/email";
const SIGN_IN = "/api/auth/sign-in/email";
const UPDATE_USER = "/api/auth/update-user";
const CHANGE_PASSWORD = "/api/auth/change-password";
const ENDPOINTS = [SIGN_UP, SIGN_IN, UPDATE_USER, CHANGE_PASSWORD] as const;
/** update-user and change-password act on the signed-in victim; the others are anonymous. */
const cookieFor = (path: string) => (path === UPDATE_USER || path === CHANGE_PASSWORD ? victim.cookie : undefined);

type RequestBody = NonNullable<RequestInit["body"]>;

const TEN_KB_EMAIL = `${"a".repeat(10 * 1024)}@example.test`;
const ONE_MB_PASSWORD = "p".repeat(1024 * 1024);
const SQL_TAUTOLOGY = "' OR 1=1 --";
const SQL_DROP = '"; drop table users; --';

/** Every row of the identity tables, to prove that nothing was written or changed. */
async function snapshot(): Promise<string> {
  const [users, accounts, sessions] = await Promise.all([
    t.db.sql`select * from users order by id`,
    t.db.sql`select * from accounts order by id`,
    t.db.sql`select * from sessions order by id`,
  ]);
  return JSON.stringify({ users, accounts, sessions });
}

function send(path: string, body: RequestBody, extraHeaders: Record<string, string> = {}): Promise<Response> {
  const cookie = cookieFor(path);
  return t.request(path, {
    method: "POST",
    headers: { "content-type": "application/json", ...(cookie ? { cookie } : {}), ...extraHeaders },
    body,
  });
}

/** A refused request: a 4xx, JSON with a code and a message, and no session cookie handed out. */
async function expectCleanRefusal(response: Response, status?: number): Promise<{ code: string; message: string }> {
  expect(response.status).toBeGreaterThanOrEqual(400);
  expect(response.status).toBeLessThan(500);
  if (status !== undefined) expect(response.status).toBe(status);
  expect(response.headers.get("content-type") ?? "").toContain("application/json");
  const body = (await response.json()) as { code: string; message: string };
  expect(body).toEqual(ERROR_BODY);
  const issued = response.headers.getSetCookie().filter((c) => c.includes("session_token=") && !/Max-Age=0/i.test(c));
  expect(issued).toEqual([]);
  return body;
}

function bytes(...parts: Array<string | number[]>): Uint8Array {
  const chunks = parts.map((part) => (typeof part === "string" ? new TextEncoder().encode(part) : new Uint8Array(part)));
  const out = new Uint8Array(chunks.reduce((size, chunk) => size + chunk.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

const malformedBodies: Array<[string, RequestBody]> = [
  ["invalid JSON", '{"email": "a@example.test", "password": '],
  ["a JSON string instead of an object", '"just a string"'],
  ["a JSON array instead of an object", "[1, 2, 3]"],
  ["JSON null", "null"],
  ["an empty body", ""],
  ["bare 0xff 0xfe bytes", bytes([0xff, 0xfe, 0x7b, 0x7d])],
];

/** Field values each endpoint must refuse, merged into an otherwise acceptable body. */
const fieldCases: Record<(typeof ENDPOINTS)[number], { base: () => Record<string, unknown>; bad: Array<Record<string, unknown>> }> = {
  [SIGN_UP]: {
    base: () => ({ name: "Eve", email: uniqueEmail("eve"), password: PASSWORD }),
    bad: [
      { email: 42 },
      { email: ["eve@example.test"] },
      { email: { address: "eve@example.test" } },
      { password: 12345678 },
      { password: [PASSWORD] },
      { password: { value: PASSWORD } },
      { name: 42 },
      { name: ["Eve"] },
      { name: { first: "Eve" } },
      { email: TEN_KB_EMAIL },
      { email: "eve\u0000@example.test" },
      { name: "Eve\u0000" },
      { email: SQL_TAUTOLOGY },
      { email: SQL_DROP },
    ],
  },
  [SIGN_IN]: {
    base: () => ({ email: victim.email, password: PASSWORD }),
    bad: [
      { email: 42 },
      { email: [victim.email] },
      { email: { address: victim.email } },
      { password: 12345678 },
      { password: [PASSWORD] },
      { password: { value: PASSWORD } },
      { email: TEN_KB_EMAIL },
      { email: `${victim.email}\u0000` },
      { password: `${PASSWORD}\u0000` },
      { email: SQL_TAUTOLOGY, password: SQL_TAUTOLOGY },
      { password: SQL_TAUTOLOGY },
      { email: SQL_DROP },
    ],
  },
  [UPDATE_USER]: {
    base: () => ({}),
    bad: [
      { name: 42 },
      { name: ["Eve"] },
      { name: { first: "Eve" } },
      { name: true },
      { name: null },
      { name: "Eve\u0000" },
      { image: 42 },
      { email: "someone-else@example.test" },
    ],
  },
  [CHANGE_PASSWORD]: {
    base: () => ({ currentPassword: PASSWORD, newPassword: "a perfectly fine passphrase" }),
    bad: [
      { currentPassword: 42 },
      { currentPassword: [PASSWORD] },
      { newPassword: 12345678 },
      { newPassword: { value: "a perfectly fine passphrase" } },
      { currentPassword: `${PASSWORD}\u0000` },
      { currentPassword: SQL_TAUTOLOGY },
      { currentPassword: SQL_DROP, newPassword: SQL_DROP },
      { revokeOtherSessions: "yes" },
    ],
  },
};

const show = (value: Record<string, unknown>) => JSON.stringify(value).replace(/a{40,}/g, (run) => `a×${run.length}`).slice(0, 70);

for (const path of ENDPOINTS) {
  describe(path, () => {
    for (const [label, body] of malformedBodies) {
      test(`${label} answers a 4xx JSON error and writes nothing`, async () => {
        const before = await snapshot();
        await expectCleanRefusal(await send(path, body));
        expect(await snapshot()).toBe(before);
      });
    }

    for (const override of fieldCases[path].bad) {
      test(`${show(override)} answers a 4xx JSON error and writes nothing`, async () => {
        const before = await snapshot();
        await expectCleanRefusal(await send(path, JSON.stringify({ ...fieldCases[path].base(), ...override })));
        expect(await snapshot()).toBe(before);
      });
    }

    test("a body over the limit, sent with its Content-Length, answers 413 PAYLOAD_TOO_LARGE and writes nothing", async () => {
      const before = await snapshot();
      const body = JSON.stringify({ ...fieldCases[path].base(), password: ONE_MB_PASSWORD, newPassword: ONE_MB_PASSWORD });
      const response = await send(path, body, { "content-length": String(Buffer.byteLength(body)) });
      expect((await expectCleanRefusal(response, 413)).code).toBe("PAYLOAD_TOO_LARGE");
      expect(await snapshot()).toBe(before);
    });
  });
}

describe("body size", () => {
  test("a 1 MB body without a Content-Length header (streamed) answers 413 in process too", async () => {
    const before = await snapshot();
    const body = JSON.stringify({ name: "Big", email: uniqueEmail("big"), password: ONE_MB_PASSWORD });
    expect(Buffer.byteLength(body)).toBeGreaterThan(MAX_BODY_BYTES);
    const response = await t.request(SIGN_UP, { method: "POST", headers: { "content-type": "application/json" }, body });
    expect(response.headers.get("content-length")).toBeNull();
    await expectCleanRefusal(response, 413);
    expect(await snapshot()).toBe(before);
  });

  test("a 1 MB password over a real socket answers 413, with a Content-Length or chunked, and writes nothing", async () => {
    const server = await startTestServer();
    const body = JSON.stringify({ name: "Big", email: uniqueEmail("socket-big"), password: ONE_MB_PASSWORD });
    const headers = { "content-type": "application/json", origin: SITE_ORIGIN };
    const sized = await fetch(`${server.url}${SIGN_UP}`, { method: "POST", headers, body });
    // Bun.serve refuses the body on the socket (maxRequestBodySize) before the app sees the request.
    expect(sized.status).toBe(413);
    const chunked = await fetch(`${server.url}${SIGN_UP}`, {
      method: "POST",
      headers,
      body: new ReadableStream({
        start(controller) {
          for (let offset = 0; offset < body.length; offset += 64 * 1024) controller.enqueue(new TextEncoder().encode(body.slice(offset, offset + 64 * 1024)));
          controller.close();
        },
      }),
      duplex: "half",
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(await countIdentityRows(server.db.sql)).toEqual({ users: 0, accounts: 0, sessions: 0 });
    // The server is still healthy afterwards.
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
  });

  test("a body just under the limit is read and judged on its content", async () => {
    // Padding in a field the API ignores, so that the verdict is about the password alone.
    const body = JSON.stringify({ padding: "n".repeat(MAX_BODY_BYTES - 200), name: "Near", email: uniqueEmail("near-limit"), password: "short" });
    expect(Buffer.byteLength(body)).toBeLessThan(MAX_BODY_BYTES);
    const response = await t.request(SIGN_UP, {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) },
      body,
    });
    expect((await expectCleanRefusal(response, 400)).code).toBe("PASSWORD_TOO_SHORT");
  });
});

describe("encoding and metacharacters", () => {
  test("bytes that are not UTF-8 inside an otherwise valid sign-up are refused with 400 and write nothing", async () => {
    const before = await snapshot();
    const body = bytes('{"name":"Bad', [0xff, 0xfe], `","email":"${uniqueEmail("latin1")}","password":"${PASSWORD}"}`);
    await expectCleanRefusal(await send(SIGN_UP, body), 400);
    expect(await snapshot()).toBe(before);
  });

  test("SQL metacharacters in a name are data: stored verbatim, and every table is still there", async () => {
    const name = `Robert'); drop table users; -- ${SQL_DROP} ${SQL_TAUTOLOGY}`;
    const { userId, cookie } = await signUp(t, { name });
    const [row] = await t.db.sql<{ name: string }[]>`select name from users where id = ${userId}`;
    expect(row!.name).toBe(name);
    const renamed = `${SQL_TAUTOLOGY}; delete from sessions; --`;
    const update = await t.request(UPDATE_USER, { method: "POST", headers: { cookie }, json: { name: renamed } });
    expect(update.status).toBe(200);
    const [after] = await t.db.sql<{ name: string }[]>`select name from users where id = ${userId}`;
    expect(after!.name).toBe(renamed);
    const tables = await t.db.sql<{ tablename: string }[]>`
      select tablename from pg_tables where schemaname = 'public' and tablename in ('users', 'sessions', 'accounts')`;
    expect(tables.length).toBe(3);
    expect((await countIdentityRows(t.db.sql)).sessions).toBeGreaterThan(0);
  });

  test("a form-encoded body goes through the same validation and writes nothing when invalid", async () => {
    const before = await snapshot();
    const response = await t.request(SIGN_UP, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `name=Eve&email=${encodeURIComponent(SQL_TAUTOLOGY)}&password=${encodeURIComponent(PASSWORD)}`,
    });
    await expectCleanRefusal(response, 400);
    expect(await snapshot()).toBe(before);
  });

  test("a body in a content type the API does not take answers 415 JSON and writes nothing", async () => {
    const before = await snapshot();
    const response = await t.request(SIGN_UP, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: JSON.stringify({ name: "Eve", email: uniqueEmail(), password: PASSWORD }),
    });
    await expectCleanRefusal(response, 415);
    expect(await snapshot()).toBe(before);
  });
});

describe("unknown routes", () => {
  for (const [method, path] of [
    ["GET", "/nope"],
    ["POST", "/nope"],
    ["GET", "/api"],
    ["GET", "/api/auth/no-such-endpoint"],
    ["POST", "/api/auth/no-such-endpoint"],
    ["GET", "/api/auth/sign-up/email"],
  ] as const) {
    test(`${method} ${path} answers 404 JSON {code: "NOT_FOUND"}`, async () => {
      const response = await t.request(path, { method, ...(method === "POST" ? { json: {} } : {}) });
      await expectError(response, 404, "NOT_FOUND");
    });
  }
});

// Input this server parses itself, not through Better Auth's body schemas: the signed session cookie
// (the fast path and the rotation keyring check its HMAC), the return addresses of mailed links, and
// the headers every request carries. Properties over generated values, with the shapes that once
// answered 500 (a signature of the right length in characters but not in bytes; `http://[`).
describe("crafted cookies, return addresses and headers (properties)", async () => {
  // Mail on, so every link endpoint exists; a rotation in progress, so the cookie keyring runs too.
  const mailed = await createMailTestApp({ BETTER_AUTH_SECRETS: `2:rotated-secret-Hq3ZmW8pL2vT6xK9nB4yR7jD1fG5sA0c,1:${TEST_SECRET}` });
  const member = await signUp(mailed);
  const sessionCookieName = member.cookie.slice(0, member.cookie.indexOf("="));
  const RUNS = 200;
  const SEED = 20261204;

  /** Percent-encodes every byte: any byte sequence, also one that is not UTF-8, as a cookie or query value. */
  const percentEncoded = (bytes: Uint8Array) => [...bytes].map((byte) => `%${byte.toString(16).padStart(2, "0").toUpperCase()}`).join("");
  const utf8 = (text: string) => new TextEncoder().encode(text);

  /** Never a 5xx; an error is JSON with a code and a message; a redirect goes somewhere that parses. */
  async function expectHandled(response: Response, label: unknown) {
    expect({ label, status: response.status < 500 }).toEqual({ label, status: true });
    if (response.status >= 300 && response.status < 400) {
      expect(URL.canParse(response.headers.get("location") ?? "", mailed.config.baseUrl)).toBe(true);
      return;
    }
    expect(response.headers.get("content-type") ?? "").toContain("application/json");
    const body: unknown = await response.json();
    if (response.status >= 400) expect(body).toEqual(ERROR_BODY);
  }

  // A signature of 44 characters ending in "=", as better-call requires, made of any characters.
  const signature = fc.string({ unit: "grapheme", minLength: 43, maxLength: 43 }).map((text) => `${text}=`);
  const tokenPart = fc.oneof(fc.constant(member.cookie.slice(sessionCookieName.length + 1).split(".")[0]!), fc.string({ maxLength: 40 }));
  const cookieValue = fc.oneof(
    fc.tuple(tokenPart, signature).map(([token, sig]) => percentEncoded(utf8(`${token}.${sig}`))),
    fc.tuple(tokenPart, signature).map(([token, sig]) => `${encodeURIComponent(token)}.${encodeURIComponent(sig)}`),
    fc.uint8Array({ maxLength: 80 }).map(percentEncoded),
    fc.constant(`abc.%C3%A9${"A".repeat(42)}%3D`),
  );

  test("a session cookie with any signature (multi-byte, not UTF-8, wrong length) answers get-session, token, list-sessions and sign-out without a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(cookieValue, fc.constantFrom(["GET", "/api/auth/get-session"], ["GET", "/api/auth/token"], ["GET", "/api/auth/list-sessions"], ["POST", "/api/auth/sign-out"]), async (value, [method, path]) => {
        const response = await mailed.request(path!, { method, headers: { cookie: `${sessionCookieName}=${value}` }, ...(method === "POST" ? { json: {} } : {}) });
        await expectHandled(response, { path, value });
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    expect((await (await mailed.request("/api/auth/get-session", { headers: { cookie: member.cookie } })).json()) as unknown).not.toBeNull();
  });

  const returnAddress = fc.oneof(
    fc.constantFrom("http://[", "http://%5B", "//[::1", "http://[::1", "https://a b", "http://:0", "http://%", "%E0%A4%A", "\\\\evil", "javascript:alert(1)"),
    fc.webUrl().map((url) => url.replace("//", "//[")),
    fc.string({ unit: "grapheme", maxLength: 30 }),
    fc.uint8Array({ maxLength: 30 }).map((bytes) => ({ raw: percentEncoded(bytes) })),
  );
  const linkEndpoint = fc.constantFrom("/api/auth/verify-email", "/api/auth/magic-link/verify", "/api/auth/reset-password/x", "/api/auth/delete-user/callback");

  test("a link opened with any callbackURL or errorCallbackURL (`http://[` and other non-URLs) answers a 4xx JSON or a redirect that parses, never a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(linkEndpoint, returnAddress, fc.constantFrom("callbackURL", "errorCallbackURL"), async (path, address, name) => {
        const value = typeof address === "string" ? encodeURIComponent(address) : address.raw;
        const response = await mailed.request(`${path}?token=x&${name}=${value}`, { redirect: "manual" });
        await expectHandled(response, { path, name, value });
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
  });

  test("any callbackURL in a body that mails a link (reset, verification, magic link, sign-in) answers without a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("/api/auth/request-password-reset", "/api/auth/send-verification-email", "/api/auth/sign-in/magic-link", "/api/auth/sign-in/email"),
        returnAddress,
        fc.constantFrom("callbackURL", "redirectTo", "errorCallbackURL", "newUserCallbackURL"),
        async (path, address, name) => {
          const value = typeof address === "string" ? address : decodeURIComponent(address.raw.replace(/%[89A-F][0-9A-F]/g, ""));
          const json = { email: member.email, password: "not the password", [name]: value };
          const response = await mailed.request(path, { method: "POST", json });
          await expectHandled(response, { path, name, value });
        },
      ),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
  });

  // Header values a client can send (a Headers object refuses CR, LF and NUL).
  const headerValue = fc.oneof(
    fc.string({ unit: "grapheme-ascii", maxLength: 60 }),
    fc.constantFrom("Bearer ", "Bearer %", "Bearer a.%C3", "Bearer .", "null", "http://[", "Basic =", `Bearer ${"x".repeat(4000)}`),
  );

  test("any Authorization, Origin, Cookie, X-Request-Id, X-Forwarded-For, Accept, Content-Type or User-Agent header on session endpoints answers without a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("authorization", "origin", "cookie", "x-request-id", "x-forwarded-for", "accept", "content-type", "user-agent"),
        headerValue,
        fc.constantFrom(["GET", "/api/auth/get-session"], ["GET", "/api/auth/token"], ["POST", "/api/auth/sign-out"], ["POST", "/api/auth/update-user"]),
        async (header, value, [method, path]) => {
          const response = await mailed.request(path!, { method, headers: { [header]: value }, ...(method === "POST" ? { json: { name: "x" } } : {}) });
          await expectHandled(response, { header, value, path });
        },
      ),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
  });
});
