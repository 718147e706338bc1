// The browser flow through Better Auth's own client (cookie jar, Origin header) against the real
// server on a loopback port, and the origin checks that keep other sites from riding a session
// (OWASP ASVS 4.2.2 / 13.2.3: CSRF defences on cookie-authenticated state changes).
import { describe, expect, test } from "bun:test";
import { decodeJwt } from "jose";
import { createTestClient, PASSWORD, SITE_ORIGIN, startTestServer, uniqueEmail, expectError } from "../helpers.ts";

const server = await startTestServer();
const EVIL_ORIGIN = "http://evil.test";

const newClient = (origin = SITE_ORIGIN) => createTestClient({ baseUrl: server.url }, origin);

async function sessionCookieIn(jar: ReturnType<typeof newClient>["jar"]): Promise<string> {
  const cookies = await jar.getCookies(server.url);
  const session = cookies.find((cookie) => cookie.key.endsWith("session_token"));
  if (!session) throw new Error("no session cookie in the jar");
  return `${session.key}=${session.value}`;
}

/** A client that signed up a fresh user; its jar holds the session cookie. */
async function signedUpClient() {
  const { client, jar } = newClient();
  const email = uniqueEmail("browser");
  const up = await client.signUp.email({ email, password: PASSWORD, name: "Browser User" });
  expect(up.error).toBeNull();
  return { client, jar, email, userId: up.data!.user.id, cookie: await sessionCookieIn(jar) };
}

const rawPost = (path: string, json: unknown, headers: Record<string, string>) =>
  fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(json) });

describe("Better Auth's client against the real server", () => {
  test("the whole browser flow: sign up, session, sessions list, JWT, revoke, sign out, sign in, change password", async () => {
    const { client, email, userId } = await signedUpClient();

    const session = await client.getSession();
    expect(session.error).toBeNull();
    expect(session.data?.user).toMatchObject({ id: userId, email });

    const listed = await client.listSessions();
    expect(listed.data?.length).toBe(1);
    expect(listed.data?.[0]?.userId).toBe(userId);

    const token = await client.token();
    expect(token.error).toBeNull();
    expect(decodeJwt(token.data!.token)).toMatchObject({ sub: userId, email });

    // A second device signs in; the first revokes it.
    const { client: phone } = newClient();
    const phoneIn = await phone.signIn.email({ email, password: PASSWORD });
    expect(phoneIn.error).toBeNull();
    const both = await client.listSessions();
    expect(both.data?.length).toBe(2);
    // list-sessions answers handles, which revokeSession takes (src/session/handles.ts).
    const phoneSession = (await phone.getSession()).data!.session;
    const revoked = await client.revokeSession({ token: both.data!.find((s) => s.id === phoneSession.id)!.token });
    expect(revoked.error).toBeNull();
    // Refused at once, its cookie cache included (src/session/change-notices.ts), within a second.
    const revokedAt = Date.now();
    while ((await phone.getSession()).data !== null && Date.now() - revokedAt < 1000) await Bun.sleep(20);
    expect((await phone.getSession()).data).toBeNull();
    expect((await client.getSession()).data?.user.id).toBe(userId);

    const out = await client.signOut();
    expect(out.error).toBeNull();
    expect((await client.getSession()).data).toBeNull();
    const rows = await server.db.sql`select 1 from sessions where user_id = ${userId}`;
    expect(rows.length).toBe(0);

    const back = await client.signIn.email({ email, password: PASSWORD });
    expect(back.error).toBeNull();
    expect((await client.getSession()).data?.user.id).toBe(userId);

    const changed = await client.changePassword({ currentPassword: PASSWORD, newPassword: "a fresh passphrase", revokeOtherSessions: true });
    expect(changed.error).toBeNull();
    expect((await client.getSession()).data?.user.id).toBe(userId);
    const { client: stranger } = newClient();
    const oldPassword = await stranger.signIn.email({ email, password: PASSWORD });
    expect(oldPassword.error?.status).toBe(401);
    const newPassword = await stranger.signIn.email({ email, password: "a fresh passphrase" });
    expect(newPassword.error).toBeNull();
  });

  test("the client surfaces a wrong password as a 401 error and stores no cookie", async () => {
    const { email } = await signedUpClient();
    const { client, jar } = newClient();
    const attempt = await client.signIn.email({ email, password: "definitely wrong" });
    expect(attempt.data).toBeNull();
    expect(attempt.error?.status).toBe(401);
    expect(attempt.error?.code).toBe("INVALID_EMAIL_OR_PASSWORD");
    expect(await jar.getCookies(server.url)).toEqual([]);
  });

  test("CORS answers the site's preflight with credentials and gives an untrusted origin nothing", async () => {
    const preflight = (origin: string) =>
      fetch(`${server.url}/api/auth/sign-in/email`, {
        method: "OPTIONS",
        headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
      });
    const site = await preflight(SITE_ORIGIN);
    expect(site.headers.get("access-control-allow-origin")).toBe(SITE_ORIGIN);
    expect(site.headers.get("access-control-allow-credentials")).toBe("true");
    const evil = await preflight(EVIL_ORIGIN);
    expect(evil.headers.get("access-control-allow-origin")).not.toBe(EVIL_ORIGIN);
    expect(evil.headers.get("access-control-allow-origin")).not.toBe("*");
  });
});

