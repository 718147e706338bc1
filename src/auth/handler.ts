// Better Auth's request handler with its endpoints and router built once per server. better-auth 1.7's
// `auth.handler` rebuilds every endpoint and the router on each request (about 0.3-0.4 ms of CPU, the
// same for a sign-in as for a bare GET /ok; bench/RESULTS.md) because a dynamic base URL or trusted-origin
// function may give each request its own context. With a fixed base URL and fixed lists, as this server
// configures them, that context equals the one Better Auth builds at start, so the router is built on it
// once; each call still gets its own copy of the context (Better Auth's dispatch spreads it per call).
import { runWithAdapter } from "@better-auth/core/context";
import { router } from "better-auth/api";
import type { Auth } from "./better-auth.ts";

type Handler = (request: Request) => Promise<Response>;
// `$context` is typed with the plugins' additions; `router` takes the base context they extend.
type RouterContext = Parameters<typeof router>[0];

/** Whether a per-request context could differ from the one built at start. */
function contextVariesByRequest(options: Auth["options"]): boolean {
  return (
    typeof options.baseURL !== "string" ||
    typeof options.trustedOrigins === "function" ||
    typeof options.account?.accountLinking?.trustedProviders === "function"
  );
}

export function createAuthHandler(auth: Auth): Handler {
  if (contextVariesByRequest(auth.options)) return auth.handler;
  const built = auth.$context.then((context) => ({ context, handler: router(context as unknown as RouterContext, auth.options).handler as Handler }));
  return async (request) => {
    const { context, handler } = await built;
    return runWithAdapter(context.adapter, () => handler(request));
  };
}
