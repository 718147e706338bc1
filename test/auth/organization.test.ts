// Organizations through Better Auth's organization client: creating schools, invitations by email,
// the course roles and their permissions, teams, switching the active organization, the limit per
// user, and the active organization and role in the session and in the JWT.
import { describe, expect, test } from "bun:test";
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from "jose";
import type { TransactionSql } from "postgres";
import { cleanUpAfterFile, createTestClient, inProcessFetch, PASSWORD, SITE_ORIGIN, uniqueEmail } from "../helpers.ts";
import { createMailTestApp, linkIn, type ReceivedMail } from "../smtp.ts";

cleanUpAfterFile();

// Invitations go out over real SMTP; sign-up verification mails are off so only invitations arrive.
const t = await createMailTestApp({ ORGANIZATION_LIMIT: "3", INVITATION_URL: "http://localhost:3000/join/{id}", EMAIL_FLOWS: "none" });
/** The next invitation mailed to `email`, received by the SMTP server. */
const invitationMail = (email: string): Promise<ReceivedMail> => t.smtp.waitForMail((m) => m.to.includes(email.toLowerCase()) && m.subject.includes(" invites you to "));
/** The invitation id in a mail's link (INVITATION_URL above). */
const invitationIdIn = (mail: ReceivedMail) => decodeURIComponent(/^http:\/\/localhost:3000\/join\/([^/?#\s]+)$/.exec(linkIn(mail))![1]!);
const target = { baseUrl: t.config.baseUrl, fetch: inProcessFetch(t.app) };

async function signedUp(name: string, email = uniqueEmail(name.toLowerCase().replace(/\W+/g, "-"))) {
  const { client, jar } = createTestClient(target);
  const { data, error } = await client.signUp.email({ name, email, password: PASSWORD });
  expect(error).toBeNull();
  return { client, jar, email, id: data!.user.id };
}
type Member = Awaited<ReturnType<typeof signedUp>>;

let slugCounter = 0;
async function createSchool(owner: Member, name = "Physics School") {
  const { data, error } = await owner.client.organization.create({ name, slug: `school-${Date.now().toString(36)}-${++slugCounter}` });
  expect(error).toBeNull();
  return data!;
}

/** Invites `email` by mail as `role`; the invitee (signed up with that email) accepts through the link's id. */
async function invite(inviter: Member, organizationId: string, invitee: Member, role: "student" | "instructor" | "admin") {
  const { error } = await inviter.client.organization.inviteMember({ email: invitee.email, role, organizationId });
  expect(error).toBeNull();
  const invitationId = invitationIdIn(await invitationMail(invitee.email));
  const accepted = await invitee.client.organization.acceptInvitation({ invitationId });
  expect(accepted.error).toBeNull();
  return invitationId;
}

/** The verified claims of a fresh JWT of the member's session. */
async function claims(member: Member) {
  const { data } = await member.client.token();
  const keys = (await (await target.fetch(`${t.config.baseUrl}/api/auth/jwks`)).json()) as JSONWebKeySet;
  const { payload } = await jwtVerify(data!.token, createLocalJWKSet(keys), { issuer: t.config.baseUrl, audience: t.config.jwtAudience });
  return payload;
}

const can = async (member: Member, permissions: Record<string, string[]>) => {
  const { data, error } = await member.client.organization.hasPermission({ permissions });
  expect(error).toBeNull();
  return data!.success;
};

describe("organizations", () => {
  test("creating one makes the creator its owner and the session's active organization, in the table, the session and the JWT", async () => {
    const owner = await signedUp("Owner");
    const school = await createSchool(owner);
    const [member] = await t.db.sql`select role from members where organization_id = ${school.id} and user_id = ${owner.id}`;
    expect(member!.role).toBe("owner");
    const session = (await owner.client.getSession()).data!;
    expect((session.session as { activeOrganizationId?: string }).activeOrganizationId).toBe(school.id);
    const [row] = await t.db.sql`select active_organization_id from sessions where id = ${session.session.id}`;
    expect(row!.active_organization_id).toBe(school.id);
    expect(await claims(owner)).toMatchObject({ sub: owner.id, role: "user", activeOrganizationId: school.id, activeOrganizationRole: "owner" });
  });

  test("an invitation is emailed with a link to the site; accepting it makes the invitee a member with the invited role", async () => {
    const owner = await signedUp("Owner");
    const school = await createSchool(owner, "Bootcamp North");
    const pupil = await signedUp("Pupil");
    expect((await owner.client.organization.inviteMember({ email: pupil.email, role: "student", organizationId: school.id })).error).toBeNull();
    const mail = await invitationMail(pupil.email);
    expect(mail.to).toEqual([pupil.email.toLowerCase()]);
    expect(mail.subject).toBe("Owner invites you to Bootcamp North on Learn");
    expect(mail.text).toContain(`Owner (${owner.email}) invites you to join Bootcamp North as student.`);
    expect(mail.text).toContain("expires in 2 days");
    expect(mail.html).toContain(`href="${linkIn(mail)}"`);
    expect(t.smtp.mailsTo(pupil.email)).toHaveLength(1);
    const invitationId = invitationIdIn(mail);
    const [invitation] = await t.db.sql`select email, role, status, inviter_id from invitations where id = ${invitationId}`;
    expect(invitation).toEqual({ email: pupil.email, role: "student", status: "pending", inviter_id: owner.id });

    // Somebody else cannot take the invitation.
    const stranger = await signedUp("Stranger");
    expect((await stranger.client.organization.acceptInvitation({ invitationId })).error?.status).toBe(403);

    expect((await pupil.client.organization.acceptInvitation({ invitationId })).error).toBeNull();
    expect((await t.db.sql`select status from invitations where id = ${invitationId}`)[0]!.status).toBe("accepted");
    expect((await t.db.sql`select role from members where organization_id = ${school.id} and user_id = ${pupil.id}`)[0]!.role).toBe("student");
    expect(await claims(pupil)).toMatchObject({ activeOrganizationId: school.id, activeOrganizationRole: "student" });
  });

  test("an unknown role is refused with 400 and no invitation is written", async () => {
    const owner = await signedUp("Owner");
    const school = await createSchool(owner);
    const { error } = await owner.client.organization.inviteMember({ email: uniqueEmail("x"), role: "dean" as "student", organizationId: school.id });
    expect(error?.status).toBe(400);
    expect((await t.db.sql`select count(*)::int as count from invitations where organization_id = ${school.id}`)[0]!.count).toBe(0);
  });
});

describe("course roles and permissions", () => {
  test("students read and complete lessons, attempt and review quizzes, create and read threads and comments, nothing more", async () => {
    const owner = await signedUp("Owner");
    const school = await createSchool(owner);
    const pupil = await signedUp("Pupil");
    await invite(owner, school.id, pupil, "student");
    expect(await can(pupil, { lesson: ["read", "complete"], quiz: ["attempt", "review"], thread: ["create", "read"], comment: ["create", "read"] })).toBe(true);
    expect(await can(pupil, { comment: ["delete"] })).toBe(false);
    expect(await can(pupil, { thread: ["delete"] })).toBe(false);
    expect(await can(pupil, { member: ["invite"] })).toBe(false);
    // And Better Auth's own endpoints agree: a student cannot invite.
    const { error } = await pupil.client.organization.inviteMember({ email: uniqueEmail("friend"), role: "student", organizationId: school.id });
    expect(error?.status).toBe(403);
  });

  test("instructors also delete comments and invite students and instructors, but not admins, and cannot remove members", async () => {
    const owner = await signedUp("Owner");
    const school = await createSchool(owner);
    const teacher = await signedUp("Instructor");
    await invite(owner, school.id, teacher, "instructor");
    expect(await can(teacher, { comment: ["delete"], member: ["invite"], lesson: ["read"] })).toBe(true);
    expect(await can(teacher, { thread: ["delete"] })).toBe(false);
    expect(await can(teacher, { member: ["remove"] })).toBe(false);

    const pupil = await signedUp("Pupil");
    await invite(teacher, school.id, pupil, "student");
    const colleague = await signedUp("Colleague");
    await invite(teacher, school.id, colleague, "instructor");

    const escalation = await teacher.client.organization.inviteMember({ email: uniqueEmail("crony"), role: "admin", organizationId: school.id });
    expect(escalation.error?.status).toBe(403);
    expect(escalation.error?.code).toBe("ROLE_NOT_ALLOWED");
    const [member] = await t.db.sql`select id from members where user_id = ${pupil.id} and organization_id = ${school.id}`;
    // Better Auth answers this refusal with 401, not 403.
    const removal = await teacher.client.organization.removeMember({ memberIdOrEmail: member!.id, organizationId: school.id });
    expect(removal.error?.status).toBe(401);
    expect(removal.error?.code).toBe("YOU_ARE_NOT_ALLOWED_TO_DELETE_THIS_MEMBER");
    expect((await t.db.sql`select count(*)::int as count from members where organization_id = ${school.id}`)[0]!.count).toBe(4);
  });

  test("an instructor cannot invite an admin or owner with any shape of organizationId: \"\", null, missing, whitespace, a number, an array or the real id", async () => {
    const owner = await signedUp("Owner");
    const school = await createSchool(owner);
    const teacher = await signedUp("Instructor");
    await invite(owner, school.id, teacher, "instructor"); // accepting makes the school the teacher's active organization
    // DESIGN.md: the guard reads organizationId as Better Auth does (`organizationId || activeOrganizationId`).
    const shapes: Array<[string, Record<string, unknown>]> = [
      ["empty string", { organizationId: "" }],
      ["null", { organizationId: null }],
      ["missing", {}],
      ["whitespace", { organizationId: " " }],
      ["a number", { organizationId: 0 }],
      ["an array", { organizationId: [school.id] }],
      ["the real id", { organizationId: school.id }],
    ];
    const roles: unknown[] = ["admin", "owner", " admin ", "student,admin", ["admin"], ["student", "owner"]];
    for (const [shape, organizationId] of shapes) {
      for (const role of roles) {
        const email = uniqueEmail("crony");
        const { error } = await teacher.client.organization.inviteMember({ email, role: role as "admin", ...organizationId } as never);
        const status = error?.status ?? 200;
        const [written] = await t.db.sql`select 1 from invitations where email = ${email}`;
        expect({ shape, role, refused: status >= 400 && status < 500, written }).toEqual({ shape, role, refused: true, written: undefined });
      }
    }
    // The real id, "" and missing all name the school here: Better Auth's role check answers for each.
    for (const organizationId of [{ organizationId: "" }, {}, { organizationId: school.id }]) {
      const { error } = await teacher.client.organization.inviteMember({ email: uniqueEmail("crony"), role: "admin", ...organizationId });
      expect(error?.code).toBe("ROLE_NOT_ALLOWED");
    }
  });

  test("admins and owners may do everything; an admin invites admins and removes members", async () => {
    const owner = await signedUp("Owner");
    const school = await createSchool(owner);
    const everything = {
      lesson: ["read", "complete"],
      quiz: ["attempt", "review"],
      thread: ["create", "read", "delete"],
      comment: ["create", "read", "delete"],
      member: ["invite", "remove"],
    };
    expect(await can(owner, everything)).toBe(true);
    const head = await signedUp("Head");
    await invite(owner, school.id, head, "admin");
    expect(await can(head, everything)).toBe(true);
    const deputy = await signedUp("Deputy");
    await invite(head, school.id, deputy, "admin");
    const [member] = await t.db.sql`select id from members where user_id = ${deputy.id} and organization_id = ${school.id}`;
    expect((await head.client.organization.removeMember({ memberIdOrEmail: member!.id, organizationId: school.id })).error).toBeNull();
  });

  test("a role change reaches the member's JWT at once (no token minted before the change is handed out again)", async () => {
    const owner = await signedUp("Owner");
    const school = await createSchool(owner);
    const pupil = await signedUp("Pupil");
    await invite(owner, school.id, pupil, "student");
    expect((await claims(pupil)).activeOrganizationRole).toBe("student");
    const [member] = await t.db.sql`select id from members where user_id = ${pupil.id} and organization_id = ${school.id}`;
    expect((await owner.client.organization.updateMemberRole({ memberId: member!.id, role: "instructor", organizationId: school.id })).error).toBeNull();
    expect((await claims(pupil)).activeOrganizationRole).toBe("instructor");
  });
});

describe("several organizations", () => {
  test("a member of two organizations switches the active one; the session row and the JWT follow", async () => {
    const pupil = await signedUp("Pupil");
    const ownerA = await signedUp("Owner A");
    const ownerB = await signedUp("Owner B");
    const schoolA = await createSchool(ownerA, "School A");
    const schoolB = await createSchool(ownerB, "School B");
    await invite(ownerA, schoolA.id, pupil, "student");
    await invite(ownerB, schoolB.id, pupil, "instructor");

    const listed = (await pupil.client.organization.list()).data!;
    expect(listed.map((org) => org.name).sort()).toEqual(["School A", "School B"]);

    expect((await pupil.client.organization.setActive({ organizationId: schoolA.id })).error).toBeNull();
    expect(await claims(pupil)).toMatchObject({ activeOrganizationId: schoolA.id, activeOrganizationRole: "student" });
    expect((await pupil.client.organization.setActive({ organizationId: schoolB.id })).error).toBeNull();
    const session = (await pupil.client.getSession()).data!;
    expect((await t.db.sql`select active_organization_id from sessions where id = ${session.session.id}`)[0]!.active_organization_id).toBe(schoolB.id);
    expect(await claims(pupil)).toMatchObject({ activeOrganizationId: schoolB.id, activeOrganizationRole: "instructor" });

    // An organization the user is not a member of cannot be made active; Better Auth fails closed and
    // clears the active organization.
    const other = await createSchool(await signedUp("Owner C"), "School C");
    expect((await pupil.client.organization.setActive({ organizationId: other.id })).error?.status).toBe(403);
    expect(await claims(pupil)).toMatchObject({ activeOrganizationId: null, activeOrganizationRole: null });
  });

  test("ORGANIZATION_LIMIT: a user in 3 organizations cannot create a fourth (403), and nothing is written", async () => {
    const founder = await signedUp("Founder");
    for (let i = 0; i < 3; i++) await createSchool(founder, `School ${i}`);
    const before = (await t.db.sql`select count(*)::int as count from organizations`)[0]!.count;
    const { error } = await founder.client.organization.create({ name: "One too many", slug: `too-many-${Date.now()}` });
    expect(error?.status).toBe(403);
    expect(error?.code).toBe("YOU_HAVE_REACHED_THE_MAXIMUM_NUMBER_OF_ORGANIZATIONS");
    expect((await t.db.sql`select count(*)::int as count from organizations`)[0]!.count).toBe(before);
  });

  test("a taken slug answers 400 ORGANIZATION_ALREADY_EXISTS", async () => {
    const a = await signedUp("A");
    const school = await createSchool(a);
    const { error } = await (await signedUp("B")).client.organization.create({ name: "Copy", slug: school.slug });
    expect(error?.status).toBe(400);
    expect(error?.code).toBe("ORGANIZATION_ALREADY_EXISTS");
  });
});

describe("teams", () => {
  test("an owner creates a team (a class) and adds a member to it; the member's teams list it", async () => {
    const owner = await signedUp("Owner");
    const school = await createSchool(owner);
    const pupil = await signedUp("Pupil");
    await invite(owner, school.id, pupil, "student");
    const team = await owner.client.organization.createTeam({ name: "Class 3B", organizationId: school.id });
    expect(team.error).toBeNull();
    expect((await owner.client.organization.addTeamMember({ teamId: team.data!.id, userId: pupil.id })).error).toBeNull();
    const [row] = await t.db.sql`select t.name, t.organization_id from team_members tm join teams t on t.id = tm.team_id where tm.user_id = ${pupil.id}`;
    expect(row).toEqual({ name: "Class 3B", organization_id: school.id });
    const mine = (await pupil.client.organization.listUserTeams()).data!;
    expect(mine.map((item) => item.name)).toEqual(["Class 3B"]);
    // A student cannot create teams.
    expect((await pupil.client.organization.createTeam({ name: "Rogue", organizationId: school.id })).error?.status).toBe(403);
  });
});

/** The member's session cookie, for a request whose raw answer the test reads. */
const cookieOf = (member: Member) => member.jar.getCookieString(t.config.baseUrl);
/** A POST with the member's cookie whose raw answer the test reads. */
const authPost = (path: string, cookie: string, body: object) =>
  target.fetch(`${t.config.baseUrl}/api/auth${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: SITE_ORIGIN, cookie },
    body: JSON.stringify(body),
  });

/**
 * Runs `request` while another transaction holds `write` uncommitted, and commits it only once the
 * request's insert into `table` waits on that transaction's row lock: the request's own checks saw
 * nothing, and its insert then meets the committed row (a race made deterministic).
 */
async function whileUncommitted(write: (tx: TransactionSql) => Promise<unknown>, table: string, request: () => Promise<Response>): Promise<Response> {
  let answer: Promise<Response> | undefined;
  await t.db.sql.begin(async (tx) => {
    await write(tx);
    answer = request();
    for (;;) {
      const [row] = await t.db.sql<{ waiting: number }[]>`
        select count(*)::int as waiting from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock' and query ilike ${`%insert into "${table}"%`}`;
      if (row!.waiting > 0) break;
      await Bun.sleep(10);
    }
  });
  return answer!;
}

