// A session cookie resolved to its user with plain SQL, the way another service reading the shared
// tables does it: the cookie holds encodeURIComponent(token + "." + base64(HMAC-SHA256(secret, token))),
// split at the last dot, the HMAC checked in constant time, then one query on sessions and users.
import { describe, expect, test } from "bun:test";
import { createHmac, timingSafeEqual } from "node:crypto";
import type { Sql } from "../../src/db/pool.ts";
import { createTestApp, listedHandle, PASSWORD, sessionCookieOf, signUp, TEST_SECRET, uniqueEmail, type TestApp } from "../helpers.ts";

const t = await createTestApp();
const SESSION_COOKIE_NAMES = ["__Secure-better-auth.session_token", "better-auth.session_token"];

type UserRow = { id: string; email: string; name: string; experience_level: string | null; professional_role: string | null };

/** The signed cookie value for a token, as the auth server sets it. */
function signedCookieValue(token: string, secret = TEST_SECRET): string {
  return encodeURIComponent(`${token}.${createHmac("sha256", secret).update(token).digest("base64")}`);
}

/** The unsigned session token of a Cookie header, or null when the cookie is missing or its signature is wrong. */
function verifiedSessionToken(cookieHeader: string, secret: string): string | null {
  const pairs = cookieHeader.split(";").map((part) => part.trim().split(/=(.*)/s) as [string, string | undefined]);
  const raw = SESSION_COOKIE_NAMES.map((name) => pairs.find(([key]) => key === name)?.[1]).find((value) => value !== undefined);
  if (!raw) return null;
  let value: string;
  try {
    value = decodeURIComponent(raw);
  } catch {
    return null;
  }
  const dot = value.lastIndexOf(".");
  if (dot < 1) return null;
  const token = value.slice(0, dot);
  const given = Buffer.from(value.slice(dot + 1), "base64");
  const expected = createHmac("sha256", secret).update(token).digest();
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return null;
  return token;
}

/** The user behind a Cookie header, or null: what the Python reader does. */
async function userForCookie(sql: Sql, cookieHeader: string, secret = TEST_SECRET): Promise<UserRow | null> {
  const token = verifiedSessionToken(cookieHeader, secret);
  if (!token) return null;
  const [user] = await sql<UserRow[]>`
    select u.* from sessions s join users u on u.id = s.user_id
    where s.token = ${token} and s.expires_at > now()`;
  return user ?? null;
}

describe("a valid cookie", () => {
  test("resolves to its user, with the snake_case profile columns", async () => {
    const { cookie, userId, email } = await signUp(t, { experienceLevel: "beginner", professionalRole: "student" });
    const user = await userForCookie(t.db.sql, cookie);
    expect(user).toMatchObject({ id: userId, email, experience_level: "beginner", professional_role: "student" });
  });

  test("resolves to the same user that get-session answers for it", async () => {
    const { cookie } = await signUp(t);
    const session = (await (await t.request("/api/auth/get-session", { headers: { cookie } })).json()) as { user: { id: string } };
    expect((await userForCookie(t.db.sql, cookie))!.id).toBe(session.user.id);
  });

  test("is found among the browser's other cookies", async () => {
    const { cookie, userId } = await signUp(t);
    expect((await userForCookie(t.db.sql, `theme=dark; ${cookie}; _ga=GA1.2.3`))!.id).toBe(userId);
  });

  test("over HTTPS the __Secure- prefixed cookie resolves the same way", async () => {
    const secure = await createTestApp({ BETTER_AUTH_URL: "https://auth.example.test" });
    const { cookie, userId } = await signUp(secure);
    expect(cookie).toStartWith("__Secure-better-auth.session_token=");
    expect((await userForCookie(secure.db.sql, cookie))!.id).toBe(userId);
  });

  test("a token containing dots is split at the last dot, by the server and by the reader alike", async () => {
    const { userId } = await signUp(t);
    const token = `dotted.token.${crypto.randomUUID()}`;
    await t.db.sql`insert into sessions (user_id, token, expires_at) values (${userId}, ${token}, now() + interval '1 hour')`;
    const cookie = `better-auth.session_token=${signedCookieValue(token)}`;
    expect((await userForCookie(t.db.sql, cookie))!.id).toBe(userId);
    const session = (await (await t.request("/api/auth/get-session", { headers: { cookie } })).json()) as { user: { id: string } };
    expect(session.user.id).toBe(userId);
  });
});

