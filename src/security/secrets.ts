// Which secret does what once BETTER_AUTH_SECRETS (a versioned keyring, current first) is set:
// the current version signs cookies and encrypts new data; every version, and BETTER_AUTH_SECRET as the
// pre-rotation secret, still verifies cookies (src/security/keyring.ts) and decrypts what it encrypted
// (Better Auth's `secrets` envelope for versioned data, its legacy secret for data from before).
import type { Config } from "../config.ts";

type SecretSettings = Pick<Config, "secret" | "secrets">;

/** The secret that signs cookies and encrypts new JWT keys. */
export function currentSecret(config: SecretSettings): string {
  const current = config.secrets?.[0]?.value ?? config.secret;
  if (!current) throw new Error("no secret configured (BETTER_AUTH_SECRET or BETTER_AUTH_SECRETS)");
  return current;
}

/** Secrets whose cookies are still accepted: older versions, then the pre-rotation secret. */
export function previousSecrets(config: SecretSettings): string[] {
  const older = (config.secrets ?? []).slice(1).map((secret) => secret.value);
  return [...older, ...(config.secret ? [config.secret] : [])].filter((secret) => secret !== currentSecret(config));
}

/** Better Auth's `secret` and `secrets` options, both explicit so it never reads the environment itself. */
export function betterAuthSecretOptions(config: SecretSettings): { secret: string; secrets?: { version: number; value: string }[] } {
  if (!config.secrets) return { secret: currentSecret(config) };
  // `secret` is Better Auth's legacy secret: it decrypts data written before versioning (JWT keys
  // encrypted while only BETTER_AUTH_SECRET was set). Without one, the current version stands in.
  return { secret: config.secret ?? currentSecret(config), secrets: config.secrets.map(({ version, value }) => ({ version, value })) };
}
