// A TCP proxy in front of the test Postgres, to take the database away from a server and give it back.
import { connect, createServer, type Server, type Socket } from "node:net";
import { ADMIN_URL, onCleanup } from "./helpers.ts";

/**
 * A proxy to the test Postgres that can be cut (every connection dropped, the port closed) and started
 * again on the same port. With `silentFirst` the first connection is accepted and never answered (a
 * half-open network path). `reset` drops every open connection and keeps accepting new ones; `hang`
 * stops forwarding in both directions (open connections and new ones stay silent) until `resume`.
 * Stopped after the test file.
 */
export function postgresProxy({ silentFirst = false } = {}) {
  const upstream = new URL(ADMIN_URL);
  const sockets = new Set<Socket>();
  /** Client and backend of each forwarded connection. */
  const pairs = new Set<readonly [Socket, Socket]>();
  /** Connections accepted while hung, wired to Postgres on `resume`. */
  let held: Socket[] = [];
  let hung = false;
  let server: Server | undefined;
  let port = 0;
  let accepted = 0;
  const forward = (client: Socket) => {
    const backend = connect(Number(upstream.port || 5432), upstream.hostname);
    sockets.add(backend);
    const pair = [client, backend] as const;
    pairs.add(pair);
    for (const [socket, other] of [[client, backend], [backend, client]] as const) {
      socket.on("close", () => {
        sockets.delete(socket);
        pairs.delete(pair);
        other.destroy();
      });
      socket.on("error", () => other.destroy());
    }
    client.pipe(backend).pipe(client);
  };
  /** Listens (on the port of the first start, after a stop); resolves with the port. */
  const start = () =>
    new Promise<number>((resolve, reject) => {
      server = createServer((client) => {
        const first = accepted++ === 0;
        sockets.add(client);
        client.on("close", () => sockets.delete(client));
        client.on("error", () => client.destroy());
        if (silentFirst && first) return;
        if (hung) held.push(client);
        else forward(client);
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
      hung = false;
      held = [];
      for (const socket of sockets) socket.destroy();
      if (!server) return resolve();
      server.close(() => resolve());
      server = undefined;
    });
  /** Drops every open connection (a reset in the middle of whatever it was doing); new ones are served. */
  const reset = () => {
    for (const socket of sockets) socket.destroy();
  };
  const hang = () => {
    hung = true;
    for (const [client, backend] of pairs) {
      client.unpipe(backend);
      backend.unpipe(client);
      client.pause();
      backend.pause();
    }
  };
  const resume = () => {
    hung = false;
    for (const [client, backend] of pairs) {
      client.pipe(backend).pipe(client);
      client.resume();
      backend.resume();
    }
    for (const client of held.splice(0)) if (!client.destroyed) forward(client);
  };
  onCleanup(stop);
  return { start, stop, reset, hang, resume, accepted: () => accepted };
}
