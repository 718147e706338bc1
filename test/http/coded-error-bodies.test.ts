// Every error the server answers is JSON { code, message } (docs/errors.md), also where Better Auth answers
// an empty body (a route that needs a session, called without one) or a message alone (a role the
// organization does not define, written as "ROLE_NOT_FOUND: Boss").
import { beforeAll, describe, expect, test } from "bun:test";
import { ERRORS } from "../../src/errors.ts";
import { cleanUpAfterFile, createTestApp, PASSWORD, signUp, type TestApp } from "../helpers.ts";

cleanUpAfterFile();

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});

async function expectError(response: Response, status: number, code: string, message: string) {
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toStartWith("application/json");
  expect(await response.json()).toEqual({ code, message });
}

describe("routes that need a session, called without one", () => {
  for (const [method, path, json] of [
    ["POST", "/api/auth/organization/create", { name: "No One's", slug: "no-ones" }],
    ["GET", "/api/auth/admin/list-users", undefined],
  ] as const) {
    test(`${method} ${path} answers 401 UNAUTHORIZED as JSON`, async () => {
      await expectError(await t.request(path, { method, json }), 401, "UNAUTHORIZED", ERRORS.UNAUTHORIZED.message);
    });
  }
});

describe("a role the organization does not define", () => {
  let owner: string;
  let organizationId: string;
  let memberId: string;
  beforeAll(async () => {
    const signedUp = await signUp(t, { name: "Owner" });
    owner = signedUp.cookie;
    const created = await t.request("/api/auth/organization/create", { method: "POST", json: { name: "Roles", slug: "roles-org" }, headers: { cookie: owner } });
    expect(created.status).toBe(200);
    organizationId = ((await created.json()) as { id: string }).id;
    const student = await signUp(t, { name: "Student" });
    memberId = crypto.randomUUID();
    await t.db.sql`insert into members (id, organization_id, user_id, role, created_at) values (${memberId}, ${organizationId}, ${student.userId}, 'student', now())`;
  });

  test("invite-member answers 400 ROLE_NOT_FOUND naming the role", async () => {
    const response = await t.request("/api/auth/organization/invite-member", {
      method: "POST",
      json: { email: "someone@example.test", role: "Boss", organizationId },
      headers: { cookie: owner },
    });
    await expectError(response, 400, "ROLE_NOT_FOUND", `${ERRORS.ROLE_NOT_FOUND.message}: Boss`);
  });

  test("update-member-role answers 400 ROLE_NOT_FOUND naming the role, and changes nothing", async () => {
    const response = await t.request("/api/auth/organization/update-member-role", {
      method: "POST",
      json: { memberId, role: "Boss", organizationId },
      headers: { cookie: owner },
    });
    await expectError(response, 400, "ROLE_NOT_FOUND", `${ERRORS.ROLE_NOT_FOUND.message}: Boss`);
    expect((await t.db.sql`select role from members where id = ${memberId}`)[0]!.role).toBe("student");
  });
});

test("an error Better Auth already answers with a code passes unchanged", async () => {
  const response = await t.request("/api/auth/sign-in/email", { method: "POST", json: { email: "nobody@example.test", password: PASSWORD } });
  await expectError(response, 401, "INVALID_EMAIL_OR_PASSWORD", ERRORS.INVALID_EMAIL_OR_PASSWORD.message);
});
