// Passkeys (WebAuthn): register, sign in, list and delete, through @better-auth/passkey on the
// `passkeys` table. The relying party is the site (PASSKEY_RP_ID), its pages are PASSKEY_ORIGINS.
import { passkey } from "@better-auth/passkey";
import type { Config } from "./config.ts";

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
