// Every check this server adds on top of Better Auth, tried with every shape of "absent" for each
// input it reads: missing, "", null, whitespace, a number, an array, an object, and URL-encoded
// spellings (a form body, percent-encoded values), next to the real value. Each property states the
// decision Better Auth itself makes with the same field (what it reads as absent, what it acts on),
// and checks that the guard refuses exactly where Better Auth would act in a way the guard forbids.
// OWASP ASVS 4.0.3: 4.1.3 (least privilege), 3.7.1 (re-authentication before a sensitive change),
// 2.8.4 / RFC 6238 5.2 (a TOTP code is used once), 5.1.3 (input validation), 5.1.5 (redirects only
// to allowed destinations), 3.3.1 (a revoked session mints no token), 2.5.4 (no unverified admin).
import { describe, expect, test } from "bun:test";
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { createEmailVerificationToken } from "better-auth/api";
import { symmetricEncrypt } from "better-auth/crypto";
import fc from "fast-check";
import { Secret, TOTP } from "otpauth";
import { TOTP_DIGITS, TOTP_PERIOD_SECONDS } from "../../src/auth/plugins/two-factor.ts";
import { cleanUpAfterFile, createTestApp, PASSWORD, signUp, SITE_ORIGIN, TEST_SECRET, uniqueEmail, type TestApp, attemptSignIn } from "../helpers.ts";

cleanUpAfterFile();

const RUNS = Number(process.env.PROPERTY_RUNS ?? 60);

// ---------------------------------------------------------------------------------------------
// Shapes of an input.

const MISSING = Symbol("missing");
type Shape = unknown;