const CONFLICT = { code: "CONFLICT", message: "the request conflicts with a record that already exists" };

describe("accepting an invitation to an organization one belongs to", () => {
  /**
   * A second pending invitation to a member: what two invitations sent at once (invite-member checks,
   * then inserts) or one to an address the member has since moved to leave behind. Written directly,
   * as neither race can be produced on demand.
   */
  async function secondInvitation(organizationId: string, inviter: Member, invitee: Member, role = "instructor") {
    const id = `inv-${crypto.randomUUID()}`;
    await t.db.sql`
      insert into invitations (id, organization_id, email, role, status, expires_at, created_at, inviter_id)
      values (${id}, ${organizationId}, ${invitee.email.toLowerCase()}, ${role}, 'pending', now() + interval '1 day', now(), ${inviter.id})`;
    return id;
  }
  const membership = async (organizationId: string): Promise<{ user_id: string; role: string }[]> => [
    ...(await t.db.sql<{ user_id: string; role: string }[]>`select user_id, role from members where organization_id = ${organizationId} order by user_id`),
  ];

  test("answers 400 USER_IS_ALREADY_A_MEMBER_OF_THIS_ORGANIZATION as JSON; the membership and the invitation are unchanged", async () => {
    const owner = await signedUp("Owner");
    const school = await createSchool(owner);
    const pupil = await signedUp("Pupil");
    await invite(owner, school.id, pupil, "student");
    const invitationId = await secondInvitation(school.id, owner, pupil);
    const before = await membership(school.id);

    const response = await authPost("/organization/accept-invitation", await cookieOf(pupil), { invitationId });
    expect(response.status).toBe(400);
    expect(await response.json()).toEqual({ code: "USER_IS_ALREADY_A_MEMBER_OF_THIS_ORGANIZATION", message: "User is already a member of this organization" });
    // Through Better Auth's own client as well.
    expect((await pupil.client.organization.acceptInvitation({ invitationId })).error).toMatchObject({ status: 400, code: "USER_IS_ALREADY_A_MEMBER_OF_THIS_ORGANIZATION" });
    expect(await membership(school.id)).toEqual(before);
    expect((await t.db.sql`select status from invitations where id = ${invitationId}`)[0]!.status).toBe("pending");
    // The member may still turn it down.
    expect((await pupil.client.organization.rejectInvitation({ invitationId })).error).toBeNull();
  });

  test("the owner accepting an invitation to their own organization gets the same 400, not a 500", async () => {
    const owner = await signedUp("Owner");
    const school = await createSchool(owner);
    const invitationId = await secondInvitation(school.id, owner, owner, "student");
    const { error } = await owner.client.organization.acceptInvitation({ invitationId });
    expect(error).toMatchObject({ status: 400, code: "USER_IS_ALREADY_A_MEMBER_OF_THIS_ORGANIZATION" });
    expect(await membership(school.id)).toEqual([{ user_id: owner.id, role: "owner" }]);
  });

  test("a membership committed while the accept runs (the race the check cannot see) answers 409 CONFLICT as JSON, never a 500", async () => {
    const owner = await signedUp("Owner");
    const school = await createSchool(owner);
    const pupil = await signedUp("Pupil");
    const invitationId = await secondInvitation(school.id, owner, pupil, "student");
    const cookie = await cookieOf(pupil);
    // Another request's membership, not yet committed: the accept's check does not see it, and its
    // insert waits on the unique index until that transaction commits, then fails with 23505.
    const response = await whileUncommitted(
      (tx) => tx`insert into members (id, organization_id, user_id, role, created_at) values (${crypto.randomUUID()}, ${school.id}, ${pupil.id}, 'student', now())`,
      "members",
      () => authPost("/organization/accept-invitation", cookie, { invitationId }),
    );
    expect(response.status).toBe(409);
    expect(await response.json()).toEqual(CONFLICT);
    expect(await membership(school.id)).toEqual([
      { user_id: owner.id, role: "owner" },
      { user_id: pupil.id, role: "student" },
    ].sort((a, b) => (a.user_id < b.user_id ? -1 : 1)));
    // Better Auth put the invitation back to pending when the member insert failed.
    expect((await t.db.sql`select status from invitations where id = ${invitationId}`)[0]!.status).toBe("pending");
  });
});

