// The email-and-password flows over HTTP, checked against the rows they leave in Postgres: sign-up,
// sign-in, sign-out, get-session, list-sessions, revoke-session, change-password, update-user, the
// session lifetime and its sliding refresh, and the password length limits.
import { describe, expect, test } from "bun:test";
import { countIdentityRows, createTestApp, listedHandle, PASSWORD, sessionCookieOf, signUp, uniqueEmail, type TestApp, expectError, post, signIn, attemptSignIn } from "../helpers.ts";

const t = await createTestApp();
const DAY = 86400;

type SessionJson = { session: { id: string; token: string; userId: string; expiresAt: string }; user: { id: string; email: string; name: string } };

async function getSession(app: Pick<TestApp, "request">, cookie: string): Promise<SessionJson | null> {
  const response = await app.request("/api/auth/get-session", { headers: { cookie } });
  expect(response.status).toBe(200);
  return (await response.json()) as SessionJson | null;
}

/** Seconds from now until the session expires, as Postgres sees it. */
async function secondsLeft(app: TestApp, token: string): Promise<number> {
  const [row] = await app.db.sql<{ seconds: number }[]>`
    select extract(epoch from expires_at - now())::float8 as seconds from sessions where token = ${token}`;
  if (!row) throw new Error("no session row for the token");
  return row.seconds;
}

async function sessionTokensOf(app: TestApp, userId: string): Promise<string[]> {
  const rows = await app.db.sql<{ token: string }[]>`select token from sessions where user_id = ${userId} order by created_at`;
  return rows.map((row) => row.token);
}

describe("sign-up", () => {
  test("sign-up/email writes a user, a credential account and a session, and sets the session cookie", async () => {
    const email = uniqueEmail("signup");
    const response = await post(t, "/api/auth/sign-up/email", { name: "Ada Lovelace", email, password: PASSWORD });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { token: string; user: { id: string; email: string; name: string } };
    expect(body.user.email).toBe(email);
    expect(body.user.name).toBe("Ada Lovelace");

    const [user] = await t.db.sql`select id, name, email, email_verified from users where email = ${email}`;
    expect(user).toMatchObject({ id: body.user.id, name: "Ada Lovelace", email_verified: false });
    const accounts = await t.db.sql`select provider_id, account_id, password from accounts where user_id = ${body.user.id}`;
    expect(accounts.length).toBe(1);
    expect(accounts[0]).toMatchObject({ provider_id: "credential", account_id: body.user.id });
    expect(accounts[0]!.password).not.toContain(PASSWORD);
    expect(await sessionTokensOf(t, body.user.id)).toEqual([body.token]);
    expect(sessionCookieOf(response)).toStartWith("better-auth.session_token=");
  });

  test("a new session lasts 7 days by default, in the database and in the cookie's Max-Age", async () => {
    const { token, response } = await signUp(t);
    expect(await secondsLeft(t, token)).toBeGreaterThan(7 * DAY - 60);
    expect(await secondsLeft(t, token)).toBeLessThanOrEqual(7 * DAY);
    const cookie = response.headers.getSetCookie().find((c) => c.includes("session_token="))!;
    expect(cookie).toMatch(/Max-Age=604800/);
  });

  test("the email is stored lower-cased and signs in whatever its case", async () => {
    const email = uniqueEmail("MiXeD");
    const { userId } = await signUp(t, { email: email.toUpperCase() });
    const [row] = await t.db.sql<{ email: string }[]>`select email from users where id = ${userId}`;
    expect(row!.email).toBe(email.toLowerCase());
    const { cookie } = await signIn(t, email.toUpperCase());
    expect((await getSession(t, cookie))!.user.id).toBe(userId);
  });

  test("signing up again with a registered email answers 422 and writes nothing", async () => {
    const { email } = await signUp(t);
    const before = await countIdentityRows(t.db.sql);
    const response = await post(t, "/api/auth/sign-up/email", { name: "Again", email, password: "another password" });
    await expectError(response, 422, "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL");
    expect(response.headers.getSetCookie()).toEqual([]);
    expect(await countIdentityRows(t.db.sql)).toEqual(before);
  });
});

