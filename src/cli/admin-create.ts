// `bun run admin:create --email ada@example.com [--name "Ada"] [--password-stdin]`: the way the first
// platform admin comes to be. There is no default or shared admin account (ASVS 2.5.4): an operator
// names a person. An existing user gets the admin role; a new one is created with a password read from
// standard input, or a random one printed once.
import { parseArgs } from "node:util";
import { withAdminRole } from "../auth/plugins/admin.ts";
import { createAuth } from "../auth/better-auth.ts";
import { ConfigError, loadConfig } from "../config.ts";
import { openDatabase } from "../db/pool.ts";
import { createLogger } from "../ops/log.ts";
import { applyMigrations, MigrationError } from "../db/migrate.ts";
import { EMAIL_MAX } from "../http/request-guard.ts";
import { ensureSecret } from "../security/development-secret.ts";

const USAGE = 'usage: bun run admin:create --email <address> [--name "<name>"] [--password-stdin]';

export class AdminCreateError extends Error {
  override name = "AdminCreateError";
}

function parseCommandLine(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: { email: { type: "string" }, name: { type: "string" }, "password-stdin": { type: "boolean", default: false } },
    strict: true,
  });
  const email = values.email?.trim().toLowerCase();
  if (!email) throw new AdminCreateError(`--email is required\n${USAGE}`);
  if (email.length > EMAIL_MAX || !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) throw new AdminCreateError(`"${email}" is not an email address`);
  return { email, name: values.name?.trim() || email.split("@")[0]!, passwordFromStdin: values["password-stdin"] };
}

async function readPassword(): Promise<string> {
  const text = await Bun.stdin.text();
  return text.replace(/\r?\n$/, "");
}

/** A password of 32 base64url characters (192 bits), for an admin who changes it after signing in. */
function generatedPassword(): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString("base64url");
}

async function main(argv: string[]): Promise<number> {
  const { email, name, passwordFromStdin } = parseCommandLine(argv);
  const baseConfig = loadConfig();
  const logger = createLogger(baseConfig.logLevel === "debug" ? "info" : baseConfig.logLevel);
  const config = ensureSecret(baseConfig, logger);
  const database = await openDatabase(config);
  try {
    if (config.migrateOnStart) await applyMigrations(database.sql);
    const sql = database.sql;
    const [existing] = await sql<{ id: string; role: string | null }[]>`select id, role from users where email = ${email}`;
    if (existing) {
      const role = withAdminRole(existing.role);
      if (role === existing.role) {
        console.log(`${email} is already an admin`);
        return 0;
      }
      await sql`update users set role = ${role}, updated_at = now() where id = ${existing.id}`;
      console.log(`${email} is now an admin (role: ${role})`);
      return 0;
    }

    const password = passwordFromStdin ? await readPassword() : generatedPassword();
    if (password.length < config.passwordMinLength || password.length > config.passwordMaxLength) {
      throw new AdminCreateError(`the password must have ${config.passwordMinLength} to ${config.passwordMaxLength} characters`);
    }
    const auth = createAuth({ config, sql, logger });
    // Called from the server side (no request): the admin plugin lets it create a user with a role.
    const { user } = await auth.api.createUser({ body: { email, name, password, role: "admin" } });
    // The operator vouches for the address.
    await sql`update users set email_verified = true, updated_at = now() where id = ${user.id}`;
    console.log(`created the admin ${email}`);
    if (!passwordFromStdin) console.log(`password (shown once; change it after signing in): ${password}`);
    return 0;
  } finally {
    await database.close();
  }
}

if (import.meta.main) {
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (error) {
    if (error instanceof AdminCreateError || error instanceof ConfigError || error instanceof MigrationError) {
      console.error(`admin:create: ${error.message}`);
      process.exitCode = error instanceof AdminCreateError ? 2 : 1;
    } else if (error instanceof TypeError && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS")) {
      console.error(`admin:create: ${error.message}\n${USAGE}`);
      process.exitCode = 2;
    } else {
      console.error("admin:create failed:", error);
      process.exitCode = 1;
    }
  }
}
