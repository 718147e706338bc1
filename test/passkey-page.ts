// The script of the passkey test page (test/auth/passkey.test.ts), bundled for the browser: Better Auth's
// client with the passkey client plugin, on the page as `authClient` for the test to call.
import { passkeyClient } from "@better-auth/passkey/client";
import { createAuthClient } from "better-auth/client";

/** Set when the page is bundled; the auth server's origin. */
declare const AUTH_URL: string;

const authClient = createAuthClient({
  baseURL: AUTH_URL,
  // The auth server is another origin of the same site: its cookies travel only with credentials.
  fetchOptions: { credentials: "include" },
  plugins: [passkeyClient()],
});

export type PasskeyPageClient = typeof authClient;
(globalThis as { authClient?: PasskeyPageClient }).authClient = authClient;
