// JWT signing-key rotation: `bun run keys:rotate` adds a new key pair, which signs from then on, and
// retires the previous ones (expires_at = now). A retired key no longer signs but stays published in
// GET /api/auth/jwks for the grace period (JWKS_GRACE_PERIOD_S, 30 days), so every token signed
// before the rotation still verifies until it expires. ASVS 6.4.2 (keys can be replaced), RFC 7517 §4.5 (kid).
import { createAuth, insertSigningKey, JWKS_GRACE_PERIOD_S, type Auth } from "../auth/better-auth.ts";
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
    await tx`select pg_advisory_xact_lock(hashtext('auth-server:jwks'))`;
    const retired = await tx<{ id: string }[]>`
      update jwks set expires_at = now() where expires_at is null or expires_at > now() returning id`;
    const kid = await insertSigningKey(auth, tx, config);
    return { kid, retired: retired.map((row) => row.id) };
  });
}

if (import.meta.main) {
  const { ConfigError, loadConfig } = await import("../config.ts");
  const { openDatabase } = await import("../db/pool.ts");
  const { createLogger } = await import("../ops/log.ts");
  const { ensureSecret } = await import("./development-secret.ts");
  if (process.argv[2] !== "rotate") {
    console.error("usage: bun src/security/signing-keys.ts rotate");
    process.exit(2);
  }
  let database: Awaited<ReturnType<typeof openDatabase>> | undefined;
  try {
    const logger = createLogger("warn");
    const config = ensureSecret(loadConfig(), logger);
    database = await openDatabase(config);
    const auth = createAuth({ config, sql: database.sql, logger });
    const { kid, retired } = await rotateSigningKey(auth, database.sql, config);
    console.log(`new signing key ${kid}; ${retired.length} previous key(s) retired, still in the JWKS for ${JWKS_GRACE_PERIOD_S / 86400} days`);
  } catch (error) {
    console.error(`keys: ${error instanceof ConfigError ? error.message : error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  } finally {
    await database?.close();
  }
}
