// A Better Auth plugin that tells the server's observability what Better Auth alone knows: which
// user a request acted for (for its log line) and when sessions are created or ended (for metrics).
import type { BetterAuthPlugin } from "better-auth";
import { createAuthMiddleware } from "better-auth/api";
import type { LockoutNotifier } from "../security/lockout.ts";
import type { Metrics } from "../ops/metrics.ts";
import { noteRequestUser } from "../ops/observe.ts";

type Seen = { newSession?: { user?: { id?: unknown } } | null; session?: { user?: { id?: unknown } } | null; returned?: unknown };

export function authObserver(metrics?: Metrics): BetterAuthPlugin {
  return {
    id: "auth-observer",
    init: () => ({
      options: {
        databaseHooks: {
          session: {
            create: { after: async () => metrics?.sessionCreated() },
            delete: { after: async () => metrics?.sessionRevoked() },
          },
        },
      },
    }),
    hooks: {
      after: [
        {
          matcher: () => true,
          handler: createAuthMiddleware(async (ctx) => {
            const seen = ctx.context as unknown as Seen;
            const returned = seen.returned as { user?: { id?: unknown } } | null | undefined;
            noteRequestUser(seen.newSession?.user?.id ?? seen.session?.user?.id ?? returned?.user?.id);
          }),
        },
      ],
    },
  };
}

/** The lockout notifier, counting each account lock (src/security/lockout.ts calls it once per lock). */
export function countLockouts(metrics: Metrics | undefined, notify: LockoutNotifier): LockoutNotifier {
  return async (account) => {
    metrics?.accountLocked();
    await notify(account);
  };
}
