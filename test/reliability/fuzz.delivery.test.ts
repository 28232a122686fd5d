// Fuzzed bad input to the delivery layer: sendSupervised (from, targets, messages, every option) and
// the dead letter queue (add, and the filters and options of list, retry and purge). For every case
// the call returns (or resolves) or throws (or rejects) a typed Keel error, nothing of Keel's
// crashes, and nothing accepted is lost: a send's outcome says what became of its message (a message
// acknowledged 'handled' by the recorder was handled there), a send still waiting settles by the
// node's shutdown, and the queue keeps answering.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Pid, sendSupervised, type SendOutcome } from '../../src/index.js';
import { attempt, useNodes, type Watched } from '../support.js';
import { checkAfter, F, finish, type Fixture, fromArb, fuzzNode, signalArb, targetArb } from './fuzzKit.js';
import { expectStrayRefused, expectTyped, field, hostileArb, keelCode, LONG, numberArb, optionsArb, orHostile, params, runSync, V, withStrays } from './hostile.js';

const track = useNodes();
const TIMEOUT = LONG ? 900_000 : 60_000;

const backoffArb = optionsArb({
  initialMs: field(fc.constantFrom(0, 1, 10, 1000), numberArb),
  factor: field(fc.constantFrom(1, 2, 10), numberArb),
  maxMs: field(fc.constantFrom(0, 10, 5000), numberArb),
  jitter: field(fc.constantFrom('full', 'none'), orHostile(fc.constant('bogus'))),
});
const metadataArb = fc.oneof(optionsArb({ tag: hostileArb, id: hostileArb, attempts: hostileArb, nested: hostileArb }, false), hostileArb);
const sendOptionsArb = optionsArb({
  ack: field(fc.constantFrom('enqueued', 'handled'), orHostile(fc.constant('bogus'))),
  timeout: field(fc.constantFrom(0, 10, 5000, Number.POSITIVE_INFINITY), numberArb),
  deadline: field(fc.constantFrom(10, 20_000, Number.POSITIVE_INFINITY), numberArb),
  retries: field(fc.integer({ min: 0, max: 3 }), numberArb),
  backoff: field(fc.constant(new V('{ initialMs: 10 }', () => ({ initialMs: 10 }))), backoffArb),
  onError: field(fc.constantFrom('log', 'dead_letter', 'ignore', 'raise'), orHostile(fc.constant('bogus'))),
  metadata: field(fc.constant(new V('{ tag: 1 }', () => ({ tag: 1 }))), metadataArb),
  id: field(fc.constantFrom('m-1', 'fuzz-id'), orHostile(fc.constant(''))),
  retryOnCrash: field(fc.boolean()),
  signal: field(fc.constant(new V('a live AbortSignal', () => new AbortController().signal)), signalArb),
});

const REASONS = ['noproc', 'process_down', 'timeout', 'mailbox_full', 'aborted', 'noconnection'];

/** A process that handles everything and records the id each message was handled under. */
function recorder(fx: Fixture): { pid: Pid; seen: Set<string | undefined> } {
  const seen = new Set<string | undefined>();
  const pid = fx.node.spawn((ctx) => () => {
    seen.add(ctx.messageId);
  });
  fx.node.registry.register('fuzz.recorder', pid);
  fx.guarded.add(pid);
  return { pid, seen };
}

/** What was accepted and had not settled when its case ended: it must settle by the node's shutdown. */
const late: [string, Watched<unknown>][] = [];

function checkLate(): void {
  for (const [where, w] of late.splice(0)) {
    if (w.status === 'pending') throw new Error(`${where}: still pending after the node shut down`);
    if (w.status === 'rejected' && keelCode(w.error) === undefined) throw new Error(`${where}: rejected with an untyped error after the shutdown`);
  }
}

async function drive(fx: Fixture): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await fx.node.idle({ timeoutMs: 2000 });
    await fx.clock.advance(6000);
  }
  await fx.node.idle({ timeoutMs: 2000 });
}

