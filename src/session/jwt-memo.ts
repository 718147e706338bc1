// A JWT minted for a session is handed out again for at most TOKEN_REUSE_MS (or a quarter of its
// lifetime, if shorter) while the session and the user row are unchanged (and no change notice for
// either came after it was minted): clients that ask for a token before every API call cost one lookup
// instead of an RSA signature each time. The session is still looked up on every request, so a revoked
// session never gets a cached token.
const TOKEN_REUSE_MS = 60_000;
const TOKEN_CACHE_ENTRIES = 10_000;

export type MintedJwt = { jwt: string; version: string; reuseUntil: number; mintedAt: number };

export interface JwtMemo {
  /** How long a minted JWT is reused (0: never). */
  readonly reuseMs: number;
  get(sessionToken: string): MintedJwt | undefined;
  remember(sessionToken: string, entry: MintedJwt): void;
}

/** A memo of at most TOKEN_CACHE_ENTRIES JWTs, the least recently minted dropped first. `lifetimeMs`: the JWTs' lifetime. */
export function createJwtMemo(lifetimeMs: number): JwtMemo {
  const minted = new Map<string, MintedJwt>();
  return {
    reuseMs: Math.min(TOKEN_REUSE_MS, lifetimeMs / 4),
    get: (sessionToken) => minted.get(sessionToken),
    remember(sessionToken, entry) {
      minted.delete(sessionToken);
      minted.set(sessionToken, entry);
      if (minted.size > TOKEN_CACHE_ENTRIES) minted.delete(minted.keys().next().value!);
    },
  };
}
