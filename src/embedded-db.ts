// Zero set-up development database: PGlite (Postgres compiled to WebAssembly) kept under the data
// folder and served over the Postgres wire protocol, so the server and a Python service on the same
// machine connect to it with an ordinary postgres:// URL.
import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

// PGlite is one backend shared by every socket connection; the socket server interleaves the
// extended-protocol messages of concurrent connections (electric-sql/pglite#1046), so the server's own
// pool uses a single connection on it, and the socket accepts a few more for tools and the Python side.
export const EMBEDDED_POOL_MAX = 1;
const EMBEDDED_MAX_CONNECTIONS = 8;

export async function startEmbeddedDatabase(dataDir: string, port: number): Promise<EmbeddedDatabase> {
  const dir = resolve(dataDir, "pglite");
  mkdirSync(resolve(dataDir), { recursive: true });
  const db = await PGlite.create(dir);
  const server = new PGLiteSocketServer({ db, port, host: "127.0.0.1", maxConnections: EMBEDDED_MAX_CONNECTIONS });
  try {
    await server.start();
  } catch (error) {
    await db.close();
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`embedded database could not listen on 127.0.0.1:${port} (${reason}); set EMBEDDED_DB_PORT to a free port, or DATABASE_URL`);
  }
  const address = server.getServerConn(); // "127.0.0.1:PORT", with the real port when 0 was asked
  return {
    url: `postgres://postgres@${address}/postgres`,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}

