// GET /api/auth/get-session on a listening server: a plain Bun route that answers a request repeating
// one the fast path answered from the cookie cache with the kept answer (src/session/memo.ts), observed
// like any other request. Everything else, and everything while the database is known to be down, goes
// through the app. app.handle() (tests, in-process use) always takes the app.
import type { SessionFastPath } from "../session/fast-path.ts";
import type { ChangeNotices } from "../session/change-notices.ts";
import type { SessionMemo } from "../session/memo.ts";
import type { RequestObserver } from "../ops/observe.ts";
import type { DatabaseHealth } from "./health.ts";

export interface KeptSessionRouteOptions {
  memo: SessionMemo;
  notices: ChangeNotices;
  database: DatabaseHealth;
  fastPath: Promise<SessionFastPath | null>;
  observer: Pick<RequestObserver, "answered">;
  /** The whole app, for every request the memo does not answer. */
  app(request: Request): Response | Promise<Response>;
}

export function createKeptSessionRoute({ memo, notices, database, fastPath, observer, app }: KeptSessionRouteOptions) {
  return async (request: Request): Promise<Response> => {
    const hit = database.down ? null : memo.lookup(request);
    if (hit && notices.trusts(hit.sessionId, hit.userId, hit.issuedAt)) return observer.answered(request, hit.userId, hit.response);
    const response = await app(request);
    const answer = (await fastPath)?.cachedAnswerFor(request);
    if (answer) memo.remember(request, response, answer);
    return response;
  };
}
