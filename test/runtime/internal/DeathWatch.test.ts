// Death watch (src/runtime/internal/DeathWatch.ts), driven directly: real process records in a real
// table, real mailboxes whose waker only records (no process runs), and fake hosts that record the
// log and the telemetry events (see ./fakes.ts, `kernel()`).
import { describe, expect, it } from 'vitest';
import { isKeelError } from '../../../src/errors.js';
import { Cause } from '../../../src/runtime/internal/DeathWatch.js';
import type { Envelope } from '../../../src/runtime/internal/Envelope.js';
import { EMPTY, EXIT_SENTINEL, ExitWatcher, F_BUSY, F_DEAD, F_KILLED, F_LONG, F_RUNNING, F_SCHEDULED, F_SHUTDOWN, F_TOP, F_TRAP, type Proc } from '../../../src/runtime/internal/Proc.js';
import { DownMessage, type ExitReason, ExitMessage } from '../../../src/runtime/messages.js';
import { PidImpl, procOf, RefImpl } from '../../../src/runtime/Pid.js';
import { CREATION, kernel, type Kernel, listener, NODE, queued, take } from './fakes.js';

/** Records the deaths of `ps` (through a death hook each) as [id, reason], in the order they happen. */
function deathsOf(k: Kernel, ps: readonly Proc[]): [number, ExitReason][] {
  const order: [number, ExitReason][] = [];
  for (const p of ps) k.deaths.onExit(p, (reason) => order.push([p.self.id, reason]));
  return order;
}

class Watcher extends ExitWatcher {
  readonly name: string;
  readonly told: string[];
  then: (() => void) | undefined;
  constructor(name: string, told: string[], then?: () => void) {
    super();
    this.name = name;
    this.told = told;
    this.then = then;
  }
  onExit(reason: ExitReason): void {
    this.told.push(`${this.name}:${String(reason)}`);
    this.then?.();
  }
}


function isAlive(k: Kernel, p: Proc): boolean {
  return (p.flags & F_DEAD) === 0 && k.resolve(p.self) === p;
}

describe('links', () => {
  it('link and addLink record the link on both sides; unlink removes both', () => {
    const k = kernel();
    const [a, b, c] = [k.spawn(), k.spawn(), k.spawn()];
    k.deaths.link(a, b.self);
    k.deaths.addLink(a, c);
    expect([...a.x!.links!]).toEqual([b, c]);
    expect([...b.x!.links!]).toEqual([a]);
    expect([...c.x!.links!]).toEqual([a]);
    k.deaths.unlink(b, a.self); // from either side
    expect([...a.x!.links!]).toEqual([c]);
    expect([...b.x!.links!]).toEqual([]);
    k.deaths.link(a, c.self); // twice is once
    expect(a.x!.links!.size).toBe(1);
  });

  it('linking a process to itself does nothing', () => {
    const k = kernel();
    const a = k.spawn();
    k.deaths.link(a, a.self);
    expect(a.x).toBeUndefined();
  });

  it('linking to a dead pid sends a noproc exit signal at once: a process not trapping dies, unlogged', () => {
    const k = kernel();
    const a = k.spawn();
    const gone = k.spawn();
    k.deaths.die(gone, 'normal', Cause.Signal);
    const order = deathsOf(k, [a]);
    k.deaths.link(a, gone.self);
    expect(order).toEqual([[a.self.id, 'noproc']]);
    expect(k.log.entries).toEqual([]);
  });

  it('linking to a dead pid (a plain copy of one) gives a trapping process an Exit from that pid', () => {
    const k = kernel();
    const a = k.spawn(F_TRAP);
    const copy = { node: NODE, creation: CREATION, id: 999 };
    k.deaths.link(a, copy);
    const [m] = queued(a);
    expect(m).toBeInstanceOf(ExitMessage);
    const exit = m as ExitMessage;
    expect(exit.reason).toBe('noproc');
    expect(PidImpl.is(exit.from)).toBe(true);
    expect({ ...(exit.from as PidImpl) }).toEqual(copy);
    expect(isAlive(k, a)).toBe(true);
  });

  it('unlinking from a dead or unknown pid changes nothing', () => {
    const k = kernel();
    const [a, b] = [k.spawn(), k.spawn()];
    k.deaths.addLink(a, b);
    k.deaths.unlink(a, { node: NODE, creation: CREATION, id: 999 });
    k.deaths.unlink(a, { node: 'elsewhere', creation: CREATION, id: b.self.id });
    expect([...a.x!.links!]).toEqual([b]);
  });
});

