// The example page (examples/web) in Debian's Chromium: a site on one localhost port signs up, signs
// in and keeps a session with the auth server on another, through Better Auth's own browser client.
// localhost:A and localhost:B are two origins of one site, so the SameSite=Lax cookie travels with
// credentialed requests and CORS (plus the origin check) is what keeps other origins out.
// Screenshots of each step land in test/artifacts/browser/.
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Cookie, Page } from "playwright-core";
import { buildSite, serveSite } from "../../examples/web/serve.ts";
import { launchChromium } from "../chromium.ts";
import { cleanUpAfterFile, createTempDir, freePort, onCleanup, PASSWORD, startTestServer, uniqueEmail } from "../helpers.ts";

cleanUpAfterFile();

const ARTIFACTS = join(import.meta.dir, "..", "artifacts", "browser");
const TEST_TIMEOUT_MS = 90_000;

const authPort = freePort();
const AUTH_URL = `http://localhost:${authPort}`;
const build = await buildSite(AUTH_URL, createTempDir("web"));
const site = serveSite(build, { port: 0 });
const untrustedSite = serveSite(build, { port: 0 });
onCleanup(async () => {
  site.stop(true);
  untrustedSite.stop(true);
});
const SITE_URL = `http://localhost:${site.port}`;
const UNTRUSTED_URL = `http://localhost:${untrustedSite.port}`;
const server = await startTestServer({ PORT: String(authPort), BETTER_AUTH_URL: AUTH_URL, CORS_ORIGINS: SITE_URL });

let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];
let step = 0;

/** Saves a full-page screenshot as the next numbered artifact. */
async function screenshot(target: Page, name: string): Promise<void> {
  await target.screenshot({ path: join(ARTIFACTS, `${String(++step).padStart(2, "0")}-${name}.png`), fullPage: true });
}

/** Waits until the page's status line contains `text`. */
async function statusSays(target: Page, text: string): Promise<void> {
  await target.locator("#status", { hasText: text }).waitFor();
}

async function sessionCookies(): Promise<Cookie[]> {
  return (await context.cookies(AUTH_URL)).filter((cookie) => cookie.name.endsWith("session_token"));
}

const email = uniqueEmail("browser");
const userRow = async () =>
  (await server.db.sql`
    select u.id, u.experience_level, u.professional_role, u.role_other, u.organization,
           (select count(*)::int from sessions s where s.user_id = u.id) as sessions
    from users u where u.email = ${email}`)[0];

beforeAll(async () => {
  rmSync(ARTIFACTS, { recursive: true, force: true });
  mkdirSync(ARTIFACTS, { recursive: true });
  // localhost must reach the auth server, which listens on 127.0.0.1.
  expect((await fetch(`${AUTH_URL}/health`)).status).toBe(200);
  context = await launchChromium({ phone: true });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (error) => pageErrors.push(error.message));
}, 60_000);

