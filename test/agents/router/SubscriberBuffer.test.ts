import { describe, expect, it } from 'vitest';
import { SubscriberBuffer } from '../../../src/agents/router/SubscriberBuffer.js';

/** Takes everything out, in order. */
function drain<T>(b: SubscriberBuffer<T>): T[] {
  const out: T[] = [];
  while (b.size > 0) out.push(b.shift());
  return out;
}

describe('SubscriberBuffer', () => {
  it('is a queue: first in, first out, up to its capacity', () => {
    const b = new SubscriberBuffer<number>(3, 'drop_newest');
    const evicted: number[] = [];
    expect([b.offer(1, evicted), b.offer(2, evicted), b.offer(3, evicted)]).toEqual([true, true, true]);
    expect(b.size).toBe(3);
    expect(b.shift()).toBe(1);
    expect(b.offer(4, evicted)).toBe(true);
    expect(drain(b)).toEqual([2, 3, 4]);
    expect(b.size).toBe(0);
    expect(evicted).toEqual([]);
  });

  it.each(['drop_newest', 'reject'] as const)('%s: a full buffer refuses the newcomer and keeps what it holds', (overflow) => {
    const b = new SubscriberBuffer<string>(2, overflow);
    const evicted: string[] = [];
    b.offer('a', evicted);
    b.offer('b', evicted);
    expect(b.offer('c', evicted)).toBe(false);
    expect(evicted).toEqual([]);
    expect(drain(b)).toEqual(['a', 'b']);
  });

  it('drop_oldest: a full buffer evicts its oldest for the newcomer', () => {
    const b = new SubscriberBuffer<string>(2, 'drop_oldest');
    const evicted: string[] = [];
    b.offer('a', evicted);
    b.offer('b', evicted);
    expect(b.offer('c', evicted)).toBe(true);
    expect(evicted).toEqual(['a']);
    expect(b.offer('d', evicted)).toBe(true);
    expect(evicted).toEqual(['a', 'b']);
    expect(drain(b)).toEqual(['c', 'd']);
  });

  it('drop_oldest with a capacity lowered below what it holds evicts as many as it takes, oldest first', () => {
    const b = new SubscriberBuffer<number>(5, 'drop_oldest');
    const evicted: number[] = [];
    for (let i = 1; i <= 5; i++) b.offer(i, evicted);
    b.capacity = 2;
    expect(b.offer(6, evicted)).toBe(true);
    expect(evicted).toEqual([1, 2, 3, 4]);
    expect(drain(b)).toEqual([5, 6]);
  });

  it('a policy changed later applies to the next offer', () => {
    const b = new SubscriberBuffer<number>(1, 'drop_newest');
    const evicted: number[] = [];
    b.offer(1, evicted);
    expect(b.offer(2, evicted)).toBe(false);
    b.overflow = 'drop_oldest';
    expect(b.offer(3, evicted)).toBe(true);
    expect(evicted).toEqual([1]);
    expect(drain(b)).toEqual([3]);
  });

  it.each([
    ['drop_newest', [4, 5], [1, 2, 3]],
    ['reject', [4, 5], [1, 2, 3]],
    ['drop_oldest', [1, 2], [3, 4, 5]],
  ] as const)("%s: excess() takes out what a lowered capacity leaves above it by the policy's rule, in buffer order", (overflow, taken, kept) => {
    const b = new SubscriberBuffer<number>(5, overflow);
    for (let i = 1; i <= 5; i++) b.offer(i, []);
    expect(b.excess()).toEqual([]);
    b.capacity = 3;
    expect(b.excess()).toEqual(taken);
    expect(b.size).toBe(3);
    expect(b.excess()).toEqual([]);
    b.offer(6, []);
    expect(drain(b)).toEqual(overflow === 'drop_oldest' ? [4, 5, 6] : kept);
  });

  it('excess() of a buffer lowered to a capacity of 1 with a consumed front keeps the one the policy keeps; the storage is reused after', () => {
    const newest = new SubscriberBuffer<number>(4, 'drop_newest');
    const oldest = new SubscriberBuffer<number>(4, 'drop_oldest');
    for (const b of [newest, oldest]) {
      for (let i = 1; i <= 4; i++) b.offer(i, []);
      b.shift();
      b.capacity = 1;
    }
    expect(newest.excess()).toEqual([3, 4]);
    expect(oldest.excess()).toEqual([2, 3]);
    expect(drain(newest)).toEqual([2]);
    expect(drain(oldest)).toEqual([4]);
    newest.offer(9, []);
    expect(drain(newest)).toEqual([9]);
  });

  it('clear drops everything and answers how many; the buffer takes more afterwards', () => {
    const b = new SubscriberBuffer<number>(10, 'drop_newest');
    for (let i = 0; i < 7; i++) b.offer(i, []);
    b.shift();
    expect(b.clear()).toBe(6);
    expect(b.size).toBe(0);
    expect(b.clear()).toBe(0);
    b.offer(42, []);
    expect(drain(b)).toEqual([42]);
  });

  it('keeps the order across the compaction of a long-consumed front', () => {
    const b = new SubscriberBuffer<number>(5000, 'drop_newest');
    for (let i = 0; i < 3000; i++) b.offer(i, []);
    const first: number[] = [];
    for (let i = 0; i < 1600; i++) first.push(b.shift()); // past 1024 and half the storage: compacted
    for (let i = 3000; i < 3100; i++) b.offer(i, []);
    expect(b.size).toBe(1500);
    expect(first).toEqual(Array.from({ length: 1600 }, (_, i) => i));
    expect(drain(b)).toEqual(Array.from({ length: 1500 }, (_, i) => 1600 + i));
  });
});
