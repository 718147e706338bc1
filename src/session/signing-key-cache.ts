// The JWT plugin's current signing key, read from the jwks table, decrypted and imported once a minute.
import { symmetricDecrypt } from "better-auth/crypto";
import { importJWK } from "jose";
import type { Sql } from "../db/pool.ts";
import { columnOf, quote, type AuthTables } from "./session-lookup.ts";

// How long a decrypted, imported signing key is reused before the jwks table is read again; a
// rotated key is picked up within this time (old keys stay in the JWKS for their grace period).
const SIGNING_KEY_TTL_MS = 60_000;

export type SigningKey = { alg: string; kid: string; privateKey: CryptoKey | Uint8Array };

/** The current signing key (null: none yet, Better Auth mints one); loaded again after SIGNING_KEY_TTL_MS. */
export function createSigningKeyCache(
  sql: Sql,
  tables: AuthTables,
  options: { algorithm: string; disablePrivateKeyEncryption?: boolean; secretConfig: Parameters<typeof symmetricDecrypt>[0]["key"] },
): () => Promise<SigningKey | null> {
  const { algorithm } = options;
  const jwksTable = tables.jwks;
  const column = (key: string) => columnOf(tables, "jwks", key);
  const keyQuery = jwksTable
    ? `select id, ${column("privateKey")} as private_key, ${column("alg")} as alg from ${quote(jwksTable.modelName)}` +
      ` where (${column("alg")} = $1 or ${column("alg")} is null)` +
      ` and (${column("expiresAt")} is null or ${column("expiresAt")} > now())` +
      ` order by ${column("createdAt")} desc limit 1`
    : "";
  let signingKey: { value: Promise<SigningKey | null>; loadedAt: number } | undefined;

  async function loadSigningKey(): Promise<SigningKey | null> {
    const [row] = await sql.unsafe(keyQuery, [algorithm], { prepare: true });
    if (!row) return null; // no key yet: Better Auth mints one
    const privateJwk = options.disablePrivateKeyEncryption ? row.private_key : await symmetricDecrypt({ key: options.secretConfig, data: JSON.parse(row.private_key) });
    const alg = row.alg ?? algorithm;
    return { alg, kid: row.id as string, privateKey: (await importJWK(JSON.parse(privateJwk), alg)) as CryptoKey | Uint8Array };
  }

  return () => {
    if (!signingKey || Date.now() - signingKey.loadedAt > SIGNING_KEY_TTL_MS) {
      const value = loadSigningKey();
      signingKey = { value, loadedAt: Date.now() };
      value.catch(() => (signingKey = undefined));
    }
    return signingKey.value;
  };
}
