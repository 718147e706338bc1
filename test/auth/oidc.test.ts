// OpenID Connect sign-in end to end against a real provider (oidc-provider, test/oidc-provider.ts),
// driven by Better Auth's client: PKCE and nonce on the authorization request, a new user with its
// session and `accounts` row, linking to an existing verified user for a trusted provider only, and a
// tampered `state` refused, the `iss` parameter required of a provider that announces it (RFC 9207).
// Plus the GitHub/Google settings and their callback URLs.
import { describe, expect, test } from "bun:test";
import makeFetchCookie from "fetch-cookie";
import { ConfigError } from "../../src/config.ts";
import { cleanUpAfterFile, countIdentityRows, createTestApp, createTestClient, inProcessFetch, PASSWORD, testConfig, uniqueEmail, type TestApp } from "../helpers.ts";
import { startOidcProvider, type TestOidcProvider } from "../oidc-provider.ts";

cleanUpAfterFile();

const BASE_URL = "http://localhost:3001";
const CALLBACK = `${BASE_URL}/api/auth/callback/school`;
const SITE_PAGE = "http://localhost:3000/courses";

// The provider runs before the auth servers: Better Auth fetches its discovery document at start-up.
const op = await startOidcProvider({ redirectUri: CALLBACK, users: [] });
const oidcEnv = (trusted: string) => ({
  OIDC_DISCOVERY_URL: op.discoveryUrl,
  OIDC_CLIENT_ID: op.clientId,
  OIDC_CLIENT_SECRET: op.clientSecret,
  OIDC_PROVIDER_ID: "school",
  OAUTH_TRUSTED_PROVIDERS: trusted,
});
const trusting = await createTestApp(oidcEnv("school"));
const untrusting = await createTestApp(oidcEnv("github,google"));

const signInFailures = async (app: TestApp) =>
  (await app.db.sql<{ n: number }[]>`select count(*)::int as n from auth_events where type = 'sign_in_failed'`)[0]!.n;

/** A provider user with a fresh address. */
function providerUser(label: string, emailVerified = true, email = uniqueEmail(label)) {
  const user = { sub: `${label}-${crypto.randomUUID()}`, email, emailVerified, name: `${label} at school` };
  op.users.set(user.sub, user);
  return user;
}

/** Better Auth's client with a cookie jar on `t`, and the same jar's fetch for following redirects by hand. */
function browserOn(t: TestApp) {
  const { client, jar } = createTestClient({ baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) });
  const fetchWithJar = makeFetchCookie(inProcessFetch(t.app), jar);
  return { client, jar, fetch: fetchWithJar };
}

/**
 * signIn.social for the provider, through the provider's login (login_hint picks the user), and the
 * callback on the auth server; `tamper` may change the callback URL first. Returns the callback's answer.
 */
async function signInWithProvider(t: TestApp, sub: string, tamper?: (callback: URL) => void) {
  const browser = browserOn(t);
  const { data, error } = await browser.client.signIn.social({ provider: "school", callbackURL: SITE_PAGE, errorCallbackURL: `${SITE_PAGE}/sign-in-failed`, loginHint: sub });
  expect(error).toBeNull();
  const authorizationUrl = new URL(data!.url!);
  const callback = await op.authorize(authorizationUrl.toString());
  expect(callback.origin + callback.pathname).toBe(CALLBACK);
  tamper?.(callback);
  const response = await browser.fetch(callback.toString(), { redirect: "manual" });
  return { ...browser, authorizationUrl, callback, response };
}

/** A user signed up with a password on `t`, its email marked verified (as the verification link would) or not. */
async function localUser(t: TestApp, label: string, verified: boolean) {
  const email = uniqueEmail(label);
  const { client } = createTestClient({ baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) });
  const { data, error } = await client.signUp.email({ name: `Local ${label}`, email, password: PASSWORD });
  expect(error).toBeNull();
  if (verified) await t.db.sql`update users set email_verified = true where id = ${data!.user.id}`;
  return { email, id: data!.user.id };
}

const accountsOf = (t: TestApp, userId: string) =>
  t.db.sql<{ provider_id: string; account_id: string; id_token: string | null }[]>`
    select provider_id, account_id, id_token from accounts where user_id = ${userId} order by provider_id`;

