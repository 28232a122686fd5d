// The mailboxes (src/runtime/internal/Mailbox.ts), driven directly: the ring functions over real
// process records, and `Mailboxes` over a recording log, a real telemetry bus with a capture, and a
// recording waker that runs nothing.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Envelope } from '../../../src/runtime/internal/Envelope.js';
import { Delivery, grow, isSystemMessage, Mailboxes, NO_WAKE, removeWhere, shrink } from '../../../src/runtime/internal/Mailbox.js';
import {
  EMPTY,
  EXIT_SENTINEL,
  ExitWatcher,
  F_BOUNDED,
  F_BUSY,
  F_DEAD,
  F_FRESH,
  F_INIT,
  F_LONG,
  F_RUNNING,
  F_SCHEDULED,
  F_SLOW,
  F_TOP,
  F_TRAP,
  type Proc,
} from '../../../src/runtime/internal/Proc.js';
import { DownMessage, ExitMessage } from '../../../src/runtime/messages.js';
import { RefImpl } from '../../../src/runtime/Pid.js';
import { listener, makeProc, queued, recordingLog, recordingWaker, take, telemetry } from './fakes.js';

const DROPPED = 'keel.message.dropped';

function setup(longMailbox: readonly [number, number] = [Infinity, -1]) {
  const log = recordingLog();
  const { bus, events } = telemetry(['keel.message.dropped', 'keel.process.long_mailbox', 'keel.process.long_mailbox_cleared']);
  const mail = new Mailboxes({ telemetry: bus, stopping: false, log: log.log }, longMailbox);
  const waker = recordingWaker();
  mail.waker = waker;
  return { mail, waker, log: log.entries, events };
}

let ids = 0;
function proc(flags = 0): Proc {
  return makeProc(++ids, flags);
}

/** A process whose mailbox holds `capacity` messages at most, with `overflow`. */
function bounded(capacity: number, overflow: 'reject' | 'drop_newest' | 'drop_oldest'): Proc {
  const p = proc(F_BOUNDED);
  const x = p.ext();
  x.capacity = capacity;
  x.overflow = overflow;
  return p;
}

/** A listener recording what it is told. */

let refs = 0;
const down = (reason: 'normal' | 'noproc' = 'normal') => new DownMessage(new RefImpl('unit', ++refs), proc().self, reason, undefined);
const exit = () => new ExitMessage('node', 'shutdown');

/** Proxies every trap of which counts and throws: the mailbox must never run one (a message may be any value). */
function hostileProxies(n: number): { proxies: object[]; traps: () => number } {
  let traps = 0;
  const fail = () => {
    traps++;
    throw new Error('a trap ran');
  };
  const handler = { get: fail, has: fail, getPrototypeOf: fail, ownKeys: fail, getOwnPropertyDescriptor: fail, set: fail, defineProperty: fail };
  return { proxies: Array.from({ length: n }, () => new Proxy({}, handler)), traps: () => traps };
}

