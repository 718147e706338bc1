// `bun run cleanup` (`bun src/cli/cleanup.ts`): one housekeeping pass now (src/ops/housekeeping.ts), for a
// scheduler when the server's own job is off (HOUSEKEEPING_INTERVAL=off).
import { runHousekeeping } from "../ops/housekeeping.ts";
import { byMessage, runCommand } from "./run.ts";

async function main(): Promise<void> {
  await runCommand({
    name: "cleanup",
    async run({ config }, sql) {
      const result = await runHousekeeping(sql, {
        auditRetentionSeconds: config.auditRetentionSeconds,
        lockoutWindowSeconds: config.lockout.windowSeconds,
      });
      if (result.ran) {
        const counts = Object.entries(result.deleted).map(([table, count]) => `${table} ${count}`).join(", ");
        console.log(`cleanup: deleted ${counts} in ${result.milliseconds} ms`);
      } else {
        console.log(`cleanup: skipped, ${result.reason}`);
      }
    },
    explain: byMessage,
  });
}

// A function, not top-level await: the production bundle is CommonJS (package.json build), which has none.
if (import.meta.main) void main();
