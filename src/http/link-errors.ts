// One shape for a mailed link that cannot be used (used, expired, unknown, or opened without the
// session it needs), whichever Better Auth endpoint or plugin answered: a browser link (one that names
// a trusted callbackURL) goes back to the site with ?error=CODE; an API call gets JSON with the code.
// Better Auth mixes both (magic-link redirects to the auth server's own root on an API call, delete-user's
// callback answers JSON to a browser) and an after-hook cannot fix it: a replaced error keeps its status.
import type { Config } from "../config.ts";
import { ERRORS, relayedErrorResponse, type ErrorCode } from "../errors.ts";

/** The link endpoints under /api/auth, with the query parameters that name where a browser returns. */
const LINK_ENDPOINTS: Array<[RegExp, string[], number]> = [
  [/^\/api\/auth\/verify-email$/, ["callbackURL"], 401],
  [/^\/api\/auth\/magic-link\/verify$/, ["errorCallbackURL", "callbackURL"], 401],
  [/^\/api\/auth\/reset-password\/[^/]+$/, ["callbackURL"], 400],
  [/^\/api\/auth\/delete-user\/callback$/, ["callbackURL"], 404],
];

/** The codes a link endpoint redirects with, whose registry message explains them for a link. */
const LINK_CODES: ErrorCode[] = ["INVALID_TOKEN", "TOKEN_EXPIRED", "USER_NOT_FOUND", "NEW_USER_SIGNUP_DISABLED", "FAILED_TO_GET_USER_INFO"];
const MESSAGES: Record<string, string> = Object.fromEntries(LINK_CODES.map((code) => [code, ERRORS[code].message]));

/** Codes that refuse the return address itself: never redirect there. */
const UNTRUSTED_RETURN = /ORIGIN|CALLBACK|REDIRECT/;

export function normaliseLinkResponse(request: Request, response: Response, config: Pick<Config, "baseUrl" | "corsOrigins">): Response | Promise<Response> {
  const url = new URL(request.url);
  const endpoint = LINK_ENDPOINTS.find(([pattern]) => pattern.test(url.pathname));
  if (!endpoint || request.method !== "GET") return response;
  const [, returnParams, jsonStatus] = endpoint;

  let returnTo: URL | null = null;
  for (const name of returnParams) {
    const value = url.searchParams.get(name);
    if (!value) continue;
    // A return address that is not a URL at all (`http://[`) is as untrusted as a foreign one.
    const target = URL.parse(value, config.baseUrl);
    returnTo = target && (target.origin === config.baseUrl || config.corsOrigins.includes(target.origin)) ? target : null;
    break;
  }

  const redirectWith = (code: string) => {
    const location = new URL(returnTo!);
    location.searchParams.set("error", code);
    const headers = new Headers({ location: location.toString() });
    for (const cookie of response.headers.getSetCookie()) headers.append("set-cookie", cookie);
    return new Response(null, { status: 302, headers });
  };

  const location = response.headers.get("location");
  if (response.status === 302 && location) {
    const error = URL.parse(location, config.baseUrl)?.searchParams.get("error");
    if (!error) return response; // success
    const code = error.toUpperCase();
    if (!returnTo) return relayedErrorResponse(jsonStatus, code, MESSAGES[code] ?? "This link cannot be used.");
    return code === error ? response : redirectWith(code);
  }
  if (response.status >= 400 && response.status < 500 && returnTo && response.headers.get("content-type")?.includes("json")) {
    return response
      .clone()
      .json()
      .then((body: unknown) => {
        const code = (body as { code?: unknown } | null)?.code;
        return typeof code === "string" && !UNTRUSTED_RETURN.test(code) ? redirectWith(code) : response;
      })
      .catch(() => response);
  }
  return response;
}
