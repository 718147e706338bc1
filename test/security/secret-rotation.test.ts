// Secret and key rotation, ASVS 6.4.1 / 6.4.2: BETTER_AUTH_SECRETS rotates the secret without signing
// anyone out or losing the encrypted JWT private keys (src/security/secrets.ts, src/security/keyring.ts), and
// `bun run keys:rotate` adds a signing key while tokens signed before it still verify (src/security/signing-keys.ts).
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHmac } from "node:crypto";
import { parseEnvelope } from "better-auth/crypto";
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from "jose";
import { ensureSigningKey, SigningKeyError } from "../../src/auth/better-auth.ts";
import { rotateSigningKey } from "../../src/security/signing-keys.ts";
import { cleanUpAfterFile, createSecondInstance, createTestApp, PASSWORD, sessionCookieOf, signUp, spawnProject, TEST_SECRET, type TestApp, signIn } from "../helpers.ts";

cleanUpAfterFile();
// Each test hashes passwords a dozen times or more; a loaded machine needs more than the default 5 s.
setDefaultTimeout(30_000);

const SECRET_B = "second-secret-Xq8LmV2pR7tZ4wK9nB3yH6jD1fG5sA0c";
const SECRET_C = "third-secret-Pz5KrT8vN2mQ7xW4bJ9hL3gF6dS1aY0e";

type Instance = Pick<TestApp, "request" | "auth" | "config">;

const sessionOf = async (instance: Instance, cookie: string, query = "") =>
  (await (await instance.request(`/api/auth/get-session${query}`, { headers: { cookie } })).json()) as { user: { id: string } } | null;

/** A JWT for the session; a query string sends the request past the fast path to Better Auth. */
async function tokenOf(instance: Instance, cookie: string, query = ""): Promise<string> {
  const response = await instance.request(`/api/auth/token${query}`, { headers: { cookie } });
  expect(response.status).toBe(200);
  return ((await response.json()) as { token: string }).token;
}

async function verifies(instance: Instance, jwt: string): Promise<boolean> {
  const jwks = (await (await instance.request("/api/auth/jwks")).json()) as Parameters<typeof createLocalJWKSet>[0];
  return jwtVerify(jwt, createLocalJWKSet(jwks)).then(
    () => true,
    () => false,
  );
}

/** The session token a cookie carries, and whether `secret` signed it. */
function signedWith(cookie: string, secret: string): boolean {
  const value = decodeURIComponent(cookie.slice(cookie.indexOf("=") + 1));
  const dot = value.lastIndexOf(".");
  return createHmac("sha256", secret).update(value.slice(0, dot)).digest("base64") === value.slice(dot + 1);
}

