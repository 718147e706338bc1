// Passkeys in Debian's Chromium with the DevTools WebAuthn virtual authenticator: a page on the site's
// origin (localhost, another port than the auth server) registers a passkey for the signed-in user
// through Better Auth's client and its passkey plugin, signs out, signs in with the passkey alone,
// lists and deletes it; a deleted passkey no longer signs anyone in.
import { beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import type { CDPSession, Page } from "playwright-core";
import { launchChromium } from "../chromium.ts";
import { cleanUpAfterFile, createTempDir, createTestClient, freePort, onCleanup, PASSWORD, startTestServer, uniqueEmail } from "../helpers.ts";
import type { PasskeyPageClient } from "../passkey-page.ts";

cleanUpAfterFile();

const TEST_TIMEOUT_MS = 90_000;

const authPort = freePort();
const AUTH_URL = `http://localhost:${authPort}`;

/** The test page: its script is Better Auth's client with the passkey plugin, bundled by Bun. */
async function serveTestPage() {
  const outDir = createTempDir("passkey-page");
  const built = await Bun.build({
    entrypoints: [join(import.meta.dir, "..", "passkey-page.ts")],
    outdir: outDir,
    target: "browser",
    define: { AUTH_URL: JSON.stringify(AUTH_URL) },
  });
  if (!built.success) throw new AggregateError(built.logs, "bundling the passkey test page failed");
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>Passkeys</title><link rel="icon" href="data:,">
<script type="module" src="/passkey-page.js"></script></head><body><h1>Passkeys</h1></body></html>`;
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(request) {
      const path = new URL(request.url).pathname;
      if (path === "/") return new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } });
      if (path === "/passkey-page.js") return new Response(Bun.file(join(outDir, "passkey-page.js")), { headers: { "content-type": "text/javascript" } });
      return new Response("Not found\n", { status: 404 });
    },
  });
  onCleanup(async () => server.stop(true));
  return `http://localhost:${server.port}`;
}

const SITE_URL = await serveTestPage();
// The relying party is the site: PASSKEY_RP_ID defaults to the host of the first site origin (localhost).
const server = await startTestServer({ PORT: String(authPort), BETTER_AUTH_URL: AUTH_URL, CORS_ORIGINS: SITE_URL });
const email = uniqueEmail("passkey");

let page: Page;
let cdp: CDPSession;
let authenticatorId: string;
const pageErrors: string[] = [];

/** Runs `action` with the page's Better Auth client, in the page; answers what it returns. */
function inPage<T, A>(action: (client: PasskeyPageClient, arg: A) => Promise<T>, arg: A): Promise<T> {
  return page.evaluate(
    async ({ source, arg }) => {
      const client = (globalThis as unknown as { authClient: PasskeyPageClient }).authClient;
      // eslint-disable-next-line no-new-func
      return new Function("client", "arg", `return (${source})(client, arg)`)(client, arg);
    },
    { source: action.toString(), arg },
  ) as Promise<T>;
}

const sessionUser = () => inPage(async (client) => (await client.getSession()).data?.user ?? null, null);

const passkeyRows = () =>
  server.db.sql<{ id: string; name: string | null; credential_id: string; counter: number; device_type: string; backed_up: boolean; user_id: string }[]>`
    select p.id, p.name, p.credential_id, p.counter, p.device_type, p.backed_up, p.user_id
    from passkeys p join users u on u.id = p.user_id where u.email = ${email}`;

const sessionCount = async () =>
  (await server.db.sql<{ n: number }[]>`select count(*)::int as n from sessions s join users u on u.id = s.user_id where u.email = ${email}`)[0]!.n;

/** The credentials the virtual authenticator holds (base64 ids). */
async function authenticatorCredentials() {
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  return credentials;
}

beforeAll(async () => {
  const context = await launchChromium();
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (error) => pageErrors.push(error.message));
  cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  // A platform authenticator with resident keys and user verification (a fingerprint that always matches).
  ({ authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  }));
  await page.goto(SITE_URL);
  await page.waitForFunction(() => "authClient" in globalThis);
}, 60_000);

