// SECURITY.md promises nothing without a test: every row of its table names its source (an OWASP
// ASVS requirement or an RFC) and at least one test file with the names of the tests that prove it,
// and every named file and test exists. A test renamed or removed, or a promise added without a
// test, fails here.
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { PROJECT_DIR } from "../helpers.ts";

interface Promise_ {
  promise: string;
  source: string;
  /** Each test file the row names, with the test (or group) names that follow it. */
  proofs: Array<{ file: string; names: string[] }>;
}

function promises(): Promise_[] {
  const text = readFileSync(join(PROJECT_DIR, "SECURITY.md"), "utf8");
  const rows = text.split("\n").filter((line) => line.startsWith("| ") && !line.startsWith("| promise") && !line.startsWith("|---"));
  return rows.map((row) => {
    const cells = row.slice(2, -2).split(" | ");
    const [promise = "", source = "", proof = ""] = cells;
    const proofs: Promise_["proofs"] = [];
    // `test/x.test.ts` "name…", "other name"; `test/y.test.ts` "…"
    for (const token of proof.matchAll(/`((?:test\/[\w./-]+\.ts)|(?:integrations\/fastapi\/[\w.-]+\.py))`|"([^"]+)"/g)) {
      if (token[1]) proofs.push({ file: token[1], names: [] });
      else proofs.at(-1)?.names.push(token[2]!);
    }
    return { promise, source, proofs };
  });
}

/** Whether `name` (a prefix when it ends with "…") starts a string literal in the test file: a test, a group, or a case of a table of tests. */
function named(source: string, name: string): boolean {
  const prefix = name.replace(/…$/, "");
  // A pytest test is a function: `def test_...(`.
  return ['"', "`", "'", "def "].some((quote) => source.includes(quote + prefix));
}

describe("SECURITY.md", () => {
  const table = promises();

  test("has promises", () => {
    expect(table.length).toBeGreaterThan(20);
  });

  test("every promise names its source and at least one test file with the names of its tests", () => {
    const missing = table.filter((row) => !row.source.trim() || row.proofs.length === 0 || row.proofs.some((proof) => proof.names.length === 0));
    expect(missing.map((row) => row.promise)).toEqual([]);
  });

  test("every named test file and test exists", () => {
    const unknown: string[] = [];
    for (const row of table) {
      for (const { file, names } of row.proofs) {
        const path = join(PROJECT_DIR, file);
        if (!existsSync(path)) {
          unknown.push(file);
          continue;
        }
        const source = readFileSync(path, "utf8");
        for (const name of names) if (!named(source, name)) unknown.push(`${file} "${name}"`);
      }
    }
    expect(unknown).toEqual([]);
  });
});
