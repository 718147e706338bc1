// Account lockout (src/security/lockout.ts), ASVS 2.2.1: failed sign-ins counted per account in Postgres,
// whatever IP or instance they come from; a locked account answers exactly like a wrong password (no
// lockout oracle), even with the right password; the owner is notified once (ASVS 2.2.3); a
// successful sign-in resets the count; the lock ends by itself.
import { createHmac } from "node:crypto";
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import type { LockedAccount } from "../../src/security/lockout.ts";
import { cleanUpAfterFile, createSecondInstance, createTestApp, createTestClient, inProcessFetch, PASSWORD, signUp, type TestApp } from "../helpers.ts";
import { createMailTestApp } from "../smtp.ts";

cleanUpAfterFile();
// Each test hashes passwords a dozen times or more; a loaded machine needs more than the default 5 s.
setDefaultTimeout(30_000);

type Send = TestApp["request"];

const attempt = (request: Send, email: string, password: string, ip = "198.51.100.1", cookie?: string) =>
  request("/api/auth/sign-in/email", { method: "POST", headers: { "x-forwarded-for": ip, ...(cookie ? { cookie } : {}) }, json: { email, password } });

const DEVICE = "better-auth.device";
/** The `name=value` of the device cookie a successful sign-in sets. */
function deviceCookieOf(response: Response): string {
  const line = response.headers.getSetCookie().find((set) => set.startsWith(`${DEVICE}=`));
  expect(line).toBeDefined();
  return line!.split(";")[0]!;
}
/** The owner signs in from their own browser and keeps its device cookie. */
async function ownersBrowser(request: Send, email: string) {
  const signedIn = await attempt(request, email, PASSWORD, "203.0.113.7");
  expect(signedIn.status).toBe(200);
  return deviceCookieOf(signedIn);
}

/** The status and body of an answer, the parts a client could compare. */
async function answer(response: Response) {
  return { status: response.status, body: await response.json(), cookies: response.headers.getSetCookie().length };
}

/** An app whose lockout notifications are collected in `notified`. */
async function lockoutApp(env: Record<string, string> = {}) {
  const notified: LockedAccount[] = [];
  const t = await createTestApp({ TRUST_PROXY: "on", ...env }, undefined, { notifyLockout: async (account) => void notified.push(account) });
  return { t, notified };
}

const eventsOf = (t: TestApp, type: string) =>
  t.db.sql<{ user_id: string | null; details: Record<string, unknown> }[]>`select user_id, details from auth_events where type = ${type} order by id`;

