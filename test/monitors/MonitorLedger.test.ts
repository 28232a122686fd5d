// The monitor manager's ledger on its own: entries in two intrusive lists (owner's and target's),
// a bucket per process that the process's exit clears, leak findings and the public view. The
// node and the processes are stand-ins: the ledger asks a node only to watch a process's exit and
// whether a pid is alive, and a process only for its per-process slot and its pid.
import { describe, expect, it } from 'vitest';
import { Bucket, type LedgerEntry, MonitorLedger } from '../../src/monitors/MonitorLedger.js';
import { ProcExtras, type Proc } from '../../src/runtime/internal/Proc.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { PidImpl, RefImpl } from '../../src/runtime/Pid.js';
import { remoteMonitorEnded } from '../../src/runtime/kernel.js';
import { seeded, shuffle } from '../support.js';

/** A stand-in process: the slot the ledger keeps its bucket in, and a pid. */
interface FakeProc {
  x: ProcExtras | undefined;
  readonly self: PidImpl;
  ext(): ProcExtras;
}

let nextId = 0;
function fakeProc(): FakeProc {
  const p: FakeProc = {
    x: undefined,
    self: new PidImpl('ledger-test', 1, ++nextId),
    ext: () => (p.x ??= new ProcExtras()),
  };
  return p;
}

/** A ledger on a stand-in node that records the exit watchers it is given and says alive for `alive`. */
function ledger(): {
  ledger: MonitorLedger;
  watched: [FakeProc, Bucket][];
  cleaned: [string[], 'owner' | 'target' | 'demonitor'][];
  alive: Set<PidImpl>;
  proc: () => Proc & FakeProc;
  ref: () => RefImpl;
  /** The process dies: its exit watchers (its bucket) are told, as the node does. */
  die: (p: FakeProc) => void;
} {
  const watched: [FakeProc, Bucket][] = [];
  const watching = new Map<FakeProc, Bucket[]>();
  const cleaned: [string[], 'owner' | 'target' | 'demonitor'][] = [];
  const alive = new Set<PidImpl>();
  const node = {
    watchExit: (p: FakeProc, b: Bucket) => {
      watched.push([p, b]);
      watching.set(p, [...(watching.get(p) ?? []), b]);
      return true;
    },
    isAlive: (pid: PidImpl) => alive.has(pid),
  } as unknown as KeelNode;
  const l = new MonitorLedger(node, (entries, side) => cleaned.push([entries.map((e) => e.tag ?? '?'), side]));
  let refs = 0;
  return {
    ledger: l,
    watched,
    cleaned,
    alive,
    proc: () => {
      const p = fakeProc();
      alive.add(p.self);
      return p as Proc & FakeProc;
    },
    ref: () => new RefImpl('ledger-test', ++refs),
    die: (p) => {
      alive.delete(p.self);
      // as the node does: the watchers are detached at the death, then each is told once
      const buckets = watching.get(p) ?? [];
      watching.delete(p);
      for (const b of buckets) b.onExit();
    },
  };
}

/** The tags of a bucket's owned list and of its targeted list, walked both ways (the links must agree). */
function lists(b: Bucket): { owned: string[]; targeted: string[] } {
  const walk = (head: LedgerEntry | undefined, next: (e: LedgerEntry) => LedgerEntry | undefined, prev: (e: LedgerEntry) => LedgerEntry | undefined): string[] => {
    const forward: LedgerEntry[] = [];
    for (let e = head; e !== undefined; e = next(e)) forward.push(e);
    // every link back points at the entry before it
    forward.forEach((e, i) => expect(prev(e)).toBe(i === 0 ? undefined : forward[i - 1]));
    return forward.map((e) => e.tag!);
  };
  return {
    owned: walk(b.owned, (e) => e.ownerNext, (e) => e.ownerPrev),
    targeted: walk(b.targeted, (e) => e.targetNext, (e) => e.targetPrev),
  };
}