// The steps run in order on one browser: each starts where the previous one left the page.
describe("the example page in Chromium, on another origin than the auth server", () => {
  test("the page fits a phone screen and asks for the profile fields, the free-text role only with 'other'", async () => {
    await page.goto(SITE_URL);
    await statusSays(page, "Not signed in.");
    expect(await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")).toBe(true);
    const signUp = page.locator("#sign-up-form");
    expect(await signUp.getByLabel("Your role").isVisible()).toBe(false);
    await signUp.getByLabel("Role", { exact: true }).selectOption("other");
    expect(await signUp.getByLabel("Your role").isVisible()).toBe(true);
    await screenshot(page, "signed-out");
    expect(pageErrors).toEqual([]);
  }, TEST_TIMEOUT_MS);

  test("sign-up stores the profile fields and sets a session cookie that page scripts cannot read", async () => {
    const signUp = page.locator("#sign-up-form");
    await signUp.getByLabel("Name").fill("Ada Browser");
    await signUp.getByLabel("Email").fill(email);
    await signUp.getByLabel("Password").fill(PASSWORD);
    await signUp.getByLabel("Experience level").selectOption("intermediate");
    await signUp.getByLabel("Role", { exact: true }).selectOption("other");
    await signUp.getByLabel("Your role").fill("Teacher");
    await signUp.getByLabel("Organization").fill("Example School");
    await screenshot(page, "sign-up-filled");
    await signUp.getByRole("button", { name: "Create account" }).click();

    await statusSays(page, `Signed in as ${email}`);
    expect(await page.locator("dd[data-field=role]").textContent()).toBe("other (Teacher)");
    expect(await page.locator("dd[data-field=organization]").textContent()).toBe("Example School");
    expect(await userRow()).toMatchObject({
      experience_level: "intermediate",
      professional_role: "other",
      role_other: "Teacher",
      organization: "Example School",
      sessions: 1,
    });

    // Cookies are not kept apart by port: without HttpOnly the site's scripts could read it.
    const [cookie] = await sessionCookies();
    expect(cookie).toMatchObject({ domain: "localhost", httpOnly: true, sameSite: "Lax", secure: false });
    expect((await context.cookies(SITE_URL)).some((c) => c.name === cookie!.name)).toBe(true);
    expect(await page.evaluate("document.cookie")).toBe("");
    await screenshot(page, "signed-up");
    expect(pageErrors).toEqual([]);
  }, TEST_TIMEOUT_MS);

  test("the session survives a reload, and the sessions list shows this browser", async () => {
    await page.reload();
    await statusSays(page, `Signed in as ${email}`);
    await page.getByRole("button", { name: "List sessions" }).click();
    const sessions = page.locator("#sessions li");
    await sessions.first().waitFor();
    expect(await sessions.count()).toBe(1);
    expect(await sessions.first().textContent()).toContain("(this browser)");
    expect(await sessions.first().textContent()).toContain("Chrome");
    await screenshot(page, "sessions");
    expect(pageErrors).toEqual([]);
  }, TEST_TIMEOUT_MS);

  test("sign-out clears the cookie and the session; a wrong password is refused; sign-in restores both", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await statusSays(page, "Not signed in.");
    expect(await sessionCookies()).toEqual([]);
    expect((await userRow())?.sessions).toBe(0);
    await page.reload();
    await statusSays(page, "Not signed in.");
    await screenshot(page, "signed-out-again");

    const signIn = page.locator("#sign-in-form");
    await signIn.getByLabel("Email").fill(email);
    await signIn.getByLabel("Password").fill("not the password");
    await signIn.getByRole("button", { name: "Sign in" }).click();
    await page.locator("#message:not([hidden])").waitFor();
    expect(await page.locator("#message").textContent()).toMatch(/invalid email or password/i);
    expect(await sessionCookies()).toEqual([]);
    await screenshot(page, "wrong-password");

    await signIn.getByLabel("Password").fill(PASSWORD);
    await signIn.getByRole("button", { name: "Sign in" }).click();
    await statusSays(page, `Signed in as ${email}`);
    expect(await page.locator("#message").isVisible()).toBe(false);
    expect((await sessionCookies()).map((cookie) => cookie.httpOnly)).toEqual([true]);
    expect((await userRow())?.sessions).toBe(1);
    await screenshot(page, "signed-in");
    expect(pageErrors).toEqual([]);
  }, TEST_TIMEOUT_MS);

  test("a page on an origin outside CORS_ORIGINS can neither read the session nor sign the user out", async () => {
    const stranger = await context.newPage();
    await stranger.goto(UNTRUSTED_URL);
    // The same page, same browser, same cookie: the auth server's answers are withheld from it.
    await statusSays(stranger, "The auth server could not be reached");
    expect(await stranger.locator("#account").isVisible()).toBe(false);

    const read = await stranger.evaluate(
      `fetch(${JSON.stringify(`${AUTH_URL}/api/auth/get-session`)}, { credentials: "include" })
         .then((response) => response.text().then((body) => "read " + body), (error) => "blocked " + error.name)`,
    );
    expect(read).toBe("blocked TypeError");
    // A no-cors POST still reaches the server with the cookie (same site); the origin check refuses it.
    const signOut = await stranger.evaluate(
      `fetch(${JSON.stringify(`${AUTH_URL}/api/auth/sign-out`)}, { method: "POST", mode: "no-cors", credentials: "include" })
         .then((response) => response.type)`,
    );
    expect(signOut).toBe("opaque");
    await screenshot(stranger, "untrusted-origin");
    await stranger.close();

    expect((await userRow())?.sessions).toBe(1);
    await page.reload();
    await statusSays(page, `Signed in as ${email}`);

    // The control: the same request from the trusted origin does sign out, so the cookie did travel.
    const trustedSignOut = await page.evaluate(
      `fetch(${JSON.stringify(`${AUTH_URL}/api/auth/sign-out`)}, { method: "POST", mode: "no-cors", credentials: "include" })
         .then((response) => response.type)`,
    );
    expect(trustedSignOut).toBe("opaque");
    expect((await userRow())?.sessions).toBe(0);
  }, TEST_TIMEOUT_MS);
});
