// Social and OpenID Connect sign-in: GitHub and Google when their client ids are set, and any
// standard OpenID provider (Keycloak, Auth0, Entra ...) through the generic OAuth plugin from
// OIDC_* settings. Callback URLs are {BETTER_AUTH_URL}/api/auth/callback/{provider}.
import type { BetterAuthOptions } from "better-auth";
import { genericOAuth } from "better-auth/plugins";
import type { Config } from "./config.ts";

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
  ];
}