describe("account lockout (ASVS 2.2.1)", () => {
  test("10 failures from 10 different IPs lock the account: the right password then gets the wrong-password answer, and the owner is told once", async () => {
    const { t, notified } = await lockoutApp({ RATE_LIMIT: "on" });
    const { email, userId } = await signUp(t);
    const wrong = await answer(await attempt(t.request, email, "wrong password 0", "198.51.100.100"));
    expect(wrong.status).toBe(401);
    for (let i = 1; i < 10; i++) expect((await attempt(t.request, email, `wrong password ${i}`, `198.51.100.${i}`)).status).toBe(401);

    const locked = await answer(await attempt(t.request, email, PASSWORD, "198.51.100.50"));
    expect(locked).toEqual(wrong);
    expect(locked.body).toEqual({ code: "INVALID_EMAIL_OR_PASSWORD", message: "Invalid email or password" });
    expect(notified.map((account) => [account.id, account.email])).toEqual([[userId, email]]);
    expect(notified[0]!.lockedUntil.getTime() - Date.now()).toBeGreaterThan(14 * 60_000);
    expect((await eventsOf(t, "account_locked")).map((event) => event.user_id)).toEqual([userId]);
    expect((await eventsOf(t, "sign_in_failed")).at(-1)).toMatchObject({ user_id: userId, details: { reason: "account_locked" } });
    expect((await t.db.sql`select 1 from sessions where user_id = ${userId}`).length).toBe(1); // the sign-up's session only
  });

  test("a successful sign-in resets the count: 9 failures, a success, 9 more failures still leave the account open", async () => {
    const { t, notified } = await lockoutApp();
    const { email } = await signUp(t);
    for (let i = 0; i < 9; i++) await attempt(t.request, email, "wrong password");
    expect((await attempt(t.request, email, PASSWORD)).status).toBe(200);
    for (let i = 0; i < 9; i++) await attempt(t.request, email, "wrong password");
    expect((await attempt(t.request, email, PASSWORD)).status).toBe(200);
    expect(notified).toEqual([]);
  });

  test("the lock ends after LOCKOUT_DURATION, and failures older than LOCKOUT_WINDOW no longer count", async () => {
    const { t } = await lockoutApp({ LOCKOUT_MAX_FAILURES: "3", LOCKOUT_DURATION: "2s", LOCKOUT_WINDOW: "2s" });
    const { email } = await signUp(t);
    for (let i = 0; i < 3; i++) await attempt(t.request, email, "wrong password");
    expect((await attempt(t.request, email, PASSWORD)).status).toBe(401);
    await Bun.sleep(2100);
    expect((await attempt(t.request, email, PASSWORD)).status).toBe(200);

    for (let i = 0; i < 2; i++) await attempt(t.request, email, "wrong password");
    await Bun.sleep(2100);
    await attempt(t.request, email, "wrong password"); // a new window: 1 failure, not 3
    expect((await attempt(t.request, email, PASSWORD)).status).toBe(200);
  });

  test("two instances share the count: failures alternating between them lock the account on both", async () => {
    const { t, notified } = await lockoutApp({ LOCKOUT_MAX_FAILURES: "4" });
    const other = await createSecondInstance(t, {}, { notifyLockout: async (account) => void notified.push(account) });
    const { email } = await signUp(t);
    for (let i = 0; i < 4; i++) await attempt(i % 2 ? other.request : t.request, email, "wrong password");
    expect((await attempt(t.request, email, PASSWORD)).status).toBe(401);
    expect((await attempt(other.request, email, PASSWORD)).status).toBe(401);
    expect(notified.length).toBe(1);
  });

  test("20 concurrent failures lock the account once: one notification, one account_locked event", async () => {
    const { t, notified } = await lockoutApp();
    const { email } = await signUp(t);
    await Promise.all(Array.from({ length: 20 }, (_, i) => attempt(t.request, email, `wrong ${i}`)));
    expect(notified.length).toBe(1);
    expect((await eventsOf(t, "account_locked")).length).toBe(1);
  });

  test("an unknown email is never locked and answers like a wrong password; no counter row is written for it", async () => {
    const { t } = await lockoutApp({ LOCKOUT_MAX_FAILURES: "2" });
    const { email } = await signUp(t);
    const wrong = await answer(await attempt(t.request, email, "wrong password"));
    for (let i = 0; i < 3; i++) expect(await answer(await attempt(t.request, "nobody@example.test", "wrong password"))).toEqual(wrong);
    expect((await t.db.sql`select 1 from account_lockouts`).length).toBe(1);
  });

  test("with SMTP configured, the owner receives a mail over real SMTP when the account locks, once (ASVS 2.2.3)", async () => {
    const t = await createMailTestApp({ LOCKOUT_MAX_FAILURES: "3", LOCKOUT_DURATION: "15m" });
    const { email } = await signUp(t);
    for (let i = 0; i < 5; i++) expect((await attempt(t.request, email, `wrong ${i}`)).status).toBe(401);
    // (Sign-up sent a verification mail first; the lock notice is its own message.)
    const mail = await t.smtp.waitForMail((received) => received.to.includes(email) && received.subject.includes("locked"));
    expect(mail.subject).toBe("Your Learn account is locked for 15 minutes");
    expect(mail.text).toContain("too many failed attempts");
    expect(mail.text).not.toContain("wrong ");
    await Bun.sleep(300);
    expect(t.smtp.mailsTo(email).filter((received) => received.subject.includes("locked")).length).toBe(1);
  });
});

