/**
 * @internal `promise`'s settling within `ms` of real time (true), or false once `ms` have passed: an
 * unref'd timer (it holds no process open), cleared when the promise settles. For a node's shutdown
 * hooks that talk to NATS: a server that is gone answers nothing until the client's own request
 * timeouts (5 s), which would spend the whole shutdown's time on one layer.
 */
export async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise.then(() => true, () => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms).unref()))]);
  } finally {
    clearTimeout(timer);
  }
}