describe('monitors', () => {
  it('records one Monitor on both sides under a fresh ref; demonitor removes both, once', () => {
    const k = kernel();
    const [a, b] = [k.spawn(), k.spawn()];
    const r1 = k.deaths.monitor(a, b.self);
    const r2 = k.deaths.monitor(a, b.self);
    expect(r1).toBeInstanceOf(RefImpl);
    expect([r1.node, r2.id - r1.id]).toEqual([NODE, 1]);
    const m = a.x!.monitors!.get(r1)!;
    expect(b.x!.monitoredBy!.get(r1)).toBe(m);
    expect([m.owner, m.target, m.name, m.ref]).toEqual([a, b, undefined, r1]);
    expect(k.deaths.demonitor(a, r1, false)).toBe(true);
    expect(k.deaths.demonitor(a, r1, false)).toBe(false);
    expect([...a.x!.monitors!.keys()]).toEqual([r2]);
    expect([...b.x!.monitoredBy!.keys()]).toEqual([r2]);
  });

  it('demonitor with flush takes that monitor’s Down out of the mailbox, and nothing else', () => {
    const k = kernel();
    const [a, b, c] = [k.spawn(), k.spawn(), k.spawn()];
    const rb = k.deaths.monitor(a, b.self);
    const rc = k.deaths.monitor(a, c.self);
    k.mail.enqueue(a, 'before', undefined);
    k.deaths.die(b, 'normal', Cause.Signal);
    k.deaths.die(c, 'normal', Cause.Signal);
    k.mail.enqueue(a, 'after', undefined);
    expect(queued(a)).toHaveLength(4);
    // the monitor is gone already (its Down came): false, but the flush still applies
    expect(k.deaths.demonitor(a, rb, true)).toBe(false);
    expect(queued(a).map((m) => (DownMessage.is(m) ? m.ref : m))).toEqual(['before', rc, 'after']);
  });

  it('monitoring a dead pid queues a noproc Down at once, and records nothing', () => {
    const k = kernel();
    const [a, b] = [k.spawn(), k.spawn()];
    k.deaths.die(b, 'normal', Cause.Signal);
    const ref = k.deaths.monitor(a, b.self);
    expect(queued(a)).toEqual([new DownMessage(ref, b.self, 'noproc', undefined)]);
    expect((queued(a)[0] as DownMessage).pid).toBe(b.self);
    expect(a.x).toBeUndefined();
  });

  it('monitoring a name nobody holds queues a noproc Down naming it, from the node’s placeholder pid', () => {
    const k = kernel();
    const a = k.spawn();
    const ref = k.deaths.monitor(a, 'nobody');
    const down = queued(a)[0] as DownMessage;
    expect([down.ref, down.pid, down.reason, down.name]).toEqual([ref, k.placeholder, 'noproc', 'nobody']);
    expect(down.pid).toBe(k.placeholder);
  });

  it('a monitor set up on a registered name names it in its Down', () => {
    const k = kernel();
    const [a, b] = [k.spawn(), k.spawn()];
    k.registry.registerProc('svc', b);
    const ref = k.deaths.monitor(a, 'svc');
    expect(a.x!.monitors!.get(ref)!.name).toBe('svc');
    k.deaths.die(b, 'shutdown', Cause.Signal);
    expect(queued(a)).toEqual([new DownMessage(ref, b.self, 'shutdown', 'svc')]);
  });

  it.each<[string, unknown]>([
    ['a number', 42],
    ['an empty name', ''],
    ['null', null],
    ['a pid-shaped object with a bad id', { node: NODE, creation: CREATION, id: 'x' }],
  ])('refuses %s as a target with ERR_INVALID_ARGUMENT, recording nothing', (_label, target) => {
    const k = kernel();
    const a = k.spawn();
    let error: unknown;
    try {
      k.deaths.monitor(a, target as never);
    } catch (e) {
      error = e;
    }
    expect(isKeelError(error, 'ERR_INVALID_ARGUMENT')).toBe(true);
    expect((error as { argument: string }).argument).toBe('target');
    expect(a.x).toBeUndefined();
    expect(a.size).toBe(0);
  });
});