describe("password length", () => {
  test("a 7-character password answers 400 PASSWORD_TOO_SHORT and writes no user, account or session", async () => {
    const before = await countIdentityRows(t.db.sql);
    const response = await post(t, "/api/auth/sign-up/email", { name: "Short", email: uniqueEmail(), password: "1234567" });
    await expectError(response, 400, "PASSWORD_TOO_SHORT");
    expect(await countIdentityRows(t.db.sql)).toEqual(before);
  });

  test("a 129-character password answers 400 PASSWORD_TOO_LONG and writes no user, account or session", async () => {
    const before = await countIdentityRows(t.db.sql);
    const response = await post(t, "/api/auth/sign-up/email", { name: "Long", email: uniqueEmail(), password: "p".repeat(129) });
    await expectError(response, 400, "PASSWORD_TOO_LONG");
    expect(await countIdentityRows(t.db.sql)).toEqual(before);
  });

  test("passwords of exactly 8 and exactly 128 characters are accepted and sign in", async () => {
    for (const password of ["12345678", "p".repeat(128)]) {
      const { email } = await signUp(t, { password });
      await signIn(t, email, password);
    }
  });

  test("PASSWORD_MIN_LENGTH and PASSWORD_MAX_LENGTH move both bounds", async () => {
    const strict = await createTestApp({ PASSWORD_MIN_LENGTH: "12", PASSWORD_MAX_LENGTH: "64" });
    const attempt = (password: string) => post(strict, "/api/auth/sign-up/email", { name: "S", email: uniqueEmail(), password });
    const before = await countIdentityRows(strict.db.sql);
    const tooShort = await attempt("x".repeat(11));
    await expectError(tooShort, 400, "PASSWORD_TOO_SHORT");
    const tooLong = await attempt("x".repeat(65));
    await expectError(tooLong, 400, "PASSWORD_TOO_LONG");
    expect(await countIdentityRows(strict.db.sql)).toEqual(before);
    expect((await attempt("x".repeat(12))).status).toBe(200);
    expect((await attempt("x".repeat(64))).status).toBe(200);
  });

  test("change-password applies the same limits to the new password and keeps the old hash", async () => {
    const { cookie, userId } = await signUp(t);
    const [before] = await t.db.sql`select password from accounts where user_id = ${userId}`;
    for (const [newPassword, code] of [["1234567", "PASSWORD_TOO_SHORT"], ["p".repeat(129), "PASSWORD_TOO_LONG"]] as const) {
      const response = await post(t, "/api/auth/change-password", { currentPassword: PASSWORD, newPassword }, cookie);
      await expectError(response, 400, code);
    }
    const [after] = await t.db.sql`select password from accounts where user_id = ${userId}`;
    expect(after!.password).toBe(before!.password);
  });
});

describe("sign-in", () => {
  test("sign-in/email with the right password answers 200, writes a new session and sets its cookie", async () => {
    const { email, userId, token: signUpToken } = await signUp(t);
    const { token, cookie } = await signIn(t, email);
    expect(token).not.toBe(signUpToken);
    expect(await sessionTokensOf(t, userId)).toEqual([signUpToken, token]);
    expect((await getSession(t, cookie))!.session.token).toBe(token);
  });

  test("sign-in with a wrong password answers 401 and writes no session", async () => {
    const { email } = await signUp(t);
    const before = await countIdentityRows(t.db.sql);
    const response = await post(t, "/api/auth/sign-in/email", { email, password: "not the password" });
    await expectError(response, 401, "INVALID_EMAIL_OR_PASSWORD");
    expect(response.headers.getSetCookie()).toEqual([]);
    expect(await countIdentityRows(t.db.sql)).toEqual(before);
  });

  test("sign-in with an unknown email answers 401 with the same body as a wrong password (no account enumeration)", async () => {
    const { email } = await signUp(t);
    const wrongPassword = await post(t, "/api/auth/sign-in/email", { email, password: "not the password" });
    const before = await countIdentityRows(t.db.sql);
    const unknownEmail = await post(t, "/api/auth/sign-in/email", { email: uniqueEmail("nobody"), password: "not the password" });
    expect(unknownEmail.status).toBe(401);
    expect(await unknownEmail.json()).toEqual(await wrongPassword.json());
    expect(await countIdentityRows(t.db.sql)).toEqual(before);
  });
});

