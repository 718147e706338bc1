// The page's Better Auth client: the auth server lives on another origin, so every call carries
// the session cookie (credentials: "include") and the site's origin must be in its CORS_ORIGINS.
import { createAuthClient } from "better-auth/client";
import { inferAdditionalFields } from "better-auth/client/plugins";

/** Set when the page is bundled (serve.ts); the auth server's BETTER_AUTH_URL. */
declare const AUTH_URL: string;

export const EXPERIENCE_LEVELS = ["beginner", "intermediate", "advanced"] as const;
export const PROFESSIONAL_ROLES = ["student", "researcher", "engineer", "hobbyist", "other"] as const;

export const authClient = createAuthClient({
  baseURL: AUTH_URL,
  fetchOptions: { credentials: "include" },
  plugins: [
    // The server's profile fields, so sign-up and the session are typed with them.
    inferAdditionalFields({
      user: {
        experienceLevel: { type: "string", required: false },
        professionalRole: { type: "string", required: false },
        roleOther: { type: "string", required: false },
        organization: { type: "string", required: false },
      },
    }),
  ],
});

export type Session = typeof authClient.$Infer.Session;