describe('die', () => {
  it('cleans up both sides of every link, monitor, name, group and timer, and the pid no longer resolves', () => {
    const k = kernel();
    const [a, linked, monitored, watcher] = [k.spawn(), k.spawn(F_TRAP), k.spawn(), k.spawn()];
    k.deaths.addLink(a, linked);
    const out = k.deaths.monitor(a, monitored.self);
    const into = k.deaths.monitor(watcher, a.self);
    k.registry.registerProc('svc', a);
    k.groups.join('g', a.self);
    const timer = k.timers.schedule(1000, () => {});
    (a.ext().timers = new Set()).add(timer);
    const before = k.procs.size;
    const boom = new Error('boom');
    k.deaths.die(a, boom, Cause.Crash);
    // the process
    expect(a.flags & F_DEAD).toBe(F_DEAD);
    expect(a.handler).toBeNull();
    expect(k.procs.size).toBe(before - 1);
    expect(k.procs.get(a.self.id)).toBeUndefined();
    expect(k.resolve(a.self)).toBeUndefined();
    expect(procOf(a.self)).toBeUndefined();
    expect(a.x!.reason).toBe(boom);
    expect(a.signal.aborted).toBe(true);
    expect(a.signal.reason).toBe(boom);
    // the other sides
    expect(linked.x!.links!.size).toBe(0);
    expect(queued(linked)).toEqual([new ExitMessage(a.self, boom)]);
    expect(monitored.x!.monitoredBy!.size).toBe(0);
    expect(watcher.x!.monitors!.size).toBe(0);
    expect(queued(watcher)).toEqual([new DownMessage(into, a.self, boom, undefined)]);
    expect(a.x!.links).toBeUndefined();
    expect(a.x!.monitors).toBeUndefined();
    expect(a.x!.monitoredBy).toBeUndefined();
    expect(out).toBeInstanceOf(RefImpl);
    // the node's tables
    expect(k.registry.lookup('svc')).toBeUndefined();
    expect(k.groups.members('g')).toEqual([]);
    expect(k.timers.size).toBe(0);
    // watched (a link, a monitor): no crash report
    expect(k.log.entries).toEqual([]);
    expect(k.idleChecks).toBe(1);
  });

  it('delivers one Down to each monitor, with its own ref and the reason', () => {
    const k = kernel();
    const target = k.spawn();
    const owners = [k.spawn(), k.spawn(), k.spawn()];
    const refs = owners.map((o) => k.deaths.monitor(o, target.self));
    const twice = k.deaths.monitor(owners[0]!, target.self);
    const reason = { shutdown: 'maintenance' };
    k.deaths.die(target, reason, Cause.OwnExit);
    expect(queued(owners[0]!)).toEqual([new DownMessage(refs[0]!, target.self, reason, undefined), new DownMessage(twice, target.self, reason, undefined)]);
    expect(queued(owners[1]!)).toEqual([new DownMessage(refs[1]!, target.self, reason, undefined)]);
    expect(queued(owners[2]!)).toEqual([new DownMessage(refs[2]!, target.self, reason, undefined)]);
    expect((queued(owners[1]!)[0] as DownMessage).reason).toBe(reason);
  });

  it('a second death of the same process does nothing', () => {
    const k = kernel();
    const [a, b] = [k.spawn(), k.spawn()];
    k.deaths.monitor(b, a.self);
    const order = deathsOf(k, [a]);
    k.deaths.die(a, 'normal', Cause.Signal);
    k.deaths.die(a, new Error('again'), Cause.Crash);
    expect(order).toEqual([[a.self.id, 'normal']]);
    expect(queued(b)).toHaveLength(1);
    expect(k.log.entries).toEqual([]);
  });

  it('reports what was left in the mailbox in one dropped event, and settles the queued envelopes down', () => {
    const k = kernel({ events: ['keel.message.dropped'] });
    const a = k.spawn();
    const l = listener();
    k.mail.enqueue(a, 'one', undefined);
    k.mail.deliverEnvelope(undefined, a, 'two', 'id-2', l);
    k.mail.enqueue(a, 'three', undefined);
    k.deaths.die(a, 'killed', Cause.Signal);
    expect(k.events).toStrictEqual([
      // the supervised messages among them by id (the raw ones have none)
      { event: 'keel.message.dropped', measurements: { count: 3 }, metadata: { from: 'node', to: a.self, reason: 'receiver_exited', exitReason: 'killed', ids: ['id-2'] } },
    ]);
    expect(l.calls).toEqual([['failed', 'down', 'killed']]);
    expect(k.mail.envelopes).toBe(0);
    expect([a.buf, a.size]).toEqual([EMPTY, 0]);
    // raw messages only: no ids
    const b = k.spawn();
    k.mail.enqueue(b, 'four', undefined);
    k.deaths.die(b, 'killed', Cause.Signal);
    expect(k.events[1]).toStrictEqual({ event: 'keel.message.dropped', measurements: { count: 1 }, metadata: { from: 'node', to: b.self, reason: 'receiver_exited', exitReason: 'killed' } });
  });

  it.each<[string, Cause, ExitReason, unknown[]]>([
    ['a crash', Cause.Crash, new Error('boom'), ['failed', 'crashed']],
    ['a kill', Cause.Signal, 'killed', ['failed', 'crashed', 'killed']],
    ['a clean exit of its own (ctx.exit from the handler)', Cause.OwnExit, 'normal', ['handled']],
    ['a clean exit signal while it handled the message', Cause.Signal, 'shutdown', ['failed', 'crashed', 'shutdown']],
  ])('settles the envelope being handled at %s', (_label, cause, reason, expected) => {
    const k = kernel();
    const a = k.spawn();
    const l = listener();
    k.mail.deliverEnvelope(undefined, a, 'job', 'id', l);
    k.mail.opened(a, take(a) as Envelope);
    k.deaths.die(a, reason, cause);
    expect(l.calls).toHaveLength(1);
    expect(l.calls[0]!.slice(0, expected.length)).toEqual(expected);
    if (expected[0] === 'failed' && expected.length === 2) expect(l.calls[0]![2]).toBe(reason);
    expect(k.mail.envelopes).toBe(0);
  });

  it.each<[string, 'other' | 'node' | 'self', unknown[]]>([
    ['from a linked process its own handler stopped (ctx.exit(linked, shutdown))', 'other', ['failed', 'crashed', 'shutdown']],
    ['from the node (node.exit(ctx.self, shutdown))', 'node', ['failed', 'crashed', 'shutdown']],
    ['it sent itself (ctx.exit(ctx.self, shutdown)): it ended itself', 'self', ['handled']],
  ])('settles the envelope being handled at a clean exit signal delivered while its handler runs, %s', (_label, from, expected) => {
    const k = kernel();
    const a = k.spawn();
    const b = k.spawn();
    k.deaths.addLink(a, b);
    const l = listener();
    k.mail.deliverEnvelope(undefined, a, 'job', 'id', l);
    k.mail.opened(a, take(a) as Envelope);
    a.flags |= F_RUNNING; // its handler is on the stack: the signal is delivered synchronously from there
    if (from === 'other') k.deaths.signal(b, a.self, 'shutdown'); // b dies, and its link's 'shutdown' ends a
    else k.deaths.signal(a, from === 'node' ? 'node' : a.self, 'shutdown');
    expect(a.flags & F_DEAD).toBe(F_DEAD);
    expect(l.calls).toEqual([expected]);
    expect(k.mail.envelopes).toBe(0);
  });

  it('counts a busy process and a long mailbox out', () => {
    const k = kernel();
    const a = k.spawn(F_BUSY | F_LONG);
    k.sched.busy = 1;
    k.mail.long = 1;
    k.deaths.die(a, 'shutdown', Cause.Signal);
    expect([k.sched.busy, k.mail.long]).toEqual([0, 0]);
    expect(a.flags & (F_BUSY | F_LONG)).toBe(0);
  });

  it.each<[ExitReason, number]>([
    ['normal', 0],
    ['shutdown', F_SHUTDOWN],
    ['killed', F_KILLED],
  ])('keeps the reason %s of a process with no extras in its flags, and ctx.signal reads it', (reason, flag) => {
    const k = kernel();
    const a = k.spawn();
    k.mail.enqueue(a, 'left', undefined); // not the short path: something was queued
    k.deaths.die(a, reason, Cause.Signal);
    expect(a.x).toBeUndefined();
    expect(a.flags & (F_SHUTDOWN | F_KILLED)).toBe(flag);
    expect(a.signal.reason).toBe(reason);
  });
});