describe("OpenID Connect sign-in", () => {
  test("a new user signs in through the provider: PKCE S256 and a nonce on the request, a session, a user and an accounts row", async () => {
    const alice = providerUser("alice");
    const failuresBefore = await signInFailures(trusting);
    const { client, authorizationUrl, response } = await signInWithProvider(trusting, alice.sub);

    const request = Object.fromEntries(authorizationUrl.searchParams);
    expect(request).toMatchObject({ client_id: op.clientId, redirect_uri: CALLBACK, response_type: "code", code_challenge_method: "S256", login_hint: alice.sub });
    expect(request.code_challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(request.nonce!.length).toBeGreaterThan(10);
    expect(request.scope!.split(" ")).toEqual(expect.arrayContaining(["openid", "email", "profile"]));

    expect(response.status).toBe(302);
    expect(response.headers.get("location")).toBe(SITE_PAGE);
    const { data: session } = await client.getSession();
    expect(session?.user).toMatchObject({ email: alice.email, name: alice.name, emailVerified: true });

    const accounts = await accountsOf(trusting, session!.user.id);
    expect(accounts).toHaveLength(1);
    expect(accounts[0]).toMatchObject({ provider_id: "school", account_id: alice.sub });
    expect(accounts[0]!.id_token!.split(".")).toHaveLength(3);

    // A second sign-in finds the same user through the accounts row.
    const again = await signInWithProvider(trusting, alice.sub);
    expect((await again.client.getSession()).data?.user.id).toBe(session!.user.id);
    expect(await accountsOf(trusting, session!.user.id)).toHaveLength(1);

    // ASVS 7.1.3 / 7.2.1: both are successful sign-ins in the audit trail, by the provider's id; the
    // callback's redirect is not a failure.
    const events = await trusting.db.sql`select type, details from auth_events where user_id = ${session!.user.id} order by id`;
    // The first sign-in created the user: it is a sign-up by the provider too; the second is not.
    expect([...events]).toEqual([
      { type: "sign_up", details: { method: "school" } },
      { type: "sign_in", details: { method: "school" } },
      { type: "sign_in", details: { method: "school" } },
    ]);
    expect(await signInFailures(trusting)).toEqual(failuresBefore);
  });

  test("the provider refuses an authorization request without PKCE", async () => {
    const bob = providerUser("bob");
    const { data } = await browserOn(trusting).client.signIn.social({ provider: "school", callbackURL: SITE_PAGE, loginHint: bob.sub });
    const withoutPkce = new URL(data!.url!);
    withoutPkce.searchParams.delete("code_challenge");
    withoutPkce.searchParams.delete("code_challenge_method");
    const answer = await op.authorize(withoutPkce.toString());
    expect(answer.origin + answer.pathname).toBe(CALLBACK);
    expect(answer.searchParams.get("error")).toBe("invalid_request");
    expect(answer.searchParams.get("code")).toBeNull();
  });

  test("a trusted provider links to the existing verified user with that email: same user, one more accounts row", async () => {
    const { email, id } = await localUser(trusting, "carol", true);
    const carol = providerUser("carol", true, email);

    const { client, response } = await signInWithProvider(trusting, carol.sub);
    expect(response.headers.get("location")).toBe(SITE_PAGE);
    expect((await client.getSession()).data?.user.id).toBe(id);
    expect((await accountsOf(trusting, id)).map((account) => account.provider_id)).toEqual(["credential", "school"]);
    expect((await trusting.db.sql`select count(*)::int as n from users where email = ${email}`)[0]!.n).toBe(1);
  });

  test("a trusted provider does not link to a user whose own email is unverified", async () => {
    const { email, id } = await localUser(trusting, "dan", false);
    const dan = providerUser("dan", true, email);
    const before = await countIdentityRows(trusting.db.sql);

    const { client, response } = await signInWithProvider(trusting, dan.sub);
    const location = new URL(response.headers.get("location")!);
    expect(location.origin + location.pathname).toBe(`${SITE_PAGE}/sign-in-failed`);
    expect(location.searchParams.get("error")).toBe("account_not_linked");
    expect((await client.getSession()).data).toBeNull();
    expect(await accountsOf(trusting, id)).toHaveLength(1);
    expect(await countIdentityRows(trusting.db.sql)).toEqual(before);
  });

  test("an untrusted provider never links by email, even to a verified user and with email_verified true", async () => {
    const { email, id } = await localUser(untrusting, "erin", true);
    const erin = providerUser("erin", true, email);
    const before = await countIdentityRows(untrusting.db.sql);

    const { client, response } = await signInWithProvider(untrusting, erin.sub);
    expect(response.status).toBe(302);
    expect(new URL(response.headers.get("location")!).searchParams.get("error")).toBe("account_not_linked");
    expect((await client.getSession()).data).toBeNull();
    expect(await accountsOf(untrusting, id)).toHaveLength(1);
    expect(await countIdentityRows(untrusting.db.sql)).toEqual(before);
  });

  test("an untrusted provider's new user is created with an unverified email", async () => {
    const frank = providerUser("frank");
    const { client } = await signInWithProvider(untrusting, frank.sub);
    const { data: session } = await client.getSession();
    expect(session?.user).toMatchObject({ email: frank.email, emailVerified: false });
  });

  test("a tampered state is refused with a clear error: no 5xx, no session, nothing written", async () => {
    const gina = providerUser("gina");
    const before = await countIdentityRows(trusting.db.sql);
    const { client, response } = await signInWithProvider(trusting, gina.sub, (callback) => {
      const state = callback.searchParams.get("state")!;
      callback.searchParams.set("state", `${state.slice(0, -2)}${state.endsWith("AA") ? "BB" : "AA"}`);
    });
    expect(response.status).toBe(302);
    const location = new URL(response.headers.get("location")!);
    // The state no longer names the request, so its errorCallbackURL is unknown: Better Auth's error page.
    expect(location.toString()).toBe(`${BASE_URL}/api/auth/error?error=state_mismatch`);
    expect((await trusting.request(location.pathname + location.search)).status).toBeLessThan(500);
    expect((await client.getSession()).data).toBeNull();
    expect(await countIdentityRows(trusting.db.sql)).toEqual(before);
    // ASVS 7.2.1: the refused callback is a failed sign-in in the audit trail.
    const [failure] = await trusting.db.sql`select user_id, details from auth_events where type = 'sign_in_failed' order by id desc limit 1`;
    expect(failure).toEqual({ user_id: null, details: { method: "school", reason: "invalid_request" } });
  });
});

test("a callback carried to another browser (login CSRF) is refused: the state belongs to the first browser's cookie", async () => {
  const hana = providerUser("hana");
  const first = browserOn(trusting);
  const { data } = await first.client.signIn.social({ provider: "school", callbackURL: SITE_PAGE, loginHint: hana.sub });
  const callback = await op.authorize(data!.url!);
  const before = await countIdentityRows(trusting.db.sql);

  const victim = browserOn(trusting);
  const response = await victim.fetch(callback.toString(), { redirect: "manual" });
  expect(response.status).toBe(302);
  expect(new URL(response.headers.get("location")!).searchParams.get("error")).toBe("state_mismatch");
  expect((await victim.client.getSession()).data).toBeNull();
  expect(await countIdentityRows(trusting.db.sql)).toEqual(before);
});

describe("social provider settings", () => {
  test("GitHub and Google are on only with both a client id and a secret; half a pair is a configuration error", () => {
    expect(testConfig({}).plugins).toMatchObject({ github: undefined, google: undefined });
    expect(testConfig({ GITHUB_CLIENT_ID: "gh-id", GITHUB_CLIENT_SECRET: "gh-secret" }).plugins.github).toEqual({ clientId: "gh-id", clientSecret: "gh-secret" });
    expect(() => testConfig({ GITHUB_CLIENT_ID: "gh-id" })).toThrow(ConfigError);
    expect(() => testConfig({ GOOGLE_CLIENT_SECRET: "g-secret" })).toThrow(/GOOGLE_CLIENT_ID/);
  });

  test("the callback URLs are {BETTER_AUTH_URL}/api/auth/callback/{provider}; a provider without settings is refused", async () => {
    const t = await createTestApp({ GITHUB_CLIENT_ID: "gh-id", GITHUB_CLIENT_SECRET: "gh-secret", GOOGLE_CLIENT_ID: "g-id", GOOGLE_CLIENT_SECRET: "g-secret" });
    const { client } = createTestClient({ baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) });
    for (const provider of ["github", "google"] as const) {
      const { data, error } = await client.signIn.social({ provider, callbackURL: SITE_PAGE });
      expect(error).toBeNull();
      const url = new URL(data!.url!);
      expect(url.searchParams.get("redirect_uri")).toBe(`${BASE_URL}/api/auth/callback/${provider}`);
      expect(url.searchParams.get("client_id")).toBe(provider === "github" ? "gh-id" : "g-id");
      expect(url.searchParams.get("state")).toBeTruthy();
    }

    const plain = await createTestApp();
    const { client: plainClient } = createTestClient({ baseUrl: plain.config.baseUrl, fetch: inProcessFetch(plain.app) });
    const { error } = await plainClient.signIn.social({ provider: "github", callbackURL: SITE_PAGE });
    expect(error?.status).toBe(404);
  });
});