describe("device cookies (OWASP: Slow Down Online Guessing Attacks with Device Cookies)", () => {
  test("strangers who lock the account do not lock out the owner's browser that signed in before, and the owner is told", async () => {
    const { t, notified } = await lockoutApp({ LOCKOUT_MAX_FAILURES: "10" });
    const { email, userId } = await signUp(t);
    const device = await ownersBrowser(t.request, email);
    for (let i = 0; i < 10; i++) expect((await attempt(t.request, email, `wrong password ${i}`, `198.51.100.${i}`)).status).toBe(401);
    // Everyone without the owner's device cookie is locked out, even with the right password.
    expect((await attempt(t.request, email, PASSWORD, "198.51.100.99")).status).toBe(401);
    expect(notified.map((account) => account.id)).toEqual([userId]);
    // The owner's browser signs in, and keeps doing so hour after hour of guessing elsewhere.
    for (let round = 0; round < 3; round++) {
      const signedIn = await attempt(t.request, email, PASSWORD, "203.0.113.7", device);
      expect(signedIn.status).toBe(200);
      expect(deviceCookieOf(signedIn)).not.toBe(device); // a fresh nonce after every success
      for (let i = 0; i < 10; i++) await attempt(t.request, email, "wrong password", "198.51.100.20");
    }
    expect((await attempt(t.request, email, PASSWORD, "198.51.100.99")).status).toBe(401);
  });

  test("a trusted browser has its own failure budget: its wrong passwords lock only it, not the account", async () => {
    const { t, notified } = await lockoutApp({ LOCKOUT_MAX_FAILURES: "3" });
    const { email } = await signUp(t);
    const device = await ownersBrowser(t.request, email);
    const wrong = await (await attempt(t.request, email, "wrong password", "203.0.113.7", device)).json();
    for (let i = 0; i < 2; i++) await attempt(t.request, email, "wrong password", "203.0.113.7", device);
    // That browser is locked, with the same answer as a wrong password ...
    const locked = await attempt(t.request, email, PASSWORD, "203.0.113.7", device);
    expect([locked.status, await locked.json()]).toEqual([401, wrong]);
    // ... while the account's count for every other client is untouched, and nobody was mailed.
    expect((await attempt(t.request, email, PASSWORD, "198.51.100.1")).status).toBe(200);
    expect(notified).toEqual([]);
    const [row] = await t.db.sql<{ events: number }[]>`select count(*)::int as events from auth_events where type = 'account_locked' and details->>'clients' = 'device'`;
    expect(row!.events).toBe(1);
  });

  test("a device cookie of another account, a tampered one or one signed with another secret makes a client no more trusted than none", async () => {
    const { t } = await lockoutApp({ LOCKOUT_MAX_FAILURES: "3" });
    const victim = await signUp(t);
    const attacker = await signUp(t);
    const attackersOwn = await ownersBrowser(t.request, attacker.email);
    const victims = await ownersBrowser(t.request, victim.email);
    for (let i = 0; i < 3; i++) await attempt(t.request, victim.email, "wrong password", "198.51.100.1");
    const [, value] = victims.split("=") as [string, string];
    const decoded = decodeURIComponent(value);
    const forged = [
      attackersOwn,
      // The victim's id with the attacker's nonce and signature, and the victim's nonce with a bad signature.
      `${DEVICE}=${encodeURIComponent(`${victim.userId}:${decodeURIComponent(attackersOwn.split("=")[1]!).split(":")[1]}`)}`,
      `${DEVICE}=${encodeURIComponent(`${decoded.slice(0, decoded.lastIndexOf(".") + 1)}${"A".repeat(43)}=`)}`,
    ];
    // The victim's id and nonce, signed as the server signs (HMAC-SHA256) but with another secret.
    const payload = decoded.slice(0, decoded.lastIndexOf("."));
    const otherSecret = createHmac("sha256", "another-secret-0123456789-abcdefghijklmnopqrstuvwxyz").update(payload).digest("base64");
    forged.push(`${DEVICE}=${encodeURIComponent(`${payload}.${otherSecret}`)}`);
    for (const cookie of forged) expect([cookie, (await attempt(t.request, victim.email, PASSWORD, "198.51.100.2", cookie)).status]).toEqual([cookie, 401]);
    // The real one still lets the owner in.
    expect((await attempt(t.request, victim.email, PASSWORD, "203.0.113.7", victims)).status).toBe(200);
  });

  test("the device cookie is HttpOnly, SameSite=Lax, long-lived, and names the account by id, never by address", async () => {
    const { t } = await lockoutApp();
    const { email, userId } = await signUp(t);
    const signedIn = await attempt(t.request, email, PASSWORD);
    const line = signedIn.headers.getSetCookie().find((set) => set.startsWith(`${DEVICE}=`))!;
    expect(line).toMatch(/; HttpOnly/i);
    expect(line).toMatch(/; SameSite=Lax/i);
    expect(Number(/Max-Age=(\d+)/i.exec(line)![1])).toBeGreaterThanOrEqual(180 * 24 * 3600);
    const value = decodeURIComponent(deviceCookieOf(signedIn).split("=")[1]!);
    expect(value.startsWith(`${userId}:`)).toBe(true);
    expect(value).not.toContain(email);
    // A failed sign-in sets none.
    expect((await attempt(t.request, email, "wrong password")).headers.getSetCookie().some((set) => set.startsWith(`${DEVICE}=`))).toBe(false);
  });

  test("Better Auth's own client with a cookie jar keeps the device cookie and signs the owner in while strangers have the account locked", async () => {
    const { t } = await lockoutApp({ LOCKOUT_MAX_FAILURES: "3" });
    const { email } = await signUp(t);
    const target = { baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) };
    const owner = createTestClient(target);
    expect((await owner.client.signIn.email({ email, password: PASSWORD })).error).toBeNull();
    await owner.client.signOut();
    const stranger = createTestClient(target);
    for (let i = 0; i < 3; i++) expect((await stranger.client.signIn.email({ email, password: `wrong password ${i}` })).error?.status).toBe(401);
    expect((await stranger.client.signIn.email({ email, password: PASSWORD })).error?.status).toBe(401);
    const again = await owner.client.signIn.email({ email, password: PASSWORD });
    expect(again.error).toBeNull();
    expect(again.data?.user.email).toBe(email);
  });
});