describe('MonitorLedger add and get', () => {
  it('records an entry in its owner’s and its target’s lists, attached to its ref', () => {
    const t = ledger();
    const [a, b] = [t.proc(), t.proc()];
    const ref = t.ref();
    const e = t.ledger.add(ref, a, b, 'a->b', 100, 'the stack', false);
    expect(e).toMatchObject({ ref, tag: 'a->b', createdAt: 100, stack: 'the stack', longLived: false, live: true, reported: false });
    expect(e.owner.proc).toBe(a);
    expect(e.target.proc).toBe(b);
    expect(ref.attachment).toBe(e);
    expect(t.ledger.get(ref)).toBe(e);
    expect(t.ledger.size).toBe(1);
    expect(t.ledger.created).toBe(1);
    expect(t.ledger.indexSizes()).toEqual({ entries: 1, buckets: 2 });
    expect(lists(e.owner)).toEqual({ owned: ['a->b'], targeted: [] });
    expect(lists(e.target)).toEqual({ owned: [], targeted: ['a->b'] });
    expect([e.owner.count, e.target.count]).toEqual([1, 1]);
  });

  it('keeps one bucket per process in its slot, watching its exit once however many entries it is in', () => {
    const t = ledger();
    const [a, b, c] = [t.proc(), t.proc(), t.proc()];
    t.ledger.add(t.ref(), a, b, '1', 0, undefined, false);
    t.ledger.add(t.ref(), a, c, '2', 0, undefined, false);
    t.ledger.add(t.ref(), b, a, '3', 0, undefined, false);
    t.ledger.add(t.ref(), a, b, '4', 0, undefined, false);
    expect(t.watched.map(([p]) => p)).toEqual([a, b, c]);
    for (const [p, bucket] of t.watched) {
      expect(p.x!.monitorBucket).toBe(bucket);
      expect(bucket.proc).toBe(p);
    }
    const bucketOf = (p: FakeProc): Bucket => p.x!.monitorBucket as Bucket;
    expect(lists(bucketOf(a))).toEqual({ owned: ['4', '2', '1'], targeted: ['3'] });
    expect(lists(bucketOf(b))).toEqual({ owned: ['3'], targeted: ['4', '1'] });
    expect(lists(bucketOf(c))).toEqual({ owned: [], targeted: ['2'] });
    expect([bucketOf(a).count, bucketOf(b).count, bucketOf(c).count]).toEqual([4, 3, 1]);
    expect(t.ledger.indexSizes()).toEqual({ entries: 4, buckets: 3 });
  });

  it('takes a process monitoring itself into one bucket, in both its lists', () => {
    const t = ledger();
    const a = t.proc();
    const e = t.ledger.add(t.ref(), a, a, 'self', 0, undefined, false);
    expect(e.owner).toBe(e.target);
    expect(lists(e.owner)).toEqual({ owned: ['self'], targeted: ['self'] });
    expect(e.owner.count).toBe(2);
    expect(t.ledger.indexSizes()).toEqual({ entries: 1, buckets: 1 });
    expect(t.watched).toHaveLength(1);
  });

  it('answers no entry for a ref it never saw, or whose attachment is something else', () => {
    const t = ledger();
    expect(t.ledger.get(t.ref())).toBeUndefined();
    const ref = t.ref();
    ref.attachment = { live: true, owner: {}, target: {} }; // looks like an entry, is none
    expect(t.ledger.get(ref)).toBeUndefined();
    const [a, b] = [t.proc(), t.proc()];
    const removed = t.ledger.add(ref, a, b, 'removed', 0, undefined, false);
    t.ledger.remove(removed);
    ref.attachment = removed; // an entry no longer live
    expect(t.ledger.get(ref)).toBeUndefined();
  });

  it('yields every live entry once from entries()', () => {
    const t = ledger();
    const ps = [t.proc(), t.proc(), t.proc()];
    const made: LedgerEntry[] = [];
    for (let i = 0; i < 9; i++) made.push(t.ledger.add(t.ref(), ps[i % 3]!, ps[(i * 2) % 3]!, `m${i}`, i, undefined, false));
    t.ledger.remove(made[4]!);
    const tags = [...t.ledger.entries()].map((e) => e.tag).sort();
    expect(tags).toEqual(['m0', 'm1', 'm2', 'm3', 'm5', 'm6', 'm7', 'm8']);
  });
});