describe('exit signals', () => {
  it('kill is untrappable: a trapping process dies with killed', () => {
    const k = kernel();
    const [a, b] = [k.spawn(F_TRAP), k.spawn()];
    const ref = k.deaths.monitor(b, a.self);
    k.deaths.signal(a, 'node', 'kill');
    expect(isAlive(k, a)).toBe(false);
    expect(queued(a)).toEqual([]);
    expect(queued(b)).toEqual([new DownMessage(ref, a.self, 'killed', undefined)]);
    expect(k.log.entries).toEqual([]);
  });

  it.each<[string, ExitReason]>([
    ['an error', new Error('boom')],
    ['shutdown', 'shutdown'],
    ['{ shutdown }', { shutdown: 1 }],
    ['normal', 'normal'],
    ['killed (a linked process’s reason, not a kill)', 'killed'],
  ])('a trapping process gets %s as an Exit message from the sender, and lives', (_label, reason) => {
    const k = kernel();
    const [a, from] = [k.spawn(F_TRAP), k.spawn()];
    k.deaths.signal(a, from.self, reason);
    k.deaths.signal(a, 'node', reason);
    expect(isAlive(k, a)).toBe(true);
    expect(queued(a)).toEqual([new ExitMessage(from.self, reason), new ExitMessage('node', reason)]);
    expect((queued(a)[0] as ExitMessage).reason).toBe(reason);
  });

  it.each<[string, ExitReason]>([
    ['an error', new Error('boom')],
    ['shutdown', 'shutdown'],
    ['{ shutdown }', { shutdown: 1 }],
    ['noproc', 'noproc'],
    ['killed', 'killed'],
  ])('a process not trapping dies of %s, with that reason, unlogged', (_label, reason) => {
    const k = kernel();
    const [a, from] = [k.spawn(), k.spawn()];
    const order = deathsOf(k, [a]);
    k.deaths.signal(a, from.self, reason);
    expect(order).toEqual([[a.self.id, reason]]);
    expect(order[0]![1]).toBe(reason);
    expect(k.log.entries).toEqual([]);
  });

  it('normal is ignored by a process not trapping, unless it comes from the process itself', () => {
    const k = kernel();
    const [a, from] = [k.spawn(), k.spawn()];
    const order = deathsOf(k, [a]);
    k.deaths.signal(a, from.self, 'normal');
    k.deaths.signal(a, 'node', 'normal');
    expect(isAlive(k, a)).toBe(true);
    expect(queued(a)).toEqual([]);
    k.deaths.signal(a, a.self, 'normal');
    expect(order).toEqual([[a.self.id, 'normal']]);
  });

  it('a signal to a dead process does nothing', () => {
    const k = kernel();
    const a = k.spawn();
    const order = deathsOf(k, [a]);
    k.deaths.die(a, 'shutdown', Cause.Signal);
    k.deaths.signal(a, 'node', 'kill');
    k.deaths.signal(a, 'node', new Error('late'));
    expect(order).toEqual([[a.self.id, 'shutdown']]);
  });

  it('exitSignal resolves its target: a live pid, a plain copy of one, and an unknown pid (nothing)', () => {
    const k = kernel();
    const [a, b, from] = [k.spawn(), k.spawn(), k.spawn()];
    const order = deathsOf(k, [a, b]);
    k.deaths.exitSignal(a.self, from, 'shutdown');
    k.deaths.exitSignal({ node: NODE, creation: CREATION, id: b.self.id }, 'node', 'kill');
    k.deaths.exitSignal({ node: NODE, creation: CREATION, id: 12345 }, 'node', 'kill');
    k.deaths.exitSignal({ node: NODE, creation: CREATION + 1, id: from.self.id }, 'node', 'kill');
    expect(order).toEqual([
      [a.self.id, 'shutdown'],
      [b.self.id, 'killed'],
    ]);
    expect(isAlive(k, from)).toBe(true);
  });
});

