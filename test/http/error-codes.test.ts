// One error vocabulary: docs/errors.md lists exactly the codes of the registry (src/errors.ts) with their
// status, plus every code Better Auth and its plugins declare, and no error code is written in src/
// outside the registry.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import postgres from "postgres";
import { createAuth } from "../../src/auth/better-auth.ts";
import type { Config } from "../../src/config.ts";
import { ERRORS, errorResponse, errorStatus, type ErrorCode } from "../../src/errors.ts";
import { ADMIN_URL, PROJECT_DIR, quietLogger, testConfig } from "../helpers.ts";

const registry = Object.keys(ERRORS) as ErrorCode[];

// Better Auth's declared codes: base and plugin codes of the auth instance the server builds. Building it
// opens no connection.
const sql = postgres(ADMIN_URL, { max: 1 });
const betterAuthCodes = Object.keys(createAuth({ config: testConfig() as Config & { secret: string }, sql, logger: quietLogger }).$ERROR_CODES);
await sql.end();

const BETTER_AUTH_CODES_RELIED_ON = "## Better Auth's codes the server relies on";
const OTHER_BETTER_AUTH_CODES = "## Every other Better Auth code";
const docs = readFileSync(join(PROJECT_DIR, "docs/errors.md"), "utf8");
const [explained = "", listed = ""] = docs.split(OTHER_BETTER_AUTH_CODES);
/** Table rows of a part of the page: code and the second column (the status where there is one). */
const rowsOf = (part: string) => [...part.matchAll(/^\| `([A-Z0-9_]+)` \| ([^|]*)\|/gm)].map(([, code, second]) => ({ code: code!, second: second!.trim() }));
const explainedRows = rowsOf(explained);
const listedRows = rowsOf(listed);
const documented = [...explainedRows, ...listedRows].map((row) => row.code);

/** Every .ts file under src/ but the registry, with its text. */
function sources(dir = join(PROJECT_DIR, "src")): { path: string; text: string }[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    if (!entry.name.endsWith(".ts") || path === join(PROJECT_DIR, "src/errors.ts")) return [];
    return [{ path: relative(PROJECT_DIR, path), text: readFileSync(path, "utf8") }];
  });
}

/** `path:line: text` of every line of src/ (outside the registry) that matches `pattern`. */
function linesMatching(pattern: RegExp): string[] {
  return sources().flatMap(({ path, text }) =>
    text.split("\n").flatMap((line, index) => (pattern.test(line) ? [`${path}:${index + 1}: ${line.trim()}`] : [])),
  );
}

describe("docs/errors.md and the registry", () => {
  test("the page has both parts and Better Auth declares codes", () => {
    expect(listed).not.toBe("");
    expect(explainedRows.length).toBeGreaterThanOrEqual(registry.length);
    expect(betterAuthCodes).toContain("INVALID_EMAIL_OR_PASSWORD");
  });

  test("every code of the registry is explained once, with the status the server answers", () => {
    const statuses = Object.fromEntries(explainedRows.map((row) => [row.code, row.second.split(" ")[0]]));
    expect(Object.fromEntries(registry.map((code) => [code, statuses[code]]))).toEqual(Object.fromEntries(registry.map((code) => [code, String(errorStatus(code))])));
  });

  test("the explained codes are exactly the registry's, Better Auth's under their own heading", () => {
    expect(explainedRows.map((row) => row.code).sort()).toEqual([...registry].sort());
    const [, relied = ""] = explained.split(BETTER_AUTH_CODES_RELIED_ON);
    const betterAuths = registry.filter((code) => "betterAuth" in ERRORS[code]);
    expect(rowsOf(relied).map((row) => row.code).sort()).toEqual(betterAuths.sort());
  });

  test("every code Better Auth declares is on the page, and the page names no code that neither declares", () => {
    expect(betterAuthCodes.filter((code) => !documented.includes(code))).toEqual([]);
    expect(documented.filter((code) => !registry.includes(code as ErrorCode) && !betterAuthCodes.includes(code))).toEqual([]);
  });

  test("no code is on the page twice", () => {
    expect(documented.filter((code, index) => documented.indexOf(code) !== index)).toEqual([]);
  });
});

describe("no error code is written outside the registry", () => {
  test("no `code:` string literal in src/ but in src/errors.ts", () => {
    expect(linesMatching(/\bcode\s*:\s*["'`][A-Z]/)).toEqual([]);
  });

  test("no JSON error body built by hand in src/", () => {
    expect(linesMatching(/(JSON\.stringify|Response\.json)\(\s*\{\s*["']?code\b/)).toEqual([]);
    expect(linesMatching(/relayedErrorResponse\([^,]*,\s*["'`]/)).toEqual([]);
  });

  test("a string literal that is an error code in src/ is one of the registry's", () => {
    const known = new Set<string>([...registry, ...betterAuthCodes]);
    const unregistered = sources().flatMap(({ path, text }) =>
      [...text.matchAll(/["'`]([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)["'`]/g)]
        .map(([, literal]) => literal!)
        .filter((literal) => known.has(literal) && !(literal in ERRORS))
        .map((literal) => `${path}: ${literal}`),
    );
    expect(unregistered).toEqual([]);
  });

  test("an error response carries its registry status, code and message as JSON", async () => {
    const response = errorResponse("RATE_LIMITED", { headers: { "retry-after": "3" } });
    expect(response.status).toBe(429);
    expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(response.headers.get("retry-after")).toBe("3");
    expect(await response.json()).toEqual({ code: "RATE_LIMITED", message: ERRORS.RATE_LIMITED.message });
  });
});
