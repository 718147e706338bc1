// JWTs for the APIs: GET /api/auth/token signs an RS256 token that verifies against GET
// /api/auth/jwks with jose, carries a trimmed identity payload (RFC 7519 4.1: iss, sub, aud, exp,
// iat), fails verification once altered, is reachable with a bearer token, and instances that
// start together agree on one signing key.
import { describe, expect, test } from "bun:test";
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  generateKeyPair,
  jwtVerify,
  SignJWT,
  type JSONWebKeySet,
} from "jose";
import { createAuth, ensureSigningKey } from "../../src/auth/better-auth.ts";
import { createPool } from "../../src/db/pool.ts";
import { startServer } from "../../src/index.ts";
import { applyMigrations } from "../../src/db/migrate.ts";
import { createTestApp, createTestDatabase, onCleanup, quietLogger, signUp, startTestServer, testConfig, type TestApp } from "../helpers.ts";

const t = await createTestApp();

async function jwtFor(app: Pick<TestApp, "request">, headers: Record<string, string>): Promise<string> {
  const response = await app.request("/api/auth/token", { headers });
  expect(response.status).toBe(200);
  return ((await response.json()) as { token: string }).token;
}

async function jwksOf(app: Pick<TestApp, "request">): Promise<JSONWebKeySet> {
  const response = await app.request("/api/auth/jwks");
  expect(response.status).toBe(200);
  return (await response.json()) as JSONWebKeySet;
}

/** Replaces one base64url segment of a compact JWS. */
function withSegment(jwt: string, index: 0 | 1 | 2, segment: string): string {
  const parts = jwt.split(".");
  parts[index] = segment;
  return parts.join(".");
}

const encodeJson = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

describe("token and keys", () => {
  test("GET /api/auth/token answers an RS256 JWT that verifies against the server's JWKS fetched over HTTP", async () => {
    const server = await startTestServer();
    const { cookie, userId } = await signUp(server);
    const tokenResponse = await fetch(`${server.url}/api/auth/token`, { headers: { cookie } });
    const { token } = (await tokenResponse.json()) as { token: string };

    const jwks = createRemoteJWKSet(new URL(`${server.url}/api/auth/jwks`));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: server.config.baseUrl,
      audience: server.config.jwtAudience,
      algorithms: ["RS256"],
    });
    expect(protectedHeader.alg).toBe("RS256");
    expect(payload.sub).toBe(userId);
  });

  test("the header names RS256 and a kid that the JWKS publishes, and the JWKS holds no private key material", async () => {
    const { cookie } = await signUp(t);
    const jwt = await jwtFor(t, { cookie });
    const header = decodeProtectedHeader(jwt);
    expect(header.alg).toBe("RS256");
    expect(typeof header.kid).toBe("string");
    const { keys } = await jwksOf(t);
    const key = keys.find((k) => k.kid === header.kid);
    expect(key).toMatchObject({ kty: "RSA", alg: "RS256" });
    for (const published of keys) for (const secret of ["d", "p", "q", "dp", "dq", "qi"]) expect(published).not.toHaveProperty(secret);
    await jwtVerify(jwt, createLocalJWKSet({ keys }), { algorithms: ["RS256"] });
  });

  test("iss and aud are the configured base URL; sub is the user id", async () => {
    const { cookie, userId } = await signUp(t);
    const { payload } = await jwtVerify(await jwtFor(t, { cookie }), createLocalJWKSet(await jwksOf(t)), {
      issuer: t.config.baseUrl,
      audience: t.config.baseUrl,
    });
    expect(payload.iss).toBe("http://localhost:3001");
    expect(payload.aud).toBe("http://localhost:3001");
    expect(payload.sub).toBe(userId);
  });

  test("JWT_AUDIENCE overrides the audience, and a verifier expecting another audience refuses the token", async () => {
    const app = await createTestApp({ JWT_AUDIENCE: "https://api.example.test" });
    const { cookie } = await signUp(app);
    const jwt = await jwtFor(app, { cookie });
    const jwks = createLocalJWKSet(await jwksOf(app));
    const { payload } = await jwtVerify(jwt, jwks, { issuer: app.config.baseUrl, audience: "https://api.example.test" });
    expect(payload.aud).toBe("https://api.example.test");
    await expect(jwtVerify(jwt, jwks, { audience: app.config.baseUrl })).rejects.toThrow(/"aud" claim/);
  });

  test("the claims are identity and profile only: email, name and profile fields, never the whole user row", async () => {
    const { cookie, email } = await signUp(t, {
      name: "Claimed",
      experienceLevel: "advanced",
      professionalRole: "other",
      roleOther: "teacher",
      organization: "Lab",
    });
    const payload = decodeJwt(await jwtFor(t, { cookie }));
    expect(payload).toMatchObject({
      email,
      name: "Claimed",
      experienceLevel: "advanced",
      professionalRole: "other",
      roleOther: "teacher",
      organization: "Lab",
    });
    for (const rowField of ["createdAt", "updatedAt", "image", "id", "token", "password"]) expect(payload).not.toHaveProperty(rowField);
  });

  test("a user without profile fields gets them as null claims", async () => {
    const { cookie } = await signUp(t);
    const payload = decodeJwt(await jwtFor(t, { cookie }));
    expect(payload).toMatchObject({ experienceLevel: null, professionalRole: null, roleOther: null, organization: null });
  });

  test("a token lives 900 seconds by default", async () => {
    const { cookie } = await signUp(t);
    const { exp, iat } = decodeJwt(await jwtFor(t, { cookie }));
    expect(exp! - iat!).toBe(900);
    expect(Math.abs(iat! - Date.now() / 1000)).toBeLessThan(60);
  });

  test('JWT_EXPIRES_IN="5m" makes tokens live 300 seconds', async () => {
    const app = await createTestApp({ JWT_EXPIRES_IN: "5m" });
    const { cookie } = await signUp(app);
    const { exp, iat } = decodeJwt(await jwtFor(app, { cookie }));
    expect(exp! - iat!).toBe(300);
  });

  test("/token without a session answers 401 and no token", async () => {
    const response = await t.request("/api/auth/token");
    expect(response.status).toBe(401);
    expect(JSON.stringify(await response.json())).not.toContain("eyJ");
  });
});

