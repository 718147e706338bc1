// Debian's Chromium, driven by playwright-core, for the tests that open pages in a real browser.
import { existsSync } from "node:fs";
import { chromium, type BrowserContext } from "playwright-core";
import { createTempDir, onCleanup } from "./helpers.ts";

export const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
// A shared two-core machine: a browser step may wait a while for the CPU.
export const STEP_TIMEOUT_MS = 20_000;

/** A headless Chromium with a fresh profile (a phone-sized screen), closed after the test file. */
export async function launchChromium(options: { phone?: boolean } = {}): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: the browser tests drive Debian's chromium (apt-get install -y chromium)`);
  }
  const context = await chromium.launchPersistentContext(createTempDir("chromium-profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    ...(options.phone && { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }),
  });
  // Registered last, so it runs first: the browser goes before the servers it talks to.
  onCleanup(() => context.close());
  context.setDefaultTimeout(STEP_TIMEOUT_MS);
  return context;
}
