// `bun run admin:create --email ada@example.com [--name "Ada"] [--password-stdin]`: the way the first
// platform admin comes to be. There is no default or shared admin account (ASVS 2.5.4): an operator
// names a person. An existing user gets the admin role; a new one is created with a password read from
// standard input, or a random one printed once.
import { parseArgs } from "node:util";
import { withAdminRole } from "../auth/plugins/admin.ts";
import { createAuth } from "../auth/better-auth.ts";
import type { Config } from "../config.ts";
import type { Sql } from "../db/pool.ts";
import { createLogger, type Logger } from "../ops/log.ts";
import { applyMigrations, MigrationError } from "../db/migrate.ts";
import { EMAIL_MAX } from "../http/request-guard.ts";
import { ensureSecret } from "../security/development-secret.ts";
import { runCommand } from "./run.ts";

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

type AdminRequest = ReturnType<typeof parseCommandLine>;

async function createAdmin({ email, name, passwordFromStdin }: AdminRequest, config: Config & { secret: string }, logger: Logger, sql: Sql): Promise<void> {
  if (config.migrateOnStart) await applyMigrations(sql);
  const [existing] = await sql<{ id: string; role: string | null }[]>`select id, role from users where email = ${email}`;
  if (existing) {
    const role = withAdminRole(existing.role);
    if (role === existing.role) {
      console.log(`${email} is already an admin`);
      return;
    }
    await sql`update users set role = ${role}, updated_at = now() where id = ${existing.id}`;
    console.log(`${email} is now an admin (role: ${role})`);
    return;
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
}

async function main(argv: string[]): Promise<void> {
  let request: AdminRequest;
  try {
    request = parseCommandLine(argv);
  } catch (error) {
    if (error instanceof AdminCreateError) console.error(`admin:create: ${error.message}`);
    else if (error instanceof TypeError && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS")) console.error(`admin:create: ${error.message}\n${USAGE}`);
    else throw error;
    process.exitCode = 2;
    return;
  }
  await runCommand({
    name: "admin:create",
    prepare: (base) => {
      const logger = createLogger(base.logLevel === "debug" ? "info" : base.logLevel);
      return { config: ensureSecret(base, logger), logger };
    },
    run: ({ config, logger }, sql) => createAdmin(request, config, logger, sql),
    explain: (error) =>
      error instanceof AdminCreateError ? { message: error.message, exitCode: 2 } : error instanceof MigrationError ? { message: error.message, exitCode: 1 } : undefined,
  });
}

// A function, not top-level await: the production bundle is CommonJS (package.json build), which has none.
if (import.meta.main) void main(process.argv.slice(2));
