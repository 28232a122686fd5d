// The node-owned table a component keeps under its name: found again by a successor, released on
// a normal stop only, separate per node and per name.
import { describe, expect, it } from 'vitest';
import { componentState, componentStates, endsForGood, peekComponentState, releaseComponentState, releaseIfInitFails } from '../../../src/agents/internal/componentState.js';
import { captureEvents, probe } from '../../../src/testing/index.js';
import { exitAndWait, useNodes } from '../../support.js';

const track = useNodes();

describe('componentState', () => {
  it('answers the table a predecessor left under the name (resumed), a new one otherwise; per node and per name', () => {
    const a = track();
    const b = track();
    let made = 0;
    const create = (): { n: number } => ({ n: ++made });
    const first = componentState(a, 'x', 'k', create);
    expect(first).toEqual({ state: { n: 1 }, resumed: false });
    first.state.n = 42;
    expect(componentState(a, 'x', 'k', create)).toEqual({ state: { n: 42 }, resumed: true });
    expect(componentState(a, 'x', 'k', create).state).toBe(first.state);
    expect(componentState(a, 'y', 'k', create)).toEqual({ state: { n: 2 }, resumed: false });
    expect(componentState(b, 'x', 'k', create)).toEqual({ state: { n: 3 }, resumed: false });
    expect(componentStates(a)).toEqual(['x', 'y']);
    releaseComponentState(a, 'x');
    expect(componentStates(a)).toEqual(['y']);
    expect(componentState(a, 'x', 'k', create)).toEqual({ state: { n: 4 }, resumed: false });
    releaseComponentState(a, 'never'); // nothing to release: no error
    expect(made).toBe(4);
  });

  it('never resumes a table another kind of component left under the name: it is discarded (its discard run), reported, and a new one made', () => {
    const a = track();
    const discarded: unknown[] = [];
    const events = captureEvents(a, ['keel.agent_state.discarded']);
    const router = componentState(a, 'x', 'router', () => ({ subs: 1 }), (s) => discarded.push(s));
    expect(componentState(a, 'x', 'scheduler', () => ({ schedules: 2 }))).toEqual({ state: { schedules: 2 }, resumed: false });
    expect(discarded).toEqual([router.state]);
    expect(events.events).toMatchObject([{ metadata: { name: 'x', kind: 'router', by: 'scheduler' } }]);
    expect(peekComponentState(a, 'x', 'router')).toBeUndefined();
    expect(peekComponentState(a, 'x', 'scheduler')).toEqual({ schedules: 2 });
    expect(componentState(a, 'x', 'scheduler', () => ({ schedules: 3 }))).toEqual({ state: { schedules: 2 }, resumed: true });
    // a discard that throws is reported with the event; the new table is made all the same
    componentState(a, 'y', 'router', () => ({}), () => {
      throw new Error('boom');
    });
    expect(componentState(a, 'y', 'other', () => ({ ok: true }))).toEqual({ state: { ok: true }, resumed: false });
    expect(events.events[1]?.metadata).toMatchObject({ name: 'y', kind: 'router', by: 'other', error: { message: 'boom' } });
  });

  it('releases a table made by a start whose process exits before its init is done; keeps a resumed one, and one whose init was done', async () => {
    const node = track();
    const made = probe(node);
    const table = componentState(node, 'made', 'k', () => ({}));
    releaseIfInitFails(made.ctx, 'made', table.state, table.resumed);
    await exitAndWait(node, made);
    expect(componentStates(node)).not.toContain('made');
    const done = probe(node);
    const kept = componentState(node, 'done', 'k', () => ({}));
    releaseIfInitFails(done.ctx, 'done', kept.state, kept.resumed)();
    await exitAndWait(node, done);
    const again = probe(node);
    const resumed = componentState(node, 'done', 'k', () => ({}));
    expect(resumed).toEqual({ state: kept.state, resumed: true });
    releaseIfInitFails(again.ctx, 'done', resumed.state, resumed.resumed);
    await exitAndWait(node, again);
    expect(componentStates(node)).toEqual(['done']);
  });

  it('ends for good on a normal exit only', () => {
    expect(endsForGood('normal')).toBe(true);
    for (const reason of ['shutdown', 'kill', 'killed', 'noproc', new Error('crash'), { shutdown: 'x' }] as const) expect(endsForGood(reason as never)).toBe(false);
  });
});
