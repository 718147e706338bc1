// Organizations (schools, bootcamps) with teams and course roles: Better Auth's organization plugin on
// the organizations/members/invitations/teams/team_members tables, with the learning platform's
// permissions as access-control statements. The active organization lives on the session.
import type { BetterAuthPlugin } from "better-auth";
import { createAuthMiddleware, getSessionFromCtx, isAPIError } from "better-auth/api";
import { apiError } from "../../errors.ts";
import { setCookieCache } from "better-auth/cookies";
import { organization } from "better-auth/plugins";
import { createAccessControl } from "better-auth/plugins/access";
import { defaultStatements } from "better-auth/plugins/organization/access";
import type { Config } from "../../config.ts";
import type { Sql } from "../../db/pool.ts";
import type { Logger } from "../../ops/log.ts";
import type { SendMail } from "../../mail/send-mail.ts";

/**
 * What a member may do inside an organization. Better Auth's own statements (organization, member,
 * invitation, team, ac) guard its endpoints; the platform's are checked by the course services, via
 * POST /api/auth/organization/has-permission or the role in the session and the JWT.
 */
export const organizationStatements = {
  ...defaultStatements,
  lesson: ["read", "complete"],
  quiz: ["attempt", "review"],
  thread: ["create", "read", "delete"],
  comment: ["create", "read", "delete"],
  member: [...defaultStatements.member, "invite", "remove"],
} as const;

export const organizationAc = createAccessControl(organizationStatements);

const studentPermissions = {
  lesson: ["read", "complete"],
  quiz: ["attempt", "review"],
  thread: ["create", "read"],
  comment: ["create", "read"],
} as const;

const everything = {
  organization: ["update", "delete"],
  member: ["create", "update", "delete", "invite", "remove"],
  invitation: ["create", "cancel"],
  team: ["create", "update", "delete"],
  ac: ["create", "read", "update", "delete"],
  lesson: ["read", "complete"],
  quiz: ["attempt", "review"],
  thread: ["create", "read", "delete"],
  comment: ["create", "read", "delete"],
} as const;

export const organizationRoles = {
  student: organizationAc.newRole(studentPermissions),
  // Instructors invite (Better Auth's invitation:create) students and instructors, never admins or owners.
  instructor: organizationAc.newRole({
    ...studentPermissions,
    comment: ["create", "read", "delete"],
    member: ["invite"],
    invitation: ["create"],
  }),
  admin: organizationAc.newRole(everything),
  owner: organizationAc.newRole(everything),
};
/** Roles only an admin or owner may hand out. */
const MANAGING_ROLES = new Set(["admin", "owner"]);

export const organizationSchema = {
  session: { fields: { activeOrganizationId: "active_organization_id", activeTeamId: "active_team_id" } },
  organization: { modelName: "organizations", fields: { createdAt: "created_at" } },
  member: { modelName: "members", fields: { organizationId: "organization_id", userId: "user_id", createdAt: "created_at" } },
  invitation: {
    modelName: "invitations",
    fields: { organizationId: "organization_id", teamId: "team_id", expiresAt: "expires_at", createdAt: "created_at", inviterId: "inviter_id" },
  },
  team: {
    modelName: "teams",
    fields: { organizationId: "organization_id", memberCount: "member_count", createdAt: "created_at", updatedAt: "updated_at" },
  },
  teamMember: { modelName: "team_members", fields: { teamId: "team_id", userId: "user_id", membershipKey: "membership_key", createdAt: "created_at" } },
};

/** The page on the site where an invitee accepts: `{id}` is replaced by the invitation id. */
export function invitationUrl(config: Config, invitationId: string): string {
  return config.plugins.invitationUrl.replace("{id}", encodeURIComponent(invitationId));
}

/** How long an invitation can be accepted (Better Auth's default, fixed here because the mail says it). */
export const INVITATION_EXPIRES_IN_SECONDS = 48 * 3600;

/**
 * Whether Better Auth created this invitation in the current request rather than resending it: a
 * new one expires at most the lifetime after its creation (expiresAt is computed first); a resent
 * one got a fresh expiry later than that.
 */
function isNewInvitation({ createdAt, expiresAt }: { createdAt: Date; expiresAt: Date }): boolean {
  return new Date(expiresAt).getTime() - new Date(createdAt).getTime() <= INVITATION_EXPIRES_IN_SECONDS * 1000;
}