describe('cascades along links', () => {
  it('runs breadth-first from the dead process, each linked process dying with the reason', () => {
    const k = kernel();
    const [a, b, c, d, e] = [k.spawn(), k.spawn(), k.spawn(), k.spawn(), k.spawn()];
    // a - b - d, a - c - e
    k.deaths.addLink(a, b);
    k.deaths.addLink(a, c);
    k.deaths.addLink(b, d);
    k.deaths.addLink(c, e);
    const order = deathsOf(k, [a, b, c, d, e]);
    const boom = new Error('boom');
    k.deaths.die(a, boom, Cause.Crash);
    expect(order.map(([id]) => id)).toEqual([a, b, c, d, e].map((p) => p.self.id));
    expect(order.every(([, r]) => r === boom)).toBe(true);
    // the crash of a is watched (linked): nothing logged; the others died of a signal
    expect(k.log.entries).toEqual([]);
  });

  it('stops at a trapping process, which gets the Exit instead', () => {
    const k = kernel();
    const [a, b, c] = [k.spawn(), k.spawn(F_TRAP), k.spawn()];
    k.deaths.addLink(a, b);
    k.deaths.addLink(b, c);
    const boom = new Error('boom');
    k.deaths.die(a, boom, Cause.Crash);
    expect([isAlive(k, a), isAlive(k, b), isAlive(k, c)]).toEqual([false, true, true]);
    expect(queued(b)).toEqual([new ExitMessage(a.self, boom)]);
    expect([...b.x!.links!]).toEqual([c]);
  });

  it('a normal exit does not take linked processes down', () => {
    const k = kernel();
    const [a, b] = [k.spawn(), k.spawn()];
    k.deaths.addLink(a, b);
    k.deaths.die(a, 'normal', Cause.OwnExit);
    expect(isAlive(k, b)).toBe(true);
    expect(b.x!.links!.size).toBe(0);
  });

  it('takes down a chain of 10,000 links in order, without recursion (no stack overflow)', () => {
    const k = kernel();
    const chain = Array.from({ length: 10_000 }, () => k.spawn());
    for (let i = 1; i < chain.length; i++) k.deaths.addLink(chain[i - 1]!, chain[i]!);
    const order = deathsOf(k, chain);
    const boom = new Error('boom');
    const before = k.procs.size;
    expect(() => k.deaths.die(chain[0]!, boom, Cause.Crash)).not.toThrow();
    expect(order).toHaveLength(10_000);
    expect(order.map(([id]) => id)).toEqual(chain.map((p) => p.self.id));
    expect(order.every(([, r]) => r === boom)).toBe(true);
    expect(k.procs.size).toBe(before - 10_000);
    expect(k.log.entries).toEqual([]);
  });

  it('a signal sent by a death hook is delivered behind the link signals that death queued', () => {
    const k = kernel();
    const [a, linked, other] = [k.spawn(), k.spawn(), k.spawn()];
    k.deaths.addLink(a, linked);
    const order = deathsOf(k, [a, linked, other]);
    k.deaths.onExit(a, () => k.deaths.signal(other, 'node', 'kill'));
    k.deaths.die(a, new Error('boom'), Cause.Crash);
    expect(order.map(([id, r]) => [id, r instanceof Error ? 'boom' : r])).toEqual([
      [a.self.id, 'boom'],
      [linked.self.id, 'boom'],
      [other.self.id, 'killed'],
    ]);
  });
});

