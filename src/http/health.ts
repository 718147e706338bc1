// Whether the database answers (one shared probe, a success reused briefly) and the /health answer built on it.
import type { DatabaseProbe, ProbeResult } from "../db/pool.ts";
import { JSON_CONTENT_TYPE } from "../errors.ts";
import { securityHeadersFor } from "./security-headers.ts";

// A successful database probe is reused this long, so a load balancer polling /health (or a load
// test) costs one query a second, not one per request. Failures are never reused.
export const HEALTH_PROBE_REUSE_MS = 1000;

/** The last probe's outcome, shared by /health and the database gate (src/http/database-gate.ts). */
export class DatabaseHealth {
  /** When a probe last passed (0: the last one failed). */
  lastHealthy = 0;
  /**
   * Set while the last probe failed: requests then answer 503 after one probe (shared by all of them)
   * instead of queueing behind a pool that is reconnecting.
   */
  down = false;
  private probe: Promise<ProbeResult> | null = null;
  private probeStartedAt = 0;

  constructor(private readonly databaseProbe: DatabaseProbe) {}

  /** Whether a passed probe is recent enough to stand for one now. */
  isFresh(now: number): boolean {
    return now - this.lastHealthy < HEALTH_PROBE_REUSE_MS;
  }

  /**
   * `fresh`: after a failed query, a recent success proves nothing. `startedAfter`: nor does a probe
   * begun before then (one running when a query failed may have passed just before the connection went).
   */
  async check(fresh = false, startedAfter = 0): Promise<ProbeResult> {
    if (!fresh && this.isFresh(Date.now())) return { ok: true } as const;
    while (this.probe && this.probeStartedAt < startedAfter) await this.probe;
    this.probe ??= ((this.probeStartedAt = performance.now()), this.databaseProbe.check(1000).finally(() => (this.probe = null)));
    const result = await this.probe;
    this.lastHealthy = result.ok ? Date.now() : 0; // a failure also ends the reuse of an earlier success
    this.down = !result.ok;
    return result;
  }
}

/** The GET /health handler: synchronous while the last probe is fresh (no promise, no JSON.stringify of an object). */
export function createHealthRoute(database: DatabaseHealth, version: string): () => Response | Promise<Response> {
  const JSON_TYPE = { "content-type": JSON_CONTENT_TYPE, ...securityHeadersFor("/health") };
  const healthBody = (status: string, now: number) =>
    `{"status":"${status}","service":"auth-server","version":${JSON.stringify(version)},"timestamp":"${new Date(now).toISOString()}"`;
  // The healthy body changes only with the clock's millisecond; under a load balancer's (or a load
  // test's) polling most answers reuse the string built for the same millisecond.
  let okAt = 0;
  let okBody = "";
  const healthyResponse = (now: number) => {
    if (now !== okAt) {
      okAt = now;
      okBody = `${healthBody("ok", now)}}`;
    }
    return new Response(okBody, { headers: JSON_TYPE });
  };
  return () => {
    const now = Date.now();
    if (database.isFresh(now)) return healthyResponse(now);
    return database.check().then((result) =>
      result.ok
        ? healthyResponse(Date.now())
        : new Response(`${healthBody("degraded", Date.now())},"reason":${JSON.stringify(`database: ${result.reason}`)}}`, { status: 503, headers: JSON_TYPE }),
    );
  };
}
