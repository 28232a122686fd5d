// A bounded StateMachine's postponed events are kept by the kernel (counted against its capacity);
// an unbounded one's are its own queue. Given the same inputs, with a capacity nothing reaches,
// both must handle every event in the same order: gen_statem's (postponed events retried after a
// state change, oldest first, before new ones; next_event inserts before them; one postponed again
// keeps its place).
import { describe, expect, it } from 'vitest';
import { StateMachine, Sys, type StateMachineAction, type Transition } from '../../src/index.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import type { TestClock } from '../../src/testing/TestClock.js';
import { captureEvents } from '../../src/testing/index.js';
import { Delivery } from '../../src/runtime/kernel.js';
import { seededRandom } from '../../src/runtime/Clock.js';
import { clockedNode, useNodes } from '../support.js';

const track = useNodes();

/** FNV-1a of a string: the machine's decisions are a pure function of what it is given. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

type Data = { log: string[]; seen: Map<string, number>; n: number };
type Calls = { request: string; reply: number };
type A = StateMachineAction<Calls, string, string>;

/** The event's id (its content, request or timeout content). */
function idOf(ev: { type: string; content?: unknown; request?: unknown }): string {
  return String(ev.type === 'call' ? ev.request : ev.content);
}

/**
 * The machine: in each of 4 states, each event is handled or postponed (at most 3 times: then
 * handled), with or without a state change, next_event inserts (of 3 kinds), and timeouts of every
 * kind (0, 5 or 10 ms), the choice a hash of the event's id, the state and how often it was seen.
 * Some handlers are async.
 */
function spec() {
  return {
    init: (): { state: number; data: Data } => ({ state: 0, data: { log: [], seen: new Map(), n: 0 } }),
    handleEvent: (ev: any, state: number, data: Data): Transition<number, Data, A> | Promise<Transition<number, Data, A>> => {
      const id = idOf(ev);
      const k = data.seen.get(`${ev.type}:${id}`) ?? 0;
      data.seen.set(`${ev.type}:${id}`, k + 1);
      const h = hash(`${ev.type}|${id}|${state}|${k}`);
      const actions: A[] = [];
      const postpone = k < 3 && h % 5 < 2 && !ev.type.endsWith('timeout');
      if (postpone) actions.push('postpone');
      else {
        data.log.push(`${ev.type}:${id}@${state}`);
        if (ev.type === 'call') actions.push({ type: 'reply', from: ev.from, reply: data.log.length });
      }
      const depth = id.split('.').length;
      if (((h >>> 3) % 4 === 0) && depth < 3) {
        const kinds = ['internal', 'cast', 'info'] as const;
        const count = 1 + ((h >>> 5) % 2);
        for (let j = 0; j < count; j++) actions.push({ type: 'next_event', kind: kinds[(h >>> (7 + j)) % 3]!, content: `${id}.${j}` } as A);
      }
      const t = (h >>> 9) % 8;
      const ms = [0, 5, 10][(h >>> 12) % 3]!;
      if (t === 0 && depth < 3) actions.push({ type: 'state_timeout', ms, content: `${id}.s` });
      else if (t === 1 && depth < 3) actions.push({ type: 'timeout', ms, content: `${id}.e` });
      else if (t === 2 && depth < 3) actions.push({ type: 'generic_timeout', name: `g${(h >>> 14) % 2}`, ms, content: `${id}.g` });
      const change = (h >>> 16) % 3 === 0;
      const next = (state + 1 + ((h >>> 18) % 3)) % 4;
      const result: Transition<number, Data, A> = change ? { nextState: next, data, actions } : { keepState: true, data, actions };
      data.n++;
      return (h >>> 21) % 7 === 0 ? Promise.resolve(result) : result;
    },
  };
}

type Step = { kind: 'cast' | 'call' | 'info'; id: string } | { kind: 'advance'; ms: number } | { kind: 'idle' };

