// Every request, observed once around the whole app: a request id (the client's X-Request-Id when it
// is a sane token, else a new UUID; echoed back), one structured log line, and the request metrics.
// The user id is learnt while the request runs (src/session/fast-path.ts, the Better Auth plugin in
// src/auth/observer.ts) through an AsyncLocalStorage context, so no handler has to return it.
import { AsyncLocalStorage } from "node:async_hooks";
import { clientIp, type SocketInfo } from "./client-ip.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

export const REQUEST_ID_HEADER = "x-request-id";
// A client-chosen id is echoed into logs: only a short token of safe characters, so it cannot forge
// log lines or fields (OWASP Logging Cheat Sheet, log injection).
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** The route label of a request that matched no known route (raw paths would be unbounded). */
export const UNMATCHED_ROUTE = "(unmatched)";

interface RequestContext {
  userId?: string;
}
const context = new AsyncLocalStorage<RequestContext>();

/** Records the user a request acts for, for its log line. */
export function noteRequestUser(userId: unknown): void {
  const store = context.getStore();
  if (store && typeof userId === "string" && !store.userId) store.userId = userId;
}

/** Turns request paths into route templates ("/api/auth/reset-password/:token"), never echoing a path. */
export function createRouteResolver(templates: string[]): (pathname: string) => string {
  const exact = new Set(templates.filter((template) => !template.includes(":")));
  const patterns = templates
    .filter((template) => template.includes(":"))
    .map((template) => ({
      template,
      pattern: new RegExp(`^${template.split("/").map((part) => (part.startsWith(":") ? "[^/]+" : part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))).join("/")}$`),
    }));
  return (pathname) => {
    const path = pathname.length > 1 && pathname.endsWith("/") ? pathname.slice(0, -1) : pathname;
    if (exact.has(path)) return path;
    return patterns.find(({ pattern }) => pattern.test(path))?.template ?? UNMATCHED_ROUTE;
  };
}

/**
 * Requests (and work they leave running) the server has started and not finished: shutdown waits for
 * them before it closes the pool, also for requests whose clients have hung up, which no longer hold a
 * connection open but still query the database (a sign-in waiting for its hash, say).
 */
export interface InFlight {
  /** Runs `work`, counted until it settles. */
  track<T>(work: () => T | Promise<T>): Promise<T>;
  readonly count: number;
  /** Resolves once nothing is counted. */
  settled(): Promise<void>;
}

export function createInFlight(): InFlight {
  let count = 0;
  let idle: PromiseWithResolvers<void> | undefined;
  return {
    async track(work) {
      count++;
      try {
        return await work();
      } finally {
        if (--count === 0 && idle) {
          idle.resolve();
          idle = undefined;
        }
      }
    },
    get count() {
      return count;
    },
    settled: () => (count === 0 ? Promise.resolve() : (idle ??= Promise.withResolvers<void>()).promise),
  };
}

export interface ObserverOptions {
  logger: Logger;
  metrics: Metrics;
  routeOf: (pathname: string) => string;
  trustProxy: boolean;
  server: () => SocketInfo | null | undefined;
  inFlight: InFlight;
}

type Handler = (request: Request) => Response | Promise<Response>;

export interface RequestObserver {
  /** An Elysia `wrap` that observes each request around `handle`. */
  wrap(handle: Handler): (request: Request) => Promise<Response>;
  /**
   * Observes a request answered at once (`respond`) for `userId`, with no handler to run (a kept answer,
   * src/session/memo.ts): the same request id, metrics and log line, without the request context and
   * the in-flight count a running handler needs.
   */
  answered(request: Request, userId: string, respond: () => Response): Response;
}

export function observeRequests({ logger, metrics, routeOf, trustProxy, server, inFlight }: ObserverOptions): RequestObserver {
  const infoEnabled = () => logger.level === "debug" || logger.level === "info";
  const requestIdOf = (request: Request) => {
    const sent = request.headers.get(REQUEST_ID_HEADER);
    return sent && SAFE_REQUEST_ID.test(sent) ? sent : crypto.randomUUID();
  };
  const finish = (request: Request, requestId: string, started: number, answer: Response, userId: string | null): Response => {
    const seconds = (performance.now() - started) / 1000;
    const response = withHeader(answer, REQUEST_ID_HEADER, requestId);
    const route = routeOf(pathOf(request.url));
    metrics.observeRequest(request.method, route, response.status, seconds);
    if (infoEnabled()) {
      const fields = {
        requestId,
        method: request.method,
        route,
        status: response.status,
        durationMs: Math.round(seconds * 1e5) / 100,
        ip: clientIp(request, server(), trustProxy),
        userId,
      };
      // Load balancers and scrapers poll these every few seconds: their successes are debug lines.
      const routine = (route === "/health" || route === "/metrics") && response.status < 400;
      logger.request(response.status >= 500 ? "error" : routine ? "debug" : "info", fields);
    }
    return response;
  };
  return {
    wrap: (handle) => async (request) => {
      const started = performance.now();
      const requestId = requestIdOf(request);
      const store: RequestContext = {};
      const response = await inFlight.track(() => context.run(store, () => handle(request)));
      return finish(request, requestId, started, response, store.userId ?? null);
    },
    answered: (request, userId, respond) => {
      const started = performance.now();
      return finish(request, requestIdOf(request), started, respond(), userId);
    },
  };
}

/** The path of an absolute URL, without parsing all of it (this runs on every request). */
export function pathOf(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return "/";
  let end = url.length;
  for (const stop of ["?", "#"]) {
    const at = url.indexOf(stop, start);
    if (at >= 0 && at < end) end = at;
  }
  return url.slice(start, end);
}

function withHeader(response: Response, name: string, value: string): Response {
  try {
    response.headers.set(name, value);
    return response;
  } catch {
    // Immutable headers (a fetched or static response): answer with a copy.
    const copy = new Response(response.body, response);
    copy.headers.set(name, value);
    return copy;
  }
}
