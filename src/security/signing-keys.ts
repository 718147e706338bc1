// JWT signing-key rotation: `bun run keys:rotate` adds a new key pair, which signs from then on, and
// retires the previous ones (expires_at = now). A retired key no longer signs but stays published in
// GET /api/auth/jwks for the grace period (JWKS_GRACE_PERIOD_S, 30 days), so every token signed
// before the rotation still verifies until it expires. ASVS 6.4.2 (keys can be replaced), RFC 7517 §4.5 (kid).
import { insertSigningKey, SIGNING_KEY_LOCK, type Auth } from "../auth/better-auth.ts";
import type { Config } from "../config.ts";
import type { Sql } from "../db/pool.ts";

export interface Rotation {
  /** The id (JWT `kid`) of the new signing key. */
  kid: string;
  /** The keys that stopped signing. */
  retired: string[];
}

/** Under the same advisory lock as the first key, so a rotation and a starting instance do not race. */
export async function rotateSigningKey(auth: Auth, sql: Sql, config: Config): Promise<Rotation> {
  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext(${SIGNING_KEY_LOCK}))`;
    const retired = await tx<{ id: string }[]>`
      update jwks set expires_at = now() where expires_at is null or expires_at > now() returning id`;
    const kid = await insertSigningKey(auth, tx, config);
    return { kid, retired: retired.map((row) => row.id) };
  });
}
