// Development convenience: a missing BETTER_AUTH_SECRET is generated once and kept under the data
// folder, so sessions survive restarts on a laptop. Production never gets here (config refuses it).
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config.ts";
import type { Logger } from "../ops/log.ts";

export function ensureSecret(config: Config, logger: Logger): Config & { secret: string } {
  if (config.secret) return config as Config & { secret: string };
  // With only BETTER_AUTH_SECRETS, its current version is the secret (src/security/secrets.ts).
  if (config.secrets) return Object.freeze({ ...config, secret: config.secrets[0]!.value });
  const file = join(config.dataDir, "secret");
  let secret: string;
  if (existsSync(file)) {
    secret = readFileSync(file, "utf8").trim();
  } else {
    mkdirSync(config.dataDir, { recursive: true });
    secret = Buffer.from(crypto.getRandomValues(new Uint8Array(48))).toString("base64url");
    writeFileSync(file, secret + "\n", { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  logger.warn(`BETTER_AUTH_SECRET is not set: using a development secret kept in ${file}. Set BETTER_AUTH_SECRET for anything but local development.`);
  return Object.freeze({ ...config, secret });
}
