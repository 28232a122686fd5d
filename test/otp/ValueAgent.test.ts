import { describe, expect, expectTypeOf, it } from 'vitest';
import { CallExitError, type Down, GenServer, InvalidArgumentError, isDown, isExit, ValueAgent, type ValueAgentPid } from '../../src/index.js';
import { captureEvents, probe, TestClock } from '../../src/testing/index.js';
import { deferred, expectKeelError, failure, handThenable, revokedProxy, thrown, UNREADABLE, useNodes, watch, type Watched } from '../support.js';

const track = useNodes();

describe('ValueAgent', () => {
  describe('as in Elixir’s Agent docs', () => {
    it('starts with a value, updates it and gets it (start_link, update, get)', async () => {
      const node = track();
      const counter = await ValueAgent.start(node, () => 0);
      await ValueAgent.update(node, counter, (n) => n + 1);
      expect(await ValueAgent.get(node, counter, (n) => n)).toBe(1);
    });

    it('get_and_update replies the first of the pair and keeps the second; cast updates; stop ends it', async () => {
      const node = track();
      const pid = await ValueAgent.start(node, () => 42);
      expect(await ValueAgent.getAndUpdate(node, pid, (n) => [n, n + 1])).toBe(42);
      expect(await ValueAgent.get(node, pid, (n) => n)).toBe(43);
      expect(ValueAgent.cast(node, pid, (n) => n + 1)).toBeUndefined();
      expect(await ValueAgent.get(node, pid, (n) => n)).toBe(44);
      await ValueAgent.stop(node, pid);
      expect(node.isAlive(pid)).toBe(false);
    });

    it('runs a get inside the agent and replies only what the function returns (a map of a large state)', async () => {
      const node = track();
      const pid = await ValueAgent.start(node, () => new Map([['a', 1], ['b', 2]]));
      expect(await ValueAgent.get(node, pid, (m) => m.get('b'))).toBe(2);
      await ValueAgent.update(node, pid, (m) => new Map([...m, ['c', 3]]));
      expect(await ValueAgent.get(node, pid, (m) => [...m.keys()])).toEqual(['a', 'b', 'c']);
    });
  });

  describe('typing and names', () => {
    it('types the functions by the state the agent was started with', async () => {
      const node = track();
      const pid = await ValueAgent.start(node, () => ({ items: [] as string[] }));
      expectTypeOf(pid).toEqualTypeOf<ValueAgentPid<{ items: string[] }>>();
      const n = await ValueAgent.get(node, pid, (s) => s.items.length);
      expectTypeOf(n).toEqualTypeOf<number>();
      expect(n).toBe(0);
      // @ts-expect-error -- the new state must be of the agent's state type
      await ValueAgent.update(node, pid, () => 5);
      // the state is now 5 (the types were bypassed): the agent keeps whatever it is given
      expect(await ValueAgent.get(node, pid as ValueAgentPid<unknown>, (s) => s)).toBe(5);
    });

    it('registers under a typed name and is reached by it, with its state type', async () => {
      const node = track();
      const Counter = ValueAgent.name<number>('counter');
      const pid = await ValueAgent.start(node, () => 10, { name: Counter });
      expect(node.registry.whereis('counter')).toBe(pid);
      await ValueAgent.update(node, Counter, (n) => n * 2);
      const n = await ValueAgent.get(node, Counter, (s) => s + 1);
      expectTypeOf(n).toEqualTypeOf<number>();
      expect(n).toBe(21);
      // @ts-expect-error -- a name of a number agent takes only an initial number
      await failure(() => ValueAgent.start(node, () => 'x', { name: ValueAgent.name<number>('other') }));
    });

    it('is reached by a plain registered name too, and a second start under a taken name fails with ERR_NAME_TAKEN', async () => {
      const node = track();
      await ValueAgent.start(node, () => 'v', { name: 'plain' });
      expect(await ValueAgent.get<string, number>(node, 'plain', (s) => s.length)).toBe(1);
      expectKeelError(await failure(() => ValueAgent.start(node, () => 'w', { name: 'plain' })), 'ERR_NAME_TAKEN');
    });
  });

  describe('start', () => {
    it('takes the value an async initial function resolves to', async () => {
      const node = track();
      const pid = await ValueAgent.start(node, async () => 'ready');
      expect(await ValueAgent.get(node, pid, (s) => s)).toBe('ready');
    });

    it('fails with ERR_START_FAILED when the initial function throws, leaving no process or name', async () => {
      const node = track();
      const boom = new Error('no initial value');
      const e = await failure(() => ValueAgent.start(node, () => { throw boom; }, { name: 'never' }));
      expectKeelError(e, 'ERR_START_FAILED', 'no initial value');
      expect((e as { reason: unknown }).reason).toBe(boom);
      expect(node.registry.whereis('never')).toBeUndefined();
      expect(node.internals().processes).toBe(0);
    });

    it('fails with ERR_START_FAILED after options.timeout on the node clock when the initial value never comes', async () => {
      const clock = new TestClock();
      const node = track({ clock });
      const start = watch(ValueAgent.start(node, () => new Promise<number>(() => undefined), { timeout: 100 }));
      await clock.advance(99);
      expect(start.status).toBe('pending');
      await clock.advance(1);
      expectKeelError(start.error, 'ERR_START_FAILED', 'init did not finish within 100 ms');
      expect(node.internals().processes).toBe(0);
    });

    it('links with startLink: a crash of the agent reaches its trapping starter as an Exit', async () => {
      const node = track();
      const p = probe(node);
      p.ctx.trapExits();
      const pid = await ValueAgent.startLink(p.ctx, () => 0);
      const boom = new Error('bad fn');
      const e = await failure(() => ValueAgent.get(node, pid, () => { throw boom; }));
      expectKeelError(e, 'ERR_CALL_EXIT');
      const exit = await p.receive((m) => isExit(m) && m.from === pid);
      expect(isExit(exit) && exit.reason).toBe(boom);
    });

    it('refuses an initial value that is not a function, and bad options, with ERR_INVALID_ARGUMENT and spawns nothing', () => {
      const node = track();
      for (const bad of [undefined, 0, 'x', {}, revokedProxy()]) {
        expectKeelError(thrown(() => ValueAgent.start(node, bad as never)), 'ERR_INVALID_ARGUMENT', '`initial`');
      }
      expectKeelError(thrown(() => ValueAgent.start(node, () => 0, { nmae: 'x' } as never)), 'ERR_INVALID_ARGUMENT');
      expectKeelError(thrown(() => ValueAgent.startLink(node as never, () => 0)), 'ERR_INVALID_ARGUMENT');
      expect(node.internals().processes).toBe(0);
    });
  });

  describe('a function that throws crashes the agent, as in Elixir', () => {
    it.each([
      ['get', (node: never, pid: ValueAgentPid<number>, fn: () => never) => ValueAgent.get(node, pid, fn)],
      ['update', (node: never, pid: ValueAgentPid<number>, fn: () => never) => ValueAgent.update(node, pid, fn)],
      ['getAndUpdate', (node: never, pid: ValueAgentPid<number>, fn: () => never) => ValueAgent.getAndUpdate(node, pid, fn)],
    ] as const)('%s: the caller gets ERR_CALL_EXIT with the thrown error as reason; the agent is gone', async (_op, run) => {
      const node = track();
      const pid = await ValueAgent.start(node, () => 1);
      const boom = new Error('fn failed');
      const e = await failure(() => run(node as never, pid, () => { throw boom; }));
      expect(e).toBeInstanceOf(CallExitError);
      expectKeelError(e, 'ERR_CALL_EXIT', 'fn failed');
      expect((e as CallExitError).reason).toBe(boom);
      expect(node.isAlive(pid)).toBe(false);
      expectKeelError(await failure(() => ValueAgent.get(node, pid, (n) => n)), 'ERR_NOPROC');
    });

    it("a thrown non-Error ('normal') is the reason wrapped in ERR_THROWN_VALUE: never taken for a clean exit", async () => {
      const node = track();
      const pid = await ValueAgent.start(node, () => 1);
      const watcher = probe(node);
      // eslint-disable-next-line keel/no-unmanaged-monitor -- the test awaits this Down
      const ref = watcher.ctx.monitor(pid);
      const e = await failure(() => ValueAgent.update(node, pid, () => { throw 'normal'; }));
      expectKeelError(e, 'ERR_CALL_EXIT');
      const reason = (e as CallExitError).reason;
      expectKeelError(reason, 'ERR_THROWN_VALUE');
      expect((reason as { value?: unknown }).value).toBe('normal');
      const down = await watcher.receive((m) => isDown(m) && m.ref === ref);
      expect((down as Down).reason).toBe(reason);
    });

    it('a cast whose function throws crashes the agent: a later call gets ERR_NOPROC, a pending one ERR_CALL_EXIT', async () => {
      const node = track();
      const p = probe(node);
      p.ctx.trapExits();
      const pid = await ValueAgent.startLink(p.ctx, () => 1);
      const boom = new Error('cast failed');
      ValueAgent.cast(node, pid, () => { throw boom; });
      const pending = failure(() => ValueAgent.get(node, pid, (n) => n));
      expectKeelError(await pending, 'ERR_CALL_EXIT', 'cast failed');
      const exit = await p.receive((m) => isExit(m) && m.from === pid);
      expect(isExit(exit) && exit.reason).toBe(boom);
      expectKeelError(await failure(() => ValueAgent.get(node, pid, (n) => n)), 'ERR_NOPROC');
    });

    it.each<[string, unknown]>([
      ['a number', 7],
      ['a one-element array', [1]],
      ['a three-element array', [1, 2, 3]],
      ['undefined', undefined],
      ['a revoked proxy', revokedProxy()],
    ])('getAndUpdate crashes the agent when its function returns %s instead of a pair', async (_label, result) => {
      const node = track();
      const pid = await ValueAgent.start(node, () => 1);
      const e = await failure(() => ValueAgent.getAndUpdate(node, pid, () => result as never));
      expectKeelError(e, 'ERR_CALL_EXIT');
      expect((e as CallExitError).reason).toBeInstanceOf(Error);
      expect(node.isAlive(pid)).toBe(false);
    });
    it('getAndUpdate reads its pair once, by index: a pair that cannot be read crashes the agent with ERR_INVALID_ARGUMENT naming it, and a pair with an iterator of its own gives its elements, not what the iterator yields', async () => {
      const node = track();
      const elementThrows = Object.defineProperty([1, 2], 0, { get: () => { throw new Error('element'); } });
      for (const [what, bad] of [['a revoked proxy', revokedProxy()], ['an element getter that throws', elementThrows]] as const) {
        const pid = await ValueAgent.start(node, () => 1);
        const e = await failure(() => ValueAgent.getAndUpdate(node, pid, () => bad as never));
        expectKeelError(e, 'ERR_CALL_EXIT');
        expectKeelError((e as CallExitError).reason, 'ERR_INVALID_ARGUMENT', 'getAndUpdate function result');
        expect(node.isAlive(pid), what).toBe(false);
      }
      const pid = await ValueAgent.start(node, () => 1);
      const pair = Object.assign([10, 20], {
        *[Symbol.iterator](): Generator<string> {
          yield 'not the reply';
          yield 'not the state';
        },
      });
      expect(await ValueAgent.getAndUpdate(node, pid, () => pair as never)).toBe(10);
      expect(await ValueAgent.get(node, pid, (n) => n)).toBe(20);
    });
  });

  describe('timeouts and ordering', () => {
    it.each<[string, number | { timeout: number } | undefined, number]>([
      ['the default 5000 ms', undefined, 5000],
      ['a bare timeout of 100 (as Agent.get/3)', 100, 100],
      ['{ timeout: 250 }', { timeout: 250 }, 250],
    ])('a call to a busy agent rejects with ERR_CALL_TIMEOUT after %s on the node clock; the late reply is discarded', async (_label, options, ms) => {
      const clock = new TestClock();
      const node = track({ clock });
      const gate = deferred<number>();
      // the agent is busy with its async initial value; the call waits in its mailbox, reached by name
      const start = ValueAgent.start(node, () => gate.promise, { name: 'slow', timeout: Infinity });
      const call = watch(ValueAgent.get<number, number>(node, 'slow', (n) => n, options));
      await clock.advance(ms - 1);
      expect(call.status).toBe('pending');
      await clock.advance(1);
      expect(call.status).toBe('rejected');
      expectKeelError(call.error, 'ERR_CALL_TIMEOUT', `${ms} ms`);
      gate.resolve(3);
      const pid = await start;
      expect(await ValueAgent.get(node, pid, (n) => n + 1)).toBe(4);
    });

    it('applies casts in the order one sender sent them, before that sender’s later call', async () => {
      const node = track();
      const pid = await ValueAgent.start(node, () => [] as number[]);
      for (let i = 0; i < 100; i++) ValueAgent.cast(node, pid, (xs) => [...xs, i]);
      expect(await ValueAgent.get(node, pid, (xs) => xs)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    });

    it('applies updates and casts from several processes one at a time: no update is lost', async () => {
      const node = track();
      const pid = await ValueAgent.start(node, () => 0);
      const senders = Array.from({ length: 10 }, () => probe(node));
      await Promise.all(senders.flatMap((s) => Array.from({ length: 10 }, () => ValueAgent.update(s.ctx, pid, (n) => n + 1))));
      for (const s of senders) ValueAgent.cast(s.ctx, pid, (n) => n + 10);
      await node.idle();
      expect(await ValueAgent.get(node, pid, (n) => n)).toBe(200);
    });
  });

  describe('hostile values', () => {
    it('holds a state of any shape as it is: { state, continue } is not a GenServer continue, a revoked proxy is never inspected', async () => {
      const node = track();
      const shaped = { state: 1, continue: 2 };
      const a = await ValueAgent.start(node, () => shaped);
      expect(await ValueAgent.get(node, a, (s) => s)).toBe(shaped);
      const proxy = revokedProxy();
      const b = await ValueAgent.start(node, () => proxy);
      expect(await ValueAgent.get(node, b, (s) => s === proxy)).toBe(true);
      await ValueAgent.update(node, b, () => shaped);
      expect(await ValueAgent.get(node, b, (s) => s)).toBe(shaped);
      for (const v of [undefined, null, NaN, Symbol('s')]) {
        await ValueAgent.update(node, b, () => v as never);
        expect(await ValueAgent.get(node, b, (s) => s)).toBe(v);
      }
    });

    it('refuses a function argument that is not a function with ERR_INVALID_ARGUMENT, sending nothing', async () => {
      const node = track();
      const pid = await ValueAgent.start(node, () => 0);
      for (const bad of [undefined, 1, 'n => n', {}, revokedProxy()]) {
        expectKeelError(thrown(() => ValueAgent.get(node, pid, bad as never)), 'ERR_INVALID_ARGUMENT', '`fn`');
        expectKeelError(thrown(() => ValueAgent.update(node, pid, bad as never)), 'ERR_INVALID_ARGUMENT', '`fn`');
        expectKeelError(thrown(() => ValueAgent.getAndUpdate(node, pid, bad as never)), 'ERR_INVALID_ARGUMENT', '`fn`');
        expectKeelError(thrown(() => ValueAgent.cast(node, pid, bad as never)), 'ERR_INVALID_ARGUMENT', '`fn`');
      }
      expect(node.info(pid)?.mailboxLength).toBe(0);
      expect(await ValueAgent.get(node, pid, (n) => n)).toBe(0);
    });

    it('answers a stray GenServer.call with an error reply and reports a stray cast, and keeps its state', async () => {
      const node = track();
      const cap = captureEvents(node, ['keel.gen_server.unexpected_message']);
      const pid = await ValueAgent.start(node, () => 5);
      const stray: unknown[] = ['get', { kind: 0, fn: () => 1 }, ...UNREADABLE.map(([, make]) => make())];
      for (const request of stray) {
        const reply = (await GenServer.call(node, pid as never, request)) as { error: unknown };
        expect(reply.error).toBeInstanceOf(InvalidArgumentError);
        GenServer.cast(node, pid as never, request);
      }
      expect(await ValueAgent.get(node, pid, (n) => n)).toBe(5);
      expect(cap.events).toHaveLength(stray.length);
      cap.events.forEach((e, i) => expect(e.metadata.message).toBe(stray[i]));
    });

    it('rejects calls to a dead or unknown agent with ERR_NOPROC, and drops a cast to it with keel.message.dropped', async () => {
      const node = track();
      const cap = captureEvents(node, ['keel.message.dropped']);
      const pid = await ValueAgent.start(node, () => 0);
      await ValueAgent.stop(node, pid, 'shutdown');
      expectKeelError(await failure(() => ValueAgent.get(node, pid, (n) => n)), 'ERR_NOPROC');
      expectKeelError(await failure(() => ValueAgent.update(node, 'nobody', (n: number) => n)), 'ERR_NOPROC');
      expectKeelError(await failure(() => ValueAgent.stop(node, pid)), 'ERR_NOPROC');
      ValueAgent.cast(node, pid, (n) => n + 1);
      expect(cap.events.map((e) => e.metadata.reason)).toEqual(['noproc']);
    });

    it('refuses with ERR_DEADLOCK a call to the agent through the node from a function run inside it (Elixir: calling_self)', async () => {
      const node = track({ clock: new TestClock() });
      const pid = await ValueAgent.start(node, () => 1, { name: 'counter' });
      let inner: Watched<number>[] = [];
      expect(
        await ValueAgent.get(node, pid, (n) => {
          inner = [watch(ValueAgent.get(node, pid, (m) => m, 60_000)), watch(ValueAgent.get(node, 'counter', (m: number) => m, 60_000))];
          return n;
        }),
      ).toBe(1);
      await node.settle();
      expect(inner.map((w) => w.status)).toEqual(['rejected', 'rejected']);
      for (const w of inner) expectKeelError(w.error, 'ERR_DEADLOCK', 'called itself');
      expect(await ValueAgent.get(node, pid, (n) => n)).toBe(1);
    });
  });
});

describe('ValueAgent with a state that is a promise', () => {
  it('holds a promise that rejects (an async update that threw) as the state without an unhandled rejection; a get of it sees the rejection', async () => {
    const node = track();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const pid = await ValueAgent.start<unknown>(node, () => 0);
      await ValueAgent.update(node, pid, async () => {
        throw new Error('async update');
      });
      ValueAgent.cast(node, pid, () => Promise.reject(new Error('async cast')));
      expect(await ValueAgent.getAndUpdate(node, pid, (_s) => [1, Promise.reject(new Error('async next'))] as const)).toBe(1);
      await new Promise<void>((resolve) => setImmediate(resolve)); // the turn in which Node reports unhandled rejections
      expect(unhandled).toEqual([]);
      const e = await failure(() => ValueAgent.get(node, pid, (s) => s));
      expect((e as Error).message).toBe('async next');
      expect(node.isAlive(pid)).toBe(true);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('ValueAgent with a thenable initial value which is no Promise', () => {
  const track = useNodes();
  it('waits for it as for a promise: the first get sees its value', async () => {
    const node = track();
    const h = handThenable<number>();
    const starting = ValueAgent.start(node, () => h.thenable as unknown as number);
    await h.asked;
    h.resolve(41);
    const agent = await starting;
    expect(await ValueAgent.get(node, agent, (n) => n + 1)).toBe(42);
  });
});
