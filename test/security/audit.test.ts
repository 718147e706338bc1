// The audit trail (src/security/audit.ts), ASVS 7.1.3 / 7.2.1: every authentication decision is a row in
// auth_events with who, when, from where and a reason class; ASVS 7.1.1 / 7.1.2: no row holds a
// password, token, cookie or secret; old rows are pruned after AUDIT_RETENTION.
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { runHousekeeping } from "../../src/ops/housekeeping.ts";
import { cleanUpAfterFile, createTestApp, listedHandle, PASSWORD, sessionCookieOf, signUp, TEST_SECRET, type TestApp, post, attemptSignIn } from "../helpers.ts";

cleanUpAfterFile();
// Each test hashes passwords a dozen times or more; a loaded machine needs more than the default 5 s.
setDefaultTimeout(30_000);

const CLIENT = { "x-forwarded-for": "192.0.2.33", "user-agent": "audit-test/1.0" };

type EventRow = { type: string; user_id: string | null; ip: string | null; user_agent: string | null; details: Record<string, unknown> };
const events = (t: TestApp) => t.db.sql<EventRow[]>`select type, user_id, ip, user_agent, details from auth_events order by id`;

describe("auth_events", () => {
  test("records sign-up, sign-in, failures with their reason class, revocations, password change and sign-out, with IP and user agent, and nothing secret", async () => {
    const t = await createTestApp({ TRUST_PROXY: "on" });
    const client = { request: (path: string, init: Parameters<TestApp["request"]>[1] = {}) => t.request(path, { ...init, headers: { ...CLIENT, ...init.headers } }) };

    const { email, userId, token, cookie } = await signUp(client);
    const wrong = await post(client, "/api/auth/sign-in/email", { email, password: "a wrong password" });
    expect(wrong.status).toBe(401);
    await post(client, "/api/auth/sign-in/email", { email: "nobody@example.test", password: "another wrong one" });
    const second = await attemptSignIn(client, email);
    const secondCookie = sessionCookieOf(second);
    const secondToken = ((await second.json()) as { token: string }).token;
    await post(client, "/api/auth/revoke-other-sessions", {}, secondCookie);
    const newPassword = "a brand new passphrase";
    const changed = await post(client, "/api/auth/change-password", { currentPassword: PASSWORD, newPassword }, secondCookie);
    expect(changed.status).toBe(200);
    expect((await post(client, "/api/auth/sign-out", {}, secondCookie)).status).toBe(200);

    const rows = await events(t);
    expect(rows.map((row) => [row.type, row.user_id])).toEqual([
      ["sign_up", userId],
      ["sign_in_failed", userId],
      ["sign_in_failed", null],
      ["sign_in", userId],
      ["session_revoked", userId],
      ["password_changed", userId],
      ["sign_out", userId],
    ]);
    expect(rows[1]!.details).toEqual({ method: "email", reason: "invalid_credentials" });
    expect(rows[2]!.details).toEqual({ method: "email", reason: "invalid_credentials" });
    expect(rows[3]!.details).toEqual({ method: "email" });
    expect(rows[4]!.details).toEqual({ scope: "other-sessions" });
    for (const row of rows) {
      expect(row.ip).toBe("192.0.2.33");
      expect(row.user_agent).toBe("audit-test/1.0");
    }

    // ASVS 7.1.1: nothing secret anywhere in the table, in any column.
    const dump = JSON.stringify(await t.db.sql`select * from auth_events`);
    const secrets = [PASSWORD, "a wrong password", "another wrong one", newPassword, token, secondToken, cookie, secondCookie, TEST_SECRET, "nobody@example.test"];
    for (const secret of secrets) expect(dump).not.toContain(secret.split("=").at(-1)!);
  });

  test("revoking one session and signing out record the user whose session it was", async () => {
    const t = await createTestApp();
    const { userId, cookie } = await signUp(t);
    const other = await t.request("/api/auth/sign-in/email", { method: "POST", json: { email: (await t.db.sql`select email from users`)[0]!.email, password: PASSWORD } });
    const otherToken = ((await other.json()) as { token: string }).token;
    const handle = await listedHandle(t, cookie, otherToken);
    expect((await t.request("/api/auth/revoke-session", { method: "POST", headers: { cookie }, json: { token: handle } })).status).toBe(200);
    const revoked = (await events(t)).filter((row) => row.type === "session_revoked");
    expect(revoked.map((row) => [row.user_id, row.details])).toEqual([[userId, { scope: "session" }]]);
  });

  test("a refused request that names no account records a failure without a user; a malformed sign-in is an invalid_request", async () => {
    const t = await createTestApp();
    await t.request("/api/auth/sign-in/email", { method: "POST", json: { email: "not-an-email", password: "whatever it is" } });
    expect((await events(t)).map((row) => [row.type, row.user_id, row.details.reason])).toEqual([["sign_in_failed", null, "invalid_request"]]);
  });

  test("events older than AUDIT_RETENTION are pruned, newer ones kept", async () => {
    const t = await createTestApp({ AUDIT_RETENTION: "90d" });
    await signUp(t);
    await t.db.sql`insert into auth_events (occurred_at, type) values (now() - interval '91 days', 'sign_in'), (now() - interval '89 days', 'sign_in')`;
    const run = await runHousekeeping(t.db.sql, { auditRetentionSeconds: t.config.auditRetentionSeconds, lockoutWindowSeconds: t.config.lockout.windowSeconds });
    expect(run.ran && run.deleted.auth_events).toBe(1);
    expect((await events(t)).length).toBe(2);
  });

  test("the table refuses what the server never writes: a malformed type, a non-object details", async () => {
    const t = await createTestApp();
    await expect(t.db.sql`insert into auth_events (type) values ('Sign In; drop table users')`).rejects.toThrow();
    await expect(t.db.sql`insert into auth_events (type, details) values ('sign_in', '[1]'::jsonb)`).rejects.toThrow();
  });
});