function script(seed: number, length: number): Step[] {
  const r = seededRandom(seed);
  const steps: Step[] = [];
  for (let i = 0; i < length; i++) {
    const x = r();
    if (x < 0.35) steps.push({ kind: 'cast', id: `c${i}` });
    else if (x < 0.5) steps.push({ kind: 'call', id: `k${i}` });
    else if (x < 0.6) steps.push({ kind: 'info', id: `i${i}` });
    else if (x < 0.8) steps.push({ kind: 'advance', ms: [1, 5, 10, 20][Math.floor(r() * 4)]! });
    else steps.push({ kind: 'idle' });
  }
  steps.push({ kind: 'advance', ms: 1000 }, { kind: 'idle' });
  return steps;
}

async function run(steps: readonly Step[], mailbox: { capacity: number; overflow: 'reject' | 'drop_oldest' } | undefined) {
  const { node, clock } = clockedNode(track) as { node: KeelNode; clock: TestClock };
  const dropped = captureEvents(node, ['keel.message.dropped']);
  const pid = await StateMachine.start<number, Data, Calls, string, string>(node, spec() as never, undefined, mailbox === undefined ? {} : { mailbox });
  const replies: Promise<unknown>[] = [];
  for (const s of steps) {
    if (s.kind === 'cast') StateMachine.cast(node, pid, s.id);
    else if (s.kind === 'call') replies.push(StateMachine.call(node, pid, s.id, Infinity).then((r) => r, (e: unknown) => `error:${String(e)}`));
    else if (s.kind === 'info') node.send(pid, s.id);
    else if (s.kind === 'advance') await clock.advance(s.ms);
    else await node.idle();
  }
  await node.idle();
  const { state, data } = (await Sys.getState(node, pid)) as { state: number; data: Data };
  // the calls still postponed at the end are answered by the machine's death (stage queued)
  await StateMachine.stop(node, pid);
  const settled = await Promise.all(replies);
  return { log: data.log, state, settled: settled.map((x) => (typeof x === 'string' ? x.replace(/<[^>]*>/g, '') : x)), dropped: dropped.events.length };
}

describe('a bounded StateMachine handles events in the same order as an unbounded one (differential, seeded)', () => {
  it('200 random scripts of casts, calls, infos, clock advances: postpone, state changes mid-replay, next_event inserts and timeouts of every kind', async () => {
    for (let seed = 1; seed <= 200; seed++) {
      const steps = script(seed, 60);
      const unbounded = await run(steps, undefined);
      const bounded = await run(steps, { capacity: 100_000, overflow: 'reject' });
      expect(bounded.dropped, `seed ${seed}`).toBe(0);
      expect(bounded.log, `seed ${seed}`).toEqual(unbounded.log);
      expect(bounded.state, `seed ${seed}`).toBe(unbounded.state);
      expect(bounded.settled, `seed ${seed}`).toEqual(unbounded.settled);
    }
  }, 120_000);
});

type Outcome = 'handled' | 'dropped' | 'refused' | 'kept' | string;

/** The id a dropped message's report names: a cast's request, a call's, a supervised message's, an info itself, a timeout's content. */
function droppedId(m: unknown): string {
  if (typeof m === 'string') return m;
  const o = m as { request?: unknown; message?: unknown; content?: unknown };
  return String(o.request ?? o.message ?? o.content); // a timeout's message, or an inserted event: its content
}