describe("origin checks (CSRF)", () => {
  test("a script POST to sign-in carrying cookies but no Origin header answers 403 MISSING_OR_NULL_ORIGIN and writes no session", async () => {
    const { email, cookie, userId } = await signedUpClient();
    const response = await rawPost("/api/auth/sign-in/email", { email, password: PASSWORD }, { cookie });
    await expectError(response, 403, "MISSING_OR_NULL_ORIGIN");
    const rows = await server.db.sql`select 1 from sessions where user_id = ${userId}`;
    expect(rows.length).toBe(1);
  });

  test("a sandboxed page's Origin: null with cookies answers 403 MISSING_OR_NULL_ORIGIN", async () => {
    const { cookie, userId } = await signedUpClient();
    const response = await rawPost("/api/auth/update-user", { name: "Renamed by a sandboxed frame" }, { cookie, origin: "null" });
    await expectError(response, 403, "MISSING_OR_NULL_ORIGIN");
    const [row] = await server.db.sql<{ name: string }[]>`select name from users where id = ${userId}`;
    expect(row!.name).toBe("Browser User");
  });

  test("an untrusted origin cannot use a victim's cookie: sign-out and update-user answer 403 and change nothing", async () => {
    const { cookie, userId } = await signedUpClient();
    const signOut = await rawPost("/api/auth/sign-out", {}, { cookie, origin: EVIL_ORIGIN });
    await expectError(signOut, 403, "INVALID_ORIGIN");
    const update = await rawPost("/api/auth/update-user", { name: "Pwned" }, { cookie, origin: EVIL_ORIGIN });
    expect(update.status).toBe(403);
    const [row] = await server.db.sql<{ name: string }[]>`select name from users where id = ${userId}`;
    expect(row!.name).toBe("Browser User");
    const sessions = await server.db.sql`select 1 from sessions where user_id = ${userId}`;
    expect(sessions.length).toBe(1);
  });

  test("Better Auth's client running on an untrusted origin is refused with 403 at sign-in and writes no session", async () => {
    const { email, userId } = await signedUpClient();
    const { client, jar } = newClient(EVIL_ORIGIN);
    const attempt = await client.signIn.email({ email, password: PASSWORD });
    expect(attempt.error?.status).toBe(403);
    expect(attempt.error?.code).toBe("INVALID_ORIGIN");
    expect(await jar.getCookies(server.url)).toEqual([]);
    const sessions = await server.db.sql`select 1 from sessions where user_id = ${userId}`;
    expect(sessions.length).toBe(1);
  });

  test("a sign-in whose callbackURL leaves the trusted origins is refused with 403 (no open redirect)", async () => {
    const { email } = await signedUpClient();
    const response = await rawPost("/api/auth/sign-in/email", { email, password: PASSWORD, callbackURL: `${EVIL_ORIGIN}/landing` }, { origin: SITE_ORIGIN });
    expect(response.headers.get("location")).toBeNull();
    await expectError(response, 403, "INVALID_CALLBACK_URL");
  });

  test("a cookie-less script sign-in without Origin has no session to ride and is answered normally", async () => {
    const { email, userId } = await signedUpClient();
    const response = await rawPost("/api/auth/sign-in/email", { email, password: PASSWORD }, {});
    expect(response.status).toBe(200);
    expect(((await response.json()) as { user: { id: string } }).user.id).toBe(userId);
  });
});
