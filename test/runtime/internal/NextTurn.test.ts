// The next-turn list (src/runtime/internal/NextTurn.ts), driven directly: tasks recording when they
// run, a recording onError, and the next turn of the event loop awaited as the fact it is.
import { describe, expect, it } from 'vitest';
import { NextTurn } from '../../../src/runtime/internal/NextTurn.js';
import { NextTurnWatcher } from '../../../src/runtime/internal/Proc.js';
import { nextTurn } from './fakes.js';

/** A task that logs its name when it runs, then does `then` (defer another, throw, ...). */
class Task extends NextTurnWatcher {
  readonly name: string;
  readonly ran: string[];
  then: (() => void) | undefined;
  constructor(name: string, ran: string[], then?: () => void) {
    super();
    this.name = name;
    this.ran = ran;
    this.then = then;
  }
  nextTurn(): void {
    this.ran.push(this.name);
    this.then?.();
  }
  onExit(): void {}
}

function setup(): { list: NextTurn; ran: string[]; errors: unknown[]; tasks(...names: string[]): Task[] } {
  const ran: string[] = [];
  const errors: unknown[] = [];
  const list = new NextTurn((e) => errors.push(e));
  return { list, ran, errors, tasks: (...names) => names.map((n) => new Task(n, ran)) };
}

/** The links of a task, for checking that a task off the list holds no reference into it. */
function links(t: NextTurnWatcher): [boolean, NextTurnWatcher | undefined, NextTurnWatcher | undefined] {
  return [t.turnQueued, t.turnPrev, t.turnNext];
}

