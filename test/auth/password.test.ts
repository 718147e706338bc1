// Password storage (OWASP Password Storage Cheat Sheet, ASVS 2.4.1): new hashes are argon2id at
// m=19456 KiB, t=2, p=1; Better Auth's legacy scrypt hashes (saltHex:keyHex) still verify and are
// replaced by argon2id at the next successful sign-in, while a wrong password leaves them as they were.
import { describe, expect, test } from "bun:test";
import { hashPassword as legacyScryptHash } from "better-auth/crypto";
import { countIdentityRows, createTestApp, PASSWORD, sessionCookieOf, signUp, expectError, attemptSignIn } from "../helpers.ts";

const t = await createTestApp();
const ARGON2ID_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$";
const SCRYPT_FORMAT = /^[0-9a-f]{32}:[0-9a-f]{128}$/;

async function storedHash(userId: string): Promise<string> {
  const [row] = await t.db.sql<{ password: string }[]>`
    select password from accounts where user_id = ${userId} and provider_id = 'credential'`;
  if (!row) throw new Error(`no credential account for ${userId}`);
  return row.password;
}


/** A user whose stored hash is Better Auth's legacy scrypt format, as in a database migrated from an older server. */
async function legacyUser(password = PASSWORD) {
  const user = await signUp(t, { password });
  const legacy = await legacyScryptHash(password);
  expect(legacy).toMatch(SCRYPT_FORMAT);
  await t.db.sql`update accounts set password = ${legacy} where user_id = ${user.userId} and provider_id = 'credential'`;
  return { ...user, legacy };
}

describe("new hashes", () => {
  test('sign-up stores an argon2id hash with m=19456, t=2, p=1 ("$argon2id$v=19$m=19456,t=2,p=1$...")', async () => {
    const { userId } = await signUp(t);
    const hash = await storedHash(userId);
    expect(hash).toStartWith(ARGON2ID_PREFIX);
    expect(await Bun.password.verify(PASSWORD, hash)).toBe(true);
  });

  test("two users with the same password get different hashes (a random salt each)", async () => {
    const a = await signUp(t);
    const b = await signUp(t);
    expect(await storedHash(a.userId)).not.toBe(await storedHash(b.userId));
  });

  test("change-password stores the new password as argon2id with the same parameters", async () => {
    const { userId, cookie } = await signUp(t);
    const response = await t.request("/api/auth/change-password", {
      method: "POST",
      headers: { cookie },
      json: { currentPassword: PASSWORD, newPassword: "an entirely new passphrase" },
    });
    expect(response.status).toBe(200);
    const hash = await storedHash(userId);
    expect(hash).toStartWith(ARGON2ID_PREFIX);
    expect(await Bun.password.verify("an entirely new passphrase", hash)).toBe(true);
  });
});

describe("hashes stored by Bun.password (the earlier hasher)", () => {
  test("verify with the right password and stay as they are: same PHC format, no rehash; a wrong password answers 401", async () => {
    const { email, userId } = await signUp(t);
    const earlier = await Bun.password.hash(PASSWORD, { algorithm: "argon2id", memoryCost: 19456, timeCost: 2 });
    expect(earlier).toStartWith(ARGON2ID_PREFIX);
    await t.db.sql`update accounts set password = ${earlier} where user_id = ${userId} and provider_id = 'credential'`;
    expect((await attemptSignIn(t, email, PASSWORD)).status).toBe(200);
    expect(await storedHash(userId)).toBe(earlier);
    expect((await attemptSignIn(t, email, "not the right password")).status).toBe(401);
    expect(await storedHash(userId)).toBe(earlier);
  });
});

describe("legacy scrypt hashes", () => {
  test("a user with a legacy scrypt hash signs in with the right password, and the hash becomes argon2id", async () => {
    const { email, userId, legacy } = await legacyUser();
    const response = await attemptSignIn(t, email, PASSWORD);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { user: { id: string } }).user.id).toBe(userId);
    const upgraded = await storedHash(userId);
    expect(upgraded).not.toBe(legacy);
    expect(upgraded).toStartWith(ARGON2ID_PREFIX);
    expect(await Bun.password.verify(PASSWORD, upgraded)).toBe(true);
  });

  test("after the upgrade the same password keeps signing in, and a session is issued each time", async () => {
    const { email, userId } = await legacyUser();
    expect((await attemptSignIn(t, email, PASSWORD)).status).toBe(200);
    const again = await attemptSignIn(t, email, PASSWORD);
    expect(again.status).toBe(200);
    const cookie = sessionCookieOf(again);
    const session = (await (await t.request("/api/auth/get-session", { headers: { cookie } })).json()) as { user: { id: string } };
    expect(session.user.id).toBe(userId);
    expect(await storedHash(userId)).toStartWith(ARGON2ID_PREFIX);
  });

  test("a wrong password against a legacy scrypt hash answers 401, writes no session and leaves the hash unchanged", async () => {
    const { email, userId, legacy } = await legacyUser();
    const before = await countIdentityRows(t.db.sql);
    const response = await attemptSignIn(t, email, "not the right password");
    await expectError(response, 401, "INVALID_EMAIL_OR_PASSWORD");
    expect(await storedHash(userId)).toBe(legacy);
    expect(await countIdentityRows(t.db.sql)).toEqual(before);
  });

  test("the upgrade touches only the account that signed in, not another account with its own legacy hash", async () => {
    const first = await legacyUser();
    const second = await legacyUser();
    expect((await attemptSignIn(t, first.email, PASSWORD)).status).toBe(200);
    expect(await storedHash(first.userId)).toStartWith(ARGON2ID_PREFIX);
    expect(await storedHash(second.userId)).toBe(second.legacy);
  });

  test("change-password accepts a legacy scrypt hash as the current password and stores argon2id", async () => {
    const { cookie, userId, email } = await legacyUser();
    const response = await t.request("/api/auth/change-password", {
      method: "POST",
      headers: { cookie },
      json: { currentPassword: PASSWORD, newPassword: "replaced after migration" },
    });
    expect(response.status).toBe(200);
    expect(await storedHash(userId)).toStartWith(ARGON2ID_PREFIX);
    expect((await attemptSignIn(t, email, "replaced after migration")).status).toBe(200);
  });

  test("a stored argon2 hash that cannot be read refuses the sign-in with 401, not a 500, and is left alone", async () => {
    const { email, userId } = await signUp(t);
    const broken = "$argon2id$v=19$m=19456,t=2,p=1$not-base64!$";
    await t.db.sql`update accounts set password = ${broken} where user_id = ${userId}`;
    const response = await attemptSignIn(t, email, PASSWORD);
    expect(response.status).toBe(401);
    expect(await storedHash(userId)).toBe(broken);
  });

  test("a stored hash in an unknown format refuses the sign-in with 401 and is left alone", async () => {
    const { email, userId } = await signUp(t);
    await t.db.sql`update accounts set password = ${"plaintext-" + PASSWORD} where user_id = ${userId}`;
    const response = await attemptSignIn(t, email, PASSWORD);
    expect(response.status).toBe(401);
    expect(await storedHash(userId)).toBe("plaintext-" + PASSWORD);
  });
});
