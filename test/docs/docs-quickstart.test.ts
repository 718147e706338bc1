// The docs run as written: the FastAPI README's quick start (its code blocks, extracted and run in order
// against `bun run dev`), the curl lines of docs/sessions.md and the React snippet of docs/http-api.md
// (type-checked with tsc --strict).
import { describe, expect, test } from "bun:test";
import { readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cleanUpAfterFile, createProjectCopy, createTempDir, PROJECT_DIR, spawnProject } from "../helpers.ts";

cleanUpAfterFile();

interface CodeBlock {
  language: string;
  code: string;
}

/** The fenced code blocks of the section `heading` (up to the next heading of the same level) of a Markdown file. */
export function codeBlocks(markdown: string, heading: string): CodeBlock[] {
  const level = heading.match(/^#+/)![0];
  const start = markdown.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`no section "${heading}"`);
  const rest = markdown.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`^${level} `, "m"));
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((match) => ({ language: match[1]!, code: match[2]! }));
}

describe("integrations/fastapi/README.md, Quick start", () => {
  test(
    "the settings, app.py, the uvicorn command and the curl calls, as written, sign up and reach the protected route",
    async () => {
      const blocks = codeBlocks(readFileSync(join(PROJECT_DIR, "integrations/fastapi/README.md"), "utf8"), "## Quick start");
      expect(blocks.map((block) => block.language)).toEqual(["sh", "python", "sh", "sh"]);
      const [settings, app, server, calls] = blocks as [CodeBlock, CodeBlock, CodeBlock, CodeBlock];
      // The curl lines for scripts (docs/sessions.md), run against the same server once Ada has signed up.
      const [scripts] = codeBlocks(readFileSync(join(PROJECT_DIR, "docs/sessions.md"), "utf8"), "## Scripts and curl");
      expect(scripts!.language).toBe("sh");

      const dir = createProjectCopy("quickstart", ["integrations/fastapi/auth_server_fastapi.py"]);
      writeFileSync(join(dir, "app.py"), app.code);

      // The README's ports (3001, 5433, 8000) are fixed: as root the run gets a network namespace of its
      // own, with only a loopback interface, so nothing else on the machine can hold them.
      const root = process.getuid?.() === 0;
      const waitFor = (url: string, log: string) =>
        `for i in $(seq 1 300); do curl -s -o /dev/null ${url} && break; sleep 0.1; done; curl -s -o /dev/null ${url} || { cat ${log}; exit 1; }`;
      const script = [
        "set -u",
        root ? "ip link set lo up" : "",
        `cd ${dir}`,
        "bun run dev > dev.log 2>&1 & DEV=$!",
        "trap 'kill $DEV ${API:-} 2>/dev/null; wait' EXIT",
        waitFor("http://localhost:3001/health", "dev.log"),
        "# --- the README's blocks, as written ---",
        settings.code,
        `(${server.code.trim()}) > uvicorn.log 2>&1 & API=$!`,
        waitFor("http://localhost:8000/docs", "uvicorn.log"),
        "echo '--- calls'",
        calls.code,
        "echo; echo '--- unauthenticated'",
        "curl -s -w ' %{http_code}' http://localhost:8000/api/profile",
        "echo; echo '--- signed with another secret'",
        `curl -s -w ' %{http_code}' -H "Authorization: Bearer \${TOKEN%.*}.c2lnbmVkIHdpdGggYW5vdGhlciBzZWNyZXQ=" http://localhost:8000/api/profile`,
        "echo; echo '--- scripts and curl'",
        scripts!.code,
        "echo; echo '--- after sign-out'",
        `curl -s -w ' %{http_code}' -H "Authorization: Bearer $TOKEN" http://localhost:8000/api/profile`,
        "echo; echo '--- uvicorn log'",
        "cat uvicorn.log",
      ].join("\n");
      // Debian's python3 (where the packages of the README's apt-get line install) first on PATH.
      const env = { PATH: `/usr/bin:/bin:${process.env.PATH ?? ""}` };
      const run = spawnProject(root ? ["unshare", "--net", "bash", "-c", script] : ["bash", "-c", script], env);
      const code = await run.exited(90_000);
      const output = run.output();
      expect({ code, output }).toMatchObject({ code: 0 });
      // The protected route's answer: the last flat JSON object that starts with "id" (curl prints no newlines).
      const answer = output.split("--- calls\n")[1]!.match(/\{"id":[^{}]*\}/g)?.at(-1);
      if (!answer) throw new Error(`no profile answer in:\n${output}`);
      const profile = JSON.parse(answer) as Record<string, unknown>;
      expect(profile).toMatchObject({ email: "ada@example.com", role: "user", level: "beginner" });
      expect(typeof profile.id).toBe("string");
      expect(output).toContain('{"detail":{"code":"UNAUTHENTICATED","message":"sign in to use this route"}} 401');
      // The docs' script: signed in, its session read with the bearer token, then signed out.
      const scriptOutput = output.split("--- scripts and curl\n")[1]!.split("--- after sign-out")[0]!;
      expect(scriptOutput).toContain('"email":"ada@example.com"');
      expect(scriptOutput).toContain('{"success":true}');
      expect(output.split("--- after sign-out\n")[1]).toMatch(/^\{"detail":\{"code":"INVALID_SESSION"[^\n]*\} 401/);
      // What uvicorn shows of the module's log, with no logging set up by the app.
      expect(output).toContain('"code":"INVALID_SESSION"');
      expect(output.split("--- uvicorn log")[1]).toContain("matches none of the 1 secret(s) given to SessionAuth");
    },
    120_000,
  );
});

describe("docs/http-api.md, From a browser on another origin", () => {
  test("the React snippet type-checks with tsc --strict", async () => {
    const [snippet] = codeBlocks(readFileSync(join(PROJECT_DIR, "docs/http-api.md"), "utf8"), "## From a browser on another origin");
    expect(snippet!.language).toBe("ts");
    // The snippet's free variables are the form's values, declared as a page would have them.
    const dir = createTempDir("react-snippet");
    symlinkSync(join(PROJECT_DIR, "node_modules"), join(dir, "node_modules"));
    writeFileSync(join(dir, "snippet.ts"), `declare const email: string, password: string, name: string;\n${snippet!.code}`);
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noEmit: true,
          target: "ESNext",
          module: "ESNext",
          moduleResolution: "bundler",
          skipLibCheck: true,
          types: [],
        },
        files: ["snippet.ts"],
      }),
    );
    const tsc = spawnProject([join(PROJECT_DIR, "node_modules/.bin/tsc"), "-p", join(dir, "tsconfig.json")], {});
    const code = await tsc.exited(60_000);
    expect({ code, output: tsc.output() }).toEqual({ code: 0, output: "" });
  }, 70_000);
});
