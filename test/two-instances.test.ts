// Two server processes on one database, as behind a load balancer: started together, they share
// sessions, the JWKS, the per-IP rate limits and the account lockout (all state lives in Postgres).
import { beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createLocalJWKSet, jwtVerify } from "jose";
import { cleanUpAfterFile, createTestDatabase, PASSWORD, sessionCookieOf, SITE_ORIGIN, spawnServer, uniqueEmail } from "./helpers.ts";

cleanUpAfterFile();
setDefaultTimeout(60_000);

// One public URL for both, as a load balancer gives them; TRUST_PROXY lets the test choose client IPs.
const SHARED = { BETTER_AUTH_URL: "http://localhost:3001", RATE_LIMIT: "on", TRUST_PROXY: "on", LOG_LEVEL: "error" };

let a: string;
let b: string;
beforeAll(async () => {
  const db = await createTestDatabase("two_instances");
  // Started at the same moment: migrations and the first signing key are taken in turns.
  const [first, second] = await Promise.all([spawnServer(["bun", "src/index.ts"], SHARED, db), spawnServer(["bun", "src/index.ts"], SHARED, db)]);
  a = first.url;
  b = second.url;
}, 60_000);

const post = (base: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}/api/auth${path}`, { method: "POST", headers: { "content-type": "application/json", origin: SITE_ORIGIN, ...headers }, body: JSON.stringify(body) });

describe("two instances on one database", () => {
  test("a session created on one is valid on the other, and both serve the same JWKS, which verifies JWTs from either", async () => {
    const email = uniqueEmail("two");
    const signedUp = await post(a, "/sign-up/email", { name: "Two", email, password: PASSWORD }, { "x-forwarded-for": "192.0.2.1" });
    expect(signedUp.status).toBe(200);
    const cookie = sessionCookieOf(signedUp);
    const session = (await (await fetch(`${b}/api/auth/get-session`, { headers: { cookie } })).json()) as { user: { email: string } } | null;
    expect(session?.user.email).toBe(email);

    const jwksA = await (await fetch(`${a}/api/auth/jwks`)).json();
    const jwksB = await (await fetch(`${b}/api/auth/jwks`)).json();
    expect(jwksB).toEqual(jwksA);
    expect((jwksA as { keys: unknown[] }).keys.length).toBe(1);
    const keys = createLocalJWKSet(jwksA as Parameters<typeof createLocalJWKSet>[0]);
    for (const base of [a, b]) {
      const { token } = (await (await fetch(`${base}/api/auth/token`, { headers: { cookie } })).json()) as { token: string };
      expect((await jwtVerify(token, keys, { issuer: SHARED.BETTER_AUTH_URL })).payload.email).toBe(email);
    }
  });

  test("the per-IP sign-in budget is shared: 5 attempts spread over both, the 6th is refused by either", async () => {
    const answers: number[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await post(i % 2 ? b : a, "/sign-in/email", { email: uniqueEmail(), password: "wrong password" }, { "x-forwarded-for": "192.0.2.50" });
      answers.push(response.status);
    }
    expect(answers).toEqual([401, 401, 401, 401, 401, 429]);
    expect((await post(a, "/sign-in/email", { email: uniqueEmail(), password: "wrong password" }, { "x-forwarded-for": "192.0.2.50" })).status).toBe(429);
  });

  test("the account lockout is shared: 10 failures spread over both instances and IPs lock the account on both", async () => {
    const email = uniqueEmail("lock");
    expect((await post(a, "/sign-up/email", { name: "Lock", email, password: PASSWORD }, { "x-forwarded-for": "192.0.2.2" })).status).toBe(200);
    for (let i = 0; i < 10; i++) {
      const response = await post(i % 2 ? b : a, "/sign-in/email", { email, password: `wrong ${i}` }, { "x-forwarded-for": `198.18.0.${i + 1}` });
      expect(response.status).toBe(401);
    }
    for (const base of [a, b]) {
      const response = await post(base, "/sign-in/email", { email, password: PASSWORD }, { "x-forwarded-for": "198.18.1.1" });
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ code: "INVALID_EMAIL_OR_PASSWORD", message: "Invalid email or password" });
    }
  });
});
