// The relay is down (the SMTP server stopped) or slow: every flow answers a clear error or its usual
// answer, never a 5xx; no token of an undelivered mail stays usable; nothing is half-written; the log
// names the kind of message and the recipient's domain, never the address or a token.
import { describe, expect, test } from "bun:test";
import { createLogger } from "../../src/ops/log.ts";
import { cleanUpAfterFile, PASSWORD, signUp, uniqueEmail, expectError } from "../helpers.ts";
import { createMailTestApp } from "../smtp.ts";

cleanUpAfterFile();

const lines: string[] = [];
const t = await createMailTestApp({}, {}, createLogger("error", (line) => lines.push(line)));
// Everyone below signs up while the relay works; then it goes down.
const ada = await signUp(t);
const bob = await signUp(t);
await t.smtp.waitForMail(ada.email);
await t.smtp.waitForMail(bob.email);
await t.smtp.stop();

const slow = await createMailTestApp({ MAIL_SEND_TIMEOUT: "1s" }, { delayMs: 4_000 });

/** Tokens held for a user (value = user id), other than the verification-mail throttle. */
const tokensOf = async (userId: string) =>
  (await t.db.sql<{ n: number }[]>`select count(*)::int as n from verifications where value = ${userId} and id not like 'verification-mail-sent:%'`)[0]!.n;

async function eventually(check: () => Promise<boolean>, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await Bun.sleep(50);
  }
  throw new Error("condition not met in time");
}

describe("relay down", () => {
  test("change-email answers 424 MAIL_NOT_SENT; the address is unchanged", async () => {
    const response = await t.request("/api/auth/change-email", { method: "POST", headers: { cookie: ada.cookie }, json: { newEmail: uniqueEmail("new") } });
    expect(response.status).toBe(424);
    expect(await response.json()).toEqual({ code: "MAIL_NOT_SENT", message: "Could not send the email; please try again in a moment." });
    const [row] = await t.db.sql<{ email: string }[]>`select email from users where id = ${ada.userId}`;
    expect(row!.email).toBe(ada.email);
  });

  test("delete-user answers 424 MAIL_NOT_SENT and leaves no deletion token; the account stays", async () => {
    const response = await t.request("/api/auth/delete-user", { method: "POST", headers: { cookie: ada.cookie }, json: { password: PASSWORD } });
    await expectError(response, 424, "MAIL_NOT_SENT");
    expect(await tokensOf(ada.userId)).toBe(0);
    const [row] = await t.db.sql<{ n: number }[]>`select count(*)::int as n from users where id = ${ada.userId}`;
    expect(row!.n).toBe(1);
  });

  test("send-verification-email by the signed-in user answers 424 MAIL_NOT_SENT", async () => {
    const response = await t.request("/api/auth/send-verification-email", { method: "POST", headers: { cookie: bob.cookie }, json: { email: bob.email } });
    await expectError(response, 424, "MAIL_NOT_SENT");
  });

  test("request-password-reset keeps its one answer (no enumeration) and withdraws the token it could not deliver", async () => {
    const known = await t.request("/api/auth/request-password-reset", { method: "POST", json: { email: ada.email, redirectTo: "http://localhost:3000/reset" } });
    const unknown = await t.request("/api/auth/request-password-reset", { method: "POST", json: { email: uniqueEmail("x"), redirectTo: "http://localhost:3000/reset" } });
    expect(known.status).toBe(200);
    expect(await known.json()).toEqual(await unknown.json());
    await eventually(async () => (await tokensOf(ada.userId)) === 0);
  });

  test("magic-link keeps its answer; sign-up still creates the account (its mail can be resent later)", async () => {
    expect((await t.request("/api/auth/sign-in/magic-link", { method: "POST", json: { email: bob.email } })).status).toBe(200);
    const email = uniqueEmail("late");
    const response = await t.request("/api/auth/sign-up/email", { method: "POST", json: { email, password: PASSWORD, name: "Late" } });
    expect(response.status).toBe(200);
    const [row] = await t.db.sql<{ email_verified: boolean }[]>`select email_verified from users where email = ${email}`;
    expect(row!.email_verified).toBe(false);
  });

  test("every failure was logged with its kind and the recipient's domain, never an address or a token", async () => {
    await eventually(async () => ["change-email-verify", "delete-account", "verify-email", "password-reset", "magic-link"].every((kind) => lines.some((line) => line.includes(`mail ${kind} to a recipient at example.test failed`))));
    const log = lines.join("\n");
    expect(log).not.toContain(ada.email);
    expect(log).not.toContain(bob.email);
    expect(log).not.toContain("token=");
    expect(log).not.toMatch(/reset-password\/[A-Za-z0-9]{10,}/);
    expect(log).not.toContain("INTERNAL");
  });
});

describe("slow relay (MAIL_SEND_TIMEOUT=1s, relay holds each message 4 s)", () => {
  test("a waiting flow gives up after the bound with 424; a queued one answers at once", async () => {
    const { cookie, email } = await signUp(slow);
    let started = performance.now();
    const change = await slow.request("/api/auth/change-email", { method: "POST", headers: { cookie }, json: { newEmail: uniqueEmail("slow") } });
    const waited = performance.now() - started;
    expect(change.status).toBe(424);
    expect(waited).toBeGreaterThanOrEqual(900);
    expect(waited).toBeLessThan(3_000);

    started = performance.now();
    const reset = await slow.request("/api/auth/request-password-reset", { method: "POST", json: { email, redirectTo: "http://localhost:3000/reset" } });
    expect(reset.status).toBe(200);
    expect(performance.now() - started).toBeLessThan(900);
  });
});
