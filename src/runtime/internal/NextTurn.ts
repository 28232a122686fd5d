import type { NextTurnWatcher } from './Proc.js';

/**
 * @internal The tasks deferred to the next turn of the event loop, run with one `setImmediate` per
 * turn. Deadlines of operations that usually finish within the turn (a call, a handled send) are
 * armed there only if still needed; a task that finished meanwhile is taken off in O(1) (the list is
 * intrusive), so it becomes garbage while still young.
 */
export class NextTurn {
  readonly #onError: (error: unknown) => void;
  #head: NextTurnWatcher | undefined = undefined;
  #tail: NextTurnWatcher | undefined = undefined;
  #scheduled = false;

  constructor(onError: (error: unknown) => void) {
    this.#onError = onError;
  }

  /** Calls `task.nextTurn()` at the next turn of the event loop (once, however often deferred). */
  defer(task: NextTurnWatcher): void {
    if (task.turnQueued) return;
    task.turnQueued = true;
    task.turnNext = undefined;
    task.turnPrev = this.#tail;
    if (this.#tail === undefined) this.#head = task;
    else this.#tail.turnNext = task;
    this.#tail = task;
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#run);
    }
  }

  /** Takes a task off the list (it finished within this turn). */
  cancel(task: NextTurnWatcher): void {
    if (!task.turnQueued) return;
    task.turnQueued = false;
    const { turnPrev: prev, turnNext: next } = task;
    if (prev === undefined) this.#head = next;
    else prev.turnNext = next;
    if (next === undefined) this.#tail = prev;
    else next.turnPrev = prev;
    task.turnPrev = task.turnNext = undefined;
  }

  #run = (): void => {
    this.#scheduled = false;
    let t = this.#head;
    this.#head = this.#tail = undefined;
    while (t !== undefined) {
      const next = t.turnNext;
      t.turnQueued = false;
      t.turnPrev = t.turnNext = undefined;
      try {
        t.nextTurn();
      } catch (e) {
        this.#onError(e);
      }
      t = next;
    }
  };
}
