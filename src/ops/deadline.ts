// One way to bound a wait: the work's own answer, or a rejection once the time is up. The work itself
// runs on; `onTimeout` may stop it (abort a socket, say).

/** `work`'s result, or a rejection with `timedOut()` when `timeoutMs` passes first. */
export function withDeadline<T>(work: Promise<T>, timeoutMs: number, timedOut: () => Error, onTimeout?: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(timedOut());
      onTimeout?.();
    }, timeoutMs);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
