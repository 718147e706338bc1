// The example site's server: bundles the page's script with Bun's bundler (into dist/, not committed)
// and serves the page as static files.
//
//   bun examples/web/serve.ts            # http://localhost:3000, auth server at http://localhost:3001
//   PORT=8080 AUTH_URL=https://auth.example.com bun examples/web/serve.ts
import type { Server } from "bun";
import { join } from "node:path";

const SITE_DIR = import.meta.dir;
export const DEFAULT_OUT_DIR = join(SITE_DIR, "dist");

export interface SiteBuild {
  /** The folder holding app.js. */
  outDir: string;
  authUrl: string;
}

/** Bundles app.ts (and Better Auth's client) for the browser, pointed at the auth server `authUrl`. */
export async function buildSite(authUrl: string, outDir = DEFAULT_OUT_DIR): Promise<SiteBuild> {
  const result = await Bun.build({
    entrypoints: [join(SITE_DIR, "app.ts")],
    outdir: outDir,
    target: "browser",
    sourcemap: "linked",
    define: { AUTH_URL: JSON.stringify(new URL(authUrl).origin) },
  });
  if (!result.success) throw new AggregateError(result.logs, "bundling the example page failed");
  return { outDir, authUrl };
}

/** Serves the page and its bundle; everything else is a 404. */
export function serveSite(build: SiteBuild, { port = 3000, hostname = "127.0.0.1" } = {}): Server<undefined> {
  const files: Record<string, string> = {
    "/": join(SITE_DIR, "index.html"),
    "/index.html": join(SITE_DIR, "index.html"),
    "/style.css": join(SITE_DIR, "style.css"),
    "/app.js": join(build.outDir, "app.js"),
    "/app.js.map": join(build.outDir, "app.js.map"),
  };
  return Bun.serve({
    port,
    hostname,
    fetch(request) {
      const file = files[new URL(request.url).pathname];
      if (!file || request.method !== "GET") return new Response("Not found\n", { status: 404 });
      return new Response(Bun.file(file), { headers: { "cache-control": "no-store" } });
    },
  });
}

if (import.meta.main) {
  const port = Number(process.env.PORT ?? 3000);
  const authUrl = process.env.AUTH_URL ?? "http://localhost:3001";
  const server = serveSite(await buildSite(authUrl), { port, hostname: process.env.HOST ?? "127.0.0.1" });
  console.log(`example site on http://localhost:${server.port} (auth server: ${authUrl})`);
  console.log(`the auth server must list http://localhost:${server.port} in CORS_ORIGINS`);
}