describe('fuzz: sendSupervised', () => {
  it(`takes any from, target, message and options: a typed error, or an outcome that says what became of the message (${params().numRuns} cases)`, async () => {
    const fx = await fuzzNode(track);
    const rec = recorder(fx);
    const targets = fc.oneof({ arbitrary: fc.constantFrom(new F('the recorder', () => rec.pid), new F("the recorder's name", () => 'fuzz.recorder')), weight: 1 }, { arbitrary: targetArb(), weight: 2 });
    await fc.assert(
      fc.asyncProperty(fromArb, targets, hostileArb, sendOptionsArb, async (from, target, message, options) => {
        const where = `sendSupervised(${from.label}, ${target.label}, ${message.label}, ${options.label})`;
        const { value: o, stray } = withStrays(() => options.make());
        const r = runSync(() => sendSupervised(from.make(fx) as never, target.make(fx) as never, message.make(), o as never));
        expectTyped(r, where);
        expectStrayRefused(stray, r.ok, where);
        if (r.ok) {
          const w = attempt(() => r.value as Promise<SendOutcome>);
          await drive(fx);
          if (w.status === 'rejected') expectTyped({ ok: false, error: w.error }, where);
          if (w.status === 'resolved') {
            const outcome = w.value!;
            if (typeof outcome !== 'object' || typeof outcome.ok !== 'boolean' || typeof outcome.id !== 'string' || typeof outcome.attempts !== 'number') {
              throw new Error(`${where}: resolved with ${String(outcome)}, not an outcome`);
            }
            const handled = (o as { ack?: unknown } | undefined)?.ack === 'handled';
            if (outcome.ok && handled && target.label.startsWith('the recorder') && !rec.seen.has(outcome.id)) {
              throw new Error(`${where}: acknowledged 'handled' as ${outcome.id}, but the recorder never handled it`);
            }
            if (!outcome.ok && !REASONS.includes(outcome.reason)) throw new Error(`${where}: failed with the reason ${String(outcome.reason)}`);
            if (!outcome.ok && (o as { onError?: unknown } | undefined)?.onError === 'dead_letter' && typeof outcome.deadLetterId !== 'string' && outcome.deadLetterUnavailable !== true) {
              throw new Error(`${where}: dead-lettered with neither an id nor deadLetterUnavailable`);
            }
          }
          if (w.status === 'pending') late.push([where, w]);
        }
        await checkAfter(fx, where);
      }),
      params(),
    );
    await finish(fx);
    await fx.node.shutdown();
    await fx.node.idle();
    checkLate();
  }, TIMEOUT);
});

const filterArb = optionsArb({
  status: field(fc.constantFrom('pending', 'parked'), orHostile(fc.constant('bogus'))),
  reason: field(fc.constantFrom('noproc', 'timeout')),
  recipient: field(fc.constantFrom('fuzz.nobody', 'fuzz.recorder')),
  olderThanMs: field(fc.constantFrom(0, 1000), numberArb),
  limit: field(fc.constantFrom(1, 100), numberArb),
  cursor: field(fc.constantFrom('0', '1'), orHostile(fc.constantFrom('01', '0x1', '-1', '99999999999999999999'))),
});
const idsArb = fc.oneof(
  fc.array(orHostile(fc.constantFrom('1', '2', '3', '01', '', 'x', '99999999999999999999')), { maxLength: 4 }).map((ids) => new V(`[${ids.map((i) => i.label).join(', ')}]`, () => ids.map((i) => i.make()))),
  hostileArb,
);
const retryOptionsArb = optionsArb({ ratePerSecond: field(fc.constantFrom(1, 1000), numberArb), signal: field(fc.constant(new V('a live AbortSignal', () => new AbortController().signal)), signalArb) });
const entryArb = optionsArb({
  recipient: fc.oneof(orHostile(fc.constantFrom('fuzz.nobody', 'fuzz.recorder', '')), hostileArb),
  message: hostileArb,
  reason: orHostile(fc.constantFrom('noproc', '', 'timeout')),
  metadata: metadataArb,
}, false);

describe('fuzz: the dead letter queue', () => {
  it(`add, list, retry and purge take any entry, filter, ids and options: a typed error or an answer, and the queue keeps answering (${params().numRuns} cases)`, async () => {
    const fx = await fuzzNode(track);
    const { node } = fx;
    recorder(fx);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('add', 'list', 'retry (filter)', 'retry (ids)', 'purge'),
        entryArb,
        filterArb,
        idsArb,
        retryOptionsArb,
        async (op, entry, filter, ids, options) => {
          // a few entries to work on, every case
          await node.deadLetters.add({ recipient: 'fuzz.nobody', message: { n: fx.seq }, reason: 'noproc' });
          const where = `${op}(${op === 'add' ? entry.label : op === 'retry (ids)' ? `${ids.label}, ${options.label}` : op === 'retry (filter)' ? `${filter.label}, ${options.label}` : filter.label})`;
          const q = node.deadLetters;
          const { value: call, stray } = withStrays((): (() => unknown) => {
            switch (op) {
              case 'add': {
                const e = entry.make();
                return () => q.add(e as never);
              }
              case 'list': {
                const f = filter.make();
                return () => q.list(f as never);
              }
              case 'retry (filter)': {
                const [f, o] = [filter.make(), options.make()];
                return () => q.retry(f as never, o as never);
              }
              case 'retry (ids)': {
                const [i, o] = [ids.make(), options.make()];
                return () => q.retry(i as never, o as never);
              }
              default: {
                const f = filter.make();
                return () => q.purge(f as never);
              }
            }
          });
          const r = runSync(call);
          expectTyped(r, where);
          if (r.ok) {
            const w = attempt(() => r.value as Promise<unknown>);
            await drive(fx);
            if (w.status === 'rejected') expectTyped({ ok: false, error: w.error }, where);
            if (w.status === 'pending') late.push([where, w]);
            expectStrayRefused(stray, w.status === 'resolved', where);
          }
          // the queue answers
          const stats = await q.stats();
          if (typeof stats !== 'object' || !('pending' in stats)) throw new Error(`${where}: stats() answered ${String(stats)}`);
          await checkAfter(fx, where);
        },
      ),
      params(),
    );
    await finish(fx);
    await fx.node.shutdown();
    await fx.node.idle();
    checkLate();
    expect(late).toEqual([]);
  }, TIMEOUT);
});
