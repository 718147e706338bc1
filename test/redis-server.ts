// A redis-server of a test's own on a loopback port, without persistence: one that can be killed,
// paused and started again on the same port. Killed after the test file.
import { RedisClient } from "bun";
import { freePort, onCleanup } from "./helpers.ts";

export function redisServer(port = freePort()) {
  let child: ReturnType<typeof Bun.spawn> | undefined;
  const url = `redis://127.0.0.1:${port}`;
  /** Starts it and waits until it answers PING. */
  const start = async () => {
    child = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdout: "ignore", stderr: "ignore" });
    const client = new RedisClient(url);
    try {
      for (let i = 0; i < 50; i++) {
        if (await client.send("PING", []).then(() => true, () => false)) return;
        await Bun.sleep(100);
      }
      throw new Error(`redis-server on port ${port} did not answer`);
    } finally {
      client.close();
    }
  };
  /** Kills it (SIGKILL: gone at once, connections reset, its data lost). */
  const kill = async () => {
    const running = child;
    child = undefined;
    if (!running) return;
    running.kill("SIGCONT");
    running.kill("SIGKILL");
    await running.exited;
  };
  onCleanup(kill);
  return { url, port, start, kill, process: () => child };
}