describe('MonitorLedger remove', () => {
  it('unlinks the head, a middle and the tail of both lists, and the rest stay linked both ways', () => {
    const t = ledger();
    const [a, b] = [t.proc(), t.proc()];
    const es = ['1', '2', '3', '4', '5'].map((tag) => t.ledger.add(t.ref(), a, b, tag, 0, undefined, false));
    const ba = a.x!.monitorBucket as Bucket;
    const bb = b.x!.monitorBucket as Bucket;
    expect(lists(ba).owned).toEqual(['5', '4', '3', '2', '1']);
    t.ledger.remove(es[4]!); // the head
    t.ledger.remove(es[2]!); // the middle
    t.ledger.remove(es[0]!); // the tail
    expect(lists(ba)).toEqual({ owned: ['4', '2'], targeted: [] });
    expect(lists(bb)).toEqual({ owned: [], targeted: ['4', '2'] });
    expect([ba.count, bb.count]).toEqual([2, 2]);
    for (const e of [es[0]!, es[2]!, es[4]!]) {
      expect(e.live).toBe(false);
      expect(e.ref.attachment).toBeUndefined();
      expect(t.ledger.get(e.ref)).toBeUndefined();
      expect([e.ownerNext, e.ownerPrev, e.targetNext, e.targetPrev]).toEqual([undefined, undefined, undefined, undefined]);
    }
    expect(t.ledger.size).toBe(2);
    expect([t.ledger.created, t.ledger.cleaned]).toEqual([5, 3]);
    // the buckets stay until their processes die
    expect(t.ledger.indexSizes()).toEqual({ entries: 2, buckets: 2 });
  });

  it('is a no-op for an entry removed already (counted once)', () => {
    const t = ledger();
    const [a, b] = [t.proc(), t.proc()];
    const keep = t.ledger.add(t.ref(), a, b, 'keep', 0, undefined, false);
    const gone = t.ledger.add(t.ref(), a, b, 'gone', 0, undefined, false);
    t.ledger.remove(gone);
    t.ledger.remove(gone);
    expect(t.ledger.size).toBe(1);
    expect(t.ledger.cleaned).toBe(1);
    expect(lists(keep.owner).owned).toEqual(['keep']);
    expect(keep.owner.count).toBe(1);
  });

  it('removes a self-monitor from both lists of its one bucket', () => {
    const t = ledger();
    const a = t.proc();
    const other = t.ledger.add(t.ref(), a, a, 'other', 0, undefined, false);
    const e = t.ledger.add(t.ref(), a, a, 'self', 0, undefined, false);
    t.ledger.remove(e);
    expect(lists(other.owner)).toEqual({ owned: ['other'], targeted: ['other'] });
    expect(other.owner.count).toBe(2);
  });
});

