// Mailed-link endpoints fed garbage: unknown, empty, forged or oversized tokens, untrusted return
// addresses. Never a 5xx; a browser link goes back to a trusted site with ?error=, an API call gets
// JSON with a stable code, and an untrusted return address is never redirected to.
import { describe, expect, test } from "bun:test";
import { normaliseLinkResponse } from "../../src/http/link-errors.ts";
import { cleanUpAfterFile, signUp, SITE_ORIGIN, testConfig, ERROR_BODY, expectError } from "../helpers.ts";
import { createMailTestApp } from "../smtp.ts";

cleanUpAfterFile();

const t = await createMailTestApp();
const { cookie } = await signUp(t);
const site = encodeURIComponent(`${SITE_ORIGIN}/back`);

describe("link endpoints never answer 5xx", () => {
  const garbage = ["", "x", "a".repeat(5000), "%00", "eyJhbGciOiJub25lIn0.eyJlbWFpbCI6ImFAYi5jIn0.", "../../etc/passwd", "💥"];
  for (const path of ["verify-email?token=", "magic-link/verify?token=", "delete-user/callback?token=", "reset-password/"]) {
    test(`GET /api/auth/${path}<garbage>, with and without a callback, signed in and not`, async () => {
      for (const token of garbage) {
        for (const callback of ["", `${path.includes("?") ? "&" : "?"}callbackURL=${site}`]) {
          for (const headers of [{}, { cookie }] as Record<string, string>[]) {
            const response = await t.request(`/api/auth/${path}${encodeURIComponent(token)}${callback}`, { headers, redirect: "manual" });
            expect(response.status).toBeLessThan(500);
            if (response.status === 302) {
              const location = new URL(response.headers.get("location")!);
              expect(location.origin).toBe(SITE_ORIGIN);
              expect(location.searchParams.get("error")).toMatch(/^[A-Z_]+$/);
            } else {
              expect(response.headers.get("content-type")).toStartWith("application/json");
              expect(await response.json()).toEqual(ERROR_BODY);
            }
          }
        }
      }
    });
  }

  test("an untrusted callbackURL is refused with 403 and never redirected to", async () => {
    const evil = encodeURIComponent("https://evil.test/steal");
    for (const path of ["verify-email?token=x", "magic-link/verify?token=x", "delete-user/callback?token=x"]) {
      const response = await t.request(`/api/auth/${path}&callbackURL=${evil}`, { headers: { cookie }, redirect: "manual" });
      expect(response.status).toBe(403);
      expect(response.headers.get("location")).toBeNull();
    }
  });
});

describe("normaliseLinkResponse", () => {
  const config = testConfig();
  const request = (query: string) => new Request(`http://localhost:3001/api/auth/magic-link/verify?token=t${query}`);
  const redirect = (location: string) => new Response(null, { status: 302, headers: { location } });

  test("an error redirect to the auth server's own root (no callback) becomes JSON with an upper-case code", async () => {
    const response = await normaliseLinkResponse(request(""), redirect("http://localhost:3001/?error=new_user_signup_disabled"), config);
    await expectError(response, 401, "NEW_USER_SIGNUP_DISABLED");
  });

  test("a browser link keeps its redirect, with the code upper-cased", async () => {
    const callback = encodeURIComponent(`${SITE_ORIGIN}/in`);
    const response = await normaliseLinkResponse(request(`&callbackURL=${callback}`), redirect(`${SITE_ORIGIN}/in?error=failed_to_create_user`), config);
    expect(response.status).toBe(302);
    expect(response.headers.get("location")).toBe(`${SITE_ORIGIN}/in?error=FAILED_TO_CREATE_USER`);
  });

  test("a success redirect and other endpoints pass through unchanged", async () => {
    const success = redirect(`${SITE_ORIGIN}/in`);
    expect(await normaliseLinkResponse(request(""), success, config)).toBe(success);
    const other = new Response("{}", { status: 400, headers: { "content-type": "application/json" } });
    expect(await normaliseLinkResponse(new Request("http://localhost:3001/api/auth/sign-in/email?callbackURL=x"), other, config)).toBe(other);
  });
});