describe("the callback with absent or empty parameters", () => {
  // Every shape of "absent" for what the callback reads (state, code, iss, error): missing, empty,
  // whitespace, repeated, URL-encoded. None signs anyone in, writes an identity row, answers 5xx, or
  // sends the browser anywhere but the site's error page or the auth server's own (ASVS 5.1.3, 5.1.5).
  // The provider announces authorization_response_iss_parameter_supported, so a response without
  // `iss` is refused too (RFC 9207 section 2.4: the defence against mix-up attacks between providers).
  const shapes: Array<[string, (callback: URL) => void]> = [];
  for (const name of ["state", "code", "iss"]) {
    shapes.push([`${name} missing`, (callback) => callback.searchParams.delete(name)]);
    for (const value of ["", " ", "%20", "null", "undefined"]) shapes.push([`${name}=${JSON.stringify(value)}`, (callback) => callback.searchParams.set(name, value)]);
    shapes.push([`${name} twice`, (callback) => callback.searchParams.append(name, callback.searchParams.get(name) ?? "x")]);
  }
  shapes.push(["error=access_denied next to the code", (callback) => callback.searchParams.set("error", "access_denied")]);
  for (const [label, tamper] of shapes) {
    test(`${label}: no session, nothing written, no 5xx, no redirect off the site`, async () => {
      const user = providerUser("absent");
      const before = await countIdentityRows(trusting.db.sql);
      const { client, response } = await signInWithProvider(trusting, user.sub, tamper);
      expect(response.status).toBeLessThan(500);
      const location = response.headers.get("location");
      if (location) expect([new URL(BASE_URL).origin, new URL(SITE_PAGE).origin]).toContain(new URL(location, BASE_URL).origin);
      expect((await client.getSession()).data).toBeNull();
      expect(await countIdentityRows(trusting.db.sql)).toEqual(before);
    });
  }

  test("an empty error next to a valid code is no error: Better Auth reads it as absent, and the sign-in is the user's own", async () => {
    const user = providerUser("empty-error");
    const { client } = await signInWithProvider(trusting, user.sub, (callback) => callback.searchParams.set("error", ""));
    expect((await client.getSession()).data?.user.email).toBe(user.email);
  });
});