describe('MonitorLedger when a process dies', () => {
  it('drops every entry it owns or is the target of, tells onCleaned once per side, and forgets its bucket', () => {
    const t = ledger();
    const [a, b, c] = [t.proc(), t.proc(), t.proc()];
    t.ledger.add(t.ref(), a, b, 'a->b', 0, undefined, false);
    t.ledger.add(t.ref(), a, c, 'a->c', 0, undefined, false);
    t.ledger.add(t.ref(), b, a, 'b->a', 0, undefined, false);
    t.ledger.add(t.ref(), c, a, 'c->a', 0, undefined, false);
    t.ledger.add(t.ref(), b, c, 'b->c', 0, undefined, false);
    t.die(a);
    expect(t.cleaned).toEqual([
      [['a->c', 'a->b'], 'owner'],
      [['c->a', 'b->a'], 'target'],
    ]);
    expect(a.x!.monitorBucket).toBeUndefined();
    expect(t.ledger.size).toBe(1);
    expect(t.ledger.cleaned).toBe(4);
    expect(t.ledger.indexSizes()).toEqual({ entries: 1, buckets: 2 });
    expect(lists(b.x!.monitorBucket as Bucket)).toEqual({ owned: ['b->c'], targeted: [] });
    expect(lists(c.x!.monitorBucket as Bucket)).toEqual({ owned: [], targeted: ['b->c'] });
    expect([...t.ledger.entries()].map((e) => e.tag)).toEqual(['b->c']);
  });

  it('reports a self-monitor once, as owned', () => {
    const t = ledger();
    const [a, b] = [t.proc(), t.proc()];
    t.ledger.add(t.ref(), a, a, 'self', 0, undefined, false);
    t.ledger.add(t.ref(), b, a, 'b->a', 0, undefined, false);
    t.die(a);
    expect(t.cleaned).toEqual([
      [['self'], 'owner'],
      [['b->a'], 'target'],
    ]);
    expect(t.ledger.size).toBe(0);
    expect(t.ledger.cleaned).toBe(2);
  });

  it('tells onCleaned nothing for a side with no entries (a process whose monitors were all removed)', () => {
    const t = ledger();
    const [a, b] = [t.proc(), t.proc()];
    const e = t.ledger.add(t.ref(), a, b, 'a->b', 0, undefined, false);
    t.ledger.remove(e);
    t.die(a);
    t.die(b);
    expect(t.cleaned).toEqual([]);
    expect(t.ledger.indexSizes()).toEqual({ entries: 0, buckets: 0 });
  });

  it('gives a process seen again after its bucket went a new bucket, watched anew', () => {
    const t = ledger();
    const [a, b] = [t.proc(), t.proc()];
    t.ledger.add(t.ref(), a, b, 'first', 0, undefined, false);
    const old = a.x!.monitorBucket;
    t.die(b); // b's death drops a's only entry, but a lives on and keeps its bucket
    expect(a.x!.monitorBucket).toBe(old);
    t.ledger.add(t.ref(), a, t.proc(), 'second', 0, undefined, false);
    expect(a.x!.monitorBucket).toBe(old);
    t.die(a);
    expect(a.x!.monitorBucket).toBeUndefined();
    const e = t.ledger.add(t.ref(), a, a, 'after', 0, undefined, false); // a stand-in lets a dead process be seen again
    expect(e.owner).not.toBe(old);
    expect(t.watched.filter(([p]) => p === a)).toHaveLength(2);
  });

  it('stays consistent through 1,000 entries among 20 processes, random removals and deaths, down to empty indexes', () => {
    const random = seeded(7);
    const t = ledger();
    const ps = Array.from({ length: 20 }, () => t.proc());
    const model = new Map<LedgerEntry, [FakeProc, FakeProc]>();
    for (let i = 0; i < 1000; i++) {
      const owner = ps[Math.floor(random() * ps.length)]!;
      const target = ps[Math.floor(random() * ps.length)]!;
      model.set(t.ledger.add(t.ref(), owner, target, `e${i}`, i, undefined, false), [owner, target]);
    }
    for (const e of shuffle([...model.keys()], random).slice(0, 300)) {
      t.ledger.remove(e);
      model.delete(e);
    }
    expect(t.ledger.size).toBe(700);
    const check = (): void => {
      expect(t.ledger.size).toBe(model.size);
      expect(new Set(t.ledger.entries())).toEqual(new Set(model.keys()));
      for (const p of ps) {
        const b = p.x?.monitorBucket as Bucket | undefined;
        if (b === undefined) continue;
        const owned = [...model].filter(([, [o]]) => o === p).map(([e]) => e.tag!);
        const targeted = [...model].filter(([, [, tg]]) => tg === p).map(([e]) => e.tag!);
        const l = lists(b);
        expect(l.owned.sort()).toEqual(owned.sort());
        expect(l.targeted.sort()).toEqual(targeted.sort());
        expect(b.count).toBe(owned.length + targeted.length);
      }
    };
    check();
    for (const p of shuffle(ps, random)) {
      t.die(p);
      for (const [e, [o, tg]] of model) if (o === p || tg === p) model.delete(e);
      check();
    }
    expect(t.ledger.indexSizes()).toEqual({ entries: 0, buckets: 0 });
    expect([t.ledger.created, t.ledger.cleaned]).toEqual([1000, 1000]);
  });
});

