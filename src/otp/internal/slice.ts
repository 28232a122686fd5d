/**
 * @internal How many items a behaviour handles in a row, within one of its turns, before it lets the
 * node's other processes run: a state machine's queued events or enter calls, a resumed server's
 * held messages. As the BEAM preempts a process however long it loops.
 */
export const SLICE = 10_000;

/** @internal Resolves once the event loop has run what was waiting (the node's scheduler among it). */
export function nextSlice(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