// RFC 9207 §2.4 (mix-up defence): the provider's discovery announces
// authorization_response_iss_parameter_supported, so a callback must carry iss equal to its issuer
// (simple string comparison); without it, empty, or any other value, the sign-in is refused.
describe("the iss parameter of the authorization response (RFC 9207)", () => {
  /** A sign-in whose callback `tamper` changed: refused to the errorCallbackURL, no session, nothing written. */
  async function expectRefused(tamper: (callback: URL) => void) {
    const user = providerUser("iss");
    const before = await countIdentityRows(trusting.db.sql);
    const failuresBefore = await signInFailures(trusting);
    const { client, response } = await signInWithProvider(trusting, user.sub, tamper);
    expect(response.status).toBe(302);
    const location = new URL(response.headers.get("location")!);
    expect(location.origin + location.pathname).toBe(`${SITE_PAGE}/sign-in-failed`);
    expect(location.searchParams.get("error")).toBe("issuer_mismatch");
    expect(response.headers.getSetCookie().some((cookie) => /session_token=[^;]+/.test(cookie) && !/max-age=0/i.test(cookie))).toBe(false);
    expect((await client.getSession()).data).toBeNull();
    expect(await countIdentityRows(trusting.db.sql)).toEqual(before);
    expect(await signInFailures(trusting)).toBe(failuresBefore + 1);
  }

  test("the provider announces the parameter and sends its issuer; that callback signs in", async () => {
    const discovery = (await (await fetch(op.discoveryUrl)).json()) as Record<string, unknown>;
    expect(discovery.authorization_response_iss_parameter_supported).toBe(true);
    const ivy = providerUser("ivy");
    const { client, callback, response } = await signInWithProvider(trusting, ivy.sub);
    expect(callback.searchParams.get("iss")).toBe(op.issuer);
    expect(response.headers.get("location")).toBe(SITE_PAGE);
    expect((await client.getSession()).data?.user.email).toBe(ivy.email);
  });

  test("the issuer percent-encoded in the query (as browsers may send it) is the same value and signs in", async () => {
    const jon = providerUser("jon");
    const { client, response } = await signInWithProvider(trusting, jon.sub, (callback) => {
      callback.search = callback.search.replace(/([?&])iss=[^&]*/, `$1iss=${op.issuer.replace(/[:/.]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`);
      expect(callback.searchParams.get("iss")).toBe(op.issuer);
    });
    expect(response.headers.get("location")).toBe(SITE_PAGE);
    expect((await client.getSession()).data?.user.email).toBe(jon.email);
  });

  test("a callback without iss is refused", async () => {
    await expectRefused((callback) => callback.searchParams.delete("iss"));
  });

  test("a callback with an empty iss is refused", async () => {
    await expectRefused((callback) => callback.searchParams.set("iss", ""));
  });

  test("a callback with a bare `iss` (no `=`) is refused", async () => {
    await expectRefused((callback) => {
      callback.searchParams.delete("iss");
      callback.search += "&iss";
    });
  });

  test("a callback with another issuer is refused", async () => {
    await expectRefused((callback) => callback.searchParams.set("iss", "https://accounts.example.com"));
  });

  test("near-miss spellings of the issuer are refused: double-encoded, trailing slash, other case, padded", async () => {
    for (const iss of [encodeURIComponent(op.issuer), `${op.issuer}/`, op.issuer.toUpperCase(), ` ${op.issuer}`, `${op.issuer} `]) {
      await expectRefused((callback) => callback.searchParams.set("iss", iss));
    }
  });
});

