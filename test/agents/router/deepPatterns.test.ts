import { describe, expect, it } from 'vitest';
import { PatternTrie } from '../../../src/agents/internal/PatternTrie.js';
import { useNodes } from '../../support.js';
import { expectBalanced, routerEvents, signal, sink, startRouter } from './routerKit.js';

const track = useNodes();

// A pattern and a type of 50,000 segments: matching walks the trie without recursion, so a hostile
// subscription cannot overflow the stack and crash the router at every publish of its type.
describe('a very deep pattern', () => {
  it('the trie matches a type of 50,000 segments along a path of 50,000 nodes, in the same order as a shallow one', () => {
    const trie = new PatternTrie<string>();
    const deep = Array.from({ length: 50_000 }, () => 'a').join('.');
    trie.add(deep, 'exact', 'exact');
    trie.add(Array.from({ length: 49_999 }, () => 'a').join('.') + '.*', 'star', 'star');
    trie.add('a.**', 'rest', 'rest');
    const seen: string[] = [];
    trie.match(deep.split('.'), (v) => seen.push(v));
    expect(seen).toEqual(['rest', 'exact', 'star']);
  });

  it('a router with a 50,000-segment subscription delivers a signal of that type and keeps running', async () => {
    const node = track();
    const router = await startRouter(node);
    const events = routerEvents(node);
    const s = sink(node);
    const type = Array.from({ length: 50_000 }, () => 'a').join('.');
    expect(await router.subscribe(type, s.pid)).toBe('ok');
    const pid = router.pid;
    router.publish(signal(type, 1));
    await s.until(1);
    await node.idle();
    expect(node.isAlive(pid)).toBe(true);
    expect(events.of('resumed')).toEqual([]);
    const stats = await router.stats();
    expect([stats.published, stats.matched, stats.delivered, stats.restarts]).toEqual([1, 1, 1, 0]);
    expectBalanced(stats);
  });
});
