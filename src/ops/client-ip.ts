// Who is calling: the socket's address, or with TRUST_PROXY the first hop of X-Forwarded-For.
// A client-sent forwarding header is never trusted by default (ASVS 4.0 V1.4 / OWASP "IP spoofing
// via headers"): anyone can send one, and it would let a caller pick its own rate-limit bucket.
import { isIP } from "node:net";

/**
 * The app resolves the client IP and hands it to Better Auth in this header, overwriting whatever a
 * client sent under the same name.
 */
export const CLIENT_IP_HEADER = "x-auth-server-client-ip";

export interface SocketInfo {
  requestIP(request: Request): { address: string } | null;
}

export function clientIp(request: Request, server: SocketInfo | null | undefined, trustProxy: boolean): string | null {
  if (trustProxy) {
    const forwarded = request.headers.get("x-forwarded-for");
    const first = forwarded?.split(",")[0]?.trim();
    if (first && isIP(first)) return first;
  }
  const address = server?.requestIP(request)?.address;
  return address && isIP(address) ? address : null;
}