describe("sessions", () => {
  test("get-session answers the user and session of a cookie, and null without one", async () => {
    const { cookie, userId, token, email } = await signUp(t);
    const session = await getSession(t, cookie);
    expect(session!.user).toMatchObject({ id: userId, email });
    expect(session!.session).toMatchObject({ userId, token });
    const anonymous = await t.request("/api/auth/get-session");
    expect(anonymous.status).toBe(200);
    expect(await anonymous.json()).toBeNull();
  });

  test("a session younger than the update age is read without moving its expiry", async () => {
    const { cookie, token } = await signUp(t);
    const [before] = await t.db.sql<{ expires_at: Date }[]>`select expires_at from sessions where token = ${token}`;
    const response = await t.request("/api/auth/get-session", { headers: { cookie } });
    // No new session cookie (the cookie cache's session_data copy may be set).
    expect(response.headers.getSetCookie().filter((line) => line.includes("session_token="))).toEqual([]);
    const [after] = await t.db.sql<{ expires_at: Date }[]>`select expires_at from sessions where token = ${token}`;
    expect(after!.expires_at.getTime()).toBe(before!.expires_at.getTime());
  });

  test("sessions slide: once the update age has passed, get-session extends expires_at by the full lifetime", async () => {
    const sliding = await createTestApp({ SESSION_EXPIRES_IN: "1h", SESSION_UPDATE_AGE: "1s" });
    const { cookie, token } = await signUp(sliding);
    const [before] = await sliding.db.sql<{ expires_at: Date }[]>`select expires_at from sessions where token = ${token}`;
    expect(await secondsLeft(sliding, token)).toBeGreaterThan(3600 - 60);
    expect(await secondsLeft(sliding, token)).toBeLessThanOrEqual(3600);

    await Bun.sleep(1200);
    const response = await sliding.request("/api/auth/get-session", { headers: { cookie } });
    expect(response.status).toBe(200);
    expect(((await response.json()) as SessionJson).session.token).toBe(token);
    const [after] = await sliding.db.sql<{ expires_at: Date }[]>`select expires_at from sessions where token = ${token}`;
    expect(after!.expires_at.getTime() - before!.expires_at.getTime()).toBeGreaterThanOrEqual(1000);
    expect(await secondsLeft(sliding, token)).toBeGreaterThan(3600 - 60);
    // The browser's cookie is renewed with the session.
    const renewed = response.headers.getSetCookie().find((c) => c.includes("session_token="));
    expect(renewed).toMatch(/Max-Age=3600/);
  });

  test("list-sessions answers every live session of the user and none of another user's, with handles instead of tokens", async () => {
    const alice = await signUp(t);
    const second = await signIn(t, alice.email);
    const bob = await signUp(t);
    const response = await t.request("/api/auth/list-sessions", { headers: { cookie: alice.cookie } });
    expect(response.status).toBe(200);
    const sessions = (await response.json()) as Array<{ id: string; token: string; userId: string }>;
    const ids = await t.db.sql<{ id: string }[]>`select id from sessions where token in ${t.db.sql([alice.token, second.token])}`;
    expect(sessions.map((s) => s.id).sort()).toEqual(ids.map((row) => row.id).sort());
    expect(sessions.every((s) => s.userId === alice.userId)).toBe(true);
    // No listed value is a session token, signed or not.
    const listed = JSON.stringify(sessions);
    for (const token of [alice.token, second.token, bob.token]) expect(listed).not.toContain(token);
    for (const s of sessions) expect(s.token.startsWith(`${s.id}.`)).toBe(true);
  });

  test("list-sessions without a session answers 401", async () => {
    const response = await t.request("/api/auth/list-sessions");
    expect(response.status).toBe(401);
  });

  test("revoke-session deletes the named session only; the current one keeps working", async () => {
    const current = await signUp(t);
    const other = await signIn(t, current.email);
    const response = await post(t, "/api/auth/revoke-session", { token: await listedHandle(t, current.cookie, other.token) }, current.cookie);
    expect(response.status).toBe(200);
    expect(await sessionTokensOf(t, current.userId)).toEqual([current.token]);
    expect(await getSession(t, other.cookie)).toBeNull();
    expect((await getSession(t, current.cookie))!.session.token).toBe(current.token);
  });

  test("revoke-session with another user's token, handle or anything else answers 404 SESSION_NOT_FOUND and leaves that session in place", async () => {
    const attacker = await signUp(t);
    const victim = await signUp(t);
    const [victimList] = [(await (await t.request("/api/auth/list-sessions", { headers: { cookie: victim.cookie } })).json()) as Array<{ token: string }>];
    const signed = decodeURIComponent(victim.cookie.slice(victim.cookie.indexOf("=") + 1));
    for (const token of [victim.token, victimList[0]!.token, signed, "made-up", "", `${victimList[0]!.token.split(".")[0]}.forged`]) {
      const response = await post(t, "/api/auth/revoke-session", { token }, attacker.cookie);
      await expectError(response, 404, "SESSION_NOT_FOUND");
    }
    expect(await sessionTokensOf(t, victim.userId)).toEqual([victim.token]);
    expect((await getSession(t, victim.cookie))!.user.id).toBe(victim.userId);
  });

  test("sign-out deletes the session row and clears the cookie; the old cookie no longer resolves", async () => {
    const { cookie, token, userId } = await signUp(t);
    const response = await t.request("/api/auth/sign-out", { method: "POST", headers: { cookie } });
    expect(response.status).toBe(200);
    const cleared = response.headers.getSetCookie().find((c) => c.startsWith("better-auth.session_token="));
    expect(cleared).toMatch(/Max-Age=0/);
    const rows = await t.db.sql`select 1 from sessions where token = ${token}`;
    expect(rows.length).toBe(0);
    expect(await getSession(t, cookie)).toBeNull();
    const [user] = await t.db.sql`select id from users where id = ${userId}`;
    expect(user).toBeDefined();
  });
});