/** Every character percent-encoded: what a URL-decoding reader turns back into `value`. */
const percentEncoded = (value: string) => [...new TextEncoder().encode(value)].map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, "0")}`).join("");

/** "Absent" in every shape, and (when given) the real value spelled in the ways a reader might normalise. */
function shapeList(real?: string): Shape[] {
  const absent: Shape[] = [MISSING, "", null, " ", "\t", "\n", "\u00a0", "\u200b", 0, 1, false, [], [""], {}, "%20", "%00", "null", "undefined"];
  const spelled: Shape[] = real === undefined ? [] : [real, [real], ` ${real}`, `${real} `, real.toUpperCase(), percentEncoded(real), encodeURIComponent(real)];
  return [...absent, ...spelled];
}
/** The listed shapes (every one of them is also run as an example), and generated whitespace. */
const shapes = (real?: string): fc.Arbitrary<Shape> =>
  fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...shapeList(real)) }, { weight: 1, arbitrary: fc.stringMatching(/^[ \t\r\n\u00a0]{1,4}$/) });
const ENCODING_LIST = ["json", "form"] as const;
/**
 * fast-check options running every example first and then RUNS generated cases (examples count
 * towards numRuns).
 */
const withExamples = <T>(examples: T[], generated = RUNS) => ({ examples, numRuns: examples.length + generated });
/** Every combination of the given lists: the examples fast-check runs before its random ones. */
const grid = <T extends unknown[]>(...lists: { [K in keyof T]: readonly T[K][] }): T[] =>
  lists.reduce<unknown[][]>((rows, list) => rows.flatMap((row) => list.map((item) => [...row, item])), [[]]) as T[];
const ENCODINGS = fc.constantFrom(...ENCODING_LIST);
type Encoding = "json" | "form";

/** A body with `fields` (MISSING left out), as JSON or as a form (where only strings exist). */
function bodyOf(fields: Record<string, Shape>, encoding: Encoding): { body: string; type: string } | null {
  const present = Object.entries(fields).filter(([, value]) => value !== MISSING);
  if (encoding === "json") return { body: JSON.stringify(Object.fromEntries(present)), type: "application/json" };
  const form = new URLSearchParams();
  for (const [key, value] of present) {
    const values = Array.isArray(value) ? value : [value];
    if (!values.every((item) => typeof item === "string")) return null; // not expressible as a form
    for (const item of values) form.append(key, item as string);
  }
  return { body: form.toString(), type: "application/x-www-form-urlencoded" };
}

const describeShape = (value: Shape) => (value === MISSING ? "missing" : JSON.stringify(value));

async function postShaped(t: TestApp, path: string, fields: Record<string, Shape>, encoding: Encoding, cookie: string) {
  const body = bodyOf(fields, encoding);
  if (!body) return null;
  return t.request(path, { method: "POST", headers: { cookie, "content-type": body.type }, body: body.body });
}

// ---------------------------------------------------------------------------------------------
// Users written in SQL (no password hashing per run) with a session cookie.

const t = await createTestApp();
const { userId: hashOwner } = await signUp(t);
const [{ password: passwordHash }] = (await t.db.sql`select password from accounts where user_id = ${hashOwner}`) as unknown as [{ password: string }];
const signed = (token: string, secret = TEST_SECRET) => encodeURIComponent(`${token}.${createHmac("sha256", secret).update(token).digest("base64")}`);

interface SqlUser {
  id: string;
  email: string;
  token: string;
  /** The session cookie alone: every request reads the session row (no cookie cache). */
  cookie: string;
}

async function createUser(app: TestApp, options: { verified?: boolean; sessionAgeHours?: number; activeOrganizationId?: string } = {}): Promise<SqlUser> {
  const user = { id: randomUUID(), email: uniqueEmail("absent"), token: randomBytes(24).toString("base64url") };
  await app.db.sql`insert into users (id, name, email, email_verified) values (${user.id}, 'Absent', ${user.email}, ${options.verified ?? true})`;
  await app.db.sql`insert into accounts (id, account_id, provider_id, user_id, password) values (${randomUUID()}, ${user.id}, 'credential', ${user.id}, ${passwordHash})`;
  const createdAt = new Date(Date.now() - (options.sessionAgeHours ?? 0) * 3600_000);
  await app.db.sql`insert into sessions (id, user_id, token, expires_at, created_at, updated_at, active_organization_id)
    values (${randomUUID()}, ${user.id}, ${user.token}, now() + interval '7 days', ${createdAt}, now(), ${options.activeOrganizationId ?? null})`;
  const secret = (await app.auth.$context).secret;
  return { ...user, cookie: `better-auth.session_token=${signed(user.token, secret)}` };
}

const digest = async (tables: string[]) =>
  (await t.db.sql.unsafe(`select ${tables.map((table) => `(select coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from ${table} t) as ${table}`).join(", ")}`))[0];

// ---------------------------------------------------------------------------------------------

describe("organization roles (src/auth/plugins/organization.ts): an instructor never gets an admin or owner invited", () => {
  test("whatever the shape of organizationId and role, and the body's encoding", async () => {
    const owner = await createUser(t);
    const organizationId = randomUUID();
    await t.db.sql`insert into organizations (id, name, slug) values (${organizationId}, 'School', ${`school-${organizationId}`})`;
    await t.db.sql`insert into members (id, organization_id, user_id, role) values (${randomUUID()}, ${organizationId}, ${owner.id}, 'owner')`;
    // An organization the instructor is not in.
    const elsewhere = randomUUID();
    await t.db.sql`insert into organizations (id, name, slug) values (${elsewhere}, 'Elsewhere', ${`elsewhere-${elsewhere}`})`;
    const instructor = await createUser(t, { activeOrganizationId: organizationId });
    await t.db.sql`insert into members (id, organization_id, user_id, role) values (${randomUUID()}, ${organizationId}, ${instructor.id}, 'instructor')`;

    const managingRoles = fc.constantFrom<Shape>("admin", "owner", ["admin"], ["student", "admin"], "student,admin", " admin", "admin ", "instructor, owner", ["owner"]);
    const organizationIds = fc.oneof(shapes(organizationId), fc.constant<Shape>(elsewhere));

    await fc.assert(
      fc.asyncProperty(organizationIds, managingRoles, ENCODINGS, async (organizationIdShape, role, encoding) => {
        const invite = async (asRole: Shape) => {
          const email = uniqueEmail("invitee");
          const response = await postShaped(t, "/api/auth/organization/invite-member", { email, role: asRole, organizationId: organizationIdShape }, encoding, instructor.cookie);
          const rows = await t.db.sql<{ role: string }[]>`select role from invitations where email = ${email}`;
          return response && { status: response.status, body: await response.text(), roles: rows.map((row) => row.role) };
        };
        // Better Auth's own decision with the same organizationId: a student invitation (the guard
        // leaves those alone) is created exactly when Better Auth resolves an organization the
        // instructor may invite to.
        const asStudent = await invite("student");
        const asManager = await invite(role);
        if (!asStudent || !asManager) return; // a shape a form cannot carry
        const context = { organizationId: describeShape(organizationIdShape), role: describeShape(role), encoding };
        expect({ ...context, status: asManager.status < 500 ? asManager.status >= 400 : asManager.status, invited: asManager.roles }).toEqual({ ...context, status: true, invited: [] });
        if (asStudent.status === 200) expect({ ...context, body: JSON.parse(asManager.body).code }).toEqual({ ...context, body: "ROLE_NOT_ALLOWED" });
      }),
      withExamples(grid<[Shape, Shape, Encoding]>([...shapeList(organizationId), elsewhere], ["admin", ["admin"], "student,admin"], ENCODING_LIST)),
    );
  });
});

describe("delete-account freshness (src/mail/delete-account-flow.ts): a stale session without the password is refused", () => {
  test("whatever the shape of password and token, and the body's encoding", async () => {
    // Two days old: past the default freshAge (one day).
    const stale = await createUser(t, { sessionAgeHours: 48 });
    // Better Auth reads `password` and `token` as present only when truthy (update-user.mjs:
    // `if (ctx.body.password)`, `if (ctx.body.token)`); with neither it acts (sends the deletion
    // mail, or deletes) without any proof. It acts with proof only for the right password.
    const passwords = shapes(PASSWORD);
    const tokens = fc.oneof(fc.constant<Shape>(MISSING), shapes("deletiontoken0123456789abcdef012"));
    await fc.assert(
      fc.asyncProperty(passwords, tokens, ENCODINGS, async (password, token, encoding) => {
        if (password === PASSWORD && token !== MISSING) return; // Better Auth then checks the token, which is not a real one
        const before = await digest(["users", "verifications", "sessions"]);
        const response = await postShaped(t, "/api/auth/delete-user", { password, token }, encoding, stale.cookie);
        if (!response) return;
        const acted = JSON.stringify(before) !== JSON.stringify(await digest(["users", "verifications", "sessions"]));
        const context = { password: describeShape(password), token: describeShape(token), encoding };
        // Better Auth takes a JSON body only on this endpoint (415 for a form: allowedMediaTypes).
        const proof = password === PASSWORD && encoding === "json";
        const status = response.status >= 400 && response.status < 500 ? "4xx" : response.status;
        expect({ ...context, status, acted }).toEqual({ ...context, status: proof ? 200 : "4xx", acted: proof });
        await t.db.sql`delete from verifications where value = ${stale.id}`;
      }),
      withExamples([
        ...grid<[Shape, Shape, Encoding]>(shapeList(PASSWORD), [MISSING], ENCODING_LIST),
        ...grid<[Shape, Shape, Encoding]>([MISSING], shapeList("deletiontoken0123456789abcdef012"), ENCODING_LIST),
      ]),
    );
  });
});

/** Verification links, as Better Auth signs them, for a fresh unverified user of `app`. */
async function verificationLink(app: TestApp) {
  const user = await createUser(app, { verified: false });
  const token = await createEmailVerificationToken((await app.auth.$context).secret, user.email);
  return { user, token };
}

/** Whether a verify-email answer verified the address (JSON status:true, or a redirect without ?error). */
const verified = (response: Response) =>
  response.status === 302 ? !new URL(response.headers.get("location")!, "http://x").searchParams.has("error") : response.status === 200;

/** Ways to write the token into verify-email's query: plain, percent-encoded, twice, with a return address. */
const tokenSpellings = fc.array(
  fc.constantFrom<(token: string) => string>(
    (value) => `token=${value}`,
    (value) => `token=${percentEncoded(value)}`,
    (value) => `token=${value.replaceAll(".", "%2E")}`,
    (value) => `token=${value}&token=${value}`,
    (value) => `token=${value}&callbackURL=${encodeURIComponent(`${SITE_ORIGIN}/done`)}`,
    (value) => `callbackURL=%2F&token=${encodeURIComponent(value)}`,
  ),
  { minLength: 2, maxLength: 4 },
);

describe("link tokens (src/mail/verification-flow.ts): a verification link verifies once, however it is spelled", () => {
  const rotated = { BETTER_AUTH_SECRETS: "2:rotated-secret-0123456789-abcdefghijklmnop" };
  for (const [label, env] of [["with one secret", null], ["during a secret rotation (BETTER_AUTH_SECRETS)", rotated]] as const) {
    test(label, async () => {
      const app = env ? await createTestApp(env) : t;
      await fc.assert(
        fc.asyncProperty(tokenSpellings, async (spellings) => {
          const { token } = await verificationLink(app);
          const queries = spellings.map((spell) => spell(token));
          let successes = 0;
          for (const query of queries) if (verified(await app.request(`/api/auth/verify-email?${query}`))) successes++;
          expect({ queries, once: successes <= 1 }).toEqual({ queries, once: true });
        }),
        { numRuns: Math.ceil(RUNS / 3) },
      );
    });
  }
});

describe("profile rules (src/auth/profile.ts, src/auth/better-auth.ts): roleOther is never stored next to a role other than \"other\"", () => {
  test("whatever the shapes of professionalRole and roleOther, the starting profile, and the body's encoding", async () => {
    const user = await createUser(t);
    const starts = fc.constantFrom<[string | null, string | null]>(["other", "Physicist"], ["engineer", null], [null, null], ["other", null]);
    await fc.assert(
      fc.asyncProperty(starts, shapes("other"), shapes("Physicist"), ENCODINGS, async ([role, other], professionalRole, roleOther, encoding) => {
        await t.db.sql`update users set professional_role = ${role}, role_other = ${other} where id = ${user.id}`;
        const response = await postShaped(t, "/api/auth/update-user", { professionalRole, roleOther }, encoding, user.cookie);
        if (!response) return;
        const [row] = await t.db.sql<{ professional_role: string | null; role_other: string | null }[]>`select professional_role, role_other from users where id = ${user.id}`;
        const context = { professionalRole: describeShape(professionalRole), roleOther: describeShape(roleOther), encoding, start: [role, other] };
        const stray = row!.role_other !== null && row!.role_other.trim() !== "" && row!.professional_role !== "other";
        expect({ ...context, status: response.status < 500, stray, row }).toEqual({ ...context, status: true, stray: false, row });
      }),
      withExamples(
        grid<[[string | null, string | null], Shape, Shape, Encoding]>(
          [["other", "Physicist"], ["engineer", null]] as Array<[string | null, string | null]>,
          shapeList("other"),
          [MISSING, "", "Physicist"],
          ENCODING_LIST,
        ),
      ),
    );
  });
});

describe("redirects (src/http/link-errors.ts): a link never sends the browser outside the trusted origins, and never answers 5xx", () => {
  test("whatever the shape of callbackURL, on every link endpoint", async () => {
    const trusted = new Set([new URL(t.config.baseUrl).origin, ...t.config.corsOrigins]);
    const hostileUrls: Shape[] = [
      "http://evil.test/",
      "//evil.test",
      "/\\evil.test",
      "\\\\evil.test",
      "http:evil.test",
      "https://localhost:3000@evil.test/",
      ` ${SITE_ORIGIN}@evil.test`,
      "javascript:alert(1)",
      "http://%5B",
      "http://[",
      "%2F%2Fevil.test",
      percentEncoded("//evil.test"),
      `${SITE_ORIGIN}/ok`,
      "/relative",
    ];
    const linkEndpoints = [
      (query: string) => `/api/auth/verify-email?token=not-a-token&${query}`,
      (query: string) => `/api/auth/magic-link/verify?token=not-a-token&${query}`,
      (query: string) => `/api/auth/reset-password/not-a-token?${query}`,
      (query: string) => `/api/auth/delete-user/callback?token=not-a-token&${query}`,
    ];
    const names = ["callbackURL", "errorCallbackURL", "newUserCallbackURL"];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...linkEndpoints), fc.constantFrom(...names), fc.oneof(fc.constantFrom(...hostileUrls), shapes()), fc.boolean(), async (endpoint, name, value, raw) => {
        if (value === MISSING) return;
        const values = Array.isArray(value) ? value : [value];
        // `raw`: the value written into the URL as is (already URL-encoded shapes stay encoded once).
        const query = values.map((item) => `${name}=${raw ? String(item) : encodeURIComponent(String(item))}`).join("&");
        const path = endpoint(query);
        const response = await t.request(path);
        const location = response.headers.get("location");
        const target = location ? new URL(location, t.config.baseUrl).origin : null;
        expect({ path, status: response.status < 500, outside: target !== null && !trusted.has(target) }).toEqual({ path, status: true, outside: false });
      }),
      withExamples(grid<[(query: string) => string, string, Shape, boolean]>(linkEndpoints, ["callbackURL"], [...hostileUrls, ...shapeList()], [false, true])),
    );
  });
});

describe("two-factor (src/auth/plugins/two-factor.ts): a TOTP code verifies once, however it is spelled", () => {
  test("whatever the shape of code and the body's encoding", async () => {
    const context = await t.auth.$context;
    const spellings = fc.constantFrom<(code: string) => Shape>(
      (code) => code,
      (code) => ` ${code}`,
      (code) => `${code} `,
      (code) => Number(code),
      (code) => [code],
      (code) => percentEncoded(code),
      (code) => code.replace(/\d/g, (digit) => String.fromCharCode(0xff10 + Number(digit))), // full-width digits
      (code) => `${code}\u200b`,
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(spellings, ENCODINGS), { minLength: 2, maxLength: 4 }), async (attempts) => {
        const user = await createUser(t);
        const raw = randomBytes(20).toString("hex");
        await t.db.sql`insert into two_factors (id, secret, backup_codes, user_id, verified)
          values (${randomUUID()}, ${await symmetricEncrypt({ key: context.secretConfig, data: raw })},
                  ${await symmetricEncrypt({ key: context.secretConfig, data: "[]" })}, ${user.id}, true)`;
        await t.db.sql`update users set two_factor_enabled = true where id = ${user.id}`;
        const totp = new TOTP({ secret: new Secret({ buffer: new TextEncoder().encode(raw).buffer }), period: TOTP_PERIOD_SECONDS, digits: TOTP_DIGITS });
        const code = totp.generate();
        const results: Array<[string, number]> = [];
        for (const [spell, encoding] of attempts) {
          const response = await postShaped(t, "/api/auth/two-factor/verify-totp", { code: spell(code) }, encoding, user.cookie);
          if (response) results.push([`${describeShape(spell(code))} as ${encoding}`, response.status]);
        }
        expect({ results, accepted: results.filter(([, status]) => status === 200).length <= 1, errors: results.filter(([, status]) => status >= 500) }).toEqual({
          results,
          accepted: true,
          errors: [],
        });
      }),
      { numRuns: Math.ceil(RUNS / 2) },
    );
  });
});

describe("admin guards (src/auth/plugins/admin.ts): a revoked session mints no JWT on GET /token, whatever the shape of its cookies", () => {
  test("the cookie cache sent first, last, twice, with spaces, with an encoded name, or alone", async () => {
    const { cookie, token } = await signUp(t);
    const first = await t.request("/api/auth/get-session", { headers: { cookie } });
    const cache = first.headers.getSetCookie().find((line) => line.startsWith("better-auth.session_data="))!.split(";")[0]!;
    await t.db.sql`delete from sessions where token = ${token}`;
    const layouts = [
      () => `${cookie}; ${cache}`,
      () => `${cache}; ${cookie}`,
      () => `${cache}; ${cookie}; ${cache}`,
      () => `${cookie};${cache}`,
      () => `${cookie} ;  ${cache} `,
      () => `${cookie}; ${cache.replace("session_data", "session%5Fdata")}`,
      () => `${cookie}; ${cache.replace("better-auth.session_data", "Better-Auth.Session_Data")}`,
      () => cache,
      () => `${cookie}; other=1; ${cache}; another=2`,
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...layouts), fc.constantFrom("Bearer", ""), async (layout, bearer) => {
        const header = layout();
        // With or without the session token also sent as a bearer token (the bearer plugin reads it).
        const token = decodeURIComponent(cookie.slice(cookie.indexOf("=") + 1));
        const response = await t.request("/api/auth/token", { headers: { cookie: header, ...(bearer ? { authorization: `Bearer ${token}` } : {}) } });
        const body = (await response.json().catch(() => null)) as { token?: unknown } | null;
        expect({ header, bearer, status: response.status < 500, minted: typeof body?.token === "string" }).toEqual({ header, bearer, status: true, minted: false });
      }),
      withExamples(grid<[() => string, string]>(layouts, ["Bearer", ""])),
    );
  });

  test("ADMIN_EMAILS: an address spelled like a listed one, or the listed one unverified, never becomes an admin", async () => {
    const listed = uniqueEmail("boss");
    const app = await createTestApp({ ADMIN_EMAILS: listed });
    const spellings = fc.constantFrom(
      (email: string) => email.toUpperCase(),
      (email: string) => ` ${email}`,
      (email: string) => email.replace("@", "%40"),
      (email: string) => email.replace("@", "+x@"),
      (email: string) => `${email}\u200b`,
      (email: string) => email.replace("o", "\u043e"), // Cyrillic o
      (email: string) => email,
    );
    await fc.assert(
      fc.asyncProperty(spellings, async (spell) => {
        const email = spell(listed);
        const response = await app.request("/api/auth/sign-up/email", { method: "POST", json: { name: "Boss?", email, password: PASSWORD } });
        const cookie = response.headers.getSetCookie().find((line) => line.includes("session_token="))?.split(";")[0];
        // A session is created at sign-up, and again at every sign-in: either would promote.
        await attemptSignIn(app, email);
        const roles = await app.db.sql<{ role: string | null }[]>`select role from users where email = ${email.toLowerCase().trim()}`;
        expect({ email, status: response.status < 500, admin: roles.some((row) => (row.role ?? "").includes("admin")), cookie: typeof cookie }).toEqual({
          email,
          status: true,
          admin: false,
          cookie: typeof cookie,
        });
      }),
      { numRuns: 12 },
    );
    // The control: the listed address itself, once verified, is promoted at its next sign-in.
    await app.db.sql`update users set email_verified = true where email = ${listed}`;
    expect((await attemptSignIn(app, listed)).status).toBe(200);
    expect((await app.db.sql<{ role: string }[]>`select role from users where email = ${listed}`)[0]?.role).toBe("admin");
  });
});