describe("tampering", () => {
  test("a token whose payload was altered fails verification", async () => {
    const { cookie } = await signUp(t);
    const jwt = await jwtFor(t, { cookie });
    const jwks = createLocalJWKSet(await jwksOf(t));
    const forged = withSegment(jwt, 1, encodeJson({ ...decodeJwt(jwt), sub: "someone-else", email: "admin@example.test" }));
    await expect(jwtVerify(forged, jwks)).rejects.toThrow(/signature verification failed/i);
  });

  test("a token whose signature was altered fails verification", async () => {
    const { cookie } = await signUp(t);
    const jwt = await jwtFor(t, { cookie });
    const jwks = createLocalJWKSet(await jwksOf(t));
    const signature = Buffer.from(jwt.split(".")[2]!, "base64url");
    signature[10] = signature[10]! ^ 0xff;
    await expect(jwtVerify(withSegment(jwt, 2, signature.toString("base64url")), jwks)).rejects.toThrow(/signature verification failed/i);
  });

  test('an unsigned token (alg "none") with the same claims fails verification', async () => {
    const { cookie } = await signUp(t);
    const jwt = await jwtFor(t, { cookie });
    const jwks = createLocalJWKSet(await jwksOf(t));
    const kid = decodeProtectedHeader(jwt).kid;
    const unsigned = `${encodeJson({ alg: "none", kid })}.${jwt.split(".")[1]}.`;
    await expect(jwtVerify(unsigned, jwks)).rejects.toThrow();
  });

  test("a token signed by another key under the server's kid fails verification", async () => {
    const { cookie } = await signUp(t);
    const jwt = await jwtFor(t, { cookie });
    const jwks = createLocalJWKSet(await jwksOf(t));
    const { privateKey } = await generateKeyPair("RS256");
    const forged = await new SignJWT(decodeJwt(jwt)).setProtectedHeader(decodeProtectedHeader(jwt) as { alg: string; kid: string }).sign(privateKey);
    await expect(jwtVerify(forged, jwks)).rejects.toThrow(/signature verification failed/i);
  });
});