describe("change-password", () => {
  test("change-password replaces the hash: the new password signs in, the old one answers 401", async () => {
    const { cookie, email, userId } = await signUp(t);
    const [before] = await t.db.sql`select password from accounts where user_id = ${userId}`;
    const response = await post(t, "/api/auth/change-password", { currentPassword: PASSWORD, newPassword: "a brand new passphrase" }, cookie);
    expect(response.status).toBe(200);
    const [after] = await t.db.sql`select password from accounts where user_id = ${userId}`;
    expect(after!.password).not.toBe(before!.password);
    await signIn(t, email, "a brand new passphrase");
    const old = await attemptSignIn(t, email);
    expect(old.status).toBe(401);
  });

  test("without revokeOtherSessions, the user's other sessions stay signed in", async () => {
    const first = await signUp(t);
    const second = await signIn(t, first.email);
    const response = await post(t, "/api/auth/change-password", { currentPassword: PASSWORD, newPassword: "another good passphrase" }, first.cookie);
    expect(response.status).toBe(200);
    expect(await sessionTokensOf(t, first.userId)).toEqual([first.token, second.token]);
    expect((await getSession(t, second.cookie))!.user.id).toBe(first.userId);
  });

  test("with revokeOtherSessions, every earlier session is deleted and the caller gets a fresh one", async () => {
    const first = await signUp(t);
    const second = await signIn(t, first.email);
    const third = await signIn(t, first.email);
    const response = await post(
      t,
      "/api/auth/change-password",
      { currentPassword: PASSWORD, newPassword: "rotate everything now", revokeOtherSessions: true },
      first.cookie,
    );
    expect(response.status).toBe(200);
    const body = (await response.json()) as { token: string };
    expect(typeof body.token).toBe("string");
    expect(await sessionTokensOf(t, first.userId)).toEqual([body.token]);
    for (const old of [first, second, third]) expect(await getSession(t, old.cookie)).toBeNull();
    const fresh = sessionCookieOf(response);
    expect((await getSession(t, fresh))!.session.token).toBe(body.token);
  });

  test("change-password with a wrong current password answers 400 INVALID_PASSWORD and changes nothing", async () => {
    const { cookie, userId } = await signUp(t);
    const [before] = await t.db.sql`select password from accounts where user_id = ${userId}`;
    const response = await post(t, "/api/auth/change-password", { currentPassword: "not my password", newPassword: "whatever it may be" }, cookie);
    await expectError(response, 400, "INVALID_PASSWORD");
    const [after] = await t.db.sql`select password from accounts where user_id = ${userId}`;
    expect(after!.password).toBe(before!.password);
  });

  test("change-password without a session answers 401", async () => {
    const response = await post(t, "/api/auth/change-password", { currentPassword: PASSWORD, newPassword: "whatever it may be" });
    expect(response.status).toBe(401);
  });
});

describe("update-user", () => {
  test("update-user changes the name in users, and get-session reflects it", async () => {
    const { cookie, userId } = await signUp(t, { name: "Before" });
    const response = await post(t, "/api/auth/update-user", { name: "After" }, cookie);
    expect(response.status).toBe(200);
    const [row] = await t.db.sql<{ name: string; updated_at: Date; created_at: Date }[]>`
      select name, updated_at, created_at from users where id = ${userId}`;
    expect(row!.name).toBe("After");
    expect(row!.updated_at.getTime()).toBeGreaterThan(row!.created_at.getTime());
    expect((await getSession(t, cookie))!.user.name).toBe("After");
  });

  test("update-user cannot change the email", async () => {
    const { cookie, userId, email } = await signUp(t);
    const response = await post(t, "/api/auth/update-user", { email: uniqueEmail("changed") }, cookie);
    expect(response.status).toBe(400);
    const [row] = await t.db.sql<{ email: string }[]>`select email from users where id = ${userId}`;
    expect(row!.email).toBe(email);
  });

  test("update-user without a session answers 401 and changes no row", async () => {
    const { userId } = await signUp(t, { name: "Untouched" });
    const response = await post(t, "/api/auth/update-user", { name: "Hijacked" });
    expect(response.status).toBe(401);
    const [row] = await t.db.sql<{ name: string }[]>`select name from users where id = ${userId}`;
    expect(row!.name).toBe("Untouched");
  });
});