describe('the crash report (logging rule)', () => {
  const boom = () => new Error('boom');
  it.each<[string, Cause, ExitReason, 'none' | 'link' | 'monitor', boolean]>([
    ['a crash nobody watches', Cause.Crash, boom(), 'none', true],
    ['an own exit with an error nobody watches', Cause.OwnExit, boom(), 'none', true],
    ['an own exit with killed nobody watches', Cause.OwnExit, 'killed', 'none', true],
    ['a crash with killed nobody watches (the short path)', Cause.Crash, 'killed', 'none', true],
    ['an exit signal nobody watches', Cause.Signal, boom(), 'none', false],
    ['a kill nobody watches (the short path)', Cause.Signal, 'killed', 'none', false],
    ['a crash a link watches', Cause.Crash, boom(), 'link', false],
    ['a crash a monitor watches', Cause.Crash, boom(), 'monitor', false],
    ['an own exit with noproc a monitor watches', Cause.OwnExit, 'noproc', 'monitor', false],
    ['a normal own exit', Cause.OwnExit, 'normal', 'none', false],
    ['a shutdown own exit', Cause.OwnExit, 'shutdown', 'none', false],
    ['a { shutdown } own exit', Cause.OwnExit, { shutdown: 'x' }, 'none', false],
    ['a normal crash (an init that ended)', Cause.Crash, 'normal', 'none', false],
  ])('%s: logged %s', (_label, cause, reason, watch, logged) => {
    const k = kernel();
    const [a, other] = [k.spawn(F_TRAP), k.spawn(F_TRAP)];
    if (watch === 'link') k.deaths.addLink(a, other);
    if (watch === 'monitor') k.deaths.monitor(other, a.self);
    k.deaths.die(a, reason, cause);
    if (logged) {
      // the reason once: an Error's stack (which starts with 'Error: boom'), a string as it is; no detail to print it again
      const text = reason instanceof Error ? reason.stack! : String(reason);
      expect(k.log.entries).toEqual([{ level: 'error', message: `process ${String(a.self)} exited: ${text}`, detail: undefined }]);
      if (reason instanceof Error) expect(text.startsWith('Error: boom\n    at ')).toBe(true);
    } else {
      expect(k.log.entries).toEqual([]);
    }
  });

  it('emits keel.process.exited for an unclean exit only, saying whether it was watched', () => {
    const k = kernel({ events: ['keel.process.exited'] });
    const [a, b, c, d, other] = [k.spawn(), k.spawn(), k.spawn(), k.spawn(), k.spawn(F_TRAP)];
    k.deaths.addLink(b, other);
    const boom = new Error('boom');
    k.deaths.die(a, boom, Cause.Crash);
    k.deaths.die(b, 'noproc', Cause.Signal);
    k.deaths.die(c, 'shutdown', Cause.Signal);
    k.deaths.kill(d);
    expect(k.events).toStrictEqual([
      { event: 'keel.process.exited', measurements: {}, metadata: { pid: a.self, reason: boom, watched: false } },
      { event: 'keel.process.exited', measurements: {}, metadata: { pid: b.self, reason: 'noproc', watched: true } },
      { event: 'keel.process.exited', measurements: {}, metadata: { pid: d.self, reason: 'killed', watched: false } },
    ]);
  });
});

