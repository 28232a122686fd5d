// The node-owned table a component keeps under its name: found again by a successor, released on
// a normal stop only, separate per node and per name.
import { describe, expect, it } from 'vitest';
import { componentState, componentStates, endsForGood, releaseComponentState } from '../../../src/agents/internal/componentState.js';
import { useNodes } from '../../support.js';

const track = useNodes();

describe('componentState', () => {
  it('answers the table a predecessor left under the name (resumed), a new one otherwise; per node and per name', () => {
    const a = track();
    const b = track();
    let made = 0;
    const create = (): { n: number } => ({ n: ++made });
    const first = componentState(a, 'x', create);
    expect(first).toEqual({ state: { n: 1 }, resumed: false });
    first.state.n = 42;
    expect(componentState(a, 'x', create)).toEqual({ state: { n: 42 }, resumed: true });
    expect(componentState(a, 'x', create).state).toBe(first.state);
    expect(componentState(a, 'y', create)).toEqual({ state: { n: 2 }, resumed: false });
    expect(componentState(b, 'x', create)).toEqual({ state: { n: 3 }, resumed: false });
    expect(componentStates(a)).toEqual(['x', 'y']);
    releaseComponentState(a, 'x');
    expect(componentStates(a)).toEqual(['y']);
    expect(componentState(a, 'x', create)).toEqual({ state: { n: 4 }, resumed: false });
    releaseComponentState(a, 'never'); // nothing to release: no error
    expect(made).toBe(4);
  });

  it('ends for good on a normal exit only', () => {
    expect(endsForGood('normal')).toBe(true);
    for (const reason of ['shutdown', 'kill', 'killed', 'noproc', new Error('crash'), { shutdown: 'x' }] as const) expect(endsForGood(reason as never)).toBe(false);
  });
});
