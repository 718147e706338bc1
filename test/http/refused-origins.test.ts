// A browser on an origin that CORS_ORIGINS does not list sees only a network error: the server's log
// names the origin and the setting to change, once per origin.
import { describe, expect, test } from "bun:test";
import { createLogger } from "../../src/ops/log.ts";
import { cleanUpAfterFile, createTestApp, SITE_ORIGIN, signUp } from "../helpers.ts";

cleanUpAfterFile();

const lines: string[] = [];
const t = await createTestApp({}, createLogger("debug", (line) => lines.push(line)));
const refusedLines = () => lines.filter((line) => line.includes("which CORS_ORIGINS does not list"));

describe("requests from an origin not in CORS_ORIGINS", () => {
  test("are logged once per origin, with the origin, the setting and its value", async () => {
    const { cookie } = await signUp(t);
    lines.length = 0;
    const unlisted = "http://localhost:5173";
    const preflight = await t.request("/api/auth/sign-out", {
      method: "OPTIONS",
      headers: { origin: unlisted, "access-control-request-method": "POST" },
    });
    expect(preflight.headers.get("access-control-allow-origin")).not.toBe(unlisted);
    const session = await t.request("/api/auth/get-session", { headers: { origin: unlisted, cookie } });
    expect(session.headers.get("access-control-allow-origin")).not.toBe(unlisted);
    const signOut = await t.request("/api/auth/sign-out", { method: "POST", headers: { origin: unlisted, cookie } });
    expect(signOut.status).toBe(403);

    expect(refusedLines()).toHaveLength(1);
    expect(refusedLines()[0]).toMatch(/ WARN /);
    expect(refusedLines()[0]).toContain(`the origin "${unlisted}"`);
    expect(refusedLines()[0]).toContain(`add it to CORS_ORIGINS (now: ${SITE_ORIGIN})`);

    await t.request("/api/auth/get-session", { headers: { origin: "https://other.example" } });
    expect(refusedLines()).toHaveLength(2);
    expect(refusedLines()[1]).toContain(`the origin "https://other.example"`);
  });

  test("listed origins, the server's own origin and requests without an Origin log nothing", async () => {
    lines.length = 0;
    await t.request("/api/auth/get-session", { headers: { origin: SITE_ORIGIN } });
    await t.request("/api/auth/get-session", { headers: { origin: new URL(t.config.baseUrl).origin } });
    await t.app.handle(new Request(new URL("/api/auth/get-session", t.config.baseUrl).toString()));
    expect(refusedLines()).toEqual([]);
  });
});
