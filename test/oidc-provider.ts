// A real OpenID Connect provider for tests: `oidc-provider` on a free loopback port with one static
// confidential client, PKCE required, and an interaction route that signs the user named by
// `login_hint` in (and grants the requested scopes) without a browser.
//
//   const op = await startOidcProvider({ redirectUri, users: [{ sub: "ada", email, emailVerified: true }] });
//   const t = await createTestApp({ OIDC_DISCOVERY_URL: op.discoveryUrl, OIDC_CLIENT_ID: op.clientId, ... });
//   const callback = await op.authorize(urlFromSignInSocial); // the redirect back to the auth server
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { exportJWK, generateKeyPair } from "jose";
import Provider from "oidc-provider";
import makeFetchCookie from "fetch-cookie";
import { CookieJar } from "tough-cookie";
import { onCleanup } from "./helpers.ts";

export interface OidcUser {
  sub: string;
  email: string;
  emailVerified: boolean;
  name?: string;
}

export interface TestOidcProvider {
  issuer: string;
  discoveryUrl: string;
  clientId: string;
  clientSecret: string;
  /** Users by `sub`; add more while running. */
  users: Map<string, OidcUser>;
  /**
   * Follows an authorization URL through the provider (login by login_hint, consent) like a browser
   * with its own cookies, and returns the URL the provider finally redirects to (the client's callback).
   */
  authorize(authorizationUrl: string): Promise<URL>;
  /** The authorization requests the provider received, as their query parameters. */
  requests: URLSearchParams[];
  stop(): Promise<void>;
}

export async function startOidcProvider(options: { redirectUri: string; users: OidcUser[] }): Promise<TestOidcProvider> {
  const users = new Map(options.users.map((user) => [user.sub, user]));
  const clientId = "learning-platform";
  const clientSecret = `secret-${crypto.randomUUID()}`;
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const signingKey = { ...(await exportJWK(privateKey)), kid: "test-key", alg: "RS256", use: "sig" };
  const requests: URLSearchParams[] = [];

  const http = createServer();
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(http.address() as { port: number }).port}`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [options.redirectUri],
        grant_types: ["authorization_code"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic",
      },
    ],
    jwks: { keys: [signingKey] },
    // RFC 7636: every authorization request of every client must carry an S256 code challenge.
    pkce: { required: () => true },
    cookies: { keys: [crypto.randomUUID()] },
    // Lifetimes set, so the provider does not warn about its defaults.
    ttl: { Interaction: 600, Session: 600, Grant: 600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, sub) {
      const user = users.get(sub);
      if (!user) return undefined;
      return {
        accountId: sub,
        claims: async () => ({ sub, email: user.email, email_verified: user.emailVerified, ...(user.name && { name: user.name }) }),
      };
    },
  });

  /** The login page: no form, the user named by login_hint is signed in and the scopes granted. */
  async function interaction(req: IncomingMessage, res: ServerResponse) {
    const details = await provider.interactionDetails(req, res);
    const accountId = String(details.params.login_hint ?? "");
    if (!users.has(accountId)) {
      await provider.interactionFinished(req, res, { error: "access_denied", error_description: "unknown user" }, { mergeWithLastSubmission: false });
      return;
    }
    const grant = details.grantId
      ? (await provider.Grant.find(details.grantId))!
      : new provider.Grant({ accountId, clientId: String(details.params.client_id) });
    grant.addOIDCScope(String(details.params.scope));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { login: { accountId }, consent: { grantId } }, { mergeWithLastSubmission: false });
  }

  const callback = provider.callback();
  http.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", issuer);
    if (url.pathname === "/auth") requests.push(url.searchParams);
    if (url.pathname.startsWith("/interaction/")) {
      interaction(req, res).catch((error) => {
        res.statusCode = 500;
        res.end(String(error));
      });
      return;
    }
    callback(req, res);
  });

  let stopped: Promise<void> | undefined;
  const stop = () => (stopped ??= new Promise<void>((resolve) => http.close(() => resolve())));
  onCleanup(async () => {
    http.closeAllConnections();
    await stop();
  });

  return {
    issuer,
    discoveryUrl: `${issuer}/.well-known/openid-configuration`,
    clientId,
    clientSecret,
    users,
    requests,
    stop,
    async authorize(authorizationUrl) {
      const browser = makeFetchCookie(fetch, new CookieJar());
      let url = new URL(authorizationUrl);
      for (let hop = 0; hop < 10; hop++) {
        if (url.origin !== issuer) return url;
        const response = await browser(url, { redirect: "manual" });
        const location = response.headers.get("location");
        if (response.status < 300 || response.status >= 400 || !location) {
          throw new Error(`the provider answered ${response.status} at ${url.pathname}: ${await response.text()}`);
        }
        url = new URL(location, url);
      }
      throw new Error("too many redirects at the provider");
    },
  };
}