describe('NextTurn', () => {
  it('runs the deferred tasks at the next turn, in the order they were deferred, and none before', async () => {
    const { list, ran, tasks } = setup();
    const [a, b, c] = tasks('a', 'b', 'c');
    list.defer(a!);
    list.defer(b!);
    list.defer(c!);
    await Promise.resolve(); // a microtask is not the next turn
    expect(ran).toEqual([]);
    await nextTurn();
    expect(ran).toEqual(['a', 'b', 'c']);
    for (const t of [a!, b!, c!]) expect(links(t)).toEqual([false, undefined, undefined]);
  });

  it('runs a task deferred twice once, in the place of its first deferral', async () => {
    const { list, ran, tasks } = setup();
    const [a, b] = tasks('a', 'b');
    list.defer(a!);
    list.defer(b!);
    list.defer(a!);
    await nextTurn();
    expect(ran).toEqual(['a', 'b']);
    // off the list after it ran: deferring it again runs it again, at the turn after
    list.defer(a!);
    await nextTurn();
    expect(ran).toEqual(['a', 'b', 'a']);
  });

  it('runs nothing and schedules nothing when nothing was deferred', async () => {
    const { ran, errors } = setup();
    await nextTurn();
    expect(ran).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('runs a lone task (kept out of the list) once, and a lone task cancelled not at all', async () => {
    const { list, ran, tasks } = setup();
    const [a, b] = tasks('a', 'b');
    list.defer(a!);
    list.cancel(a!);
    expect(links(a!)).toEqual([false, undefined, undefined]);
    await nextTurn();
    expect(ran).toEqual([]);
    list.defer(b!);
    await nextTurn();
    expect(ran).toEqual(['b']);
    // a lone task deferred by the last task of a turn waits for the next turn
    const [c, d] = tasks('c', 'd');
    c!.then = () => list.defer(d!);
    list.defer(c!);
    await nextTurn();
    expect(ran).toEqual(['b', 'c']);
    await nextTurn();
    expect(ran).toEqual(['b', 'c', 'd']);
  });

  describe('cancel', () => {
    it.each([
      ['the head', 0, ['b', 'c', 'd', 'e']],
      ['the middle', 2, ['a', 'b', 'd', 'e']],
      ['the tail', 4, ['a', 'b', 'c', 'd']],
    ] as const)('takes %s off the list; the others run in order', async (_label, index, expected) => {
      const { list, ran, tasks } = setup();
      const all = tasks('a', 'b', 'c', 'd', 'e');
      for (const t of all) list.defer(t);
      list.cancel(all[index]!);
      expect(links(all[index]!)).toEqual([false, undefined, undefined]);
      await nextTurn();
      expect(ran).toEqual(expected);
    });

    it('can take every task off, in any order, and the list is empty', async () => {
      const { list, ran, tasks } = setup();
      const all = tasks('a', 'b', 'c', 'd');
      for (const t of all) list.defer(t);
      for (const i of [1, 3, 0, 2]) list.cancel(all[i]!);
      await nextTurn();
      expect(ran).toEqual([]);
    });

    it('still works within the turn after cancels emptied it', async () => {
      const { list, ran, tasks } = setup();
      const all = tasks('a', 'b', 'c', 'd');
      for (const t of all) list.defer(t);
      for (const i of [1, 3, 0, 2]) list.cancel(all[i]!);
      list.defer(all[2]!);
      list.defer(all[0]!);
      await nextTurn();
      expect(ran).toEqual(['c', 'a']);
    });

    it.each([
      ['the tail', 2, ['a', 'b', 'x']],
      ['the head', 0, ['b', 'c', 'x']],
      ['the only task', -1, ['x']],
    ] as const)('appends a task deferred after %s was cancelled, in the same turn', async (_label, index, expected) => {
      const { list, ran, tasks } = setup();
      const [a, b, c, x] = tasks('a', 'b', 'c', 'x');
      if (index === -1) {
        list.defer(a!);
        list.cancel(a!);
      } else {
        for (const t of [a!, b!, c!]) list.defer(t);
        list.cancel([a!, b!, c!][index]!);
      }
      list.defer(x!);
      await nextTurn();
      expect(ran).toEqual(expected);
    });

    it('is a no-op for a task that is not on the list (never deferred, cancelled already, or run)', async () => {
      const { list, ran, tasks } = setup();
      const [a, b, c, stranger] = tasks('a', 'b', 'c', 'stranger');
      list.cancel(stranger!);
      list.defer(a!);
      list.defer(b!);
      list.defer(c!);
      list.cancel(b!);
      list.cancel(b!); // twice: its old neighbours are not relinked a second time
      list.cancel(stranger!);
      await nextTurn();
      expect(ran).toEqual(['a', 'c']);
      list.cancel(a!); // after it ran
      list.defer(b!);
      await nextTurn();
      expect(ran).toEqual(['a', 'c', 'b']);
    });

    it('puts a task cancelled and deferred again at the tail', async () => {
      const { list, ran, tasks } = setup();
      const [a, b, c] = tasks('a', 'b', 'c');
      list.defer(a!);
      list.defer(b!);
      list.defer(c!);
      list.cancel(a!);
      list.defer(a!);
      await nextTurn();
      expect(ran).toEqual(['b', 'c', 'a']);
    });

    it.each([
      ['the head', 0, [0, 1]],
      ['the middle', 500, [499, 500, 501]],
      ['the tail', 999, [998, 999]],
    ] as const)('touches only %s and its neighbours among 1,000 tasks (O(1): no walk of the list)', (_label, index, touchedIndexes) => {
      const { list, tasks } = setup();
      const all = tasks(...Array.from({ length: 1000 }, (_, i) => String(i)));
      for (const t of all) list.defer(t);
      // spy on every read and write of the tasks' links from here on
      const touched = new Set<number>();
      all.forEach((t, i) => {
        let prev = t.turnPrev;
        let next = t.turnNext;
        Object.defineProperty(t, 'turnPrev', {
          get: () => (touched.add(i), prev),
          set: (v: NextTurnWatcher | undefined) => (touched.add(i), (prev = v)),
        });
        Object.defineProperty(t, 'turnNext', {
          get: () => (touched.add(i), next),
          set: (v: NextTurnWatcher | undefined) => (touched.add(i), (next = v)),
        });
      });
      list.cancel(all[index]!);
      expect([...touched].sort((x, y) => x - y)).toEqual(touchedIndexes);
    });
  });

  it('runs a task deferred during the run at the turn after, not in the run that deferred it', async () => {
    const { list, ran, tasks } = setup();
    const [later, again] = tasks('later', 'again');
    const [a, b] = tasks('a', 'b');
    a!.then = () => list.defer(later!);
    // a task may defer itself from its own nextTurn: it is off the list by then
    let once = true;
    b!.then = () => {
      if (once) list.defer(b!);
      once = false;
      list.defer(again!);
    };
    list.defer(a!);
    list.defer(b!);
    await nextTurn();
    expect(ran).toEqual(['a', 'b']);
    await nextTurn();
    expect(ran).toEqual(['a', 'b', 'later', 'b', 'again']);
    await nextTurn();
    expect(ran).toEqual(['a', 'b', 'later', 'b', 'again']);
  });

  it('runs the tasks after one a running task cancels further down (not its next one)', async () => {
    const { list, ran, tasks } = setup();
    const [a, b, c, d] = tasks('a', 'b', 'c', 'd');
    a!.then = () => list.cancel(c!);
    for (const t of [a!, b!, c!, d!]) list.defer(t);
    await nextTurn();
    expect(ran).toEqual(['a', 'b', 'd']);
  });

  // A defect this file found: the run read a task's successor before calling it, so a task that
  // cancelled exactly that successor made the cancelled task run and the run stop there, the tasks
  // after it never running and staying marked queued (deferring them again did nothing, for good).
  it('runs the rest of the list when a running task cancels the task right after it', async () => {
    const { list, ran, tasks } = setup();
    const [a, b, c, d] = tasks('a', 'b', 'c', 'd');
    a!.then = () => list.cancel(b!);
    for (const t of [a!, b!, c!, d!]) list.defer(t);
    await nextTurn();
    expect(ran).toEqual(['a', 'c', 'd']);
    // and every task is off the list: deferring them again runs them at the next turn
    for (const t of [a!, b!, c!, d!]) list.defer(t);
    await nextTurn();
    expect(ran).toEqual(['a', 'c', 'd', 'a', 'c', 'd']);
  });

  it('reports a task that throws through onError, and still runs the others', async () => {
    const { list, ran, errors, tasks } = setup();
    const boom = new Error('boom');
    const odd = { not: 'an Error' };
    const [a, b, c, d] = tasks('a', 'b', 'c', 'd');
    b!.then = () => {
      throw boom;
    };
    d!.then = () => {
      throw odd;
    };
    for (const t of [a!, b!, c!, d!]) list.defer(t);
    await nextTurn();
    expect(ran).toEqual(['a', 'b', 'c', 'd']);
    expect(errors).toEqual([boom, odd]);
    expect(errors[0]).toBe(boom);
    expect(errors[1]).toBe(odd);
    // the thrower is off the list like the others
    for (const t of [a!, b!, c!, d!]) expect(links(t)).toEqual([false, undefined, undefined]);
    list.defer(b!);
    await nextTurn();
    expect(ran).toEqual(['a', 'b', 'c', 'd', 'b']);
    expect(errors).toEqual([boom, odd, boom]);
  });

  it('runs 100,000 tasks deferred in one turn, with one cancelled of every two', async () => {
    const { list, ran, tasks } = setup();
    const all = tasks(...Array.from({ length: 100_000 }, (_, i) => String(i)));
    for (const t of all) list.defer(t);
    all.forEach((t, i) => {
      if (i % 2 === 1) list.cancel(t);
    });
    await nextTurn();
    expect(ran).toHaveLength(50_000);
    expect(ran[0]).toBe('0');
    expect(ran[49_999]).toBe('99998');
    expect(ran.every((n, i) => n === String(i * 2))).toBe(true);
  });
});