export function organizationPlugin(config: Config, sql: Sql, sendMail: SendMail | undefined, logger: Logger) {
  return organization({
    ac: organizationAc,
    roles: organizationRoles,
    creatorRole: "owner",
    organizationLimit: config.plugins.organizationLimit,
    invitationExpiresIn: INVITATION_EXPIRES_IN_SECONDS,
    teams: { enabled: true },
    schema: organizationSchema,
    organizationHooks: {
      // Better Auth's accept-invitation checks the invitation, the recipient and the limits but not
      // whether the caller is a member already: a second pending invitation (two sent at once, or one
      // to the address a member has since moved to) then hit members' unique key as an empty 500.
      // Refused first, as invite-member refuses inviting a member; the invitation stays pending (the
      // member can still reject it).
      async beforeAcceptInvitation({ invitation, user }) {
        const [member] = await sql`select 1 from members where organization_id = ${invitation.organizationId} and user_id = ${user.id}`;
        if (member) throw apiError("USER_IS_ALREADY_A_MEMBER_OF_THIS_ORGANIZATION");
      },
    },
    async sendInvitationEmail({ id, email, role, organization: org, inviter, invitation }) {
      if (!sendMail) {
        logger.warn(`invitation ${id} to ${org.slug} was created but not emailed: mail is not configured`);
        return;
      }
      const data = {
        inviterName: inviter.user.name,
        inviterEmail: inviter.user.email,
        organizationName: org.name,
        role,
        url: invitationUrl(config, id),
        expiresInSeconds: INVITATION_EXPIRES_IN_SECONDS,
      };
      // A new invitation whose mail never left is withdrawn: the inviter gets 424 MAIL_NOT_SENT and can
      // invite again, instead of a pending invitation nobody received blocking the address. A resent
      // one (resend: true) stays: its first mail went out.
      const withdraw = isNewInvitation(invitation) ? () => sql`delete from invitations where id = ${id} and status = 'pending'` : undefined;
      await sendMail("organization-invitation", email, data, withdraw);
    },
  });
}

/**
 * Better Auth lets anyone with invitation:create invite any role but the creator's. An instructor
 * may invite students and instructors only (ASVS 4.1.3, least privilege): admin and owner
 * invitations need an admin or owner. Answers 403 ROLE_NOT_ALLOWED otherwise.
 */
export function invitationRoleGuard(sql: Sql): BetterAuthPlugin {
  return {
    id: "invitation-role-guard",
    hooks: {
      before: [
        {
          matcher: (context) => context.path === "/organization/invite-member",
          handler: createAuthMiddleware(async (ctx) => {
            const body = (ctx.body ?? {}) as { role?: unknown; organizationId?: unknown };
            const wanted = (Array.isArray(body.role) ? body.role : [body.role]).flatMap((role) => (typeof role === "string" ? role.split(",") : []));
            if (!wanted.some((role) => MANAGING_ROLES.has(role.trim()))) return;
            const session = await getSessionFromCtx(ctx).catch(() => null);
            if (!session) return; // Better Auth answers 401
            // Read as Better Auth's invite-member reads it: `organizationId || activeOrganizationId`, so
            // "" (and null) mean the active organization there and here.
            const organizationId = body.organizationId || (session.session as { activeOrganizationId?: string | null }).activeOrganizationId;
            if (!organizationId) return; // Better Auth answers 400 ORGANIZATION_NOT_FOUND
            if (typeof organizationId !== "string") return; // Better Auth's body schema answers 400
            const [member] = await sql<{ role: string }[]>`
              select role from members where organization_id = ${organizationId} and user_id = ${session.user.id}`;
            if (!member) return; // not a member: Better Auth answers
            if (member.role.split(",").some((role) => MANAGING_ROLES.has(role.trim()))) return;
            throw apiError("ROLE_NOT_ALLOWED");
          }),
        },
      ],
    },
  };
}

// Endpoints after which the caller's session may have another active organization.
const ACTIVE_ORGANIZATION_CHANGES = new Set([
  "/organization/create",
  "/organization/accept-invitation",
  "/organization/remove-member",
  "/organization/leave",
  "/organization/delete",
]);

/**
 * Better Auth 1.7 writes the new active organization to the session row on create and
 * accept-invitation (and clears it on leave, remove and delete) without rewriting the session cookie
 * cache (SESSION_COOKIE_CACHE), so the caller's next requests would still see the old one for up to
 * the cache's lifetime ("No active organization" right after accepting an invitation). This rewrites
 * the caller's cached copy from the row.
 */
export function activeOrganizationCacheRefresh(): BetterAuthPlugin {
  return {
    id: "active-organization-cache-refresh",
    hooks: {
      after: [
        {
          matcher: (context) => ACTIVE_ORGANIZATION_CHANGES.has(context.path ?? ""),
          handler: createAuthMiddleware(async (ctx) => {
            if (!ctx.context.options.session?.cookieCache?.enabled || isAPIError(ctx.context.returned)) return;
            const token = (ctx.context.session ?? (await getSessionFromCtx(ctx).catch(() => null)))?.session.token;
            if (!token) return;
            const fresh = await ctx.context.internalAdapter.findSession(token);
            if (!fresh) return;
            const dontRememberMe = Boolean(await ctx.getSignedCookie(ctx.context.authCookies.dontRememberToken.name, ctx.context.secret));
            await setCookieCache(ctx, fresh, dontRememberMe);
          }),
        },
      ],
    },
  };
}

/** The member's role in an organization, or null: the `activeOrganizationRole` JWT claim. */
export async function memberRole(sql: Sql, userId: string, organizationId: string): Promise<string | null> {
  const [row] = await sql<{ role: string }[]>`select role from members where organization_id = ${organizationId} and user_id = ${userId}`;
  return row?.role ?? null;
}
