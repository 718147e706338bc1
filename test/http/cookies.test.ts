// Session cookie attributes (ASVS 3.4.1 Secure, 3.4.2 HttpOnly, 3.4.3 SameSite) and the signed value
// that other services verify (docs/schema.md).
import { expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { createTestApp, signUp, TEST_SECRET } from "../helpers.ts";

test("over HTTPS the session cookie is __Secure- prefixed, Secure, HttpOnly and SameSite=Lax", async () => {
  const t = await createTestApp({ BETTER_AUTH_URL: "https://auth.example.test" });
  const { response } = await signUp(t);
  const cookie = response.headers.getSetCookie().find((c) => c.startsWith("__Secure-better-auth.session_token="));
  expect(cookie).toBeDefined();
  expect(cookie).toMatch(/;\s*Secure/i);
  expect(cookie).toMatch(/;\s*HttpOnly/i);
  expect(cookie).toMatch(/;\s*SameSite=Lax/i);
});

test("over plain HTTP (development) the session cookie is still HttpOnly and SameSite=Lax", async () => {
  const t = await createTestApp();
  const { response } = await signUp(t);
  const cookie = response.headers.getSetCookie().find((c) => c.startsWith("better-auth.session_token="));
  expect(cookie).toMatch(/;\s*HttpOnly/i);
  expect(cookie).toMatch(/;\s*SameSite=Lax/i);
  expect(cookie).not.toMatch(/;\s*Secure/i);
});

test("the cookie value is token.base64(HMAC-SHA256(secret, token)), URL-encoded, and the token is sessions.token", async () => {
  const t = await createTestApp();
  const { cookie } = await signUp(t);
  const value = decodeURIComponent(cookie.slice(cookie.indexOf("=") + 1));
  const dot = value.lastIndexOf(".");
  const token = value.slice(0, dot);
  expect(value.slice(dot + 1)).toBe(createHmac("sha256", TEST_SECRET).update(token).digest("base64"));
  const rows = await t.db.sql`select user_id from sessions where token = ${token}`;
  expect(rows.length).toBe(1);
});