// The steps run in order on one browser: each starts where the previous one left it.
describe("passkeys in Chromium", () => {
  test("a signed-in user registers a passkey: one credential on the authenticator, one passkeys row for the user", async () => {
    const signedUp = await inPage((client, { email, password }) => client.signUp.email({ name: "Passkey User", email, password }), { email, password: PASSWORD });
    expect(signedUp.error).toBeNull();

    const added = await inPage((client) => client.passkey.addPasskey({ name: "Laptop" }), null);
    expect(added.error).toBeNull();

    const credentials = await authenticatorCredentials();
    expect(credentials).toHaveLength(1);
    expect(credentials[0]).toMatchObject({ rpId: "localhost", isResidentCredential: true });
    const rows = await passkeyRows();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ name: "Laptop", user_id: signedUp.data!.user.id, device_type: "singleDevice" });
    // The server stores the credential id base64url-encoded; the authenticator reports it in base64.
    expect(rows[0]!.credential_id).toBe(Buffer.from(credentials[0]!.credentialId, "base64").toString("base64url"));
    expect(pageErrors).toEqual([]);
  }, TEST_TIMEOUT_MS);

  test("after signing out, the passkey alone signs the user in: a new session on the auth server", async () => {
    expect((await inPage((client) => client.signOut(), null)).error).toBeNull();
    expect(await sessionUser()).toBeNull();
    const sessionsBefore = await sessionCount();

    const signedIn = await inPage((client) => client.signIn.passkey(), null);
    expect(signedIn.error).toBeNull();
    expect((await sessionUser())?.email).toBe(email);
    expect(await sessionCount()).toBe(sessionsBefore + 1);
    // The authenticator's signature counter moved on, and the server kept it (replay detection).
    const [credential] = await authenticatorCredentials();
    expect(credential!.signCount).toBeGreaterThan(0);
    expect((await passkeyRows())[0]!.counter).toBe(credential!.signCount);
  }, TEST_TIMEOUT_MS);

  test("the user lists the passkey and deletes it; the deleted passkey no longer signs in", async () => {
    const listed = await inPage((client) => client.passkey.listUserPasskeys(), null);
    expect(listed.error).toBeNull();
    expect(listed.data).toHaveLength(1);
    const [row] = await passkeyRows();
    expect(listed.data![0]).toMatchObject({ id: row!.id, name: "Laptop", credentialID: row!.credential_id });

    // Another user cannot delete or rename it, and learns nothing: the answer is the unknown id's (ASVS 4.2.1).
    const { client: other } = createTestClient({ baseUrl: AUTH_URL }, SITE_URL);
    expect((await other.signUp.email({ name: "Other", email: uniqueEmail("other"), password: PASSWORD })).error).toBeNull();
    for (const id of [row!.id, "no-such-passkey"]) {
      const foreign = await other.passkey.deletePasskey({ id });
      expect(foreign.error).toMatchObject({ status: 404, code: "PASSKEY_NOT_FOUND" });
      const renamed = await other.passkey.updatePasskey({ id, name: "Mine now" });
      expect(renamed.error).toMatchObject({ status: 404, code: "PASSKEY_NOT_FOUND" });
    }
    expect(await passkeyRows()).toMatchObject([{ name: "Laptop" }]);

    const deleted = await inPage((client, id) => client.passkey.deletePasskey({ id }), listed.data![0]!.id);
    expect(deleted.error).toBeNull();
    expect(await passkeyRows()).toHaveLength(0);
    expect((await inPage((client) => client.passkey.listUserPasskeys(), null)).data).toEqual([]);

    await inPage((client) => client.signOut(), null);
    const sessionsBefore = await sessionCount();
    // The authenticator still holds the credential; the server no longer knows it.
    expect(await authenticatorCredentials()).toHaveLength(1);
    const refused = await inPage((client) => client.signIn.passkey(), null);
    expect(refused.data).toBeNull();
    expect(refused.error).toMatchObject({ status: 401, code: "PASSKEY_NOT_FOUND" });
    expect(await sessionUser()).toBeNull();
    expect(await sessionCount()).toBe(sessionsBefore);
  }, TEST_TIMEOUT_MS);
});
