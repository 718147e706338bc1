// Headers on every response (src/http/security-headers.ts): ASVS 14.4.3 nosniff, 14.4.6 Referrer-Policy,
// 8.2.1 Cache-Control: no-store on auth responses, whether the answer is a success, an error from
// Better Auth, one from the request guard, the fast path or an unknown route. Cookie attributes
// (ASVS 3.4.1-3.4.3) are proven in test/http/cookies.test.ts.
import { expect, test } from "bun:test";
import { MAX_BODY_BYTES } from "../../src/http/app.ts";
import { createTestApp, signUp } from "../helpers.ts";

test("every response carries nosniff and no-referrer; every /api/auth response is no-store", async () => {
  const t = await createTestApp();
  const { cookie, response: signedUp } = await signUp(t);
  const answers: Record<string, Response> = {
    "sign-up (200)": signedUp,
    "get-session, fast path": await t.request("/api/auth/get-session", { headers: { cookie } }),
    "get-session, Better Auth": await t.request("/api/auth/get-session?disableCookieCache=true", { headers: { cookie } }),
    "token, fast path": await t.request("/api/auth/token", { headers: { cookie } }),
    jwks: await t.request("/api/auth/jwks"),
    "sign-in 401": await t.request("/api/auth/sign-in/email", { method: "POST", json: { email: "x@example.test", password: "wrong password" } }),
    "guard 400": await t.request("/api/auth/sign-in/email", { method: "POST", json: { email: "a\u0000@example.test", password: "x" } }),
    "guard 413": await t.request("/api/auth/sign-up/email", { method: "POST", json: { name: "x".repeat(MAX_BODY_BYTES) } }),
    "unknown auth endpoint 404": await t.request("/api/auth/nothing-here"),
    "preflight": await t.request("/api/auth/sign-in/email", { method: "OPTIONS", headers: { "access-control-request-method": "POST" } }),
  };
  const outside: Record<string, Response> = {
    health: await t.request("/health"),
    "unknown route 404": await t.request("/nothing-here"),
  };
  for (const [label, response] of Object.entries({ ...answers, ...outside })) {
    expect([label, response.headers.get("x-content-type-options")]).toEqual([label, "nosniff"]);
    expect([label, response.headers.get("referrer-policy")]).toEqual([label, "no-referrer"]);
  }
  for (const [label, response] of Object.entries(answers)) {
    expect([label, response.headers.get("cache-control")]).toEqual([label, "no-store"]);
  }
});