describe('the kill fast path', () => {
  /** What a killed process leaves: its record's state, and whether the node still finds it. */
  function remains(k: Kernel, p: Proc) {
    return {
      flags: p.flags,
      handler: p.handler,
      buf: p.buf === EMPTY ? 'EMPTY' : p.buf,
      head: p.head,
      size: p.size,
      x: p.x,
      resolves: k.resolve(p.self) !== undefined || procOf(p.self) !== undefined || k.procs.get(p.self.id) !== undefined,
      signal: p.signal.reason as unknown,
    };
  }

  it('leaves the state the slow paths leave: F_DEAD | F_KILLED, nothing queued, gone from the table', () => {
    const k = kernel();
    const fast = k.spawn(F_TOP | F_SCHEDULED);
    const viaSignal = k.spawn(F_TOP | F_SCHEDULED);
    const withMail = k.spawn(F_TOP | F_SCHEDULED);
    k.mail.enqueue(withMail, 'left', undefined); // the full death sequence (something queued)
    const withRing = k.spawn(F_TOP | F_SCHEDULED);
    k.mail.enqueue(withRing, 'taken', undefined);
    take(withRing); // a ring, but empty: the fast path still, and it gives the ring back
    const size = k.procs.size;
    k.deaths.kill(fast);
    k.deaths.signal(viaSignal, 'node', 'kill');
    k.deaths.kill(withMail);
    k.deaths.kill(withRing);
    expect(k.procs.size).toBe(size - 4);
    const expected = { flags: F_TOP | F_DEAD | F_KILLED, handler: null, buf: 'EMPTY', head: 0, size: 0, x: undefined, resolves: false, signal: 'killed' };
    expect(remains(k, fast)).toEqual(expected);
    expect(remains(k, viaSignal)).toEqual(expected);
    expect(remains(k, withMail)).toEqual(expected);
    expect(remains(k, withRing)).toEqual(expected);
    expect(k.idleChecks).toBe(4);
    expect(k.log.entries).toEqual([]);
  });

  it('takes the full path when the process has extras: its links hear of it', () => {
    const k = kernel();
    const [a, b] = [k.spawn(), k.spawn()];
    k.deaths.addLink(a, b);
    const order = deathsOf(k, [a, b]);
    k.deaths.kill(a);
    expect(order).toEqual([
      [a.self.id, 'killed'],
      [b.self.id, 'killed'],
    ]);
    expect(a.flags & (F_DEAD | F_KILLED)).toBe(F_DEAD); // the reason is in its extras
    expect(a.x!.reason).toBe('killed');
  });

  it('asks for no idle check on the kill path while nobody waits for idle, and for one when someone does', () => {
    const k = kernel();
    const [a, b] = [k.spawn(), k.spawn()];
    let asked = 0;
    const idle = { waiting: 0, checkIdle: () => void asked++ };
    k.deaths.idle = idle;
    k.deaths.kill(a);
    expect(asked).toBe(0);
    idle.waiting = 1;
    k.deaths.kill(b);
    expect(asked).toBe(1);
    expect(k.procs.size).toBe(0);
  });

  it('does nothing to a process already dead', () => {
    const k = kernel();
    const a = k.spawn();
    k.deaths.die(a, 'normal', Cause.Signal);
    const checks = k.idleChecks;
    k.deaths.kill(a);
    expect(a.flags & F_KILLED).toBe(0);
    expect(a.signal.reason).toBe('normal');
    expect(k.idleChecks).toBe(checks);
  });

  it('kills a process from a death hook behind the link signals that death queued', () => {
    const k = kernel();
    const [a, b, c] = [k.spawn(), k.spawn(), k.spawn()]; // c has no extras: the fast path's candidate
    k.deaths.addLink(a, b);
    const seen: string[] = [];
    k.deaths.onExit(a, () => k.deaths.kill(c));
    k.deaths.onExit(b, () => seen.push(`b died; c ${(c.flags & F_DEAD) === 0 ? 'alive' : 'dead'}`));
    k.deaths.die(a, 'shutdown', Cause.Signal);
    expect(seen).toEqual(['b died; c alive']);
    expect(c.flags & (F_DEAD | F_KILLED)).toBe(F_DEAD | F_KILLED);
  });

  it('kills a process from a death hook after that death is done, when the death came from a signal', () => {
    const k = kernel();
    const [q, c] = [k.spawn(), k.spawn()];
    const seen: string[] = [];
    k.deaths.onExit(q, () => k.deaths.kill(c));
    k.deaths.onExit(q, () => seen.push(`c ${(c.flags & F_DEAD) === 0 ? 'alive' : 'dead'} in the next hook`));
    k.deaths.signal(q, 'node', new Error('boom'));
    expect(seen).toEqual(['c alive in the next hook']);
    expect(c.flags & (F_DEAD | F_KILLED)).toBe(F_DEAD | F_KILLED);
  });
});

