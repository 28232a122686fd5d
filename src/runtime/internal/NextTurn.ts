import type { NextTurnWatcher } from './Proc.js';

/**
 * @internal The tasks deferred to the next turn of the event loop, run with one `setImmediate` per
 * turn. Deadlines of operations that usually finish within the turn (a call, a handled send) are
 * armed there only if still needed; a task that finished meanwhile is taken off in O(1) (the list is
 * intrusive), so it becomes garbage while still young.
 */
export class NextTurn {
  private readonly onError: (error: unknown) => void;
  private head: NextTurnWatcher | undefined = undefined;
  private tail: NextTurnWatcher | undefined = undefined;
  /**
   * The one task of a turn that has one (the common case: a call made and answered at a time), kept
   * out of the list: a young task written into this long-lived object costs the engine a
   * remembered-set entry per store, and the list costs two (its head and its tail).
   */
  private single: NextTurnWatcher | undefined = undefined;
  private scheduled = false;
  /** While a turn runs: its last task (tasks queued after it wait for the next turn). */
  private batchEnd: NextTurnWatcher | undefined = undefined;

  constructor(onError: (error: unknown) => void) {
    this.onError = onError;
  }

  /** Calls `task.nextTurn()` at the next turn of the event loop (once, however often deferred). */
  defer(task: NextTurnWatcher): void {
    if (task.turnQueued) return;
    task.turnQueued = true;
    if (this.head === undefined && this.single === undefined) {
      this.single = task;
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.run);
      }
      return;
    }
    this.spill(); // a second task: the first goes into the list ahead of it, keeping their order
    task.turnNext = undefined;
    task.turnPrev = this.tail;
    if (this.tail === undefined) this.head = task;
    else this.tail.turnNext = task;
    this.tail = task;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }

  /** Takes a task off the list (it finished within this turn, or an earlier task of the turn cancels it). */
  cancel(task: NextTurnWatcher): void {
    if (!task.turnQueued) return;
    task.turnQueued = false;
    if (task === this.single) {
      this.single = undefined;
      return;
    }
    const { turnPrev: prev, turnNext: next } = task;
    if (task === this.batchEnd) this.batchEnd = prev; // the running turn now ends before it
    if (prev === undefined) this.head = next;
    else prev.turnNext = next;
    if (next === undefined) this.tail = prev;
    else next.turnPrev = prev;
    task.turnPrev = task.turnNext = undefined;
  }

  /** Moves the single task, if any, to the tail of the list. */
  private spill(): void {
    const t = this.single;
    if (t === undefined) return;
    this.single = undefined;
    t.turnNext = undefined;
    t.turnPrev = this.tail;
    if (this.tail === undefined) this.head = t;
    else this.tail.turnNext = t;
    this.tail = t;
  }

  /**
   * Runs the tasks queued when the turn began, taking each off the head of the one list as it runs:
   * a task may cancel a later one of the same turn (it then does not run), and a task deferred while
   * the turn runs waits for the next turn (its `defer` scheduled it).
   */
  private run = (): void => {
    this.scheduled = false;
    this.spill();
    this.batchEnd = this.tail;
    while (this.batchEnd !== undefined) {
      const t = this.head!;
      if (t === this.batchEnd) this.batchEnd = undefined;
      this.head = t.turnNext;
      if (this.head === undefined) this.tail = undefined;
      else this.head.turnPrev = undefined;
      t.turnQueued = false;
      t.turnPrev = t.turnNext = undefined;
      try {
        t.nextTurn();
      } catch (e) {
        this.onError(e);
      }
    }
  };
}
