// A TCP proxy in front of the test Postgres, to take the database away from a server and give it back.
import { connect, createServer, type Server, type Socket } from "node:net";
import { ADMIN_URL, onCleanup } from "./helpers.ts";

/**
 * A proxy to the test Postgres that can be cut (every connection dropped, the port closed) and started
 * again on the same port. With `silentFirst` the first connection is accepted and never answered (a
 * half-open network path). Stopped after the test file.
 */
export function postgresProxy({ silentFirst = false } = {}) {
  const upstream = new URL(ADMIN_URL);
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  let accepted = 0;
  /** Listens (on the port of the first start, after a stop); resolves with the port. */
  const start = () =>
    new Promise<number>((resolve, reject) => {
      server = createServer((client) => {
        const first = accepted++ === 0;
        sockets.add(client);
        if (silentFirst && first) return;
        const backend = connect(Number(upstream.port || 5432), upstream.hostname);
        sockets.add(backend);
        for (const [socket, other] of [[client, backend], [backend, client]] as const) {
          socket.on("close", () => {
            sockets.delete(socket);
            other.destroy();
          });
          socket.on("error", () => other.destroy());
        }
        client.pipe(backend).pipe(client);
      });
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        port = (server!.address() as { port: number }).port;
        resolve(port);
      });
    });
  /** Drops every connection and closes the port. */
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      if (!server) return resolve();
      server.close(() => resolve());
      server = undefined;
    });
  onCleanup(stop);
  return { start, stop, accepted: () => accepted };
}
