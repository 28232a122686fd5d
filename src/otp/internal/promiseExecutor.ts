/**
 * @internal One promise executor for the paths that make a promise per operation (a GenServer call,
 * a supervised send) and hand its resolvers to an object of their own: `new Promise(captureResolvers)`
 * allocates no closure, and {@link capturedResolvers} then holds the resolvers of the promise just
 * made. Read them at once, in the same synchronous step: the next promise made with this executor
 * replaces them. The holder is scratch, not state: it means something only between
 * `new Promise(captureResolvers)` and the statement after it.
 */
export const capturedResolvers: { resolve: (value: any) => void; reject: (error: unknown) => void } = { resolve: noop, reject: noop };

/** @internal The executor: stores its promise's resolvers in {@link capturedResolvers}. */
export function captureResolvers(resolve: (value: any) => void, reject: (error: unknown) => void): void {
  capturedResolvers.resolve = resolve;
  capturedResolvers.reject = reject;
}

function noop(): void {}
