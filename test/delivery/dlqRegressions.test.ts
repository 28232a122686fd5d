// Regressions for what a review of the dead letter queue found.
import { describe, expect, it } from 'vitest';
import { isKeelError, sendSupervised } from '../../src/index.js';
import { probe, TestClock } from '../../src/testing/index.js';
import { ok, useNodes, useTempFiles } from '../support.js';

const track = useNodes();
const tmpfile = useTempFiles('keel-dlq-reg-', 'dlq.db');

describe.each([
  ['memory', () => ({ kind: 'memory' as const })],
  ['sqlite', () => ({ kind: 'sqlite' as const, path: tmpfile() })],
])('dead letter queue on the %s store', (_name, store) => {
  it('delivers an entry once when retry() is given its id twice', async () => {
    const node = track({ services: { deadLetters: { store: store() } } });
    const p = probe(node);
    node.registry.register('inbox', p);
    const id = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'once', reason: 'noproc' }));
    const results = ok(await node.deadLetters.retry([id, id]));
    expect(results).toEqual([{ id, ok: true }]);
    await node.idle();
    expect(p.messages).toEqual(['once']);
  });

  it('does not deliver an entry purged while a rate-limited retry waits', async () => {
    const clock = new TestClock();
    const node = track({ clock, services: { deadLetters: { store: store() } } });
    const p = probe(node);
    node.registry.register('inbox', p);
    const a = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'a', reason: 'noproc' }));
    const b = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'b', reason: 'noproc' }));
    const retrying = node.deadLetters.retry([a, b], { ratePerSecond: 1 });
    await node.settle();
    expect(ok(await node.deadLetters.purge({}))).toBe(1); // b is still there; a was delivered
    await clock.advance(1000);
    expect(ok(await retrying)).toEqual([
      { id: a, ok: true },
      { id: b, ok: false, reason: 'not_found' },
    ]);
    expect(p.messages).toEqual(['a']);
  });

  it('parks an entry it cannot even try (an empty message id) instead of crashing its process', async () => {
    const clock = new TestClock();
    const node = track({ clock, random: () => 1, services: { deadLetters: { store: store(), backoff: { initialMs: 100, jitter: 'none' } } } });
    const id = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'x', reason: 'noproc', metadata: { id: '' } }));
    const p = probe(node);
    node.registry.register('inbox', p);
    await clock.advance(100);
    await node.idle();
    // the empty id is ignored, so the entry is delivered; the queue's process is still the same one
    expect(p.messages).toEqual(['x']);
    expect(await node.deadLetters.get(id)).toBeUndefined();
    expect(node.registry.whereis('keel.dead_letter_queue')).toBeDefined();
  });

  it("dead-letters a send still waiting in its backoff when the node shuts down (onError: 'dead_letter')", async () => {
    const kind = store();
    const node = track({ clock: new TestClock(), services: { deadLetters: { store: kind } } });
    const pending = sendSupervised(node, 'nobody', { order: 7 }, { retries: 3, onError: 'dead_letter' });
    await node.settle();
    await node.shutdown();
    const outcome = await pending;
    expect(outcome).toMatchObject({ ok: false, reason: 'noproc' });
    expect(outcome.ok ? undefined : typeof outcome.deadLetterId).toBe('string');
    if (kind.kind === 'sqlite') {
      const next = track({ services: { deadLetters: { store: kind } } });
      const { entries } = ok(await next.deadLetters.list());
      expect(entries.map((e) => e.message)).toEqual([{ order: 7 }]);
    }
  });

  it('refuses a Proxy with ERR_NOT_SERIALIZABLE, and only that record when others are added in the same turn', async () => {
    const node = track({ services: { deadLetters: { store: store() } } });
    const good = node.deadLetters.add({ recipient: 'x', message: { fine: true }, reason: 'noproc' });
    const bad = node.deadLetters.add({ recipient: 'x', message: new Proxy({}, {}), reason: 'noproc' }).catch((e: unknown) => e);
    expect(typeof ok(await good)).toBe('string');
    expect(isKeelError(await bad, 'ERR_NOT_SERIALIZABLE')).toBe(true);
    expect(ok(await node.deadLetters.stats())).toMatchObject({ pending: 1, refused: 1 });
  });
});

describe('broadcastSupervised all_or_nothing', () => {
  it('delivers nothing when its signal is already aborted', async () => {
    const { broadcastSupervised } = await import('../../src/index.js');
    const node = track();
    const a = probe(node);
    const controller = new AbortController();
    controller.abort('stop');
    const r = await broadcastSupervised(node, [a], 'x', { strategy: 'all_or_nothing', signal: controller.signal });
    expect(r).toMatchObject({ ok: false, reason: 'not_all_deliverable', delivered: 0 });
    expect(r.results[0]!.outcome).toMatchObject({ ok: false, reason: 'aborted' });
    await node.idle();
    expect(a.messages).toEqual([]);
  });
});