describe('MonitorLedger.findLeaks', () => {
  it('finds the entries strictly older than olderThanMs, never a long-lived one', () => {
    const t = ledger();
    const [a, b] = [t.proc(), t.proc()];
    t.ledger.add(t.ref(), a, b, 'at 0', 0, undefined, false);
    t.ledger.add(t.ref(), a, b, 'at 1', 1, undefined, false);
    t.ledger.add(t.ref(), a, b, 'long', 0, undefined, true);
    t.ledger.add(t.ref(), b, a, 'at 2', 2, undefined, false);
    const found = t.ledger.findLeaks(1001, 1000, 10);
    expect(found.old.map((e) => e.tag)).toEqual(['at 0']); // 'at 1' is exactly 1000 ms old: not older
    expect(found.duplicates).toEqual([]);
    expect(t.ledger.findLeaks(1002, 1000, 10).old.map((e) => e.tag).sort()).toEqual(['at 0', 'at 1']);
    expect(t.ledger.findLeaks(0, 1000, 10)).toEqual({ old: [], duplicates: [] });
  });

  it('finds every entry of an owner holding more than the threshold on one target, and none when spread over targets', () => {
    const t = ledger();
    const [a, b, c, d] = [t.proc(), t.proc(), t.proc(), t.proc()];
    for (let i = 0; i < 3; i++) t.ledger.add(t.ref(), a, b, `a->b ${i}`, 0, undefined, true);
    t.ledger.add(t.ref(), a, c, 'a->c', 0, undefined, false);
    // d holds exactly the threshold on b: no duplicates
    for (let i = 0; i < 2; i++) t.ledger.add(t.ref(), d, b, `d->b ${i}`, 0, undefined, false);
    // c holds 3 in all, spread over three targets
    t.ledger.add(t.ref(), c, a, 'c->a', 0, undefined, false);
    t.ledger.add(t.ref(), c, b, 'c->b', 0, undefined, false);
    t.ledger.add(t.ref(), c, d, 'c->d', 0, undefined, false);
    const found = t.ledger.findLeaks(0, 1000, 2);
    expect(found.duplicates.map((e) => e.tag).sort()).toEqual(['a->b 0', 'a->b 1', 'a->b 2']); // long-lived ones count as duplicates too
    expect(found.old).toEqual([]);
    expect(t.ledger.findLeaks(0, 1000, 3).duplicates).toEqual([]);
  });

  it('takes the edge thresholds: 0 finds every monitor of an owner with any, Infinity finds nothing', () => {
    const t = ledger();
    const [a, b] = [t.proc(), t.proc()];
    t.ledger.add(t.ref(), a, b, 'one', 5, undefined, false);
    expect(t.ledger.findLeaks(5, 0, 0).duplicates.map((e) => e.tag)).toEqual(['one']);
    expect(t.ledger.findLeaks(5, -1, 0).old.map((e) => e.tag)).toEqual(['one']); // 0 ms old, older than -1
    expect(t.ledger.findLeaks(Number.MAX_VALUE, Infinity, Infinity)).toEqual({ old: [], duplicates: [] });
    expect(t.ledger.findLeaks(NaN, 0, NaN)).toEqual({ old: [], duplicates: [] }); // NaN compares false: nothing found, nothing thrown
  });
});

