// A browser request from an origin that CORS_ORIGINS does not list fails in the browser (no
// Access-Control-Allow-Origin, or Better Auth's 403 INVALID_ORIGIN) and the page sees only a network
// error: the server's log names the origin and the setting, once per origin.
import type { Config } from "../config.ts";
import type { Logger } from "../ops/log.ts";

/** Distinct refused origins remembered; past this, new ones are no longer logged (a bound against junk headers). */
const MAX_LOGGED_ORIGINS = 100;

export function createRefusedOriginLog(config: Pick<Config, "corsOrigins" | "baseUrl">, logger: Logger) {
  const allowed = new Set([...config.corsOrigins, new URL(config.baseUrl).origin]);
  const logged = new Set<string>();
  return (request: Request): void => {
    const origin = request.headers.get("origin");
    if (origin === null || allowed.has(origin) || logged.has(origin) || logged.size >= MAX_LOGGED_ORIGINS) return;
    logged.add(origin);
    logger.warn(
      `a request came from the origin ${JSON.stringify(origin.slice(0, 200))}, which CORS_ORIGINS does not list: browsers ` +
        `refuse the answers there (and cookie requests get 403 INVALID_ORIGIN). If it is your site, add it to ` +
        `CORS_ORIGINS (now: ${config.corsOrigins.join(",") || "empty"}). Logged once per origin.`,
    );
  };
}