describe('exit watchers and death hooks', () => {
  it('tells each watcher and runs each hook once, with the reason: watchers first (the last watched first), then hooks', () => {
    const k = kernel();
    const a = k.spawn();
    const told: string[] = [];
    const ws = ['w1', 'w2', 'w3'].map((n) => new Watcher(n, told));
    for (const w of ws) expect(k.deaths.watch(a, w)).toBe(true);
    k.deaths.onExit(a, (r) => told.push(`h1:${String(r)}`));
    k.deaths.onExit(a, (r) => told.push(`h2:${String(r)}`));
    k.deaths.die(a, 'shutdown', Cause.Signal);
    k.deaths.die(a, 'killed', Cause.Signal);
    expect(told).toEqual(['w3:shutdown', 'w2:shutdown', 'w1:shutdown', 'h1:shutdown', 'h2:shutdown']);
    for (const w of ws) expect([w.watched, w.watchNext, w.watchPrev]).toEqual([undefined, undefined, undefined]);
  });

  it.each([
    ['the head (the last watched)', 2],
    ['the middle', 1],
    ['the tail (the first watched)', 0],
  ])('unwatch takes %s off the list; the others are still told', (_label, index) => {
    const k = kernel();
    const a = k.spawn();
    const told: string[] = [];
    const ws = ['w0', 'w1', 'w2'].map((n) => new Watcher(n, told));
    for (const w of ws) k.deaths.watch(a, w);
    k.deaths.unwatch(ws[index]!);
    k.deaths.unwatch(ws[index]!); // twice: nothing more
    expect(ws[index]!.watched).toBeUndefined();
    k.deaths.die(a, 'normal', Cause.Signal);
    expect(told).toEqual(['w2:normal', 'w1:normal', 'w0:normal'].filter((t) => !t.startsWith(`w${index}`)));
  });

  it('unwatch keeps the intrusive list linked: no watcher left on it points to one taken off', () => {
    const k = kernel();
    const a = k.spawn();
    const told: string[] = [];
    const [w1, w2, w3] = ['w1', 'w2', 'w3'].map((n) => new Watcher(n, told));
    for (const w of [w1!, w2!, w3!]) k.deaths.watch(a, w); // the list: w3, w2, w1
    k.deaths.unwatch(w2!);
    k.deaths.unwatch(w1!);
    expect([w3!.watchPrev, w3!.watchNext]).toEqual([undefined, undefined]);
    expect(a.x!.watchers).toBe(w3);
    k.deaths.unwatch(w3!);
    expect(a.x!.watchers).toBeUndefined();
    k.deaths.die(a, 'normal', Cause.Signal);
    expect(told).toEqual([]);
  });

  it('aborts a ctx.signal read before the death, with the reason', () => {
    const k = kernel();
    const a = k.spawn();
    const signal = a.signal;
    const reasons: unknown[] = [];
    signal.addEventListener('abort', () => reasons.push(signal.reason));
    expect(signal.aborted).toBe(false);
    const boom = new Error('boom');
    k.deaths.die(a, boom, Cause.Crash);
    expect(reasons).toEqual([boom]);
    expect(signal.reason).toBe(boom);
  });

  it('a hook removed before the death does not run', () => {
    const k = kernel();
    const a = k.spawn();
    const ran: string[] = [];
    const remove = k.deaths.onExit(a, () => ran.push('removed'))!;
    k.deaths.onExit(a, () => ran.push('kept'));
    remove();
    k.deaths.die(a, 'normal', Cause.Signal);
    expect(ran).toEqual(['kept']);
  });

  it('a watcher unwatched by another during the death is not told', () => {
    const k = kernel();
    const a = k.spawn();
    const told: string[] = [];
    const first = new Watcher('first', told);
    const second = new Watcher('second', told, () => k.deaths.unwatch(first));
    k.deaths.watch(a, first);
    k.deaths.watch(a, second); // told first (the last watched)
    k.deaths.die(a, 'normal', Cause.Signal);
    expect(told).toEqual(['second:normal']);
  });

  it('watching or hooking a dead process registers nothing', () => {
    const k = kernel();
    const a = k.spawn();
    k.deaths.die(a, 'normal', Cause.Signal);
    const w = new Watcher('late', []);
    expect(k.deaths.watch(a, w)).toBe(false);
    expect(w.watched).toBeUndefined();
    expect(k.deaths.onExit(a, () => {})).toBeUndefined();
    expect(a.x).toBeUndefined();
  });

  it('logs a watcher or a hook that throws (not the exit sentinel), and runs the others', () => {
    const k = kernel();
    const a = k.spawn();
    const told: string[] = [];
    const wBoom = new Error('watcher failed');
    const hBoom = new Error('hook failed');
    k.deaths.watch(
      a,
      new Watcher('w-throws', told, () => {
        throw wBoom;
      }),
    );
    k.deaths.watch(
      a,
      new Watcher('w-exits', told, () => {
        throw EXIT_SENTINEL;
      }),
    );
    k.deaths.watch(a, new Watcher('w-fine', told));
    k.deaths.onExit(a, () => {
      throw hBoom;
    });
    k.deaths.onExit(a, () => {
      throw EXIT_SENTINEL;
    });
    k.deaths.onExit(a, (r) => told.push(`hook:${String(r)}`));
    k.deaths.die(a, 'shutdown', Cause.Signal);
    expect(told).toEqual(['w-fine:shutdown', 'w-exits:shutdown', 'w-throws:shutdown', 'hook:shutdown']);
    expect(k.log.entries).toEqual([
      { level: 'error', message: `an exit watcher of ${String(a.self)} threw`, detail: wBoom },
      { level: 'error', message: `a death hook of ${String(a.self)} threw`, detail: hBoom },
    ]);
  });

  it('tells watchers after the bookkeeping: the pid no longer resolves and the Downs are queued', () => {
    const k = kernel();
    const [a, b] = [k.spawn(), k.spawn()];
    k.deaths.monitor(b, a.self);
    const seen: unknown[] = [];
    k.deaths.watch(
      a,
      new Watcher('w', [], () => {
        seen.push(k.resolve(a.self), b.size, a.signal.aborted);
      }),
    );
    k.deaths.die(a, 'shutdown', Cause.Signal);
    expect(seen).toEqual([undefined, 1, true]);
  });
});
