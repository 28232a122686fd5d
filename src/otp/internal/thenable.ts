/**
 * @internal True for a value with a `then` method: a Promise, or a thenable of another library. A
 * value whose `then` cannot be read (a revoked proxy, a getter that throws) is no thenable: a
 * callback's result that cannot be inspected is taken as it is (a state), never a crash.
 */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  if (typeof value !== 'object' || value === null) return false;
  try {
    return typeof (value as { then?: unknown }).then === 'function';
  } catch {
    return false;
  }
}

/**
 * @internal A callback's thenable result as a Promise, to be awaited: a Promise as it is; another
 * thenable adopted, as `await` does (its `then` may return nothing, or call back twice: the
 * behaviour must wait for it all the same, and take its first outcome only). Never throws: a
 * Promise whose `constructor` cannot be read (a getter that throws), which `Promise.resolve` throws
 * on at once, is a promise rejected with that error, as `await` of it is.
 */
export function adopt<T>(value: PromiseLike<T>): Promise<T> {
  try {
    return Promise.resolve(value);
  } catch (e) {
    return Promise.reject(e as Error);
  }
}
