// With ADMIN_EMAILS set, creating sessions concurrently must not exhaust the database pool for good.
// Better Auth creates a session inside a transaction that holds one pool connection; a session hook that
// queries through the pool instead of that transaction needs a second connection. As many concurrent
// sign-ups or sign-ins as the pool has connections then each hold one and wait for another that never
// frees: every later request that needs the database answers 503 DATABASE_UNAVAILABLE, on that instance,
// until it is restarted (OWASP Denial of Service Cheat Sheet: no unauthenticated request may exhaust a
// shared resource; ASVS 4.0 1.11.2 / 11.1.4).
import { expect, setDefaultTimeout, test } from "bun:test";
import { cleanUpAfterFile, createTestApp, PASSWORD, uniqueEmail } from "../helpers.ts";

cleanUpAfterFile();
setDefaultTimeout(60_000);

const POOL = 2;

test("with ADMIN_EMAILS, more concurrent sign-ups than pool connections all finish and leave the pool usable", async () => {
  const t = await createTestApp({ ADMIN_EMAILS: "boss@example.test", DATABASE_POOL_MAX: String(POOL) });
  const signUp = (email: string) =>
    t.request("/api/auth/sign-up/email", { method: "POST", json: { name: "Someone", email, password: PASSWORD } });

  const emails = Array.from({ length: POOL * 4 }, () => uniqueEmail("concurrent"));
  const answered = await Promise.race([
    Promise.all(emails.map(async (email) => (await signUp(email)).status)),
    Bun.sleep(30_000).then(() => "still waiting after 30 s" as const),
  ]);
  expect(answered).toEqual(emails.map(() => 200));
  const rows = await t.db.sql<{ n: number }[]>`select count(*)::int as n from users where email = any(${emails}::text[])`;
  expect(rows[0]!.n).toBe(emails.length);

  // The pool still answers afterwards.
  const later = await Promise.race([signUp(uniqueEmail("later")).then((r) => r.status), Bun.sleep(15_000).then(() => "still waiting after 15 s" as const)]);
  expect(later).toBe(200);
});