describe("bearer tokens", () => {
  test("the signed set-auth-token value works as Authorization: Bearer for get-session and /token, without cookies", async () => {
    const { response, userId } = await signUp(t);
    const signed = response.headers.get("set-auth-token");
    expect(signed).toBeTruthy();
    const session = await t.request("/api/auth/get-session", { headers: { authorization: `Bearer ${signed}` } });
    expect(session.status).toBe(200);
    expect(((await session.json()) as { user: { id: string } }).user.id).toBe(userId);
    const jwt = await jwtFor(t, { authorization: `Bearer ${signed}` });
    const { payload } = await jwtVerify(jwt, createLocalJWKSet(await jwksOf(t)), { issuer: t.config.baseUrl, audience: t.config.jwtAudience });
    expect(payload.sub).toBe(userId);
  });

  test("the unsigned session token (the sign-up body's token) is refused as a bearer token: no session, no JWT", async () => {
    const { token } = await signUp(t);
    const session = await t.request("/api/auth/get-session", { headers: { authorization: `Bearer ${token}` } });
    expect(await session.json()).toBeNull();
    expect((await t.request("/api/auth/token", { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
    expect((await t.request("/api/auth/list-sessions", { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
  });

  test("a made-up or signed-out bearer token gets no session and no JWT", async () => {
    const { response, cookie } = await signUp(t);
    const token = response.headers.get("set-auth-token")!;
    const madeUp = await t.request("/api/auth/get-session", { headers: { authorization: "Bearer not-a-real-session-token" } });
    expect(await madeUp.json()).toBeNull();
    expect((await t.request("/api/auth/sign-out", { method: "POST", headers: { cookie } })).status).toBe(200);
    const afterSignOut = await t.request("/api/auth/get-session", { headers: { authorization: `Bearer ${token}` } });
    expect(await afterSignOut.json()).toBeNull();
    expect((await t.request("/api/auth/token", { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
  });
});

describe("one signing key across instances", () => {
  test("two auth instances ensuring the signing key at once on a fresh database create exactly one key", async () => {
    const db = await createTestDatabase("jwks");
    const config = testConfig({ DATABASE_URL: db.url }) as ReturnType<typeof testConfig> & { secret: string };
    const pools = [createPool(db.url, { max: 2 }), createPool(db.url, { max: 2 })];
    for (const pool of pools) onCleanup(() => pool.end({ timeout: 1 }));
    await applyMigrations(pools[0]!);
    const auths = pools.map((sql) => createAuth({ config, sql, logger: quietLogger }));
    const outcomes = await Promise.all(auths.map((auth, i) => ensureSigningKey(auth, pools[i]!, config)));
    expect(outcomes.sort()).toEqual(["created", "present"]);
    const [keys] = await db.sql<{ count: number }[]>`select count(*)::int as count from jwks`;
    expect(keys!.count).toBe(1);
    expect(await ensureSigningKey(auths[0]!, pools[0]!, config)).toBe("present");
  });

  test("two servers starting together on one database publish the same single key, and each verifies the other's tokens", async () => {
    const db = await createTestDatabase("twins");
    const config = testConfig({ DATABASE_URL: db.url, PORT: "0", HOST: "127.0.0.1" });
    const servers = await Promise.all([startServer(config, quietLogger), startServer(config, quietLogger)]);
    for (const running of servers) onCleanup(() => running.stop());
    const rows = await db.sql`select id from jwks`;
    expect(rows.length).toBe(1);

    const [a, b] = servers as [(typeof servers)[0], (typeof servers)[0]];
    const { cookie } = await signUp(a);
    const fromA = ((await (await fetch(`${a.url}/api/auth/token`, { headers: { cookie } })).json()) as { token: string }).token;
    const fromB = ((await (await fetch(`${b.url}/api/auth/token`, { headers: { cookie } })).json()) as { token: string }).token;
    expect(decodeProtectedHeader(fromA).kid).toBe(rows[0]!.id);
    expect(decodeProtectedHeader(fromB).kid).toBe(rows[0]!.id);
    await jwtVerify(fromA, createRemoteJWKSet(new URL(`${b.url}/api/auth/jwks`)), { issuer: config.baseUrl, audience: config.jwtAudience });
    await jwtVerify(fromB, createRemoteJWKSet(new URL(`${a.url}/api/auth/jwks`)), { issuer: config.baseUrl, audience: config.jwtAudience });
  });
});
