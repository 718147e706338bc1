// The authorization matrix: every endpoint of the server's own OpenAPI document (GET
// /api/auth/reference?format=json, so an endpoint added later is covered without anyone listing it)
// that needs a session is called in each state a caller must not get through with, and must answer
// 4xx and change no row:
//   - no session;
//   - a revoked session whose browser still holds a valid cookie cache (session_data);
//   - an expired session row (the browser sends its cookie cache from before);
//   - a session of a user an admin banned (ban-user revokes the user's sessions; the cache remains);
//   - a session of a user banned directly in SQL (an operator; the session row is still there);
//   - a live session of another user, on every endpoint that takes an id (organization, member,
//     invitation, passkey, session, user, team): the id is the victim's.
// The revoked and banned states also run against a second instance on the same database. Unknown
// paths under /api/auth must answer 404 and write no row either, rate-limit counters included.
// OWASP ASVS 4.0.3: 3.3.1 (logout and expiry invalidate the session), 3.3.3 / 3.3.4 (revoking
// sessions), 4.1.1 / 4.1.2 (access control enforced on a trusted service layer), 4.2.1 (no insecure
// direct object references), 11.1.4 (anti-automation without unbounded writes).
import { describe, expect, test } from "bun:test";
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import { symmetricEncrypt } from "better-auth/crypto";
import { Secret, TOTP } from "otpauth";
import { TOTP_DIGITS, TOTP_PERIOD_SECONDS } from "../../src/auth/plugins/two-factor.ts";
import { cleanUpAfterFile, createSecondInstance, createTestApp, listedHandle, PASSWORD, signUp, TEST_SECRET, uniqueEmail, type TestApp, ERROR_BODY } from "../helpers.ts";

cleanUpAfterFile();

type Json = Record<string, unknown>;
type Requester = Pick<TestApp, "request">;

/**
 * The endpoints that need no session, reviewed one by one. Everything else the document lists is
 * called by the matrix in every state.
 */
const PUBLIC: Record<string, string> = {
  "GET /health": "liveness probe for load balancers",
  "GET /metrics": "guarded by METRICS_TOKEN, not by a session",
  "GET /api/auth/reference": "this document",
  "GET /api/auth/ok": "Better Auth's liveness answer",
  "GET /api/auth/error": "the error page a browser lands on",
  "GET /api/auth/jwks": "public keys that verify the JWTs",
  "GET /api/auth/get-session": "answers null without a valid session; the matrix checks it answers no session in every state",
  "POST /api/auth/get-session": "the same as GET",
  "POST /api/auth/sign-out": "clears the browser's cookies whatever they hold; the matrix checks it revokes nothing of anyone else",
  "POST /api/auth/sign-up/email": "creates the session",
  "POST /api/auth/sign-in/email": "creates the session",
  "POST /api/auth/sign-in/social": "starts a provider (OIDC) sign-in",
  "GET /api/auth/callback/{id}": "the provider's redirect back, authenticated by the signed state",
  "POST /api/auth/callback/{id}": "the provider's form-post back, authenticated by the signed state",
  "POST /api/auth/sign-in/magic-link": "mails a sign-in link",
  "GET /api/auth/magic-link/verify": "authenticated by the mailed token",
  "POST /api/auth/send-verification-email": "mails a verification link to an address",
  "GET /api/auth/verify-email": "authenticated by the mailed token",
  "POST /api/auth/request-password-reset": "mails a reset link",
  "GET /api/auth/reset-password/{token}": "authenticated by the mailed token (redirects to the site)",
  "POST /api/auth/reset-password": "authenticated by the mailed token",
  "GET /api/auth/delete-user/callback": "authenticated by the mailed token",
  "GET /api/auth/passkey/generate-authenticate-options": "starts a passkey sign-in",
  "POST /api/auth/passkey/verify-authentication": "authenticated by the signed WebAuthn assertion",
};

/**
 * The endpoints that need a session, reviewed: a new endpoint in the document is called by the
 * matrix at once, and the classification test fails until it is added to one of the two lists.
 */
