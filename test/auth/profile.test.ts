// Profile fields (experienceLevel, professionalRole, roleOther, organization): accepted values,
// refusals that name the field and write nothing, the snake_case columns they land in, and the same
// rules on update-user, over HTTP and through Better Auth's own client.
import { describe, expect, test } from "bun:test";
import { EXPERIENCE_LEVELS, ORGANIZATION_MAX, PROFESSIONAL_ROLES, ROLE_OTHER_MAX } from "../../src/auth/profile.ts";
import { countIdentityRows, createTestApp, createTestClient, inProcessFetch, PASSWORD, signUp, uniqueEmail, expectError } from "../helpers.ts";

const t = await createTestApp();

type ProfileRow = { experience_level: string | null; professional_role: string | null; role_other: string | null; organization: string | null };

async function profileRow(userId: string): Promise<ProfileRow> {
  const [row] = await t.db.sql<ProfileRow[]>`
    select experience_level, professional_role, role_other, organization from users where id = ${userId}`;
  if (!row) throw new Error(`no user ${userId}`);
  return row;
}

async function updatedAt(userId: string): Promise<Date> {
  const [row] = await t.db.sql<{ updated_at: Date }[]>`select updated_at from users where id = ${userId}`;
  return row!.updated_at;
}

const signUpWith = (fields: Record<string, unknown>) =>
  t.request("/api/auth/sign-up/email", { method: "POST", json: { name: "Profile", email: uniqueEmail("profile"), password: PASSWORD, ...fields } });

const updateUser = (cookie: string, fields: Record<string, unknown>) =>
  t.request("/api/auth/update-user", { method: "POST", headers: { cookie }, json: fields });

/** Values each field refuses, with the fields that must accompany them to isolate the rule. */
const invalidValues: Array<{ field: string; value: unknown; with?: Record<string, unknown> }> = [
  { field: "experienceLevel", value: "expert" },
  { field: "experienceLevel", value: "Beginner" },
  { field: "experienceLevel", value: "" },
  { field: "experienceLevel", value: 3 },
  { field: "experienceLevel", value: ["beginner"] },
  { field: "professionalRole", value: "teacher" },
  { field: "professionalRole", value: "STUDENT" },
  { field: "professionalRole", value: { role: "student" } },
  { field: "roleOther", value: "r".repeat(ROLE_OTHER_MAX + 1), with: { professionalRole: "other" } },
  { field: "roleOther", value: 42, with: { professionalRole: "other" } },
  { field: "roleOther", value: "nul\u0000byte", with: { professionalRole: "other" } },
  { field: "roleOther", value: "teacher", with: { professionalRole: "student" } },
  { field: "roleOther", value: "teacher" },
  { field: "organization", value: "o".repeat(ORGANIZATION_MAX + 1) },
  { field: "organization", value: 7 },
  { field: "organization", value: "nul\u0000byte" },
];

describe("sign-up", () => {
  test("profile fields are stored in their snake_case columns and answered camelCase", async () => {
    const response = await signUpWith({
      experienceLevel: "intermediate",
      professionalRole: "other",
      roleOther: "teacher",
      organization: "Robotics Lab",
    });
    expect(response.status).toBe(200);
    const { user } = (await response.json()) as { user: Record<string, unknown> & { id: string } };
    expect(user).toMatchObject({ experienceLevel: "intermediate", professionalRole: "other", roleOther: "teacher", organization: "Robotics Lab" });
    expect(await profileRow(user.id)).toEqual({
      experience_level: "intermediate",
      professional_role: "other",
      role_other: "teacher",
      organization: "Robotics Lab",
    });
  });

  test("profile fields are optional and stored as NULL when left out", async () => {
    const { userId } = await signUp(t);
    expect(await profileRow(userId)).toEqual({ experience_level: null, professional_role: null, role_other: null, organization: null });
  });

  test("every listed experience level and professional role is accepted", async () => {
    for (const experienceLevel of EXPERIENCE_LEVELS) {
      const { userId } = await signUp(t, { experienceLevel });
      expect((await profileRow(userId)).experience_level).toBe(experienceLevel);
    }
    for (const professionalRole of PROFESSIONAL_ROLES) {
      const { userId } = await signUp(t, { professionalRole });
      expect((await profileRow(userId)).professional_role).toBe(professionalRole);
    }
  });

  test(`roleOther of ${ROLE_OTHER_MAX} characters and organization of ${ORGANIZATION_MAX} characters are accepted`, async () => {
    const roleOther = "r".repeat(ROLE_OTHER_MAX);
    const organization = "o".repeat(ORGANIZATION_MAX);
    const { userId } = await signUp(t, { professionalRole: "other", roleOther, organization });
    expect(await profileRow(userId)).toMatchObject({ role_other: roleOther, organization });
  });

  for (const { field, value, with: companions = {} } of invalidValues) {
    const described = `${field}=${JSON.stringify(value).slice(0, 24)}${Object.keys(companions).length ? ` with ${JSON.stringify(companions)}` : ""}`;
    test(`sign-up with ${described} answers 400 naming ${field} and writes no user or account`, async () => {
      const before = await countIdentityRows(t.db.sql);
      const response = await signUpWith({ ...companions, [field]: value });
      const body = await expectError(response, 400, "VALIDATION_ERROR");
      expect(body.message).toContain(field);
      expect(response.headers.getSetCookie()).toEqual([]);
      expect(await countIdentityRows(t.db.sql)).toEqual(before);
    });
  }
});

