// Social and OpenID Connect sign-in: GitHub and Google when their client ids are set, and any
// standard OpenID provider (Keycloak, Auth0, Entra ...) through the generic OAuth plugin from
// OIDC_* settings. Callback URLs are {BETTER_AUTH_URL}/api/auth/callback/{provider}.
import type { BetterAuthOptions, BetterAuthPlugin } from "better-auth";
import { createAuthMiddleware } from "better-auth/api";
import { genericOAuth } from "better-auth/plugins";
import type { Config } from "../../config.ts";

/**
 * Account linking (ASVS 2.5.x, OWASP "account takeover via OAuth"): a provider sign-in joins an
 * existing user with the same email only when the provider is trusted (OAUTH_TRUSTED_PROVIDERS) and
 * the existing user's email is verified. An untrusted provider's claim that an address is verified
 * is not taken: its users are created unverified and never linked by email.
 */
function emailVerifiedUnlessUntrusted(config: Config, providerId: string) {
  const trusted = config.plugins.trustedProviders.includes(providerId);
  return (profile: object) => ({ ...nameOf(profile), ...(trusted ? {} : { emailVerified: false }) });
}

/** Some providers send no name; Better Auth requires one: the email's local part stands in. */
function nameOf(profile: object): { name?: string } {
  const { name, email } = profile as { name?: unknown; email?: unknown };
  if (typeof name === "string" && name) return {};
  return { name: typeof email === "string" ? email.split("@")[0] : "" };
}

export function socialProviders(config: Config): NonNullable<BetterAuthOptions["socialProviders"]> {
  const { github, google } = config.plugins;
  return {
    ...(github && { github: { ...github, mapProfileToUser: emailVerifiedUnlessUntrusted(config, "github") } }),
    ...(google && { google: { ...google, mapProfileToUser: emailVerifiedUnlessUntrusted(config, "google") } }),
  };
}

export function accountLinking(config: Config) {
  return {
    enabled: true,
    trustedProviders: config.plugins.trustedProviders,
    // The existing user must have proved the address before a provider can join it.
    requireLocalEmailVerified: true,
  };
}

/** The OpenID Connect provider of OIDC_*, or no plugin. Discovery is fetched at start-up. */
export function oidcPlugins(config: Config) {
  const oidc = config.plugins.oidc;
  if (!oidc) return [];
  const mapped = emailVerifiedUnlessUntrusted(config, oidc.providerId);
  return [
    genericOAuth({
      config: [
        {
          providerId: oidc.providerId,
          discoveryUrl: oidc.discoveryUrl,
          clientId: oidc.clientId,
          clientSecret: oidc.clientSecret,
          scopes: oidc.scopes,
          // RFC 7636 / OAuth 2.0 Security BCP (RFC 9700 2.1.1): PKCE on every authorization request.
          pkce: true,
          // The id_token is checked against the provider's JWKS, issuer, audience and nonce.
          requireIdTokenVerification: true,
          mapProfileToUser: mapped,
        },
      ],
    }),
    issuerParameterRequired(oidc.providerId, oidc.discoveryUrl),
  ];
}

/** Stands in for a missing `iss`: no issuer identifier (a URL) equals it, so Better Auth refuses it. */
const MISSING_ISS = "(no iss parameter)";
const DISCOVERY_TIMEOUT_MS = 10_000;

/**
 * RFC 9207 (OAuth 2.0 Authorization Server Issuer Identification) §2.4: a client that knows its
 * authorization server sends `iss` in authorization responses (the discovery document's
 * `authorization_response_iss_parameter_supported: true`) MUST refuse a response without it. Better
 * Auth compares `iss` with the discovered issuer only when it is present (simple string comparison,
 * as §2.4 asks), so an attacker's mix-up response without `iss` (or with `iss=`) passed.
 *
 * For such a provider a callback without a non-empty `iss` gets an `iss` no issuer can equal, and
 * Better Auth refuses it as every mismatch: the state is used up and the browser is sent to the
 * sign-in's errorCallbackURL with `error=issuer_mismatch`. Only the GET callback is checked: Better
 * Auth answers a form_post (POST) callback by redirecting to the GET one with the same parameters.
 * Discovery is read once, like Better Auth's own; when it cannot be read the parameter is required.
 */
function issuerParameterRequired(providerId: string, discoveryUrl: string): BetterAuthPlugin {
  let supported: Promise<boolean> | undefined;
  const discover = () =>
    (supported ??= fetch(discoveryUrl, { signal: AbortSignal.timeout(DISCOVERY_TIMEOUT_MS) })
      .then(async (response) => {
        if (!response.ok) throw new Error(`discovery answered ${response.status}`);
        const document = (await response.json()) as { authorization_response_iss_parameter_supported?: unknown };
        return document.authorization_response_iss_parameter_supported === true;
      })
      .catch((error: unknown) => {
        supported = undefined; // read again by the next callback
        throw error;
      }));
  return {
    id: "oauth-issuer-parameter",
    init() {
      discover().catch(() => {}); // read at start-up; a failure is retried by the first callback
    },
    hooks: {
      before: [
        {
          matcher: (context) => context.path === "/callback/:id" && context.method === "GET" && context.params?.id === providerId,
          handler: createAuthMiddleware(async (ctx) => {
            const query = (ctx.query ?? {}) as Record<string, unknown>;
            if (typeof query.iss === "string" && query.iss !== "") return; // Better Auth compares it
            if (query.iss !== undefined && typeof query.iss !== "string") return; // its query schema answers
            const required = await discover().catch((error: unknown) => {
              ctx.context.logger.warn(`discovery of "${providerId}" could not be read (${String(error)}); the iss parameter is required`);
              return true;
            });
            if (!required) return;
            ctx.context.logger.warn(`"${providerId}" announces the iss parameter (RFC 9207) but the callback has none: refused`);
            return { context: { query: { ...query, iss: MISSING_ISS } } };
          }),
        },
      ],
    },
  };
}
