// Sign-up does not tell who has an account (ASVS 4.0 2.5 / V2 account enumeration; OWASP Authentication
// Cheat Sheet, "Authentication and Error Messages"). With REQUIRE_EMAIL_VERIFICATION=on a taken address is
// answered exactly as a new one (same status, same body shape, no session; the password is hashed anyway,
// as for a new account) and the owner gets a mail instead, over real SMTP. Without it, sign-up signs the
// new user in at once, and Better Auth answers a taken address 422 USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL
// (docs/mail.md, "Sign-up and existing addresses").
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { cleanUpAfterFile, PASSWORD, uniqueEmail, type TestApp, expectError } from "../helpers.ts";
import { createMailTestApp, linkIn } from "../smtp.ts";

cleanUpAfterFile();
setDefaultTimeout(30_000);

const signUp = (t: Pick<TestApp, "request">, email: string, name = "Ada Owner", password = PASSWORD) =>
  t.request("/api/auth/sign-up/email", { method: "POST", json: { name, email, password } });

/** The type of every value, keys sorted: what a client can compare without knowing the values. */
function shapeOf(value: unknown): unknown {
  if (value === null) return "null";
  if (Array.isArray(value)) return value.map(shapeOf);
  if (typeof value === "object") return Object.fromEntries(Object.entries(value as object).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, shapeOf(v)]));
  return typeof value;
}

/** What a client sees of an answer, values aside. */
async function seen(response: Response) {
  const body = (await response.json()) as { token: unknown; user: Record<string, unknown> };
  return { status: response.status, contentType: response.headers.get("content-type"), cookies: response.headers.getSetCookie().length, shape: shapeOf(body), body };
}

describe("sign-up with REQUIRE_EMAIL_VERIFICATION=on", () => {
  test("a taken address gets the answer a new one gets (status, body shape, no session), no row changes, and the owner is mailed a sign-in link", async () => {
    const t = await createMailTestApp({ REQUIRE_EMAIL_VERIFICATION: "on" });
    const owner = uniqueEmail("owner");
    const created = await seen(await signUp(t, owner));
    expect(created.status).toBe(200);
    expect(created.body.token).toBeNull();
    const [row] = await t.db.sql<{ id: string; name: string; updated_at: Date }[]>`select id, name, updated_at from users where email = ${owner}`;
    const [account] = await t.db.sql<{ password: string }[]>`select password from accounts where user_id = ${row!.id}`;

    // Someone else, with another name, another password and the owner's address in another case.
    const taken = await seen(await signUp(t, owner.toUpperCase(), "Mallory", "another long password"));
    const fresh = await seen(await signUp(t, uniqueEmail("fresh"), "Mallory", "another long password"));
    for (const answer of [taken, fresh]) {
      expect({ ...answer, body: undefined }).toEqual({ ...created, body: undefined });
      expect(answer.body.token).toBeNull();
    }
    // Nothing in the body is the owner's: not their id, name or verification state.
    expect(taken.body.user.id).not.toBe(row!.id);
    expect(taken.body.user.name).toBe("Mallory");
    expect(taken.body.user.emailVerified).toBe(false);

    // No second user, no session, the owner's row and password untouched.
    expect((await t.db.sql`select 1 from users where lower(email) = ${owner}`).length).toBe(1);
    expect((await t.db.sql`select 1 from sessions where user_id = ${row!.id}`).length).toBe(0);
    const [after] = await t.db.sql<{ name: string; updated_at: Date }[]>`select name, updated_at from users where id = ${row!.id}`;
    expect(after).toEqual({ name: row!.name, updated_at: row!.updated_at });
    expect((await t.db.sql<{ password: string }[]>`select password from accounts where user_id = ${row!.id}`)[0]!.password).toBe(account!.password);

    // The owner hears of it: their name, a link to the site, nothing of what the other person typed.
    const notice = await t.smtp.waitForMail((mail) => mail.to.includes(owner) && mail.subject.includes("tried to create"));
    expect(notice.subject).toBe("Someone tried to create a Learn account with your email address");
    expect(notice.text).toContain("Hello Ada Owner,");
    expect(notice.text).toContain("Forgot password");
    expect(linkIn(notice)).toBe(t.config.mail.appUrl);
    expect(notice.text).not.toContain("Mallory");
    expect(notice.text).not.toContain("another long password");
    await Bun.sleep(200);
    expect(t.smtp.mailsTo(owner).filter((mail) => mail.subject.includes("tried to create")).length).toBe(1);
    // The owner's first mail was the verification of their own sign-up; the attempt sent no verification link.
    expect(t.smtp.mailsTo(owner).filter((mail) => mail.subject.startsWith("Verify")).length).toBe(1);
  });
});

describe("sign-up with REQUIRE_EMAIL_VERIFICATION off (the default)", () => {
  test("a new address is signed in at once, so a taken one cannot be answered alike: 422 USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL, and no mail", async () => {
    const t = await createMailTestApp({ REQUIRE_EMAIL_VERIFICATION: "off" });
    const owner = uniqueEmail("owner");
    const created = await signUp(t, owner);
    expect(created.status).toBe(200);
    expect(created.headers.getSetCookie().length).toBeGreaterThan(0);
    const taken = await signUp(t, owner, "Mallory", "another long password");
    await expectError(taken, 422, "USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL");
    await Bun.sleep(300);
    expect(t.smtp.mailsTo(owner).some((mail) => mail.subject.includes("tried to create"))).toBe(false);
  });
});