describe("update-user", () => {
  test("update-user changes profile fields under the same rules and stores them in their columns", async () => {
    const { cookie, userId } = await signUp(t, { experienceLevel: "beginner", professionalRole: "student" });
    const response = await updateUser(cookie, { experienceLevel: "advanced", professionalRole: "engineer", organization: "Acme" });
    expect(response.status).toBe(200);
    expect(await profileRow(userId)).toEqual({ experience_level: "advanced", professional_role: "engineer", role_other: null, organization: "Acme" });
    const session = (await (await t.request("/api/auth/get-session", { headers: { cookie } })).json()) as { user: Record<string, unknown> };
    expect(session.user).toMatchObject({ experienceLevel: "advanced", professionalRole: "engineer", organization: "Acme" });
  });

  test("update-user with null clears a profile field", async () => {
    const { cookie, userId } = await signUp(t, { experienceLevel: "beginner", organization: "Old Org" });
    const response = await updateUser(cookie, { experienceLevel: null, organization: null });
    expect(response.status).toBe(200);
    expect(await profileRow(userId)).toMatchObject({ experience_level: null, organization: null });
  });

  test("update-user accepts roleOther alone when the stored role is already other", async () => {
    const { cookie, userId } = await signUp(t, { professionalRole: "other", roleOther: "teacher" });
    const response = await updateUser(cookie, { roleOther: "librarian" });
    expect(response.status).toBe(200);
    expect(await profileRow(userId)).toMatchObject({ professional_role: "other", role_other: "librarian" });
  });

  test("update-user accepts roleOther together with a switch to professionalRole other", async () => {
    const { cookie, userId } = await signUp(t, { professionalRole: "student" });
    const response = await updateUser(cookie, { professionalRole: "other", roleOther: "artist" });
    expect(response.status).toBe(200);
    expect(await profileRow(userId)).toMatchObject({ professional_role: "other", role_other: "artist" });
  });

  test("update-user never leaves a roleOther stored next to a role other than other", async () => {
    const { cookie, userId } = await signUp(t, { professionalRole: "other", roleOther: "teacher" });
    const response = await updateUser(cookie, { professionalRole: "student" });
    // Either answer keeps the rule (refuse the switch, or drop the free text that only meant something
    // next to "other"); what may never happen is a stale roleOther beside another role.
    expect([200, 400]).toContain(response.status);
    const stale = await t.db.sql`
      select professional_role, role_other from users
      where id = ${userId} and role_other is not null and professional_role is distinct from 'other'`;
    expect([...stale]).toEqual([]);
  });

  for (const { field, value, with: companions = {} } of invalidValues) {
    const described = `${field}=${JSON.stringify(value).slice(0, 24)}${Object.keys(companions).length ? ` with ${JSON.stringify(companions)}` : ""}`;
    test(`update-user with ${described} answers 400 naming ${field} and leaves the row unchanged`, async () => {
      const { cookie, userId } = await signUp(t, { experienceLevel: "beginner", professionalRole: "hobbyist", organization: "Home" });
      const before = await profileRow(userId);
      const updatedBefore = await updatedAt(userId);
      const response = await updateUser(cookie, { ...companions, [field]: value });
      const body = await expectError(response, 400, "VALIDATION_ERROR");
      expect(body.message).toContain(field);
      expect(await profileRow(userId)).toEqual(before);
      expect(await updatedAt(userId)).toEqual(updatedBefore);
    });
  }
});

describe("Better Auth's client", () => {
  test("signUp.email sends the profile fields and updateUser changes them", async () => {
    const { client } = createTestClient({ baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) });
    const email = uniqueEmail("client-profile");
    const up = await client.signUp.email({
      email,
      password: PASSWORD,
      name: "Client",
      experienceLevel: "beginner",
      professionalRole: "researcher",
      organization: "University",
    });
    expect(up.error).toBeNull();
    const userId = up.data!.user.id;
    expect(await profileRow(userId)).toEqual({ experience_level: "beginner", professional_role: "researcher", role_other: null, organization: "University" });

    const updated = await client.updateUser({ experienceLevel: "advanced", professionalRole: "other", roleOther: "maker" });
    expect(updated.error).toBeNull();
    expect(await profileRow(userId)).toEqual({ experience_level: "advanced", professional_role: "other", role_other: "maker", organization: "University" });
    const session = await client.getSession();
    expect(session.data?.user).toMatchObject({ experienceLevel: "advanced", professionalRole: "other", roleOther: "maker" });
  });

  test("the client reports a refused profile value as a 400 error naming the field, and nothing is written", async () => {
    const { client } = createTestClient({ baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) });
    const before = await countIdentityRows(t.db.sql);
    const up = await client.signUp.email({ email: uniqueEmail(), password: PASSWORD, name: "Client", professionalRole: "wizard" });
    expect(up.data).toBeNull();
    expect(up.error?.status).toBe(400);
    expect(up.error?.message).toContain("professionalRole");
    expect(await countIdentityRows(t.db.sql)).toEqual(before);

    await client.signUp.email({ email: uniqueEmail(), password: PASSWORD, name: "Client", professionalRole: "student" });
    const update = await client.updateUser({ roleOther: "not allowed here" });
    expect(update.error?.status).toBe(400);
    expect(update.error?.message).toContain("roleOther");
  });
});