describe("a cookie that must not resolve", () => {
  test("a tampered signature is rejected before any lookup", async () => {
    const { cookie, token } = await signUp(t);
    const [name] = cookie.split("=");
    const signature = Buffer.from(decodeURIComponent(cookie.slice(cookie.indexOf("=") + 1)).split(".").at(-1)!, "base64");
    signature[0] = signature[0]! ^ 0x01;
    const tampered = `${name}=${encodeURIComponent(`${token}.${signature.toString("base64")}`)}`;
    expect(verifiedSessionToken(tampered, TEST_SECRET)).toBeNull();
    expect(await userForCookie(t.db.sql, tampered)).toBeNull();
  });

  test("a cookie signed with another secret is rejected", async () => {
    const { token } = await signUp(t);
    const forged = `better-auth.session_token=${signedCookieValue(token, "an-attacker-guess-of-the-secret-0123456789")}`;
    expect(await userForCookie(t.db.sql, forged)).toBeNull();
  });

  test("another user's signature on this token, an unsigned token and a bare signature are all rejected", async () => {
    const alice = await signUp(t);
    const bob = await signUp(t);
    const bobSignature = decodeURIComponent(bob.cookie.slice(bob.cookie.indexOf("=") + 1)).split(".").at(-1)!;
    for (const value of [`${alice.token}.${bobSignature}`, alice.token, `.${bobSignature}`, ""]) {
      expect(await userForCookie(t.db.sql, `better-auth.session_token=${encodeURIComponent(value)}`)).toBeNull();
    }
  });

  test("after sign-out no row is found", async () => {
    const { cookie, userId } = await signUp(t);
    expect((await userForCookie(t.db.sql, cookie))!.id).toBe(userId);
    const response = await t.request("/api/auth/sign-out", { method: "POST", headers: { cookie } });
    expect(response.status).toBe(200);
    expect(await userForCookie(t.db.sql, cookie)).toBeNull();
  });

  test("an expired session finds no row, even though its signature is valid", async () => {
    const { cookie, token } = await signUp(t);
    await t.db.sql`update sessions set expires_at = now() - interval '1 second' where token = ${token}`;
    expect(verifiedSessionToken(cookie, TEST_SECRET)).toBe(token);
    expect(await userForCookie(t.db.sql, cookie)).toBeNull();
  });

  test("a session revoked from another device finds no row at once", async () => {
    const laptop = await signUp(t);
    const phoneResponse = await t.request("/api/auth/sign-in/email", { method: "POST", json: { email: laptop.email, password: PASSWORD } });
    const phone = sessionCookieOf(phoneResponse);
    const phoneToken = ((await phoneResponse.json()) as { token: string }).token;
    expect((await userForCookie(t.db.sql, phone))!.id).toBe(laptop.userId);
    const revoke = await t.request("/api/auth/revoke-session", { method: "POST", headers: { cookie: laptop.cookie }, json: { token: await listedHandle(t, laptop.cookie, phoneToken) } });
    expect(revoke.status).toBe(200);
    expect(await userForCookie(t.db.sql, phone)).toBeNull();
    expect((await userForCookie(t.db.sql, laptop.cookie))!.id).toBe(laptop.userId);
  });

  test("a deleted user's cookie finds no row (sessions cascade)", async () => {
    const { cookie, userId } = await signUp(t, { email: uniqueEmail("deleted") });
    await t.db.sql`delete from users where id = ${userId}`;
    expect(await userForCookie(t.db.sql, cookie)).toBeNull();
  });
});
