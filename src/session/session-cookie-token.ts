// The session token of a request the fast path may answer: its session cookie, HMAC-checked.
import { parseCookies } from "better-call";
import { isSignedBy, splitSignedValue } from "./signed-cookie.ts";

type CookieNames = { sessionToken: { name: string }; sessionData: { name: string }; dontRememberToken: { name: string } };

export type SessionTokenReader = (request: Request, sessionDataAllowed: boolean) => { token: string; jar: Map<string, string> } | null;

/**
 * The session token of a request that the fast path may answer, and its cookies, or null. A
 * session_data cookie is only acceptable where the caller handles it (get-session with the cache on).
 */
export function createSessionTokenReader(cookies: CookieNames, secret: string): SessionTokenReader {
  return (request, sessionDataAllowed) => {
    if (request.headers.has("authorization")) return null; // bearer plugin: Better Auth converts it
    if (request.url.includes("?")) return null; // disableRefresh, disableCookieCache, ...
    const header = request.headers.get("cookie");
    if (!header) return null;
    const jar = parseCookies(header);
    if (jar.has(cookies.dontRememberToken.name)) return null;
    if (!sessionDataAllowed) for (const name of jar.keys()) if (name.startsWith(cookies.sessionData.name)) return null;
    const value = jar.get(cookies.sessionToken.name);
    if (!value) return null;
    const signed = splitSignedValue(value);
    return signed && isSignedBy(secret, signed.value, signed.signature) ? { token: signed.value, jar } : null;
  };
}