test("a provider whose discovery does not announce the iss parameter still signs in without one (RFC 9207 §2.4 applies to announcing providers)", async () => {
  // The same provider behind a discovery document without authorization_response_iss_parameter_supported.
  const discovery = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    async fetch() {
      const document = (await (await fetch(op.discoveryUrl)).json()) as Record<string, unknown>;
      delete document.authorization_response_iss_parameter_supported;
      return Response.json(document);
    },
  });
  try {
    const quiet = await createTestApp({ ...oidcEnv("school"), OIDC_DISCOVERY_URL: `http://127.0.0.1:${discovery.port}/.well-known/openid-configuration` });
    const kim = providerUser("kim");
    const { client, response } = await signInWithProvider(quiet, kim.sub, (callback) => callback.searchParams.delete("iss"));
    expect(response.headers.get("location")).toBe(SITE_PAGE);
    expect((await client.getSession()).data?.user.email).toBe(kim.email);
    // A wrong one is still refused: Better Auth compares whatever iss arrives.
    const lea = providerUser("lea");
    const wrong = await signInWithProvider(quiet, lea.sub, (callback) => callback.searchParams.set("iss", "https://accounts.example.com"));
    expect(new URL(wrong.response.headers.get("location")!).searchParams.get("error")).toBe("issuer_mismatch");
  } finally {
    discovery.stop(true);
  }
});
