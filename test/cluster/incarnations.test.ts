import { describe, expect, it } from 'vitest';
import { Incarnations, REMEMBERED } from '../../src/cluster/internal/Incarnations.js';

describe('Incarnations', () => {
  it('remembers the last REMEMBERED incarnations gone for good, oldest forgotten first', () => {
    const gone = new Incarnations();
    for (let i = 0; i <= REMEMBERED; i++) gone.dead(`n${i}`, 1);
    expect(gone.isDead('n0', 1)).toBe(false);
    expect(gone.isDead('n1', 1)).toBe(true);
    expect(gone.isDead(`n${REMEMBERED}`, 1)).toBe(true);
    expect(gone.isDead('n1', 2)).toBe(false); // another incarnation of the name is not gone
  });

  it('a peer downed for silence is remembered by name; past the bound the oldest becomes gone for good', () => {
    const gone = new Incarnations();
    gone.silence('a', 3);
    expect(gone.silenced('a')).toBe(3);
    gone.silence('a', 4); // a later incarnation downed for silence replaces it
    expect(gone.silenced('a')).toBe(4);
    gone.unsilence('a');
    expect(gone.silenced('a')).toBeUndefined();
    for (let i = 0; i <= REMEMBERED; i++) gone.silence(`s${i}`, 9);
    expect(gone.silenced('s0')).toBeUndefined();
    expect(gone.isDead('s0', 9)).toBe(true);
    expect(gone.silenced('s1')).toBe(9);
    expect(gone.isDead('s1', 9)).toBe(false);
  });
});
