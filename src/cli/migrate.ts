// `bun run migrate` / `bun run migrate:status` (`bun src/cli/migrate.ts [up|status]`): applies or lists
// the SQL migrations of sql/ (src/db/migrate.ts).
import { applyMigrations, MigrationError, migrationStatus } from "../db/migrate.ts";
import { runCommand } from "./run.ts";

async function main(): Promise<void> {
  const command = process.argv[2] ?? "up";
  if (command !== "up" && command !== "status") {
    console.error(`usage: bun run src/cli/migrate.ts [up|status]`);
    process.exit(2);
  }
  await runCommand({
    name: "migrate",
    async run(_, sql) {
      if (command === "status") {
        const states = await migrationStatus(sql);
        for (const state of states) {
          const when = state.appliedAt ? state.appliedAt.toISOString() : "";
          console.log(`${state.state.padEnd(8)} ${state.version}_${state.name}.sql ${when}`.trimEnd());
        }
        const pending = states.filter((state) => state.state === "pending").length;
        console.log(`${states.length - pending} applied, ${pending} pending`);
      } else {
        const done = await applyMigrations(sql);
        console.log(done.length ? `applied ${done.join(", ")}` : "schema is up to date");
      }
    },
    explain: (error) => (error instanceof MigrationError ? { message: error.message, exitCode: 1 } : undefined),
  });
}

// A function, not top-level await: the production bundle is CommonJS (package.json build), which has none.
if (import.meta.main) void main();
