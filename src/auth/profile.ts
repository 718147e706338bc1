// Profile fields collected at sign-up for personalisation, stored on `users` and carried in the JWT.
// Better Auth validates each field on sign-up and update-user; the cross-field rule is checked in
// the auth hooks (src/auth/better-auth.ts). The SQL check constraints in sql/0001 mirror these sets.
import * as z from "zod";

export const EXPERIENCE_LEVELS = ["beginner", "intermediate", "advanced"] as const;
export const PROFESSIONAL_ROLES = ["student", "researcher", "engineer", "hobbyist", "other"] as const;
export const ROLE_OTHER_MAX = 100;
export const ORGANIZATION_MAX = 255;

const oneOf = (field: string, values: readonly [string, ...string[]]) =>
  z.enum(values, { error: `${field} must be one of: ${values.join(", ")}` }).nullable();

const text = (field: string, max: number) =>
  z
    .string({ error: `${field} must be a string` })
    .max(max, { error: `${field} must be at most ${max} characters` })
    .refine((value) => !value.includes("\u0000"), { error: `${field} must not contain NUL characters` })
    .nullable();

/** Better Auth `user.additionalFields`: camelCase in the API, snake_case columns. */
export const profileFields = {
  experienceLevel: {
    type: "string",
    required: false,
    input: true,
    fieldName: "experience_level",
    validator: { input: oneOf("experienceLevel", EXPERIENCE_LEVELS) },
  },
  professionalRole: {
    type: "string",
    required: false,
    input: true,
    fieldName: "professional_role",
    validator: { input: oneOf("professionalRole", PROFESSIONAL_ROLES) },
  },
  roleOther: {
    type: "string",
    required: false,
    input: true,
    fieldName: "role_other",
    validator: { input: text("roleOther", ROLE_OTHER_MAX) },
  },
  organization: {
    type: "string",
    required: false,
    input: true,
    fieldName: "organization",
    validator: { input: text("organization", ORGANIZATION_MAX) },
  },
} as const;

export type ProfileField = keyof typeof profileFields;
export const PROFILE_FIELDS = Object.keys(profileFields) as ProfileField[];

/**
 * `roleOther` only means something next to `professionalRole: "other"`: a value sent with any other
 * role is refused rather than stored and silently ignored. Returns the problem, or null.
 */
export function roleOtherProblem(professionalRole: unknown, roleOther: unknown): string | null {
  if (roleOther === undefined || roleOther === null || roleOther === "") return null;
  if (professionalRole === "other") return null;
  return 'roleOther is only accepted with professionalRole "other"';
}
