// Better Auth's own browser client with a cookie jar, and the users it signs up.
import { createAuthClient } from "better-auth/client";
import { passkeyClient } from "@better-auth/passkey/client";
import { adminClient, jwtClient, magicLinkClient, organizationClient, twoFactorClient } from "better-auth/client/plugins";
import type { BetterAuthClientPlugin } from "better-auth/client";
import makeFetchCookie from "fetch-cookie";
import { CookieJar } from "tough-cookie";
import { platformRoles } from "../../src/auth/plugins/admin.ts";
import { organizationAc, organizationRoles } from "../../src/auth/plugins/organization.ts";
import { profileFields } from "../../src/auth/profile.ts";
import { SITE_ORIGIN } from "./app.ts";

/** Better Auth's own browser client, with a cookie jar, talking to `target` from the site's origin. */
export function createTestClient(target: { baseUrl: string; fetch?: typeof fetch }, origin = SITE_ORIGIN) {
  const jar = new CookieJar();
  const fetchWithCookies = makeFetchCookie(target.fetch ?? fetch, jar);
  const client = createAuthClient({
    baseURL: target.baseUrl,
    fetchOptions: { customFetchImpl: fetchWithCookies as unknown as typeof fetch, headers: { origin } },
    plugins: [
      jwtClient(),
      magicLinkClient(),
      profileFieldsClient,
      twoFactorClient(),
      adminClient({ roles: platformRoles }),
      organizationClient({ ac: organizationAc, roles: organizationRoles, teams: { enabled: true } }),
      passkeyClient(),
    ],
  });
  return { client, jar };
}

/** Lets the client send the server's profile fields with sign-up and update-user. */
const profileFieldsClient = {
  id: "profile-fields",
  $InferServerPlugin: {} as { id: "profile-fields"; schema: { user: { fields: typeof profileFields } } },
} satisfies BetterAuthClientPlugin;

