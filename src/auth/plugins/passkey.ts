// Passkeys (WebAuthn): register, sign in, list and delete, through @better-auth/passkey on the
// `passkeys` table. The relying party is the site (PASSKEY_RP_ID), its pages are PASSKEY_ORIGINS.
import { passkey } from "@better-auth/passkey";
import type { BetterAuthPlugin } from "better-auth";
import { createAuthMiddleware, getSessionFromCtx } from "better-auth/api";
import { apiError } from "../../errors.ts";
import type { Config } from "../../config.ts";

export const passkeySchema = {
  passkey: {
    modelName: "passkeys",
    fields: {
      publicKey: "public_key",
      userId: "user_id",
      credentialID: "credential_id",
      deviceType: "device_type",
      backedUp: "backed_up",
      createdAt: "created_at",
    },
  },
};

export function passkeyPlugin(config: Config) {
  const { rpId, rpName, origins } = config.plugins.passkey;
  return passkey({
    rpID: rpId,
    rpName,
    // WebAuthn 7.1 step 9 / 7.2 step 13: the client data's origin must be one of the site's pages;
    // a page elsewhere cannot use a passkey of this relying party.
    origin: origins,
    // ASVS 2.7.x / WebAuthn 6.2.3: user verification (PIN, biometrics) makes the passkey a
    // multi-factor authenticator on its own.
    authenticatorSelection: { residentKey: "preferred", userVerification: "required" },
    schema: passkeySchema,
  });
}

/** Endpoints that act on one passkey named by `id` in the body. */
const PASSKEY_BY_ID = new Set(["/passkey/delete-passkey", "/passkey/update-passkey"]);

/**
 * ASVS 4.2.1 (no insecure direct object references): a passkey id that is not the caller's answers
 * exactly like an unknown one, 404 PASSKEY_NOT_FOUND. The plugin answers another user's id with a
 * bodyless 401, which tells that the id exists and carries no error code.
 */
export function passkeyOwnership(): BetterAuthPlugin {
  return {
    id: "passkey-ownership",
    hooks: {
      before: [
        {
          matcher: (context) => PASSKEY_BY_ID.has(context.path ?? ""),
          handler: createAuthMiddleware(async (ctx) => {
            const id = (ctx.body as { id?: unknown } | undefined)?.id;
            if (typeof id !== "string") return; // the endpoint's own validation answers
            const session = await getSessionFromCtx(ctx).catch(() => null);
            if (!session) return; // the endpoint answers 401
            const owned = await ctx.context.adapter.findOne<{ id: string }>({
              model: "passkey",
              where: [
                { field: "id", value: id },
                { field: "userId", value: session.user.id },
              ],
            });
            if (!owned) throw apiError("PASSKEY_NOT_FOUND");
          }),
        },
      ],
    },
  };
}
