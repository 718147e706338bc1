// Sign-in and sign-up of one anchors run against the native hash ceiling measured in the same run
// (bench/hash-ceiling.ts): a sign-in is one verification, a sign-up one hash, so a server doing nothing
// else would reach the library's rate with 2 in flight (the two cores). Also the baseline ratio and p99s.
//   bun bench/against-ceiling.ts <results folder> [target label]
import { readdirSync, readFileSync } from "node:fs";

const [dir, label = "auth-server"] = process.argv.slice(2);
if (!dir) throw new Error("usage: bun bench/against-ceiling.ts <results folder> [target label]");
type Row = Record<string, number | string | undefined>;
const rows: Row[] = readdirSync(dir)
  .filter((file) => file.endsWith(".jsonl"))
  .flatMap((file) => readFileSync(`${dir}/${file}`, "utf8").split("\n"))
  .filter((line) => line.startsWith("{"))
  .map((line) => JSON.parse(line) as Row);
const http = (target: string, scenario: string) => rows.find((r) => r.label === target && r.scenario === scenario && r.p50_ms !== undefined);
const measured = (op: string, concurrency: number) =>
  rows.filter((r) => r.scenario === "hash" && String(r.impl).startsWith(`@node-rs/argon2 ${op}`) && r.concurrency === concurrency);
/** The mean of the measurements before and after the anchors. */
const ceiling = (op: string, concurrency: number) => {
  const found = measured(op, concurrency).map((r) => Number(r.hashes_per_s));
  return found.length ? +(found.reduce((a, b) => a + b, 0) / found.length).toFixed(1) : undefined;
};

console.log("\n## Against the native hash ceiling (same run)\n");
const perSecond = (op: string, when: string) => [1, 2, 4].map((c) => measured(op, c).find((r) => r.when === when)?.hashes_per_s ?? "?").join(" / ");
for (const when of ["before", "after"]) {
  console.log(`@node-rs/argon2 at the server's parameters, ${when} the anchors, a second with 1 / 2 / 4 in flight: verify ${perSecond("verify", when)}, hash ${perSecond("hash", when)}`);
}
console.log("\nThe ceiling below is the mean of the two.\n");
console.log("| scenario | req/s | ceiling (2 in flight) | of the ceiling | baseline req/s | vs baseline | p99 ms | baseline p99 ms |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|");
for (const [scenario, op] of [
  ["sign-in", "verify"],
  ["sign-up", "hash"],
] as const) {
  const mine = http(label, scenario);
  const base = http("express-better-auth", scenario);
  const top = ceiling(op, 2);
  if (!mine) continue;
  const rps = Number(mine.rps);
  console.log(
    `| ${scenario} | ${rps} | ${top ?? "?"} | ${top ? (rps / top).toFixed(2) : "?"} | ${base?.rps ?? "?"} | ${base ? (rps / Number(base.rps)).toFixed(2) : "?"} | ${mine.p99_ms} | ${base?.p99_ms ?? "?"} |`,
  );
}
