// Every setting is documented once and only settings the server reads are documented: the variables
// src/config.ts reads, the rows of docs/configuration.md's table and the variables of .env.example are
// the same set, and neither document names one twice.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../src/config.ts";
import { PROJECT_DIR } from "../helpers.ts";

const read = (path: string) => readFileSync(join(PROJECT_DIR, path), "utf8");
const sorted = (names: Iterable<string>) => [...new Set(names)].sort();
const repeated = (names: string[]) => sorted(names.filter((name, index) => names.indexOf(name) !== index));

/**
 * The names src/config.ts reads, from its source. It reads a variable by passing its name as the first
 * argument to one of its readers (`read`, `with_`, `rule`, `duration`, `list`), or, for an OAuth client,
 * `client("PREFIX")`, which reads PREFIX_CLIENT_ID and PREFIX_CLIENT_SECRET.
 */
function namesInSource(source: string): string[] {
  const names: string[] = [];
  for (const match of source.matchAll(/\b(?:read|with_(?:<[^(]*>)?|rule|duration|list)\(\s*"([A-Z][A-Z0-9_]*)"/g)) names.push(match[1]!);
  const clientSuffixes = [...source.matchAll(/read\(`\$\{prefix\}(_[A-Z0-9_]+)`\)/g)].map((match) => match[1]!);
  for (const match of source.matchAll(/\bclient\(\s*"([A-Z][A-Z0-9_]*)"\s*\)/g)) {
    for (const suffix of clientSuffixes) names.push(match[1]! + suffix);
  }
  return names;
}

/** The names loadConfig looks up when it runs: development defaults, then production with every setting given. */
function namesReadAtRuntime(): string[] {
  const seen = new Set<string>();
  const recording = (values: Record<string, string>) =>
    new Proxy(values, {
      get(target, name) {
        if (typeof name === "string") seen.add(name);
        return target[name as string];
      },
    });
  loadConfig(recording({}));
  loadConfig(
    recording({
      NODE_ENV: "production",
      DATABASE_URL: "postgres://db.internal/auth",
      BETTER_AUTH_SECRET: "a3f1c9e07b5d24e8c6a0f2b4d8e1c7a9",
      BETTER_AUTH_URL: "https://auth.learn.test",
      CORS_ORIGINS: "https://learn.test",
      METRICS_TOKEN: "0123456789abcdef0123",
      SMTP_URL: "smtps://user:pass@smtp.learn.test:465",
      MAIL_FROM: "no-reply@learn.test",
      GITHUB_CLIENT_ID: "id",
      GITHUB_CLIENT_SECRET: "secret",
      OIDC_DISCOVERY_URL: "https://idp.learn.test/.well-known/openid-configuration",
      OIDC_CLIENT_ID: "id",
      OIDC_CLIENT_SECRET: "secret",
    }),
  );
  return [...seen];
}

/** The first cell of each row of the table under "## Every setting", when it is one `VARIABLE`. */
function namesInTable(markdown: string): string[] {
  const section = markdown.split(/^## Every setting$/m)[1];
  if (section === undefined) throw new Error('docs/configuration.md has no "## Every setting" section');
  const table = section.split(/^## /m)[0]!;
  return [...table.matchAll(/^\| `([A-Z][A-Z0-9_]*)` \|/gm)].map((match) => match[1]!);
}

/** Every `NAME=` line of .env.example, set or commented out. */
function namesInEnvExample(text: string): string[] {
  return [...text.matchAll(/^#? ?([A-Z][A-Z0-9_]*)=/gm)].map((match) => match[1]!);
}

describe("the documented settings follow src/config.ts", () => {
  const source = read("src/config.ts");
  const inSource = sorted(namesInSource(source));
  const table = namesInTable(read("docs/configuration.md"));
  const envExample = namesInEnvExample(read(".env.example"));

  test("every variable src/config.ts reads at runtime is found in its source, and the source names no other", () => {
    expect(inSource).toContain("DATABASE_URL");
    expect(inSource).toEqual(sorted(namesReadAtRuntime()));
  });

  test("docs/configuration.md has one row for every variable src/config.ts reads, and no other", () => {
    expect(repeated(table)).toEqual([]);
    expect(sorted(table)).toEqual(inSource);
  });

  test(".env.example names every variable src/config.ts reads once, and no other", () => {
    expect(repeated(envExample)).toEqual([]);
    expect(sorted(envExample)).toEqual(inSource);
  });

  test("a variable the code does not read would be found (the parsers see what they are meant to)", () => {
    expect(namesInTable("## Every setting\n\n| variable | default | meaning |\n|---|---|---|\n| `NOT_READ` | x | y |\n")).toEqual(["NOT_READ"]);
    expect(namesInEnvExample("# NOT_READ=1\nALSO_NOT_READ=2\n")).toEqual(["NOT_READ", "ALSO_NOT_READ"]);
    expect(namesInSource('read("A_B"); with_<string>("C_D", 1, f); client("E");\nread(`${prefix}_CLIENT_ID`)')).toEqual(["A_B", "C_D", "E_CLIENT_ID"]);
  });
});