describe('the ring functions', () => {
  it('grow gives a first ring of 4 slots, then doubles, with the messages in order from slot 0', () => {
    const p = proc();
    expect(p.buf).toBe(EMPTY);
    const first = grow(p);
    expect(first).toBe(p.buf);
    expect(first).toEqual([undefined, undefined, undefined, undefined]);
    expect(p.head).toBe(0);
    // a full ring that wrapped around: head at 3, the messages at 3, 0, 1, 2
    p.buf = ['c', 'd', 'e', 'b'];
    p.head = 3;
    p.size = 4;
    const second = grow(p);
    expect(second).toEqual(['b', 'c', 'd', 'e', undefined, undefined, undefined, undefined]);
    expect(second).toHaveLength(8);
    expect(p.head).toBe(0);
    expect(p.size).toBe(4);
  });

  it('shrink gives the ring back: the shared empty ring, head 0', () => {
    const p = proc();
    grow(p);
    p.head = 2;
    shrink(p);
    expect(p.buf).toBe(EMPTY);
    expect(p.head).toBe(0);
  });

  it('keeps the order of the messages across wrap-arounds and growths (any interleaving of sends and takes)', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant('take' as const), fc.integer()), { maxLength: 300 }), (ops) => {
        const { mail } = setup();
        const p = proc(F_SCHEDULED); // sends do not wake it: the ring alone is under test
        const model: unknown[] = [];
        for (const op of ops) {
          if (op === 'take') {
            if (model.length > 0) expect(take(p)).toBe(model.shift());
          } else {
            expect(mail.enqueue(p, op, undefined)).toBe(Delivery.Enqueued);
            model.push(op);
          }
          expect(queued(p)).toEqual(model);
          // the ring is a power of two, and at least 4 once used
          expect(p.buf.length === 0 || (p.buf.length >= 4 && (p.buf.length & (p.buf.length - 1)) === 0)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('removeWhere removes the matching messages, keeps the order of the rest, clears the freed slots and returns the count', () => {
    const p = proc();
    // a wrapped ring of 8: head at 5, ten... no, seven messages 0..6 in slots 5, 6, 7, 0, 1, 2, 3
    p.buf = [3, 4, 5, 6, undefined, 0, 1, 2];
    p.head = 5;
    p.size = 7;
    const removed = removeWhere(p, (m) => (m as number) % 2 === 1);
    expect(removed).toBe(3);
    expect(p.size).toBe(4);
    expect(p.head).toBe(5);
    expect(queued(p)).toEqual([0, 2, 4, 6]);
    // the three freed slots hold nothing (no reference kept to a removed message)
    expect(p.buf.filter((m) => m !== undefined)).toHaveLength(4);
  });

  it('removeWhere with nothing to remove changes nothing; on an empty mailbox it returns 0', () => {
    const p = proc();
    expect(removeWhere(p, () => true)).toBe(0);
    expect(p.buf).toBe(EMPTY);
    p.buf = ['a', 'b', undefined, undefined];
    p.size = 2;
    expect(removeWhere(p, () => false)).toBe(0);
    expect(p.buf).toEqual(['a', 'b', undefined, undefined]);
    expect(removeWhere(p, () => true)).toBe(2);
    expect(p.buf).toEqual([undefined, undefined, undefined, undefined]);
    expect(p.size).toBe(0);
  });

  it('isSystemMessage is true for the runtime’s Down and Exit only, never for a look-alike, and runs no proxy trap', () => {
    expect(isSystemMessage(down())).toBe(true);
    expect(isSystemMessage(exit())).toBe(true);
    const hostile = hostileProxies(1);
    for (const m of [{ kind: 'down', ref: 1, pid: 1, reason: 'normal' }, { kind: 'exit', from: 'node', reason: 'normal' }, 'down', null, undefined, 0, hostile.proxies[0]]) {
      expect(isSystemMessage(m)).toBe(false);
    }
    expect(hostile.traps()).toBe(0);
  });
});

describe('Mailboxes.enqueue', () => {
  it.each([
    ['scheduled', F_SCHEDULED],
    ['running', F_RUNNING],
    ['busy', F_BUSY],
    ['running and busy', F_RUNNING | F_BUSY],
  ])('does not wake a process that is %s', (_label, flags) => {
    const { mail, waker } = setup();
    const p = proc(flags);
    expect(mail.enqueue(p, 'm', undefined)).toBe(Delivery.Enqueued);
    expect(waker.woken).toEqual([]);
    expect(queued(p)).toEqual(['m']);
  });

  it.each([
    ['waiting', 0],
    ['initializing, trapping exits, top-level, fresh, slow and long', F_INIT | F_TRAP | F_TOP | F_FRESH | F_SLOW | F_LONG],
    ['bounded with room', F_BOUNDED],
  ])('wakes a process that is %s, once (the wake marks it scheduled)', (_label, flags) => {
    const { mail, waker } = setup();
    const p = proc(flags);
    if ((flags & F_BOUNDED) !== 0) p.ext().capacity = 10;
    mail.enqueue(p, 'a', undefined);
    mail.enqueue(p, 'b', undefined);
    expect(waker.woken).toEqual([p]);
    expect(queued(p)).toEqual(['a', 'b']);
  });

  it('NO_WAKE is exactly scheduled, running, busy and dead', () => {
    expect(NO_WAKE).toBe(F_SCHEDULED | F_RUNNING | F_BUSY | F_DEAD);
  });

  it('gives a dead process nothing: noproc, one dropped event naming the sender, no wake, the mailbox untouched', () => {
    const { mail, waker, events } = setup();
    const p = proc(F_DEAD);
    const sender = proc();
    expect(mail.enqueue(p, 'late', sender)).toBe(Delivery.NoProc);
    expect(mail.enqueue(p, 'later', undefined)).toBe(Delivery.NoProc);
    expect(waker.woken).toEqual([]);
    expect(p.buf).toBe(EMPTY);
    expect(p.size).toBe(0);
    expect(events).toStrictEqual([
      { event: DROPPED, measurements: { count: 1 }, metadata: { from: sender.self, to: p.self, message: 'late', reason: 'noproc' } },
      { event: DROPPED, measurements: { count: 1 }, metadata: { from: 'node', to: p.self, message: 'later', reason: 'noproc' } },
    ]);
  });

  it('gives a dead bounded process noproc too (not mailbox_full)', () => {
    const { mail, events } = setup();
    const p = bounded(1, 'reject');
    mail.enqueue(p, 'a', undefined);
    p.flags |= F_DEAD;
    expect(mail.enqueue(p, 'b', undefined)).toBe(Delivery.NoProc);
    expect(events.map((e) => e.metadata.reason)).toEqual(['noproc']);
  });

  it('runs no trap of a proxy message: queued, evicted by drop_oldest, scanned for envelopes, discarded', () => {
    const { mail, events } = setup();
    const p = bounded(2, 'drop_oldest');
    p.flags |= F_SCHEDULED;
    const { proxies, traps } = hostileProxies(3);
    for (const m of proxies) expect(mail.enqueue(p, m, undefined)).toBe(Delivery.Enqueued);
    const [first, second] = queued(p);
    expect(p.size).toBe(2);
    expect(first === proxies[1] && second === proxies[2]).toBe(true);
    expect(events.length === 1 && events[0]!.metadata.message === proxies[0]).toBe(true);
    // an envelope elsewhere on the node makes the withdrawal and the discard scan this mailbox
    mail.deliverEnvelope(undefined, proc(), 'elsewhere', 'id', undefined);
    expect(mail.withdrawEnvelope(p, 'any')).toBe(false);
    expect(mail.discard(p)).toBeUndefined();
    expect(p.size).toBe(0);
    expect(traps()).toBe(0);
  });
});

describe('bounded mailboxes', () => {
  it.each(['reject', 'drop_newest'] as const)('%s refuses the new message with MailboxFull and one dropped event', (overflow) => {
    const { mail, events, waker } = setup();
    const p = bounded(2, overflow);
    const sender = proc();
    expect(mail.enqueue(p, 'a', undefined)).toBe(Delivery.Enqueued);
    expect(mail.enqueue(p, 'b', undefined)).toBe(Delivery.Enqueued);
    expect(events).toEqual([]);
    expect(mail.enqueue(p, 'c', sender)).toBe(Delivery.MailboxFull);
    expect(Delivery.MailboxFull).toBe(2);
    expect(queued(p)).toEqual(['a', 'b']);
    expect(waker.woken).toEqual([p]);
    expect(events).toStrictEqual([{ event: DROPPED, measurements: { count: 1 }, metadata: { from: sender.self, to: p.self, message: 'c', reason: 'mailbox_full' } }]);
    // room again after the process took one
    take(p);
    expect(mail.enqueue(p, 'd', undefined)).toBe(Delivery.Enqueued);
    expect(queued(p)).toEqual(['b', 'd']);
    expect(events).toHaveLength(1);
  });

  it.each(['reject', 'drop_newest', 'drop_oldest'] as const)('%s takes a Down or an Exit beyond the capacity, with no event', (overflow) => {
    const { mail, events } = setup();
    const p = bounded(1, overflow);
    const d = down();
    const e = exit();
    mail.enqueue(p, 'a', undefined);
    expect(mail.enqueue(p, d, undefined)).toBe(Delivery.Enqueued);
    expect(mail.enqueue(p, e, undefined)).toBe(Delivery.Enqueued);
    expect(queued(p)).toEqual(['a', d, e]);
    expect(events).toEqual([]);
  });

  it('drop_oldest evicts the oldest user message, never a Down or an Exit, and keeps the order of the rest', () => {
    const { mail, events } = setup();
    const p = bounded(4, 'drop_oldest');
    const d1 = down();
    const e1 = exit();
    // wrap the ring first, so that the eviction moves system messages across its end
    mail.enqueue(p, 'x', undefined);
    mail.enqueue(p, 'y', undefined);
    take(p);
    take(p);
    for (const m of [d1, e1, 'm1', 'm2']) mail.enqueue(p, m, undefined);
    expect(p.head).toBe(2);
    expect(mail.enqueue(p, 'm3', undefined)).toBe(Delivery.Enqueued);
    expect(queued(p)).toEqual([d1, e1, 'm2', 'm3']);
    expect(mail.enqueue(p, 'm4', undefined)).toBe(Delivery.Enqueued);
    expect(queued(p)).toEqual([d1, e1, 'm3', 'm4']);
    expect(events).toStrictEqual([
      { event: DROPPED, measurements: { count: 1 }, metadata: { from: 'node', to: p.self, message: 'm1', reason: 'mailbox_full', overflow: 'drop_oldest' } },
      { event: DROPPED, measurements: { count: 1 }, metadata: { from: 'node', to: p.self, message: 'm2', reason: 'mailbox_full', overflow: 'drop_oldest' } },
    ]);
  });

  it('drop_oldest with only Downs and Exits queued takes the new message beyond the capacity, evicting nothing', () => {
    const { mail, events } = setup();
    const p = bounded(2, 'drop_oldest');
    const d = down();
    const e = exit();
    mail.enqueue(p, d, undefined);
    mail.enqueue(p, e, undefined);
    expect(mail.enqueue(p, 'm', undefined)).toBe(Delivery.Enqueued);
    expect(queued(p)).toEqual([d, e, 'm']);
    expect(events).toEqual([]);
    // from there on the user message is what gets evicted
    expect(mail.enqueue(p, 'n', undefined)).toBe(Delivery.Enqueued);
    expect(queued(p)).toEqual([d, e, 'n']);
    expect(events.map((x) => x.metadata.message)).toEqual(['m']);
  });

  it('drop_oldest settles an evicted envelope dropped, once, and counts it out; the event names its message', () => {
    const { mail, events } = setup();
    const p = bounded(1, 'drop_oldest');
    const l = listener();
    expect(mail.deliverEnvelope(undefined, p, 'payload', 'id-1', l)).toBe(Delivery.Enqueued);
    expect(mail.envelopes).toBe(1);
    expect(mail.enqueue(p, 'newer', undefined)).toBe(Delivery.Enqueued);
    expect(l.calls).toEqual([['failed', 'dropped', undefined]]);
    expect(mail.envelopes).toBe(0);
    expect(queued(p)).toEqual(['newer']);
    expect(events.map((e) => e.metadata.message)).toEqual(['payload']);
  });

  it('drop_oldest tells an evicted exit watcher (a pending call) that it was dropped', () => {
    const { mail } = setup();
    const p = bounded(1, 'drop_oldest');
    let dropped = 0;
    class Request extends ExitWatcher {
      onExit(): void {}
      override dropped(): void {
        dropped++;
      }
    }
    mail.enqueue(p, new Request(), undefined);
    mail.enqueue(p, 'newer', undefined);
    expect(dropped).toBe(1);
  });

  it('canAccept: false when dead, true unbounded, and the room left when bounded', () => {
    const { mail } = setup();
    const free = proc();
    expect(mail.canAccept(free, 1_000_000)).toBe(true);
    const p = bounded(3, 'reject');
    mail.enqueue(p, 'a', undefined);
    expect(mail.canAccept(p, 2)).toBe(true);
    expect(mail.canAccept(p, 3)).toBe(false);
    p.flags |= F_DEAD;
    expect(mail.canAccept(p, 0)).toBe(false);
    free.flags |= F_DEAD;
    expect(mail.canAccept(free, 1)).toBe(false);
  });
});

describe('supervised messages (envelopes)', () => {
  it('counts an envelope in while queued and out once settled, exactly once however often settled', () => {
    const { mail } = setup();
    const p = proc();
    const l = listener();
    expect(mail.deliverEnvelope(undefined, p, 'job', 'id-1', l)).toBe(Delivery.Enqueued);
    expect(mail.envelopes).toBe(1);
    const env = take(p) as Envelope;
    expect(Envelope.is(env)).toBe(true);
    expect(mail.opened(p, env)).toBe('job');
    expect(p.messageId).toBe('id-1');
    mail.settleInflight(p, 'handled');
    expect(mail.envelopes).toBe(0);
    expect(p.messageId).toBeUndefined();
    mail.settleInflight(p, 'crashed', new Error('late'));
    mail.settleEnvelope(env, 'down', 'killed');
    expect(mail.envelopes).toBe(0);
    expect(l.calls).toEqual([['handled']]);
  });

  it('settles an envelope being handled crashed with the error', () => {
    const { mail } = setup();
    const p = proc();
    const l = listener();
    const boom = new Error('boom');
    mail.deliverEnvelope(undefined, p, 'job', 'id-1', l);
    mail.opened(p, take(p) as Envelope);
    mail.settleInflight(p, 'crashed', boom);
    expect(l.calls).toEqual([['failed', 'crashed', boom]]);
    expect(mail.envelopes).toBe(0);
  });

  it.each([
    ['a dead process', () => proc(F_DEAD), Delivery.NoProc, 'noproc'],
    ['a full mailbox that rejects', () => {
      const p = bounded(1, 'reject');
      p.buf = ['full', undefined, undefined, undefined];
      p.size = 1;
      return p;
    }, Delivery.MailboxFull, 'mailbox_full'],
  ] as const)('counts nothing for an envelope refused by %s, and tells its listener nothing (the sender has the result)', (_label, target, result, reason) => {
    const { mail, events } = setup();
    const l = listener();
    const sender = proc();
    expect(mail.deliverEnvelope(sender, target(), 'job', 'id-1', l)).toBe(result);
    expect(mail.envelopes).toBe(0);
    expect(l.calls).toEqual([]);
    // the event names the message, not its envelope
    expect(events.map((e) => [e.metadata.message, e.metadata.reason, e.metadata.from])).toEqual([['job', reason, sender.self]]);
  });

  it('counts every envelope in and out over many sends', () => {
    const { mail } = setup();
    const p = proc();
    const ls = Array.from({ length: 10 }, () => listener());
    ls.forEach((l, i) => mail.deliverEnvelope(undefined, p, i, `id-${i}`, l));
    expect(mail.envelopes).toBe(10);
    for (let i = 0; i < 4; i++) {
      mail.opened(p, take(p) as Envelope);
      mail.settleInflight(p, 'handled');
    }
    expect(mail.envelopes).toBe(6);
    expect(mail.withdrawEnvelope(p, 'id-7')).toBe(true);
    expect(mail.envelopes).toBe(5);
    const left = mail.discard(p)!;
    for (const env of left) mail.settleEnvelope(env, 'down', 'killed');
    expect(mail.envelopes).toBe(0);
    expect(ls.map((l) => l.calls[0]![1] ?? l.calls[0]![0])).toEqual(['handled', 'handled', 'handled', 'handled', 'down', 'down', 'down', 'withdrawn', 'down', 'down']);
  });

  it('logs a listener that throws, still counts its envelope out, and does not log the exit sentinel', () => {
    const { mail, log } = setup();
    const p = proc();
    const boom = new Error('listener failed');
    mail.deliverEnvelope(undefined, p, 'a', 'id-a', { handled: () => {}, failed: () => {
      throw boom;
    } });
    mail.deliverEnvelope(undefined, p, 'b', 'id-b', { handled: () => {}, failed: () => {
      throw EXIT_SENTINEL;
    } });
    expect(mail.withdrawEnvelope(p, 'id-a')).toBe(true);
    expect(mail.withdrawEnvelope(p, 'id-b')).toBe(true);
    expect(mail.envelopes).toBe(0);
    expect(log).toEqual([{ level: 'error', message: 'an envelope listener threw', detail: boom }]);
  });

  describe('withdrawEnvelope', () => {
    it('takes back every queued envelope of an id, settles each withdrawn, and keeps the order of the rest', () => {
      const { mail } = setup();
      const p = proc();
      const l1 = listener();
      const l2 = listener();
      mail.enqueue(p, 'plain', undefined);
      mail.deliverEnvelope(undefined, p, 'first', 'dup', l1);
      mail.deliverEnvelope(undefined, p, 'other', 'keep', listener());
      mail.deliverEnvelope(undefined, p, 'second', 'dup', l2);
      mail.enqueue(p, 'tail', undefined);
      expect(mail.withdrawEnvelope(p, 'dup')).toBe(true);
      expect(queued(p).map((m) => (Envelope.is(m) ? m.message : m))).toEqual(['plain', 'other', 'tail']);
      expect(l1.calls).toEqual([['failed', 'withdrawn', undefined]]);
      expect(l2.calls).toEqual([['failed', 'withdrawn', undefined]]);
      expect(mail.envelopes).toBe(1);
      expect(mail.withdrawEnvelope(p, 'dup')).toBe(false);
    });

    it('with a listener, takes back only the envelopes of that listener (another send may use the same id)', () => {
      const { mail } = setup();
      const p = proc();
      const mine = listener();
      const theirs = listener();
      mail.deliverEnvelope(undefined, p, 'theirs', 'same', theirs);
      mail.deliverEnvelope(undefined, p, 'mine', 'same', mine);
      expect(mail.withdrawEnvelope(p, 'same', mine)).toBe(true);
      expect(mine.calls).toEqual([['failed', 'withdrawn', undefined]]);
      expect(theirs.calls).toEqual([]);
      expect(queued(p).map((m) => (m as Envelope).message)).toEqual(['theirs']);
      expect(mail.withdrawEnvelope(p, 'same', mine)).toBe(false);
      expect(mail.envelopes).toBe(1);
    });

    it('does not take back an envelope already being handled, nor one of another id', () => {
      const { mail } = setup();
      const p = proc();
      const l = listener();
      mail.deliverEnvelope(undefined, p, 'job', 'id-1', l);
      mail.opened(p, take(p) as Envelope);
      expect(mail.withdrawEnvelope(p, 'id-1')).toBe(false);
      expect(mail.withdrawEnvelope(p, 'id-2')).toBe(false);
      expect(l.calls).toEqual([]);
      expect(mail.envelopes).toBe(1);
    });

    it('looks at nothing while no envelope exists on the node (a user message shaped like one is no envelope)', () => {
      const { mail } = setup();
      const p = proc();
      const lookalike = { message: 'x', id: 'id-1', listener: undefined, settled: false };
      mail.enqueue(p, lookalike, undefined);
      expect(mail.withdrawEnvelope(p, 'id-1')).toBe(false);
      expect(queued(p)).toEqual([lookalike]);
    });
  });

  it('discard empties the mailbox and returns the queued envelopes in order, without settling them', () => {
    const { mail } = setup();
    const p = proc();
    const l = listener();
    mail.enqueue(p, 'a', undefined);
    mail.deliverEnvelope(undefined, p, 'e1', 'id-1', l);
    mail.enqueue(p, 'b', undefined);
    mail.deliverEnvelope(undefined, p, 'e2', 'id-2', l);
    take(p); // wrap a little
    const envs = mail.discard(p)!;
    expect(envs.map((e) => e.message)).toEqual(['e1', 'e2']);
    expect(l.calls).toEqual([]);
    expect(mail.envelopes).toBe(2);
    expect([p.buf, p.head, p.size]).toEqual([EMPTY, 0, 0]);
    expect(p.buf).toBe(EMPTY);
  });

  describe('discard and the exit watchers queued as messages (pending calls)', () => {
    /** A message that watches a process, as a pending call watches its server; records being told it was left queued. */
    class Request extends ExitWatcher {
      readonly label: string;
      readonly told: string[];
      constructor(label: string, watched: Proc, told: string[]) {
        super();
        this.label = label;
        this.told = told;
        this.watched = watched;
      }
      onExit(): void {}
      override leftQueued(): void {
        this.told.push(this.label);
      }
    }

    it('tells each one still queued that watches the dying process, in order, and not the one its handler took nor one watching another', () => {
      const { mail } = setup();
      const p = proc();
      const told: string[] = [];
      const taken = new Request('taken', p, told);
      p.ext().watchers = taken; // a process with watchers: the only kind a pending call can be queued for
      mail.enqueue(p, taken, undefined);
      take(p); // the handler took it
      const { proxies, traps } = hostileProxies(1);
      for (const m of [new Request('first', p, told), 'plain', new Request('watches another', proc(), told), proxies[0], new Request('second', p, told)]) mail.enqueue(p, m, undefined);
      expect(mail.discard(p)).toBeUndefined();
      expect(told).toEqual(['first', 'second']);
      expect(traps()).toBe(0);
      expect([p.buf, p.size]).toEqual([EMPTY, 0]);
    });

    it('tells them beside the envelopes it returns', () => {
      const { mail } = setup();
      const p = proc();
      const told: string[] = [];
      const request = new Request('call', p, told);
      p.ext().watchers = request;
      mail.deliverEnvelope(undefined, p, 'e1', 'id-1', listener());
      mail.enqueue(p, request, undefined);
      expect(mail.discard(p)?.map((e) => e.message)).toEqual(['e1']);
      expect(told).toEqual(['call']);
    });

    it('reads no message of a process that has no watchers (no pending call can wait on it): its mailbox is dropped whole', () => {
      const { mail } = setup();
      const p = proc();
      const told: string[] = [];
      mail.enqueue(p, new Request('stray', p, told), undefined);
      expect(mail.discard(p)).toBeUndefined();
      expect(told).toEqual([]);
      expect(p.size).toBe(0);
    });
  });

  it('discard returns the one envelope of a mailbox when it is the only one on the node', () => {
    const { mail } = setup();
    const p = proc();
    mail.enqueue(p, 'a', undefined);
    mail.deliverEnvelope(undefined, p, 'only', 'id-1', listener());
    expect(mail.discard(p)?.map((e) => e.message)).toEqual(['only']);
    expect(mail.envelopes).toBe(1);
  });

  it('discard returns undefined when the mailbox holds no envelope, or no envelope exists', () => {
    const { mail } = setup();
    const p = proc();
    expect(mail.discard(p)).toBeUndefined();
    mail.enqueue(p, 'a', undefined);
    expect(mail.discard(p)).toBeUndefined();
    expect(p.buf).toBe(EMPTY);
    const q = proc();
    mail.deliverEnvelope(undefined, q, 'elsewhere', 'id', listener());
    const r = proc();
    mail.enqueue(r, 'b', undefined);
    expect(mail.discard(r)).toBeUndefined();
    expect(r.size).toBe(0);
  });
});

describe('the long-mailbox monitor', () => {
  it('emits one event and one warning when a mailbox reaches above, one cleared event when it falls to below', () => {
    const { mail, events, log } = setup([5, 2]);
    const p = proc(F_SCHEDULED);
    for (let i = 0; i < 4; i++) mail.enqueue(p, i, undefined);
    expect(events).toEqual([]);
    mail.enqueue(p, 4, undefined);
    expect(events).toStrictEqual([{ event: 'keel.process.long_mailbox', measurements: { length: 5 }, metadata: { pid: p.self, name: undefined, above: 5, below: 2 } }]);
    expect(log).toHaveLength(1);
    expect(log[0]!.level).toBe('warn');
    expect(log[0]!.message).toContain(`process ${String(p.self)} has 5 messages queued`);
    expect(mail.long).toBe(1);
    expect(p.flags & F_LONG).toBe(F_LONG);
    // longer still: no more events
    for (let i = 5; i < 12; i++) mail.enqueue(p, i, undefined);
    expect(events).toHaveLength(1);
    // down to 3: still long (above below); back up to above while long: no second event
    while (p.size > 3) take(p);
    mail.checkShort(p);
    expect(events).toHaveLength(1);
    mail.enqueue(p, 'x', undefined);
    mail.enqueue(p, 'y', undefined);
    expect(p.size).toBe(5);
    expect(events).toHaveLength(1);
    expect(log).toHaveLength(1);
    expect(mail.long).toBe(1);
    while (p.size > 3) take(p);
    take(p);
    mail.checkShort(p);
    mail.checkShort(p);
    expect(events.slice(1)).toStrictEqual([
      { event: 'keel.process.long_mailbox_cleared', measurements: { length: 2 }, metadata: { pid: p.self, name: undefined, above: 5, below: 2 } },
    ]);
    expect(mail.long).toBe(0);
    expect(p.flags & F_LONG).toBe(0);
    // a second crossing is a second event
    while (p.size < 5) mail.enqueue(p, 'again', undefined);
    expect(events.map((e) => e.event)).toEqual(['keel.process.long_mailbox', 'keel.process.long_mailbox_cleared', 'keel.process.long_mailbox']);
    expect(log).toHaveLength(2);
    expect(mail.long).toBe(1);
  });

  it('names a registered process in its event and warning', () => {
    const { mail, events, log } = setup([2, 0]);
    const p = proc(F_SCHEDULED);
    p.ext().name = 'cache';
    mail.enqueue(p, 1, undefined);
    mail.enqueue(p, 2, undefined);
    expect(events[0]!.metadata.name).toBe('cache');
    expect(log[0]!.message).toContain(`process ${String(p.self)} (cache) has 2 messages queued`);
  });

  it('counts a bounded mailbox that reaches above too', () => {
    const { mail, events } = setup([3, 1]);
    const p = bounded(10, 'reject');
    for (let i = 0; i < 3; i++) mail.enqueue(p, i, undefined);
    expect(events.map((e) => e.event)).toEqual(['keel.process.long_mailbox']);
    expect(mail.long).toBe(1);
  });

  it('forget counts out a long mailbox (its process died), and only a long one', () => {
    const { mail } = setup([2, 0]);
    const p = proc(F_SCHEDULED);
    const q = proc(F_SCHEDULED);
    mail.enqueue(p, 1, undefined);
    mail.enqueue(p, 2, undefined);
    mail.enqueue(q, 1, undefined);
    expect(mail.long).toBe(1);
    mail.forget(q);
    expect(mail.long).toBe(1);
    mail.forget(p);
    expect(mail.long).toBe(0);
  });

  it('is off with bounds [Infinity, -1]: no event however long the mailbox', () => {
    const { mail, events } = setup([Infinity, -1]);
    const p = proc(F_SCHEDULED);
    for (let i = 0; i < 20_000; i++) mail.enqueue(p, i, undefined);
    mail.checkShort(p);
    expect(events).toEqual([]);
    expect(mail.long).toBe(0);
  });
});

describe('dropped', () => {
  it('emits one event, from the node when no sender is given, with the overflow only when one is given', () => {
    const { mail, events } = setup();
    const p = proc();
    mail.dropped(undefined, 'a-name', 'm', 'noproc');
    mail.dropped(p, p.self, new Envelope('inner', 'id', undefined), 'mailbox_full', 'drop_oldest');
    expect(events).toStrictEqual([
      { event: DROPPED, measurements: { count: 1 }, metadata: { from: 'node', to: 'a-name', message: 'm', reason: 'noproc' } },
      { event: DROPPED, measurements: { count: 1 }, metadata: { from: p.self, to: p.self, message: 'inner', reason: 'mailbox_full', overflow: 'drop_oldest' } },
    ]);
  });
});
