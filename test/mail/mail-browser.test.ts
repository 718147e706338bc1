// Mailed links in Debian's Chromium: the verification link and a magic link, opened in a browser,
// land on the site (another origin) signed in; a used link lands there with ?error=INVALID_TOKEN and
// signed out. The site is the example page (examples/web), which shows the session it gets.
import { describe, expect, test } from "bun:test";
import type { BrowserContext } from "playwright-core";
import { buildSite, serveSite } from "../../examples/web/serve.ts";
import { launchChromium } from "../chromium.ts";
import { cleanUpAfterFile, createTempDir, freePort, onCleanup, PASSWORD, startTestServer, uniqueEmail, post } from "../helpers.ts";
import { linkIn, startSmtpServer } from "../smtp.ts";

cleanUpAfterFile();

const TEST_TIMEOUT_MS = 90_000;
const smtp = await startSmtpServer();
const authPort = freePort();
const AUTH_URL = `http://localhost:${authPort}`;
const site = serveSite(await buildSite(AUTH_URL, createTempDir("web")), { port: 0 });
onCleanup(async () => site.stop(true));
const SITE_URL = `http://localhost:${site.port}`;
await startTestServer({ PORT: String(authPort), BETTER_AUTH_URL: AUTH_URL, CORS_ORIGINS: SITE_URL, SMTP_URL: smtp.url });
/** The site's own pages call the auth server from SITE_URL. */
const fromSite = { origin: SITE_URL };

/** A fresh browser (no cookies) that opens `link` and reports where it landed and what the page says. */
async function openInBrowser(link: string, context?: BrowserContext) {
  const browser = context ?? (await launchChromium());
  const page = await browser.newPage();
  await page.goto(link);
  const status = page.locator("#status");
  await status.filter({ hasNotText: "Checking" }).waitFor();
  return { browser, url: new URL(page.url()), status: await status.textContent() };
}

describe("mailed links in a real browser", () => {
  test("the verification link lands on the site signed in; opened again it lands with ?error=INVALID_TOKEN, signed out", async () => {
    const email = uniqueEmail("browser-verify");
    expect((await post(AUTH_URL, "/api/auth/sign-up/email", { email, password: PASSWORD, name: "Ada" }, fromSite)).status).toBe(200);
    const link = linkIn(await smtp.waitForMail(email));

    const first = await openInBrowser(link);
    expect(first.url.origin).toBe(SITE_URL);
    expect(first.status).toBe(`Signed in as ${email}`);

    const again = await openInBrowser(link);
    expect(again.url.origin).toBe(SITE_URL);
    expect(again.url.searchParams.get("error")).toBe("INVALID_TOKEN");
    expect(again.status).toBe("Not signed in.");
  }, TEST_TIMEOUT_MS);

  test("a magic link signs a verified user in on the site", async () => {
    const email = uniqueEmail("browser-magic");
    expect((await post(AUTH_URL, "/api/auth/sign-up/email", { email, password: PASSWORD, name: "Ada" }, fromSite)).status).toBe(200);
    const verification = linkIn(await smtp.waitForMail(email));
    expect((await fetch(verification, { redirect: "manual" })).status).toBe(302);
    expect((await post(AUTH_URL, "/api/auth/sign-in/magic-link", { email, callbackURL: SITE_URL }, fromSite)).status).toBe(200);

    const landed = await openInBrowser(linkIn(await smtp.waitForMail(email)));
    expect(landed.url.origin).toBe(SITE_URL);
    expect(landed.status).toBe(`Signed in as ${email}`);
  }, TEST_TIMEOUT_MS);
});
