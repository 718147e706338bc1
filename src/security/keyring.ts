// Secret rotation for signed cookies. Better Auth 1.7 decrypts with every version of its `secrets`
// keyring, but signs AND verifies cookies with the current secret only, so a rotation would sign
// everyone out. Before a request reaches Better Auth, a cookie signed with a previous secret (an older
// version, or the pre-rotation BETTER_AUTH_SECRET) is re-signed with the current one; Better Auth then
// accepts it and, when the session next slides, sets a cookie signed with the current secret.
// ASVS 6.4.1 / 6.4.2 (key management: keys can be rotated without downtime).
import { cookieSignature, isSignedBy, splitSignedValue } from "../session/signed-cookie.ts";

export interface CookieKeyring {
  /** The request itself, or a copy whose cookies signed by a previous secret carry the current signature. */
  resign(request: Request): Request;
}

/** `current` signs; `previous` are still accepted. Null when there is nothing previous to accept. */
export function createCookieKeyring(current: string, previous: string[]): CookieKeyring | null {
  const older = [...new Set(previous)].filter((secret) => secret && secret !== current);
  if (older.length === 0) return null;

  /** The cookie value re-signed with the current secret, or null when it needs no change. */
  function resignValue(raw: string): string | null {
    let value: string;
    try {
      value = decodeURIComponent(raw);
    } catch {
      return null;
    }
    const signed = splitSignedValue(value);
    if (!signed || isSignedBy(current, signed.value, signed.signature)) return null;
    if (!older.some((secret) => isSignedBy(secret, signed.value, signed.signature))) return null;
    return encodeURIComponent(`${signed.value}.${cookieSignature(current, signed.value)}`);
  }

  return {
    resign(request) {
      const header = request.headers.get("cookie");
      if (!header) return request;
      let changed = false;
      const cookies = header.split(";").map((pair) => {
        const eq = pair.indexOf("=");
        if (eq < 0) return pair;
        const resigned = resignValue(pair.slice(eq + 1).trim());
        if (resigned === null) return pair;
        changed = true;
        return `${pair.slice(0, eq)}=${resigned}`;
      });
      if (!changed) return request;
      const headers = new Headers(request.headers);
      headers.set("cookie", cookies.join(";"));
      return new Request(request, { headers });
    },
  };
}