async function runCounted(seed: number, steps: readonly Step[], capacity: number, overflow: 'reject' | 'drop_newest' | 'drop_oldest') {
  const { node, clock } = clockedNode(track) as { node: KeelNode; clock: TestClock };
  const dropped = captureEvents(node, ['keel.message.dropped']);
  const pid = await StateMachine.start<number, Data, Calls, string, string>(node, spec() as never, undefined, { mailbox: { capacity, overflow } });
  const proc = node.resolve(pid)!;
  const sent: string[] = [];
  const calls = new Map<string, Promise<unknown>>();
  const settled = new Map<string, string[]>(); // a supervised message's outcomes: exactly one each
  for (const s of steps) {
    if (s.kind === 'cast') StateMachine.cast(node, pid, s.id);
    else if (s.kind === 'call') calls.set(s.id, StateMachine.call(node, pid, s.id, Infinity).then((r) => r, (e: unknown) => e));
    else if (s.kind === 'info') {
      // every other info is a supervised message
      if (hash(s.id) % 2 === 0) node.send(pid, s.id);
      else {
        settled.set(s.id, []);
        const out = settled.get(s.id)!;
        // refused by a full mailbox, it is told by what the delivery answers (the listener never runs)
        if (node.deliverEnvelope(undefined, proc, s.id, s.id, { handled: () => void out.push('handled'), failed: (reason) => void out.push(reason) }) !== Delivery.Enqueued) out.push('refused');
      }
    } else if (s.kind === 'advance') await clock.advance(s.ms);
    else await node.idle();
    if (s.kind === 'cast' || s.kind === 'call' || s.kind === 'info') sent.push(s.id);
  }
  await node.idle();
  const { data } = (await Sys.getState(node, pid)) as { state: number; data: Data };
  const kept = new Set<string>();
  (proc as unknown as { x?: { postponed?: { forEach(fn: (e: { event: { type: string; content?: unknown; request?: unknown } }) => void): void } } }).x?.postponed?.forEach((e) => kept.add(idOf(e.event)));
  const handled = data.log.map((l) => l.slice(l.indexOf(':') + 1, l.lastIndexOf('@'))).filter((id) => !id.includes('.'));
  const droppedIds = dropped.events.map((e) => droppedId(e.metadata.message));
  const outcome = new Map<string, Outcome[]>();
  // the messages sent (an inserted event or a timeout, postponed, may be kept or evicted too: not counted here)
  const add = (id: string, o: Outcome) => void (id.includes('.') ? undefined : (outcome.get(id) ?? outcome.set(id, []).get(id)!).push(o));
  for (const id of handled) add(id, 'handled');
  for (const id of droppedIds) add(id, 'dropped');
  for (const id of kept) add(id, 'kept');
  // sent = handled + dropped (refused or evicted) + kept (postponed still), each exactly once
  for (const id of sent) expect(outcome.get(id), `seed ${seed} ${overflow}/${capacity}: ${id}`).toHaveLength(1);
  expect([...outcome.keys()].filter((id) => !sent.includes(id)), `seed ${seed}`).toEqual([]);
  // every call: answered if handled, ERR_MAILBOX_FULL if dropped; a kept one waits
  for (const [id, p] of calls) {
    const o = outcome.get(id)![0];
    if (o === 'kept') continue;
    const r = await p;
    if (o === 'handled') expect(typeof r, `seed ${seed} ${id}`).toBe('number');
    else expect((r as { code?: string }).code, `seed ${seed} ${id}`).toBe('ERR_MAILBOX_FULL');
  }
  // every supervised message settles once: handled, dropped (mailbox_full); a kept one not yet
  for (const [id, out] of settled) {
    const o = outcome.get(id)![0];
    if (o === 'dropped') expect(out, `seed ${seed} ${id}`).toHaveLength(1);
    if (o === 'dropped') expect(['dropped', 'refused'], `seed ${seed} ${id}`).toContain(out[0]);
    else expect(out, `seed ${seed} ${id}: ${o}`).toEqual(o === 'kept' ? [] : ['handled']);
  }
  node.exit(pid, 'kill');
  await node.idle();
  for (const [id, out] of settled) if (outcome.get(id)![0] === 'kept') expect(out, `seed ${seed} ${id}`).toEqual(['down']);
  for (const [id, p] of calls) if (outcome.get(id)![0] === 'kept') expect((await p) as object, `seed ${seed} ${id}`).toMatchObject({ code: 'ERR_CALL_EXIT', stage: 'queued' });
  expect(node.internals().envelopes).toBe(0);
}

describe('a bounded StateMachine’s every message is counted once (seeded, small capacities)', () => {
  it('200 random scripts, capacity 1 to 6, each overflow: sent = handled + dropped + still postponed; calls and supervised messages settle once', async () => {
    const overflows = ['reject', 'drop_newest', 'drop_oldest'] as const;
    for (let seed = 1; seed <= 200; seed++) {
      await runCounted(seed, script(seed, 60), 1 + (seed % 6), overflows[seed % 3]!);
    }
  }, 120_000);
});