const SESSION = [
  "POST /api/auth/verify-password",
  "POST /api/auth/change-email",
  "POST /api/auth/change-password",
  "POST /api/auth/update-session",
  "POST /api/auth/update-user",
  "POST /api/auth/delete-user",
  "GET /api/auth/list-sessions",
  "POST /api/auth/revoke-session",
  "POST /api/auth/revoke-sessions",
  "POST /api/auth/revoke-other-sessions",
  "POST /api/auth/link-social",
  "GET /api/auth/list-accounts",
  "POST /api/auth/unlink-account",
  "POST /api/auth/refresh-token",
  "POST /api/auth/get-access-token",
  "GET /api/auth/account-info",
  "GET /api/auth/token",
  // The second-factor steps take a session (set-up) or a pending two-factor sign-in cookie; the
  // matrix sends neither a valid one.
  "POST /api/auth/two-factor/get-totp-uri",
  "POST /api/auth/two-factor/verify-totp",
  "POST /api/auth/two-factor/send-otp",
  "POST /api/auth/two-factor/verify-otp",
  "POST /api/auth/two-factor/verify-backup-code",
  "POST /api/auth/two-factor/generate-backup-codes",
  "POST /api/auth/two-factor/enable",
  "POST /api/auth/two-factor/disable",
  "POST /api/auth/admin/set-role",
  "GET /api/auth/admin/get-user",
  "POST /api/auth/admin/create-user",
  "POST /api/auth/admin/update-user",
  "GET /api/auth/admin/list-users",
  "POST /api/auth/admin/list-user-sessions",
  "POST /api/auth/admin/unban-user",
  "POST /api/auth/admin/ban-user",
  "POST /api/auth/admin/impersonate-user",
  "POST /api/auth/admin/stop-impersonating",
  "POST /api/auth/admin/revoke-user-session",
  "POST /api/auth/admin/revoke-user-sessions",
  "POST /api/auth/admin/remove-user",
  "POST /api/auth/admin/set-user-password",
  "POST /api/auth/admin/has-permission",
  "POST /api/auth/organization/create",
  "POST /api/auth/organization/update",
  "POST /api/auth/organization/delete",
  "POST /api/auth/organization/set-active",
  "GET /api/auth/organization/get-organization",
  "GET /api/auth/organization/get-full-organization",
  "GET /api/auth/organization/list",
  "POST /api/auth/organization/invite-member",
  "POST /api/auth/organization/cancel-invitation",
  "POST /api/auth/organization/accept-invitation",
  "GET /api/auth/organization/get-invitation",
  "POST /api/auth/organization/reject-invitation",
  "GET /api/auth/organization/list-invitations",
  "GET /api/auth/organization/get-active-member",
  "POST /api/auth/organization/check-slug",
  "POST /api/auth/organization/remove-member",
  "POST /api/auth/organization/update-member-role",
  "POST /api/auth/organization/leave",
  "GET /api/auth/organization/list-user-invitations",
  "GET /api/auth/organization/list-members",
  "GET /api/auth/organization/get-active-member-role",
  "POST /api/auth/organization/create-team",
  "GET /api/auth/organization/list-teams",
  "POST /api/auth/organization/remove-team",
  "POST /api/auth/organization/update-team",
  "POST /api/auth/organization/set-active-team",
  "GET /api/auth/organization/list-user-teams",
  "GET /api/auth/organization/list-team-members",
  "POST /api/auth/organization/add-team-member",
  "POST /api/auth/organization/remove-team-member",
  "POST /api/auth/organization/has-permission",
  "GET /api/auth/passkey/generate-register-options",
  "POST /api/auth/passkey/verify-registration",
  "GET /api/auth/passkey/list-user-passkeys",
  "POST /api/auth/passkey/delete-passkey",
  "POST /api/auth/passkey/update-passkey",
];

/**
 * Tables a refused request must leave as they were. Not compared: auth_events (a refusal may be
 * recorded, that is the audit trail's job) and housekeeping_runs (the server's own bookkeeping).
 */
const TABLES = [
  "users",
  "sessions",
  "accounts",
  "verifications",
  "jwks",
  "rate_limits",
  "organizations",
  "teams",
  "members",
  "invitations",
  "team_members",
  "two_factors",
  "passkeys",
  "account_lockouts",
];

// ---------------------------------------------------------------------------------------------
// One instance, a second one on the same database, and the document.

const t = await createTestApp();
const second = await createSecondInstance(t);
const document = (await (await t.request("/api/auth/reference?format=json")).json()) as { paths: Record<string, Record<string, Operation>> };

