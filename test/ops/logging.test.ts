// Better Auth's messages go through the server's logger under LOG_LEVEL: a refused request is a debug
// line, not an ERROR printed by Better Auth's own console logger, and the answer is unchanged.
import { afterEach, describe, expect, spyOn, test } from "bun:test";
import { createLogger } from "../../src/ops/log.ts";
import { cleanUpAfterFile, createTestApp, PASSWORD, signUp, uniqueEmail, expectError } from "../helpers.ts";

cleanUpAfterFile();

const lines: string[] = [];
const t = await createTestApp({}, createLogger("debug", (line) => lines.push(line)));
const consoleError = spyOn(console, "error");
afterEach(() => {
  lines.length = 0;
  consoleError.mockClear();
});

const betterAuthConsoleLines = () => consoleError.mock.calls.map((call) => call.map(String).join(" ")).filter((line) => line.includes("[Better Auth]"));

describe("refused requests", () => {
  test("an untrusted Origin answers 403 INVALID_ORIGIN; Better Auth's console logger prints nothing, the server logs a debug line", async () => {
    const { cookie } = await signUp(t);
    lines.length = 0;
    const response = await t.request("/api/auth/sign-out", { method: "POST", headers: { origin: "https://evil.example", cookie } });
    await expectError(response, 403, "INVALID_ORIGIN");
    expect(betterAuthConsoleLines()).toEqual([]);
    expect(lines.some((line) => / DEBUG .*\[better-auth\] 403 INVALID_ORIGIN/.test(line))).toBe(true);
  });

  test("a wrong password answers 401 INVALID_EMAIL_OR_PASSWORD without an error line", async () => {
    const email = uniqueEmail("log");
    await signUp(t, { email });
    const response = await t.request("/api/auth/sign-in/email", { method: "POST", json: { email, password: `${PASSWORD}!` } });
    await expectError(response, 401, "INVALID_EMAIL_OR_PASSWORD");
    expect(lines.filter((line) => / ERROR /.test(line))).toEqual([]);
    expect(betterAuthConsoleLines()).toEqual([]);
  });

  test("at LOG_LEVEL=warn a refused origin prints only Better Auth's own warning-level lines, and nothing on the console", async () => {
    const quiet: string[] = [];
    const app = await createTestApp({}, createLogger("warn", (line) => quiet.push(line)));
    const { cookie } = await signUp(app);
    const response = await app.request("/api/auth/sign-out", { method: "POST", headers: { origin: "https://evil.example", cookie } });
    expect(response.status).toBe(403);
    expect(quiet.filter((line) => / DEBUG | INFO /.test(line))).toEqual([]);
    expect(betterAuthConsoleLines()).toEqual([]);
  });
});

describe("JSON lines on stdout", () => {
  test("lines are written in batches, in order, and the pending ones still reach stdout when the process exits at once", async () => {
    const script = `
      const { createLogger } = await import(${JSON.stringify(`${import.meta.dir}/../../src/ops/log.ts`)});
      const logger = createLogger("info", undefined, "json");
      for (let i = 1; i <= 3; i++) logger.info("line " + i, { n: i });
      process.exit(3);`;
    const child = Bun.spawn(["bun", "-e", script], { stdout: "pipe", stderr: "pipe" });
    const [out, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    expect(code).toBe(3);
    const lines = out.trim().split("\n").map((line) => JSON.parse(line) as { msg: string; n: number; level: string });
    expect(lines.map((line) => line.msg)).toEqual(["line 1", "line 2", "line 3"]);
    expect(lines.map((line) => line.n)).toEqual([1, 2, 3]);
    expect(lines.every((line) => line.level === "info")).toBe(true);
  });
});

describe("request lines", () => {
  const capture = (level: "debug" | "info" | "warn" | "error" = "debug", format: "json" | "pretty" = "json") => {
    const lines: string[] = [];
    return { lines, logger: createLogger(level, (line) => lines.push(line), format) };
  };
  const withoutTime = (line: string) => line.replace(/"time":"[^"]*"/, '"time":""');
  const cases = [
    { requestId: "a1", method: "GET", route: "/api/auth/get-session", status: 200, durationMs: 0.42, ip: "127.0.0.1", userId: "u1" },
    { requestId: "b-2", method: "POST", route: "(unmatched)", status: 404, durationMs: 12, ip: null, userId: null },
    // A client-chosen method is written escaped, and an address in it masked, as any field is.
    { requestId: "c", method: 'X"ada@example.com\n', route: "/api/auth/sign-in/email", status: 401, durationMs: 3.5, ip: "::1", userId: null },
  ];

  test("the line of a served request is byte for byte the line info/error/debug would write, apart from the time", () => {
    for (const fields of cases) {
      for (const level of ["debug", "info", "error"] as const) {
        const direct = capture();
        direct.logger.request(level, fields);
        const viaPino = capture();
        viaPino.logger[level]("request", fields);
        expect(direct.lines).toHaveLength(1);
        expect(withoutTime(direct.lines[0]!)).toBe(withoutTime(viaPino.lines[0]!));
        const parsed = JSON.parse(direct.lines[0]!) as Record<string, unknown>;
        expect(Date.parse(parsed.time as string)).toBeGreaterThan(Date.now() - 5000);
      }
    }
    expect(capture().lines).toHaveLength(0);
    const masked = capture();
    masked.logger.request("info", cases[2]!);
    expect(masked.lines[0]).not.toContain("ada@example.com");
    expect(masked.lines[0]).toContain("a***@example.com");
  });

  test("LOG_LEVEL decides as for any line, and a readable logger writes it readably", () => {
    const warn = capture("warn");
    warn.logger.request("info", cases[0]!);
    warn.logger.request("debug", cases[0]!);
    expect(warn.lines).toHaveLength(0);
    warn.logger.request("error", cases[0]!);
    expect(warn.lines).toHaveLength(1);
    const pretty = capture("info", "pretty");
    pretty.logger.request("info", cases[0]!);
    expect(pretty.lines[0]).toContain("INFO  request");
    expect(pretty.lines[0]).toContain('"route":"/api/auth/get-session"');
  });
});
