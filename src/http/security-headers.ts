// Headers on every response. ASVS 14.4.3 (X-Content-Type-Options: nosniff), 14.4.6 (a Referrer-Policy
// that leaks no URL), 8.2.1 (Cache-Control: no-store on responses that carry identities and tokens).

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
};

export const AUTH_CACHE_CONTROL = "no-store";

/** The headers for a response to `path`: auth responses are never stored by a browser or proxy. */
export function securityHeadersFor(path: string): Record<string, string> {
  return path.startsWith("/api/auth/") ? { ...SECURITY_HEADERS, "cache-control": AUTH_CACHE_CONTROL } : { ...SECURITY_HEADERS };
}