interface Parameter {
  name: string;
  in: "query" | "path" | "header";
  required?: boolean;
  schema?: Schema;
}
interface Schema {
  type?: string | string[];
  enum?: unknown[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  default?: unknown;
}
interface Operation {
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
}
interface Endpoint {
  key: string;
  method: string;
  path: string;
  operation: Operation;
}

const endpoints: Endpoint[] = Object.entries(document.paths).flatMap(([path, item]) =>
  Object.entries(item).map(([method, operation]) => ({ key: `${method.toUpperCase()} ${path}`, method: method.toUpperCase(), path, operation })),
);
const sessionEndpoints = endpoints.filter((endpoint) => !(endpoint.key in PUBLIC));

// ---------------------------------------------------------------------------------------------
// Rows: a user with everything an endpoint can act on, written in SQL (no password hashing per
// cell), and the cookies a browser holds for its session.

const { userId: hashOwner } = await signUp(t);
const [{ password: passwordHash }] = (await t.db.sql`select password from accounts where user_id = ${hashOwner}`) as unknown as [{ password: string }];

const SESSION_COOKIE = "better-auth.session_token";
const DATA_COOKIE = "better-auth.session_data";
const signed = (token: string) => encodeURIComponent(`${token}.${createHmac("sha256", TEST_SECRET).update(token).digest("base64")}`);
const id = () => randomUUID();
const { secretConfig } = await t.auth.$context;

interface Fixture {
  userId: string;
  email: string;
  accountId: string;
  sessionToken: string;
  /** Another session of the same user (what revoke-session would end). */
  otherSessionToken: string;
  organizationId: string;
  organizationSlug: string;
  /** A student of the organization (what remove-member or update-member-role would act on). */
  memberId: string;
  memberUserId: string;
  invitationId: string;
  invitationEmail: string;
  teamId: string;
  passkeyId: string;
  /** A second, removable team (Better Auth keeps an organization's last team). */
  secondTeamId: string;
  /** An invitation to this user from an organization it is not in, which it could accept or reject. */
  incomingInvitationId: string;
  invitingOrganizationId: string;
  /** Another organization, where this user is a student (so it could leave it). */
  otherOrganizationId: string;
  /** A second, provider account (so the credential one could be unlinked). */
  providerAccountId: string;
  /** A current code of the user's authenticator app, and one unused backup code. */
  totpCode: string;
  backupCode: string;
  /** The browser's cookies: the session token and the cookie cache get-session issued. */
  cookie: string;
}

/** A platform admin who owns an organization (with a student, a pending invitation, a team) and a passkey. */
async function createFixture(platformRole = "admin"): Promise<Fixture> {
  const f = {
    userId: id(),
    email: uniqueEmail("matrix"),
    accountId: id(),
    sessionToken: randomBytes(24).toString("base64url"),
    otherSessionToken: randomBytes(24).toString("base64url"),
    organizationId: id(),
    organizationSlug: `matrix-${id()}`,
    memberId: id(),
    memberUserId: id(),
    invitationId: id(),
    invitationEmail: uniqueEmail("invited"),
    teamId: id(),
    passkeyId: id(),
    secondTeamId: id(),
    incomingInvitationId: id(),
    otherOrganizationId: id(),
    invitingOrganizationId: id(),
    providerAccountId: id(),
    backupCode: `backup-${randomBytes(4).toString("hex")}`,
  };
  const totpSecret = randomBytes(20).toString("hex");
  const totpCode = new TOTP({ secret: new Secret({ buffer: new TextEncoder().encode(totpSecret).buffer }), period: TOTP_PERIOD_SECONDS, digits: TOTP_DIGITS }).generate();
  await t.db.sql.begin(async (sql) => {
    await sql`insert into users (id, name, email, email_verified, role, two_factor_enabled) values
      (${f.userId}, 'Matrix Owner', ${f.email}, true, ${platformRole}, true),
      (${f.memberUserId}, 'Matrix Student', ${uniqueEmail("student")}, true, 'user', false)`;
    await sql`insert into accounts (id, account_id, provider_id, user_id, password) values (${f.accountId}, ${f.userId}, 'credential', ${f.userId}, ${passwordHash})`;
    await sql`insert into accounts (id, account_id, provider_id, user_id) values (${f.providerAccountId}, ${id()}, 'github', ${f.userId})`;
    await sql`insert into two_factors (id, secret, backup_codes, user_id, verified) values
      (${id()}, ${await symmetricEncrypt({ key: secretConfig, data: totpSecret })},
       ${await symmetricEncrypt({ key: secretConfig, data: JSON.stringify([f.backupCode]) })}, ${f.userId}, true)`;
    await sql`insert into organizations (id, name, slug) values
      (${f.organizationId}, 'Matrix School', ${f.organizationSlug}), (${f.otherOrganizationId}, 'Other School', ${`other-${f.otherOrganizationId}`}),
      (${f.invitingOrganizationId}, 'Inviting School', ${`inviting-${f.invitingOrganizationId}`})`;
    await sql`insert into teams (id, name, organization_id) values
      (${f.teamId}, 'Matrix Team', ${f.organizationId}), (${f.secondTeamId}, 'Second Team', ${f.organizationId})`;
    await sql`insert into members (id, organization_id, user_id, role) values
      (${id()}, ${f.organizationId}, ${f.userId}, 'owner'), (${f.memberId}, ${f.organizationId}, ${f.memberUserId}, 'student'),
      (${id()}, ${f.otherOrganizationId}, ${f.memberUserId}, 'owner'), (${id()}, ${f.otherOrganizationId}, ${f.userId}, 'student'),
      (${id()}, ${f.invitingOrganizationId}, ${f.memberUserId}, 'owner')`;
    await sql`insert into team_members (id, team_id, user_id, membership_key) values
      (${id()}, ${f.teamId}, ${f.userId}, ${`${f.teamId}:${f.userId}`}),
      (${id()}, ${f.teamId}, ${f.memberUserId}, ${`${f.teamId}:${f.memberUserId}`})`;
    await sql`insert into invitations (id, organization_id, email, role, status, expires_at, inviter_id) values
      (${f.invitationId}, ${f.organizationId}, ${f.invitationEmail}, 'student', 'pending', now() + interval '2 days', ${f.userId}),
      (${f.incomingInvitationId}, ${f.invitingOrganizationId}, ${f.email}, 'instructor', 'pending', now() + interval '2 days', ${f.memberUserId})`;
    await sql`insert into passkeys (id, name, public_key, user_id, credential_id, counter, device_type, backed_up) values
      (${f.passkeyId}, 'Matrix key', 'cHVibGlj', ${f.userId}, ${randomBytes(16).toString("base64url")}, 0, 'singleDevice', false)`;
    await sql`insert into sessions (id, user_id, token, expires_at, active_organization_id, active_team_id) values
      (${id()}, ${f.userId}, ${f.sessionToken}, now() + interval '7 days', ${f.organizationId}, ${f.teamId}),
      (${id()}, ${f.userId}, ${f.otherSessionToken}, now() + interval '7 days', ${f.organizationId}, null)`;
  });
  const tokenCookie = `${SESSION_COOKIE}=${signed(f.sessionToken)}`;
  const answer = await t.request("/api/auth/get-session", { headers: { cookie: tokenCookie } });
  const cache = answer.headers
    .getSetCookie()
    .find((line) => line.startsWith(`${DATA_COOKIE}=`))
    ?.split(";")[0];
  if (answer.status !== 200 || !cache) throw new Error(`get-session gave no cookie cache: ${answer.status} ${await answer.text()}`);
  return { ...f, totpCode, cookie: `${tokenCookie}; ${cache}` };
}

/** A platform admin's live session, which bans users through the API. */
const banningAdmin = await createFixture("admin");

// ---------------------------------------------------------------------------------------------
// Requests built from the document: every required field, and every field that names something,
// filled from the fixture; the rest from the schema.

/** Field values that name the fixture's rows or make the request one the endpoint would carry out. */
function override(endpoint: Endpoint, field: string, f: Fixture): unknown {
  const path = endpoint.path.replace("/api/auth", "");
  const byEndpoint: Record<string, Record<string, unknown>> = {
    "/passkey/delete-passkey": { id: f.passkeyId },
    "/passkey/update-passkey": { id: f.passkeyId, name: "renamed" },
    "/organization/get-invitation": { id: f.incomingInvitationId },
    "/organization/accept-invitation": { invitationId: f.incomingInvitationId },
    "/organization/reject-invitation": { invitationId: f.incomingInvitationId },
    "/organization/leave": { organizationId: f.otherOrganizationId },
    "/organization/remove-team": { teamId: f.secondTeamId },
    "/two-factor/verify-totp": { code: f.totpCode },
    "/two-factor/verify-backup-code": { code: f.backupCode },
    "/admin/get-user": { id: f.memberUserId },
    "/revoke-session": { token: f.otherSessionToken },
    "/admin/revoke-user-session": { sessionToken: f.otherSessionToken },
    "/organization/invite-member": { email: uniqueEmail("new-invitee"), role: "student" },
    "/organization/update-member-role": { role: "instructor" },
    "/organization/remove-team-member": { userId: f.memberUserId },
    "/organization/add-team-member": { userId: f.memberUserId },
    "/organization/update": { data: { name: "pwned" } },
    "/organization/update-team": { data: { name: "pwned" } },
    "/admin/update-user": { data: { name: "pwned" } },
    "/admin/set-role": { role: "admin" },
    "/admin/create-user": { email: uniqueEmail("created"), password: PASSWORD, name: "Created", role: "admin" },
    "/organization/create": { name: "Matrix New", slug: `new-${id()}` },
    "/organization/check-slug": { slug: `free-${id()}` },
    "/organization/create-team": { name: "New Team" },
    "/change-email": { newEmail: uniqueEmail("changed") },
    "/update-user": { name: "pwned" },
    "/unlink-account": { accountId: f.providerAccountId },
    "/refresh-token": { accountId: f.accountId },
    "/get-access-token": { accountId: f.accountId },
    "/account-info": { accountId: f.accountId },
    "/two-factor/enable": { password: PASSWORD },
    "/admin/has-permission": { permissions: { user: ["ban"] } },
    "/organization/has-permission": { permissions: { member: ["create"] } },
    "/admin/ban-user": { banReason: "matrix" },
    "/passkey/verify-registration": { response: {}, name: "matrix" },

  };
  const specific = byEndpoint[path];
  if (specific && field in specific) return specific[field];
  const byField: Record<string, unknown> = {
    organizationId: f.organizationId,
    organizationSlug: f.organizationSlug,
    memberId: f.memberId,
    memberIdOrEmail: f.memberId,
    invitationId: f.invitationId,
    teamId: f.teamId,
    userId: f.memberUserId,
    password: PASSWORD,
    currentPassword: PASSWORD,
    newPassword: "another correct horse",
    code: "123456",
    revokeOtherSessions: true,
    name: "pwned",
  };
  return field in byField ? byField[field] : undefined;
}

/**
 * Fields the endpoint reads that its OpenAPI entry does not describe (Better Auth documents
 * refresh-token, get-access-token and account-info without their account selection).
 */
const UNDOCUMENTED_FIELDS: Record<string, string[]> = {
  "POST /api/auth/refresh-token": ["accountId"],
  "POST /api/auth/get-access-token": ["accountId"],
  "GET /api/auth/account-info": ["accountId"],
};
const undocumentedFields = (endpoint: Endpoint) => UNDOCUMENTED_FIELDS[endpoint.key] ?? [];

/** Fields that name a row of someone: an endpoint that reads one is also called by another user. */
const ID_FIELDS = new Set(["organizationId", "organizationSlug", "memberId", "memberIdOrEmail", "invitationId", "teamId", "userId", "token", "sessionToken", "id", "accountId"]);

/** Id fields an endpoint ignores when a session calls it (reviewed; a test below proves each). */
const IGNORED_WITH_A_SESSION: Record<string, string[]> = {
  // "server-only": with a session the new organization is the caller's (crud-org.mjs: session?.user || body.userId).
  "POST /api/auth/organization/create": ["userId"],
};

/**
 * Endpoints that answer another user's id like an unknown one with a success and act on nothing
 * (reviewed): the victim's rows must still be unchanged.
 */
const SUCCEEDS_WITHOUT_ACTING: Record<string, string> = {
  "POST /api/auth/revoke-session": "answers {status:true} for any token so as not to tell which exist; deletes only the caller's own (session.mjs)",
};

function fromSchema(schema: Schema | undefined): unknown {
  if (!schema) return "matrix";
  if (schema.enum?.length) return schema.enum[0];
  const type = Array.isArray(schema.type) ? schema.type.find((x) => x !== "null") : schema.type;
  if (type === "boolean") return false;
  if (type === "number" || type === "integer") return 1;
  if (type === "array") return [];
  if (type === "object") return {};
  return "matrix";
}

/** Whether the request carries one of the victim's ids in a field the endpoint reads with a session. */
const namesVictim = (endpoint: Endpoint) =>
  Object.keys(buildRequest(endpoint, banningAdmin).fields).some((field) => ID_FIELDS.has(field) && !IGNORED_WITH_A_SESSION[endpoint.key]?.includes(field));

/** The request an owner of `f`'s rows would send to have the endpoint act on them. */
function buildRequest(endpoint: Endpoint, f: Fixture): { url: string; init: RequestInit & { json?: unknown }; fields: Json } {
  const bodySchema = endpoint.operation.requestBody?.content?.["application/json"]?.schema;
  const fields: Json = {};
  if (endpoint.method === "GET") {
    const parameters = Object.fromEntries((endpoint.operation.parameters ?? []).filter((p) => p.in === "query").map((p) => [p.name, p]));
    for (const name of new Set([...Object.keys(parameters), ...undocumentedFields(endpoint)])) {
      const parameter = parameters[name];
      const value = override(endpoint, name, f) ?? (parameter?.required ? fromSchema(parameter.schema) : undefined);
      if (value !== undefined) fields[name] = value;
    }
    const query = new URLSearchParams(Object.entries(fields).map(([name, value]): [string, string] => [name, String(value)]));
    return { url: `${endpoint.path}${query.size ? `?${query}` : ""}`, init: { method: "GET" }, fields };
  }
  const properties = bodySchema?.properties ?? {};
  for (const field of new Set([...Object.keys(properties), ...undocumentedFields(endpoint)])) {
    const value = override(endpoint, field, f) ?? (bodySchema?.required?.includes(field) ? fromSchema(properties[field]) : undefined);
    if (value !== undefined) fields[field] = value;
  }
  return { url: endpoint.path, init: { method: endpoint.method, json: fields }, fields };
}

// ---------------------------------------------------------------------------------------------
// The snapshot: one digest per table, compared before and after each cell.

/**
 * Session rows a refused request may write, reviewed: Better Auth deletes an expired row it meets
 * (session.mjs), and clears the caller's own active organization when it refuses a non-member
 * (organization/routes/crud-org.mjs). `token` / `userId` name the caller's rows.
 */
type OwnSessions = { token?: string; userId?: string };

async function snapshot(own: OwnSessions = {}): Promise<Record<string, string>> {
  const where = (table: string) =>
    table !== "sessions"
      ? ""
      : [own.token && `t.token <> '${own.token}'`, own.userId && `t.user_id <> '${own.userId}'`].filter(Boolean).map((c, i) => `${i ? " and" : " where"} ${c}`).join("");
  const select = TABLES.map((table) => `(select coalesce(md5(string_agg(t::text, '|' order by t::text)), '') from ${table} t${where(table)}) as ${table}`).join(", ");
  const [row] = await t.db.sql.unsafe(`select ${select}`);
  return row as Record<string, string>;
}
const changedTables = (before: Record<string, string>, after: Record<string, string>) => TABLES.filter((table) => before[table] !== after[table]);

interface Cell {
  status: number;
  changed: string[];
  body: string;
}

async function call(instance: Requester, endpoint: Endpoint, f: Fixture, cookie: string | undefined, own: OwnSessions = {}): Promise<Cell> {
  const { url, init } = buildRequest(endpoint, f);
  const before = await snapshot(own);
  const response = await instance.request(url, { ...init, headers: cookie ? { cookie } : {} });
  const body = await response.text();
  const after = await snapshot(own);
  return { status: response.status, changed: changedTables(before, after), body: body.slice(0, 200) };
}

const refused = (cell: Cell) => ({ status: cell.status >= 400 && cell.status < 500 ? "4xx" : cell.status, changed: cell.changed });
const REFUSED = { status: "4xx", changed: [] };

/** Removes a fixture's rows (and what a cell created for them), so every digest stays small. */
async function removeFixture(f: Fixture): Promise<void> {
  await t.db.sql`delete from organizations where id in (${f.organizationId}, ${f.otherOrganizationId}, ${f.invitingOrganizationId}) or id in (select organization_id from members where user_id = ${f.userId})`;
  await t.db.sql`delete from users where id in (${f.userId}, ${f.memberUserId})`;
}

// ---------------------------------------------------------------------------------------------
// The states. Each prepares a fresh fixture (so a cell that got through cannot hide the next one)
// and returns the cookie the caller sends and the caller's own session rows it may clean up.

type State = (f: Fixture) => Promise<{ cookie?: string; own?: OwnSessions }>;

/**
 * A change, through the API or in SQL, reaches every instance as a notice (sql/0006): revocation is
 * promised within a second, so a state's cells start once both instances distrust copies written before
 * `changedAt`, and the state fails if either has not heard of it within that second.
 */
async function untilBothHeard(changedAt: number, sessionId: string, userId: string): Promise<void> {
  for (const instance of [t, second]) {
    while (instance.notices.trusts(sessionId, userId, changedAt)) {
      if (Date.now() - changedAt > 1000) throw new Error("an instance did not hear of the change within a second");
      await Bun.sleep(5);
    }
  }
}

const states: Record<string, State> = {
  "no session": async () => ({}),
  "revoked session with a valid cookie cache": async (f) => {
    // The user ends the session from their other one (revoke-other-sessions would do the same).
    // revoke-session takes the handle list-sessions gives for a session, never its token.
    const other = `${SESSION_COOKIE}=${signed(f.otherSessionToken)}`;
    const [session] = await t.db.sql<{ id: string }[]>`select id from sessions where token = ${f.sessionToken}`;
    const revokedAt = Date.now();
    const revoked = await t.request("/api/auth/revoke-session", { method: "POST", headers: { cookie: other }, json: { token: await listedHandle(t, other, f.sessionToken) } });
    if (revoked.status !== 200) throw new Error(`revoke-session answered ${revoked.status}`);
    await untilBothHeard(revokedAt, session!.id, f.userId);
    return { cookie: f.cookie };
  },
  "expired session row with the cookie cache from before": async (f) => {
    const expiredAt = Date.now();
    const [session] = await t.db.sql<{ id: string }[]>`
      update sessions set expires_at = now() - interval '1 minute' where token = ${f.sessionToken} returning id`;
    await untilBothHeard(expiredAt, session!.id, f.userId);
    return { cookie: f.cookie, own: { token: f.sessionToken } };
  },
  "user banned by an admin, with the cookie cache from before": async (f) => {
    const bannedAt = Date.now();
    const banned = await t.request("/api/auth/admin/ban-user", { method: "POST", headers: { cookie: banningAdmin.cookie }, json: { userId: f.userId } });
    if (banned.status !== 200) throw new Error(`ban-user answered ${banned.status} ${await banned.text()}`);
    await untilBothHeard(bannedAt, "", f.userId);
    return { cookie: f.cookie };
  },
  "user banned in SQL by an operator": async (f) => {
    const bannedAt = Date.now();
    await t.db.sql`update users set banned = true, ban_reason = 'operator' where id = ${f.userId}`;
    await untilBothHeard(bannedAt, "", f.userId);
    return { cookie: f.cookie };
  },
};

/** States also run against the second instance (the state was set through the first, or in SQL). */
const ACROSS_INSTANCES = ["revoked session with a valid cookie cache", "user banned by an admin, with the cookie cache from before", "user banned in SQL by an operator"];

// ---------------------------------------------------------------------------------------------

describe("the document's endpoints", () => {
  test("every endpoint is in the reviewed list of public endpoints or in the list of session endpoints, and each list names only documented endpoints", () => {
    const documented = endpoints.map((endpoint) => endpoint.key);
    expect(documented.filter((key) => !(key in PUBLIC) && !SESSION.includes(key))).toEqual([]);
    expect([...Object.keys(PUBLIC), ...SESSION].filter((key) => !documented.includes(key))).toEqual([]);
    expect(SESSION.filter((key) => key in PUBLIC)).toEqual([]);
  });

  test("the matrix covers endpoints of every plugin (the document was read, not an empty one)", () => {
    const areas = new Set(sessionEndpoints.map((endpoint) => endpoint.path.split("/")[3]));
    for (const area of ["organization", "admin", "passkey", "two-factor", "update-user", "token"]) expect(areas).toContain(area);
    expect(sessionEndpoints.length).toBeGreaterThan(60);
  });
});

/** Runs one cell on a fresh fixture and removes the fixture afterwards. */
async function withFixture<T>(platformRole: string, run: (f: Fixture) => Promise<T>): Promise<T> {
  const f = await createFixture(platformRole);
  try {
    return await run(f);
  } finally {
    await removeFixture(f);
  }
}

for (const [name, prepare] of Object.entries(states)) {
  const instances: Array<[string, Requester]> = [["", t]];
  if (ACROSS_INSTANCES.includes(name)) instances.push([" (second instance)", second]);
  for (const [suffix, instance] of instances) {
    describe(`${name}${suffix}`, () => {
      for (const endpoint of sessionEndpoints) {
        test(`${endpoint.key} is refused and changes nothing`, () =>
          withFixture("admin", async (f) => {
            const { cookie, own } = await prepare(f);
            expect(refused(await call(instance, endpoint, f, cookie, own))).toEqual(REFUSED);
          }));
      }
      if (name !== "no session") {
        test("get-session answers no session", () =>
          withFixture("admin", async (f) => {
            const { cookie } = await prepare(f);
            const response = await instance.request("/api/auth/get-session", { headers: { cookie: cookie! } });
            expect(response.status).toBeLessThan(500);
            expect(await response.json().catch(() => null)).toBeNull();
          }));
        test("sign-out revokes no other session", () =>
          withFixture("admin", async (f) => {
            const { cookie } = await prepare(f);
            const others = () => t.db.sql`select token from sessions where token <> ${f.sessionToken} order by token`;
            const before = await others();
            const response = await instance.request("/api/auth/sign-out", { method: "POST", headers: { cookie: cookie! }, json: {} });
            expect(response.status).toBeLessThan(500);
            expect(await others()).toEqual(before);
          }));
      }
    });
  }
}

describe("a live session of another user, on every endpoint that takes an id", () => {
  for (const endpoint of sessionEndpoints.filter(namesVictim)) {
    test(`${endpoint.key} with the victim's ids is refused and changes nothing of the victim`, () =>
      withFixture("admin", (victim) =>
        // The attacker: a plain user with a live session, member of no organization.
        withFixture("user", async (attacker) => {
          await t.db.sql`delete from organizations where id = ${attacker.organizationId}`;
          const cell = await call(t, endpoint, victim, attacker.cookie, { userId: attacker.userId });
          if (endpoint.key in SUCCEEDS_WITHOUT_ACTING) expect(cell.changed).toEqual([]);
          else expect(refused(cell)).toEqual(REFUSED);
        }),
      ));
  }

  test("organization/create ignores a userId sent with a session: the new organization is the caller's", () =>
    withFixture("admin", (victim) =>
      withFixture("user", async (attacker) => {
        const slug = `ignored-${id()}`;
        const response = await t.request("/api/auth/organization/create", {
          method: "POST",
          headers: { cookie: attacker.cookie },
          json: { name: "Ignored", slug, userId: victim.memberUserId },
        });
        expect(response.status).toBe(200);
        const owners = await t.db.sql`select m.user_id from members m join organizations o on o.id = m.organization_id where o.slug = ${slug}`;
        expect(owners.map((row) => row.user_id)).toEqual([attacker.userId]);
        await t.db.sql`delete from organizations where slug = ${slug}`;
      }),
    ));

  test("revoke-session with another user's token leaves that session alive", () =>
    withFixture("admin", (victim) =>
      withFixture("user", async (attacker) => {
        await t.request("/api/auth/revoke-session", { method: "POST", headers: { cookie: attacker.cookie }, json: { token: victim.sessionToken } });
        const session = await t.request("/api/auth/get-session?disableCookieCache=true", { headers: { cookie: victim.cookie } });
        expect(((await session.json()) as { session?: { token: string } } | null)?.session?.token).toBe(victim.sessionToken);
      }),
    ));
});

describe("the requests are ones the endpoints carry out", () => {
  // A control: with the owner's own live session, every request of the matrix passes the endpoint's
  // input validation, so what refuses it in the states above is the session check, not its body.
  for (const endpoint of sessionEndpoints) {
    test(`${endpoint.key} with the owner's live session is not a validation error`, () =>
      withFixture("admin", async (f) => {
        const cell = await call(t, endpoint, f, f.cookie);
        expect(cell.status).toBeLessThan(500);
        expect(cell.body).not.toContain("VALIDATION_ERROR");
      }));
  }
});

describe("cases the matrix found, kept as regressions", () => {
  test("accepting an invitation to an organization one already belongs to answers a 4xx JSON error and writes nothing (it answered an empty 500)", () =>
    withFixture("admin", async (f) => {
      // The user is already a student of the other organization; the invitation names it too.
      await t.db.sql`insert into members (id, organization_id, user_id, role) values (${id()}, ${f.invitingOrganizationId}, ${f.userId}, 'student')`;
      const endpoint = sessionEndpoints.find((candidate) => candidate.key === "POST /api/auth/organization/accept-invitation")!;
      const cell = await call(t, endpoint, f, f.cookie);
      expect(refused(cell)).toEqual(REFUSED);
      expect(JSON.parse(cell.body || "null")).toEqual(ERROR_BODY);
    }));
});

describe("unknown paths", () => {
  test("a path the document does not list answers 404 and writes no row, rate-limit counters included", async () => {
    const limited = await createSecondInstance(t, { RATE_LIMIT: "on" });
    const unknown = ["/api/auth/not-an-endpoint", `/api/auth/${id()}`, ...sessionEndpoints.slice(0, 10).map((endpoint) => `${endpoint.path}-unknown`)];
    for (const path of unknown) {
      const before = await snapshot();
      const response = await limited.request(path, { method: "POST", json: {} });
      expect({ path, status: response.status, changed: changedTables(before, await snapshot()) }).toEqual({ path, status: 404, changed: [] });
    }
  });
});
