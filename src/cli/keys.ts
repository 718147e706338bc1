// `bun run keys:rotate` (`bun src/cli/keys.ts rotate`): a new JWT signing key, the previous ones retired
// but still published for the grace period (src/security/signing-keys.ts).
import { createAuth, JWKS_GRACE_PERIOD_S } from "../auth/better-auth.ts";
import { createLogger } from "../ops/log.ts";
import { ensureSecret } from "../security/development-secret.ts";
import { rotateSigningKey } from "../security/signing-keys.ts";
import { byMessage, runCommand } from "./run.ts";

async function main(): Promise<void> {
  if (process.argv[2] !== "rotate") {
    console.error("usage: bun src/cli/keys.ts rotate");
    process.exit(2);
  }
  const logger = createLogger("warn");
  await runCommand({
    name: "keys",
    prepare: (config) => ({ config: ensureSecret(config, logger) }),
    async run({ config }, sql) {
      const auth = createAuth({ config, sql, logger });
      const { kid, retired } = await rotateSigningKey(auth, sql, config);
      console.log(`new signing key ${kid}; ${retired.length} previous key(s) retired, still in the JWKS for ${JWKS_GRACE_PERIOD_S / 86400} days`);
    },
    explain: (error) => byMessage(error) ?? { message: String(error), exitCode: 1 },
  });
}

// A function, not top-level await: the production bundle is CommonJS (package.json build), which has none.
if (import.meta.main) void main();
