// Sign-in by a mailed link (Better Auth's magic-link plugin), with sign-up by link only if MAGIC_LINK_SIGN_UP.
import { magicLink } from "better-auth/plugins";
import type { FlowContext } from "./flow-context.ts";

/** The magic-link plugin, or none when the flow is off. */
export function magicLinkPlugins({ mail, mailer, sql, logger, returningToSite }: FlowContext) {
  if (!mail.flows.has("magic-link")) return [];
  return [
    magicLink({
      expiresIn: mail.magicLinkExpiresInSeconds,
      storeToken: "hashed",
      disableSignUp: !mail.magicLinkSignUp,
      sendMagicLink: async ({ email, url }) => {
        if (!mail.magicLinkSignUp) {
          // No account and no sign-up by link: nothing to send, and the answer stays the same.
          const [known] = await sql`select 1 from users where email = ${email.toLowerCase()}`;
          if (!known) return logger.debug("magic link not sent: no account for the address and MAGIC_LINK_SIGN_UP is off");
        }
        mailer.queue("magic-link", email, { url: returningToSite(url), expiresInSeconds: mail.magicLinkExpiresInSeconds });
      },
    }),
  ];
}
