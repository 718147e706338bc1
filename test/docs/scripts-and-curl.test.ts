// What docs/sessions.md's "Scripts and curl" states: which value goes where, when an Origin is needed (Better
// Auth's origin check: only requests that carry a Cookie, and sign-in/sign-up when they carry an Origin),
// what the cookie cache does to a cookie jar, and that the client throws when the server cannot be reached.
import { describe, expect, test } from "bun:test";
import { createAuthClient } from "better-auth/client";
import { cleanUpAfterFile, createTestApp, freePort, inProcessFetch, PASSWORD, SITE_ORIGIN, uniqueEmail, expectError } from "../helpers.ts";

cleanUpAfterFile();

const t = await createTestApp();

/** A request as curl sends it: no Origin unless given. */
const curl = (path: string, init: { method?: string; headers?: Record<string, string>; json?: unknown } = {}) =>
  t.app.handle(
    new Request(new URL(path, t.config.baseUrl).toString(), {
      method: init.method ?? (init.json === undefined ? "GET" : "POST"),
      headers: { ...(init.json === undefined ? {} : { "content-type": "application/json" }), ...init.headers },
      body: init.json === undefined ? undefined : JSON.stringify(init.json),
    }),
  );

/** What a cookie jar (curl -c/-b) holds after `response`: every cookie it set, as one Cookie header. */
const jarOf = (response: Response) =>
  response.headers
    .getSetCookie()
    .map((cookie) => cookie.split(";")[0]!)
    .join("; ");


async function signUpWithCurl() {
  const email = uniqueEmail("curl");
  const response = await curl("/api/auth/sign-up/email", { json: { name: "Script", email, password: PASSWORD } });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { token: string };
  return { email, response, bearer: response.headers.get("set-auth-token")!, unsigned: body.token, jar: jarOf(response) };
}

describe("which value goes where", () => {
  test("set-auth-token is the signed value of the session cookie (token.signature), the body's token its unsigned part", async () => {
    const { response, bearer, unsigned } = await signUpWithCurl();
    const sessionCookie = response.headers.getSetCookie().find((cookie) => cookie.startsWith("better-auth.session_token="))!;
    expect(decodeURIComponent(sessionCookie.split(";")[0]!.split("=")[1]!)).toBe(bearer);
    expect(bearer.split(".")[0]).toBe(unsigned);
    const session = await curl("/api/auth/get-session", { headers: { authorization: `Bearer ${bearer}` } });
    expect(((await session.json()) as { user: { role: string } }).user.role).toBe("user");
  });
});

describe("when an Origin is needed", () => {
  test("sign-up and sign-in without an Origin and without a cookie work", async () => {
    const { email } = await signUpWithCurl();
    expect((await curl("/api/auth/sign-in/email", { json: { email, password: PASSWORD } })).status).toBe(200);
  });

  test("a POST carrying a cookie needs an Origin from CORS_ORIGINS: none answers 403 MISSING_OR_NULL_ORIGIN", async () => {
    const { jar } = await signUpWithCurl();
    const without = await curl("/api/auth/update-user", { json: { name: "Renamed" }, headers: { cookie: jar } });
    await expectError(without, 403, "MISSING_OR_NULL_ORIGIN");
    const unlisted = await curl("/api/auth/update-user", { json: { name: "Renamed" }, headers: { cookie: jar, origin: "https://elsewhere.example" } });
    await expectError(unlisted, 403, "INVALID_ORIGIN");
    const listed = await curl("/api/auth/update-user", { json: { name: "Renamed" }, headers: { cookie: jar, origin: SITE_ORIGIN } });
    expect(listed.status).toBe(200);
  });

  test("a GET carrying a cookie, and a POST with the bearer token and no cookie, need no Origin", async () => {
    const { jar, bearer } = await signUpWithCurl();
    const session = await curl("/api/auth/get-session", { headers: { cookie: jar } });
    expect(((await session.json()) as { user: { name: string } } | null)?.user.name).toBe("Script");
    const update = await curl("/api/auth/update-user", { json: { name: "By bearer" }, headers: { authorization: `Bearer ${bearer}` } });
    expect(update.status).toBe(200);
  });

  test("sign-in with an Origin that CORS_ORIGINS does not list answers 403 INVALID_ORIGIN, even without a cookie", async () => {
    const { email } = await signUpWithCurl();
    const response = await curl("/api/auth/sign-in/email", { json: { email, password: PASSWORD }, headers: { origin: "https://elsewhere.example" } });
    await expectError(response, 403, "INVALID_ORIGIN");
  });
});

describe("the cookie cache and a cookie jar", () => {
  test("a jar holding better-auth.session_data gets no session from get-session within a second of its revocation elsewhere", async () => {
    const { email, jar: signUpJar } = await signUpWithCurl();
    expect(signUpJar).toContain("better-auth.session_data=");
    const signIn = await curl("/api/auth/sign-in/email", { json: { email, password: PASSWORD } });
    const [bearer, jar] = [signIn.headers.get("set-auth-token")!, jarOf(signIn)];
    expect(jar).toContain("better-auth.session_data=");
    // Signed out through the bearer token (another client of the same session): the row is gone.
    expect((await curl("/api/auth/sign-out", { method: "POST", headers: { authorization: `Bearer ${bearer}` } })).status).toBe(200);
    const revokedAt = Date.now();
    let answer: unknown = "not asked";
    while (Date.now() - revokedAt < 1000) {
      answer = await (await curl("/api/auth/get-session", { headers: { cookie: jar } })).json();
      if (answer === null) break;
      await Bun.sleep(20);
    }
    expect(answer).toBeNull();
    const fresh = await curl("/api/auth/get-session?disableCookieCache=true", { headers: { cookie: jar } });
    expect(await fresh.json()).toBeNull();
  });

  test("sign-out with the jar (and a listed Origin) clears both cookies", async () => {
    const { jar } = await signUpWithCurl();
    const signOut = await curl("/api/auth/sign-out", { method: "POST", headers: { cookie: jar, origin: SITE_ORIGIN } });
    expect(signOut.status).toBe(200);
    const cleared = signOut.headers.getSetCookie().filter((cookie) => /Max-Age=0/i.test(cookie)).map((cookie) => cookie.split("=")[0]);
    expect(cleared).toEqual(expect.arrayContaining(["better-auth.session_token", "better-auth.session_data"]));
  });
});

describe("Better Auth's client", () => {
  test("returns { data, error } for an HTTP error, but throws a TypeError when the server cannot be reached", async () => {
    const reachable = createAuthClient({ baseURL: t.config.baseUrl, fetchOptions: { customFetchImpl: inProcessFetch(t.app) } });
    const refused = await reachable.signIn.email({ email: uniqueEmail("nobody"), password: PASSWORD });
    expect(refused.data).toBeNull();
    expect(refused.error?.status).toBe(401);

    const unreachable = createAuthClient({ baseURL: `http://127.0.0.1:${freePort()}` });
    await expect(unreachable.getSession()).rejects.toBeInstanceOf(TypeError);
    await expect(unreachable.signIn.email({ email: uniqueEmail("nobody"), password: PASSWORD })).rejects.toBeInstanceOf(TypeError);
  });
});
