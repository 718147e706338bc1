// The shape of src/ as a specification: imports flow one way, from the HTTP layer down to config and
// errors, and no module reaches itself through its imports. `import type` counts too: a type that a
// lower layer needs belongs in that layer.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = resolve(import.meta.dir, "../src");

/** Lower ranks sit lower; a module may import its own rank or a lower one, never a higher one. */
const LAYERS: [rank: number, name: string, test: (path: string) => boolean][] = [
  [4, "entry point", (path) => path === "index.ts" || path.startsWith("cli/")],
  [3, "http", (path) => path.startsWith("http/")],
  [2, "auth/session/security", (path) => /^(auth|session|security)\//.test(path)],
  [1, "mail/db/ops", (path) => /^(mail|db|ops)\//.test(path)],
  [0, "config/errors", (path) => path === "config.ts" || path === "errors.ts"],
];

function layerOf(path: string): { rank: number; name: string } {
  const found = LAYERS.find(([, , matches]) => matches(path));
  if (!found) throw new Error(`src/${path} is in no layer: place it in one of ${LAYERS.map(([, name]) => name).join(", ")}`);
  return { rank: found[0], name: found[1] };
}

function sourceFiles(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

// Static imports and re-exports (also `import type`, across lines) start a line; dynamic ones may sit anywhere.
const STATIC_IMPORT = /^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"']+)["']/gm;
const SIDE_EFFECT_IMPORT = /^\s*import\s*["']([^"']+)["']/gm;
const DYNAMIC_IMPORT = /\bimport\(\s*["']([^"']+)["']\s*\)/g;

/** The src/-relative paths a file imports relatively, resolved to files of src/. */
export function relativeImports(file: string, code: string): string[] {
  const specifiers = [STATIC_IMPORT, SIDE_EFFECT_IMPORT, DYNAMIC_IMPORT].flatMap((pattern) => [...code.matchAll(pattern)].map((match) => match[1]!));
  return [...new Set(specifiers.filter((specifier) => specifier.startsWith(".")).map((specifier) => resolve(dirname(file), specifier)))]
    .filter((path) => path.startsWith(SRC + "/"))
    .map((path) => relative(SRC, path));
}

const graph = new Map(sourceFiles(SRC).map((file) => [relative(SRC, file), relativeImports(file, readFileSync(file, "utf8"))]));

/** One import cycle as a path that starts and ends at the same module, or null when there is none. */
export function findCycle(edges: Map<string, string[]>): string[] | null {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (node: string): string[] | null => {
    if (state.get(node) === "done") return null;
    if (state.get(node) === "open") return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, "open");
    stack.push(node);
    for (const next of edges.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(node, "done");
    return null;
  };
  for (const node of [...edges.keys()].sort()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return null;
}

describe("architecture of src/", () => {
  test("the import scan sees static, multi-line, type-only, re-exported and dynamic imports", () => {
    const code = [
      'import { a } from "./a.ts";',
      "import {",
      "  b,",
      '} from "../b.ts";',
      'import type { C } from "./c.ts";',
      'export { d } from "./d.ts";',
      'import "./e.ts";',
      'const f = await import("./f.ts");',
      'import { g } from "elysia";',
      '// a comment naming "./h.ts" is no import',
    ].join("\n");
    expect(relativeImports(join(SRC, "auth/x.ts"), code).sort()).toEqual(["auth/a.ts", "auth/c.ts", "auth/d.ts", "auth/e.ts", "auth/f.ts", "b.ts"]);
  });

  test("the cycle finder reports the cycle as a path", () => {
    const edges = new Map([
      ["a.ts", ["b.ts"]],
      ["b.ts", ["c.ts"]],
      ["c.ts", ["a.ts"]],
      ["d.ts", []],
    ]);
    expect(findCycle(edges)).toEqual(["a.ts", "b.ts", "c.ts", "a.ts"]);
    expect(findCycle(new Map([["a.ts", ["b.ts"]], ["b.ts", []]]))).toBeNull();
  });

  test("every module sits in a layer and imports only files that exist", () => {
    for (const [from, imports] of graph) {
      layerOf(from);
      for (const to of imports) expect({ from, to, exists: graph.has(to) }).toEqual({ from, to, exists: true });
    }
  });

  test("imports flow one way: http -> auth/session/security -> mail/db/ops -> config/errors", () => {
    const upward: string[] = [];
    for (const [from, imports] of graph) {
      const source = layerOf(from);
      for (const to of imports) {
        const target = layerOf(to);
        if (target.rank > source.rank) upward.push(`src/${from} (${source.name}) imports src/${to} (${target.name})`);
      }
    }
    expect(upward).toEqual([]);
  });

  test("nothing imports the server's entry point, and only the commands import src/cli/", () => {
    const intoEntryPoints = [...graph].flatMap(([from, imports]) =>
      imports.filter((to) => to === "index.ts" || (to.startsWith("cli/") && !from.startsWith("cli/"))).map((to) => `src/${from} imports src/${to}`),
    );
    expect(intoEntryPoints).toEqual([]);
  });

  test("there is no import cycle in src/", () => {
    const cycle = findCycle(graph);
    expect(cycle?.map((path) => `src/${path}`).join(" -> ") ?? "no cycle").toBe("no cycle");
  });
});