describe("BETTER_AUTH_SECRETS rotation (ASVS 6.4.1)", () => {
  test("old cookies and old JWT keys keep working after each rotation, while new cookies and keys use the new secret", async () => {
    // Before: one secret (BETTER_AUTH_SECRET), a user, a cookie, a signing key encrypted with it.
    const before = await createTestApp();
    const { email, userId, cookie: cookieA } = await signUp(before);
    expect(signedWith(cookieA, TEST_SECRET)).toBe(true);
    const jwtA = await tokenOf(before, cookieA);

    // First rotation: version 2 is current; BETTER_AUTH_SECRET stays as the pre-rotation secret.
    const second = await createSecondInstance(before, { BETTER_AUTH_SECRETS: `2:${SECRET_B}` });
    expect((await sessionOf(second, cookieA))?.user.id).toBe(userId);
    expect((await sessionOf(second, cookieA, "?disableCookieCache=true"))?.user.id).toBe(userId); // Better Auth's own path
    expect(await verifies(second, await tokenOf(second, cookieA))).toBe(true); // the old key still signs
    expect(await verifies(second, jwtA)).toBe(true);
    const { cookie: cookieB } = await signIn(second, email);
    expect(signedWith(cookieB, SECRET_B)).toBe(true);
    expect(signedWith(cookieB, TEST_SECRET)).toBe(false);

    // A key made now is encrypted under version 2.
    const { kid } = await rotateSigningKey(second.auth, before.db.sql, second.config);
    const [row] = await before.db.sql<{ private_key: string }[]>`select private_key from jwks where id = ${kid}`;
    expect(parseEnvelope(JSON.parse(row!.private_key))?.version).toBe(2);
    const jwtB = await tokenOf(second, cookieB, "?after-rotation=1");
    expect(decodeProtectedHeader(jwtB).kid).toBe(kid);

    // Second rotation: version 3 current, 2 kept; both earlier cookies and both JWTs still good.
    const third = await createSecondInstance(before, { BETTER_AUTH_SECRETS: `3:${SECRET_C},2:${SECRET_B}` });
    expect((await sessionOf(third, cookieA))?.user.id).toBe(userId);
    expect((await sessionOf(third, cookieB))?.user.id).toBe(userId);
    expect(await verifies(third, jwtA)).toBe(true);
    expect(await verifies(third, jwtB)).toBe(true);
    expect(await verifies(third, await tokenOf(third, cookieB))).toBe(true); // key v2 decrypts
    expect(signedWith((await signIn(third, email)).cookie, SECRET_C)).toBe(true);
  });

  test("a cookie signed by a secret outside the keyring is refused, re-signed or not", async () => {
    const t = await createTestApp({ BETTER_AUTH_SECRETS: `2:${SECRET_B}` });
    const { cookie } = await signUp(t);
    const value = decodeURIComponent(cookie.slice(cookie.indexOf("=") + 1));
    const token = value.slice(0, value.lastIndexOf("."));
    const forged = `${cookie.slice(0, cookie.indexOf("="))}=${encodeURIComponent(`${token}.${createHmac("sha256", SECRET_C).update(token).digest("base64")}`)}`;
    expect(await sessionOf(t, forged)).toBeNull();
    expect(await sessionOf(t, forged, "?disableCookieCache=true")).toBeNull();
    expect((await sessionOf(t, cookie))).not.toBeNull();
  });

  test("dropping the secret that encrypted the newest signing key too early stops start-up with a clear error", async () => {
    const t = await createTestApp({ BETTER_AUTH_SECRETS: `2:${SECRET_B}` });
    const dropped = await createSecondInstance(t, { BETTER_AUTH_SECRETS: `3:${SECRET_C}`, BETTER_AUTH_SECRET: undefined }).catch((error) => error);
    expect(dropped).toBeInstanceOf(SigningKeyError);
  });
});

describe("bun run keys:rotate", () => {
  test("adds a signing key; the old one stops signing but stays in the JWKS, so tokens signed before still verify", async () => {
    const t = await createTestApp();
    const { cookie } = await signUp(t);
    const before = await tokenOf(t, cookie);
    const oldKid = decodeProtectedHeader(before).kid;

    const run = spawnProject(["bun", "run", "keys:rotate"], { DATABASE_URL: t.db.url, BETTER_AUTH_SECRET: TEST_SECRET, NODE_ENV: "test" });
    expect(await run.exited(30_000)).toBe(0);
    const newKid = /new signing key (\S+);/.exec(run.output())?.[1];
    expect(newKid).toBeDefined();
    expect(newKid).not.toBe(oldKid);
    expect(run.output()).toContain("1 previous key(s) retired");

    const jwks = (await (await t.request("/api/auth/jwks")).json()) as { keys: { kid: string }[] };
    expect(jwks.keys.map((key) => key.kid).sort()).toEqual([oldKid, newKid].sort() as string[]);
    // Better Auth's own /token path signs with the new key at once (the fast path within a minute).
    const after = await tokenOf(t, cookie, "?after-rotation=1");
    expect(decodeProtectedHeader(after).kid).toBe(newKid!);
    expect(await verifies(t, before)).toBe(true);
    expect(await verifies(t, after)).toBe(true);
    await ensureSigningKey(t.auth, t.db.sql, t.config); // the new key is readable with the secret
  });
});