describe('MonitorLedger.view', () => {
  it('shows an entry with its age, the liveness of its target, and stack and leak only when there are some', () => {
    const t = ledger();
    const [a, b] = [t.proc(), t.proc()];
    const ref = t.ref();
    const e = t.ledger.add(ref, a, b, 'watch', 1000, undefined, false);
    expect(t.ledger.view(e, 1500)).toEqual({ ref, target: b.self, owner: a.self, tag: 'watch', createdAt: 1000, ageMs: 500, targetAlive: true });
    expect('stack' in t.ledger.view(e, 1500)).toBe(false);
    expect('leak' in t.ledger.view(e, 1500)).toBe(false);
    t.alive.delete(b.self);
    const withStack = t.ledger.add(t.ref(), a, b, undefined, 1000, 'at somewhere', false);
    expect(t.ledger.view(withStack, 1000, 'duplicate')).toMatchObject({ tag: undefined, ageMs: 0, stack: 'at somewhere', targetAlive: false, leak: 'duplicate' });
    expect(t.ledger.view(e, 3000, 'age')).toMatchObject({ ageMs: 2000, leak: 'age', targetAlive: false });
  });
});

describe('MonitorLedger entries on a process of another node', () => {
  it('keeps one unwatched bucket per remote pid, drops an entry when its Down comes (told as a target side), and the bucket with its last entry', () => {
    const t = ledger();
    const [a, b] = [t.proc(), t.proc()];
    const remote = new PidImpl('elsewhere', 7, 42);
    const same = new PidImpl('elsewhere', 7, 42); // another copy of the same pid (as decoded from a frame)
    const [r1, r2, r3] = [t.ref(), t.ref(), t.ref()];
    const e1 = t.ledger.addRemote(r1, a, remote, 'a->r', 10, undefined, false);
    const e2 = t.ledger.addRemote(r2, b, same, 'b->r', 20, undefined, false);
    const e3 = t.ledger.addRemote(r3, a, new PidImpl('elsewhere', 8, 42), 'a->r2', 30, undefined, false);
    expect(e2.target).toBe(e1.target);
    expect(e3.target).not.toBe(e1.target); // another incarnation of that node: another process
    expect(e1.target.proc).toBeUndefined();
    expect(t.watched.map(([p]) => p)).toEqual([a, b]); // only this node's processes are watched
    expect(t.ledger.indexSizes()).toEqual({ entries: 3, buckets: 4 });
    expect(t.ledger.view(e1, 15)).toEqual({ ref: r1, target: remote, owner: a.self, tag: 'a->r', createdAt: 10, ageMs: 5, targetAlive: true });
    // the Down of r1 came: the entry goes, once, told as a target side
    remoteMonitorEnded(r1); // what the cluster's router calls, through the ref's attachment
    e1.remoteMonitorEnded(); // a second time: nothing more
    expect(t.cleaned).toEqual([[['a->r'], 'target']]);
    expect(t.ledger.get(r1)).toBeUndefined();
    expect(lists(e2.target)).toEqual({ owned: [], targeted: ['b->r'] });
    expect(t.ledger.indexSizes()).toEqual({ entries: 2, buckets: 4 });
    t.ledger.remove(e2); // a demonitor: the remote bucket goes with its last entry
    expect(t.ledger.indexSizes()).toEqual({ entries: 1, buckets: 3 });
    t.die(a); // the owner dies: its remote entry goes with it, and that pid's bucket too
    expect(t.cleaned).toEqual([[['a->r'], 'target'], [['a->r2'], 'owner']]);
    expect(t.ledger.indexSizes()).toEqual({ entries: 0, buckets: 1 });
    t.die(b);
    expect(t.ledger.indexSizes()).toEqual({ entries: 0, buckets: 0 });
  });
});