test("two schools created with one slug at once: the second answers 409 CONFLICT as JSON, not a 500, and writes nothing", async () => {
  const owner = await signedUp("Owner");
  const slug = `race-${Date.now().toString(36)}`;
  const before = (await t.db.sql<{ n: number }[]>`select count(*)::int as n from members where user_id = ${owner.id}`)[0]!.n;
  // The first school, not yet committed: create's slug check does not see it.
  const response = await whileUncommitted(
    (tx) => tx`insert into organizations (id, name, slug, created_at) values (${crypto.randomUUID()}, 'First', ${slug}, now())`,
    "organizations",
    async () => authPost("/organization/create", await cookieOf(owner), { name: "Second", slug }),
  );
  expect(response.status).toBe(409);
  expect(await response.json()).toEqual(CONFLICT);
  expect([...(await t.db.sql`select name from organizations where slug = ${slug}`)]).toEqual([{ name: "First" }]);
  expect((await t.db.sql<{ n: number }[]>`select count(*)::int as n from members where user_id = ${owner.id}`)[0]!.n).toBe(before);
});

describe("atomic creation", () => {
  test("organization create is one transaction: when the owner's membership cannot be written, no organization stays behind", async () => {
    const owner = await signedUp("Atomic");
    const slug = `atomic-${Date.now().toString(36)}`;
    // The membership insert fails after the organization row was written.
    await t.db.sql.unsafe(`
      create function refuse_atomic_member() returns trigger language plpgsql as $$ begin raise exception 'membership refused'; end $$;
      create trigger refuse_atomic_member before insert on members for each row when (new.role = 'owner') execute function refuse_atomic_member();`);
    try {
      const { error } = await owner.client.organization.create({ name: "Atomic School", slug });
      expect(error?.status).toBeGreaterThanOrEqual(500);
    } finally {
      await t.db.sql.unsafe("drop trigger refuse_atomic_member on members; drop function refuse_atomic_member();");
    }
    expect(await t.db.sql`select 1 from organizations where slug = ${slug}`).toHaveLength(0);
    // And the slug is free for the retry.
    const { error } = await owner.client.organization.create({ name: "Atomic School", slug });
    expect(error).toBeNull();
  });
});
