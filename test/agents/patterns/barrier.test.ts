import { describe, expect, it } from 'vitest';
import { barrier, type Barrier, type BarrierWait } from '../../../src/agents/patterns/index.js';
import { GenServer, type Node, type Pid } from '../../../src/index.js';
import { captureEvents, probe, type Probe } from '../../../src/testing/index.js';
import { clockedNode, deadPid, expectKeelError, thrown, UNREADABLE, useNodes, watch } from '../../support.js';

const track = useNodes();

/** A process that waits at `b` (from its own context) when told 'go', and sends what the wait answered to `p`. */
function waiter(node: Node, b: Barrier, p: Probe): Pid {
  return node.spawn((ctx) => async (m) => {
    // eslint-disable-next-line keel/no-raw-send -- the test process reports to its probe
    if (m === 'go') ctx.send(p, { from: ctx.self, wait: await b.wait(ctx, { timeout: Infinity }) });
  });
}

describe('barrier', () => {
  it('releases every waiter exactly when the n-th arrives, with the generation', async () => {
    const node = track();
    const events = captureEvents(node, ['keel.coordination.']);
    const b = await barrier(node, 3);
    const first = [watch(b.wait(node)), watch(b.wait(node))];
    expect(await b.arrived()).toBe(2); // answered after both waits arrived
    expect(first.map((w) => w.status)).toEqual(['pending', 'pending']);
    const last = await b.wait(node);
    expect(last).toEqual({ ok: true, generation: 0 });
    await node.idle();
    expect(first.map((w) => w.value)).toEqual([{ ok: true, generation: 0 }, { ok: true, generation: 0 }]);
    expect(await b.arrived()).toBe(0);
    expect(events.events).toEqual([{ event: 'keel.coordination.barrier_released', measurements: { generation: 0, parties: 3 }, metadata: { barrier: b.name } }]);
    expect(b.name).toMatch(/^keel\.barrier\.\d+$/);
    expect(b.parties).toBe(3);
  });

  it('is cyclic: the next n arrivals are the next generation', async () => {
    const node = track();
    const b = await barrier(node, 2);
    for (const generation of [0, 1, 2]) {
      expect(await Promise.all([b.wait(node), b.wait(node)])).toEqual([{ ok: true, generation }, { ok: true, generation }]);
    }
    expect(await b.generation()).toBe(3);
  });

  it('releases processes waiting from their own contexts', async () => {
    const node = track();
    const p = probe(node);
    const b = await barrier(node, 2);
    const [w1, w2] = [waiter(node, b, p), waiter(node, b, p)];
    node.send(w1, 'go');
    node.send(w2, 'go');
    const got = [await p.receive(), await p.receive()] as { from: Pid; wait: BarrierWait }[];
    expect(got.map((g) => g.from).sort((x, y) => x.id - y.id)).toEqual([w1, w2]);
    expect(got.map((g) => g.wait)).toEqual([{ ok: true, generation: 0 }, { ok: true, generation: 0 }]);
  });

  it('a waiter that dies before the release no longer counts', async () => {
    const node = track();
    const p = probe(node);
    const b = await barrier(node, 2);
    const doomed = waiter(node, b, p);
    node.send(doomed, 'go');
    await node.settle(); // nothing runnable: its wait is in (it is busy waiting, so the node is not idle)
    expect(await b.arrived()).toBe(1);
    node.exit(doomed, 'kill');
    expect(await b.arrived()).toBe(0); // its Down was queued before this call
    const w = watch(b.wait(node));
    expect(await b.arrived()).toBe(1);
    expect(w.status).toBe('pending'); // the dead one did not complete the pair
    const survivor = waiter(node, b, p);
    node.send(survivor, 'go');
    expect(await p.receive()).toEqual({ from: survivor, wait: { ok: true, generation: 0 } });
    await node.idle();
    expect(w.value).toEqual({ ok: true, generation: 0 });
  });

  it('a waiter that died before the last arrival does not complete the generation, even when its Down is not in yet', async () => {
    const node = track();
    const p = probe(node);
    const b = await barrier(node, 2);
    const doomed = waiter(node, b, p);
    node.send(doomed, 'go');
    await node.settle(); // nothing runnable: its wait is in
    expect(await b.arrived()).toBe(1);
    const w = watch(b.wait(node)); // the second arrival is queued before the doomed one's Down
    node.exit(doomed, 'kill');
    expect(await b.arrived()).toBe(1); // only the live one is waiting
    expect(w.status).toBe('pending'); // before: released with the dead one, { ok: true, generation: 0 }
    const survivor = waiter(node, b, p);
    node.send(survivor, 'go');
    expect(await p.receive()).toEqual({ from: survivor, wait: { ok: true, generation: 0 } });
    await node.idle();
    expect(w.value).toEqual({ ok: true, generation: 0 });
    expect(await b.generation()).toBe(1);
  });

  it('a waiter dropped for its death is said: keel.coordination.barrier_waiter_down, by its Down (with the reason) or before it is in', async () => {
    const node = track();
    const p = probe(node);
    const b = await barrier(node, 2);
    const events = captureEvents(node, ['keel.coordination.barrier_waiter_down']);
    const doomed = waiter(node, b, p);
    node.send(doomed, 'go');
    await node.settle();
    node.exit(doomed, 'kill');
    expect(await b.arrived()).toBe(0); // its Down was queued before this call
    const again = waiter(node, b, p);
    node.send(again, 'go');
    await node.settle();
    const w = watch(b.wait(node)); // queued before the next one's Down: dropped by the last arrival
    node.exit(again, 'kill');
    expect(await b.arrived()).toBe(1);
    expect(w.status).toBe('pending');
    expect(events.events).toEqual([
      { event: 'keel.coordination.barrier_waiter_down', measurements: { arrived: 0 }, metadata: { barrier: b.name, waiter: doomed, generation: 0, reason: 'killed' } },
      { event: 'keel.coordination.barrier_waiter_down', measurements: { arrived: 1 }, metadata: { barrier: b.name, waiter: again, generation: 0 } },
    ]);
  });

  it("a wait past its timeout ends with 'timeout' and leaves the barrier (default from the barrier, or its own)", async () => {
    const { node, clock } = clockedNode(track);
    const b = await barrier(node, 3, { timeout: 100 });
    const short = watch(b.wait(node));
    const long = watch(b.wait(node, { timeout: 300 }));
    expect(await b.arrived()).toBe(2);
    await clock.advance(99);
    expect([short.status, long.status]).toEqual(['pending', 'pending']);
    await clock.advance(1);
    expect(short.value).toEqual({ ok: false, reason: 'timeout' });
    expect(await b.arrived()).toBe(1);
    const third = watch(b.wait(node, { timeout: Infinity }));
    expect(await b.arrived()).toBe(2); // the one that left does not complete the three
    await clock.advance(200);
    expect(long.value).toEqual({ ok: false, reason: 'timeout' });
    expect(third.status).toBe('pending');
    expect(await b.arrived()).toBe(1);
    await b.stop();
    await node.idle();
    expect(third.value).toEqual({ ok: false, reason: 'stopped' });
  });

  it("an aborted wait ends with 'aborted' and leaves the barrier; an already aborted one never arrives", async () => {
    const node = track();
    const b = await barrier(node, 2);
    const abort = new AbortController();
    const w = watch(b.wait(node, { signal: abort.signal }));
    expect(await b.arrived()).toBe(1);
    abort.abort();
    expect(await b.arrived()).toBe(0);
    await node.idle();
    expect(w.value).toEqual({ ok: false, reason: 'aborted' });
    expect(await b.wait(node, { signal: AbortSignal.abort() })).toEqual({ ok: false, reason: 'aborted' });
    expect(await b.arrived()).toBe(0);
  });

  it("stop ends the barrier; its waiters get 'stopped'", async () => {
    const node = track();
    const b = await barrier(node, 2);
    const w = watch(b.wait(node));
    expect(await b.arrived()).toBe(1);
    const pid = b.pid;
    await b.stop();
    await node.idle();
    expect(node.isAlive(pid)).toBe(false);
    expect(w.value).toEqual({ ok: false, reason: 'stopped' });
    expect(await b.wait(node)).toEqual({ ok: false, reason: 'stopped' });
  });

  it('started from a process context it is linked to that process, and stop ends it without hurting the starter', async () => {
    const node = track();
    const owner = probe(node);
    const b = await barrier(owner.ctx, 1);
    expect(node.info(b.pid)?.links).toEqual([owner]);
    expect(await b.wait(node)).toEqual({ ok: true, generation: 0 });
    const pid = b.pid;
    await b.stop();
    expect(node.isAlive(pid)).toBe(false);
    expect(node.isAlive(owner)).toBe(true);
  });

  it('throws at once for bad arguments', async () => {
    const node = track();
    for (const n of [0, -1, 1.5, NaN, '2', undefined]) expectKeelError(thrown(() => barrier(node, n as never)), 'ERR_INVALID_ARGUMENT', '`parties`');
    expectKeelError(thrown(() => barrier(node, 2, { timeout: -1 })), 'ERR_INVALID_ARGUMENT', '`options.timeout`');
    expectKeelError(thrown(() => barrier(node, 2, null as never)), 'ERR_INVALID_ARGUMENT', '`options`');
    expectKeelError(thrown(() => barrier(node, 2, { name: '' })), 'ERR_INVALID_ARGUMENT', '`options.name`');
    const b = await barrier(node, 2);
    expectKeelError(thrown(() => b.wait(node, { timeout: -1 })), 'ERR_INVALID_ARGUMENT', '`options.timeout`');
    expectKeelError(thrown(() => b.wait(node, { signal: 'x' as never })), 'ERR_INVALID_ARGUMENT', '`options.signal`');
    expectKeelError(thrown(() => b.wait({} as never)), 'ERR_INVALID_ARGUMENT', '`from`');
    expect(await b.arrived()).toBe(0);
  });

  it('options it does not take, or that cannot be read, are ERR_INVALID_ARGUMENT naming them', async () => {
    const node = track();
    expectKeelError(thrown(() => barrier(node, 2, { timout: 10 } as never)), 'ERR_INVALID_ARGUMENT', '`options.timout`');
    expectKeelError(thrown(() => barrier(node, 2, { get timeout(): number { throw new Error('getter'); } })), 'ERR_INVALID_ARGUMENT', '`options.timeout`');
    const b = await barrier(node, 2);
    expectKeelError(thrown(() => b.wait(node, { timout: 10 } as never)), 'ERR_INVALID_ARGUMENT', '`options.timout`');
    expectKeelError(thrown(() => b.wait(node, { get signal(): AbortSignal { throw new Error('getter'); } })), 'ERR_INVALID_ARGUMENT', '`options.signal`');
    expect(await b.arrived()).toBe(0);
  });

  it('reads each option once: getters answering a valid value, then an invalid one, are used as checked', async () => {
    const { node, clock } = clockedNode(track);
    const reads = { timeout: 0, name: 0, waitTimeout: 0, signal: 0 };
    const options = {
      get timeout() {
        return reads.timeout++ === 0 ? 100 : -1;
      },
      get name() {
        return reads.name++ === 0 ? 'read-once' : '';
      },
    };
    const b = await barrier(node, 3, options as never);
    expect(b.name).toBe('read-once');
    const byDefault = watch(b.wait(node)); // the default timeout as read: 100 ms
    const waitOptions = {
      get timeout() {
        return reads.waitTimeout++ === 0 ? 200 : -1;
      },
      get signal() {
        return reads.signal++ === 0 ? undefined : 'not a signal';
      },
    };
    const own = watch(b.wait(node, waitOptions as never));
    expect(reads).toEqual({ timeout: 1, name: 1, waitTimeout: 1, signal: 1 });
    expect(await b.arrived()).toBe(2);
    await clock.advance(100);
    expect([byDefault.value, own.status]).toEqual([{ ok: false, reason: 'timeout' }, 'pending']);
    await clock.advance(100);
    expect(own.value).toEqual({ ok: false, reason: 'timeout' });
    expect(await b.arrived()).toBe(0);
  });

  it("a wait sent straight to its process with the token of a wait still waiting is refused: it does not take that waiter's place", async () => {
    const node = track();
    const b = await barrier(node, 2, { timeout: Infinity });
    const request = { type: 'wait', token: {}, timeout: Infinity };
    const first = GenServer.call(node, b.name, request as never, { timeout: Infinity });
    expect(await b.arrived()).toBe(1);
    expectKeelError(await GenServer.call(node, b.name, request as never), 'ERR_INVALID_ARGUMENT', '`request.token`');
    expect(await b.arrived()).toBe(1);
    expect(await b.wait(node)).toEqual({ ok: true, generation: 0 });
    expect(await first).toEqual({ ok: true, generation: 0 });
  });

  it('a malformed wait sent straight to its process is refused, and the barrier keeps its waiters', async () => {
    const node = track();
    const b = await barrier(node, 2, { timeout: Infinity });
    const pid = b.pid;
    const first = watch(b.wait(node));
    expect(await b.arrived()).toBe(1);
    for (const [request, argument] of [
      [{ type: 'wait', token: {}, timeout: 'soon' }, 'request.timeout'],
      [{ type: 'wait', token: {}, timeout: -1 }, 'request.timeout'],
      [{ type: 'wait', token: '', timeout: 10 }, 'request.token'],
      [{ type: 'wait', token: 'x', timeout: 10 }, 'request.token'],
      [{ type: 'wait', token: null, timeout: 10 }, 'request.token'],
    ] as const) {
      expectKeelError(await GenServer.call(node, b.name, request as never), 'ERR_INVALID_ARGUMENT', `\`${argument}\``);
    }
    expect(node.isAlive(pid)).toBe(true);
    expect(await b.arrived()).toBe(1);
    expect(await b.wait(node)).toEqual({ ok: true, generation: 0 });
    await node.idle();
    expect(first.value).toEqual({ ok: true, generation: 0 });
  });
  it('a wait sent straight to its process naming a dead pid as waiter is answered: the caller is who the call comes from, not a field of the request', async () => {
    const node = track();
    const b = await barrier(node, 2, { timeout: Infinity });
    const direct = watch(GenServer.call(node, b.name, { type: 'wait', token: {}, waiter: deadPid(node), timeout: Infinity } as never, { timeout: Infinity }));
    await node.idle();
    expect(await b.arrived()).toBe(1);
    expect(await b.wait(node)).toEqual({ ok: true, generation: 0 });
    await node.idle();
    expect(direct).toEqual({ status: 'resolved', value: { ok: true, generation: 0 }, error: undefined });
  });

  it("a client sending waits straight to its process cannot take the tokens the handle hands out: the handle's waits all count", async () => {
    const node = track();
    const b = await barrier(node, 400, { timeout: Infinity });
    // every token a counter would hand out next, taken first
    const squats = Array.from({ length: 300 }, (_v, i) => watch(GenServer.call(node, b.name, { type: 'wait', token: `${i + 1}`, timeout: Infinity } as never, { timeout: Infinity })));
    await node.idle();
    const mine = watch(b.wait(node));
    const theirs = watch(GenServer.call(node, b.name, { type: 'wait', token: {}, timeout: Infinity } as never, { timeout: Infinity }));
    await node.idle();
    expect([mine, theirs.status]).toEqual([{ status: 'pending', value: undefined, error: undefined }, 'pending']);
    expect(await b.arrived()).toBe(2);
    // a token is an object, by identity: a string (which anyone can write) is refused
    for (const squat of squats) expectKeelError(squat.value, 'ERR_INVALID_ARGUMENT', '`request.token`'); // answered with the error, as any malformed request
  });

  it('a process waiting straight at its process (no handle) that dies no longer counts: the call identifies it', async () => {
    const node = track();
    const b = await barrier(node, 2, { timeout: Infinity });
    const doomed = node.spawn((ctx) => async () => {
      await GenServer.call(ctx, b.name, { type: 'wait', token: {}, timeout: Infinity } as never, { timeout: Infinity });
    });
    node.send(doomed, 'go');
    await node.settle(); // nothing runnable: its wait is in
    expect(await b.arrived()).toBe(1);
    node.exit(doomed, 'kill');
    expect(await b.arrived()).toBe(0); // its Down was queued before this call
  });
});

describe('barrier sent a message that cannot be inspected', () => {
  // the same defect as the supervisors' (fuzz seed 1005273782, path 93): `message instanceof C` throws on a
  // proxy whose traps throw, and the process crashed
  it('ignores it and keeps its waiters', async () => {
    const node = track();
    const b = await barrier(node, 2);
    const first = watch(b.wait(node));
    await node.idle();
    for (const [, make] of UNREADABLE) node.send(b.pid, make());
    await node.idle();
    expect(node.isAlive(b.pid)).toBe(true);
    expect(await b.arrived()).toBe(1);
    // the waiter already in is still counted: the next arrival releases both (the first generation is 0)
    expect(await b.wait(node)).toMatchObject({ ok: true, generation: 0 });
    await node.idle();
    expect(first.value).toMatchObject({ ok: true, generation: 0 });
  });
});
