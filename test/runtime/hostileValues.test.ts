/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- this file tests the runtime's own primitives: raw sends and monitors are what it exercises */
// Hostile values as messages, handler results, thrown values and exit reasons: whatever a process
// is given or returns, it either handles it or exits with a reason, its watchers hear of it, and the
// scheduler goes on.
import { describe, expect, it } from 'vitest';
import { GenServer, isDown, isExit, Pid, sendSupervised, type Down } from '../../src/index.js';
import { captureEvents, probe } from '../../src/testing/index.js';
import { fakeLogger, useNodes } from '../support.js';

const track = useNodes();

function revoked(): object {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
}

/** A proxy whose every trap throws. */
function trapping(): object {
  const boom = (): never => {
    throw new Error('trap');
  };
  return new Proxy({}, { get: boom, getPrototypeOf: boom, has: boom, ownKeys: boom, getOwnPropertyDescriptor: boom });
}

function thenGetterThrows(): object {
  return Object.defineProperty({}, 'then', {
    get() {
      throw new Error('then getter');
    },
  });
}

const HOSTILE: [string, () => unknown][] = [
  ['a revoked proxy', revoked],
  ['a proxy whose traps throw', trapping],
  ['an object whose then getter throws', thenGetterThrows],
];

describe('a hostile message', () => {
  for (const [what, make] of HOSTILE) {
    it(`${what} is handled, and the process goes on`, async () => {
      const node = track();
      const seen: unknown[] = [];
      const pid = node.spawn(() => (m) => {
        seen.push(typeof m === 'string' ? m : 'hostile');
      });
      node.send(pid, make());
      node.send(pid, 'after');
      await node.idle();
      expect(seen).toEqual(['hostile', 'after']);
      expect(node.info(pid)?.status).toBe('waiting');
    });

    it(`${what} into a bounded mailbox of each policy is handled or dropped with an event`, async () => {
      const node = track();
      for (const overflow of ['reject', 'drop_newest', 'drop_oldest'] as const) {
        const seen: string[] = [];
        const pid = node.spawn(() => (m) => void seen.push(typeof m === 'string' ? m : 'hostile'), { mailbox: { capacity: 1, overflow } });
        const events = captureEvents(node, ['keel.message.dropped']);
        node.send(pid, 'first');
        node.send(pid, make()); // the mailbox is full: rejected, dropped or evicting 'first'
        node.send(pid, make());
        await node.idle();
        expect(seen.length + events.events.length).toBe(3);
        expect(node.isAlive(pid)).toBe(true);
        events.stop();
      }
    });

    it(`${what} sent supervised with ack 'handled' is acknowledged`, async () => {
      const node = track();
      const pid = node.spawn(() => () => undefined);
      const outcome = await sendSupervised(node, pid, make(), { ack: 'handled' });
      expect(outcome).toMatchObject({ ok: true, attempts: 1 });
    });
  }

  it('a Down-shaped proxy is not a Down, and isDown / isExit never throw', () => {
    for (const [, make] of HOSTILE) {
      expect(isDown(make())).toBe(false);
      expect(isExit(make())).toBe(false);
    }
  });

  it('a GenServer given a hostile info message reports it as unexpected and keeps running', async () => {
    const node = track();
    const events = captureEvents(node, ['keel.gen_server.unexpected_message']);
    const server = await GenServer.start(node, { init: () => 1, handleCall: (_r: 'get', _f, s: number) => ({ reply: s, state: s }) });
    for (const [, make] of HOSTILE) node.send(server, make() as never);
    expect(await GenServer.call(node, server, 'get')).toBe(1);
    expect(events.events).toHaveLength(HOSTILE.length);
  });
});

describe('a hostile value returned, thrown or given as a reason', () => {
  async function exitOf(node: ReturnType<typeof track>, pid: Pid, trigger = true): Promise<Down> {
    const p = probe(node);
    p.ctx.monitor(pid);
    if (trigger) node.send(pid, 'go');
    return (await p.receive(isDown)) as Down;
  }

  for (const [what, make] of HOSTILE) {
    it(`a handler returning ${what} exits the process with a reason, and the node goes on`, async () => {
      const node = track();
      const pid = node.spawn(() => () => make() as void);
      const down = await exitOf(node, pid);
      expect(down.reason).toBeInstanceOf(Error);
      const p = probe(node);
      node.send(p, 'after');
      expect(await p.receive()).toBe('after');
    });

    it(`an init returning ${what} exits the process with a reason`, async () => {
      const node = track();
      const pid = node.spawn(() => make() as never);
      const down = await exitOf(node, pid, false);
      expect(down.reason).toBeInstanceOf(Error);
    });

    it(`a handler throwing ${what} exits with an error that keeps it`, async () => {
      const node = track();
      const value = make();
      const pid = node.spawn(() => () => {
        throw value;
      });
      const down = await exitOf(node, pid);
      expect(down.reason).toMatchObject({ code: 'ERR_THROWN_VALUE' });
      expect((down.reason as unknown as { value: unknown }).value).toBe(value);
    });

    it(`an async handler rejecting with ${what} exits with an error that keeps it`, async () => {
      const node = track();
      const value = make();
      const pid = node.spawn(() => () => Promise.reject(value));
      const down = await exitOf(node, pid);
      expect(down.reason).toMatchObject({ code: 'ERR_THROWN_VALUE' });
    });

    it(`ctx.exit(${what}) throws a typed error and the process exits with it`, async () => {
      const node = track();
      const pid = node.spawn((ctx) => () => ctx.exit(make() as never));
      const down = await exitOf(node, pid);
      expect(down.reason).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    });
  }

  it('a reason whose prototype is a proxy is refused without running its traps, and so is a thrown one taken for an Error', async () => {
    // a proxy further up the chain answers `in` and `instanceof` with user code: answered once when
    // the reason is checked and again, differently, during the death, where no user code may run
    const node = track();
    const traps: string[] = [];
    let shutdown = true;
    const proto = new Proxy(Object.create(Error.prototype) as object, {
      has(target, key) {
        traps.push(`has ${String(key)}`);
        return key === 'shutdown' ? (shutdown = !shutdown) || true : Reflect.has(target, key);
      },
      getPrototypeOf(target) {
        traps.push('getPrototypeOf');
        return Reflect.getPrototypeOf(target);
      },
    });
    const reason = Object.create(proto) as object;
    const pid = node.spawn(() => () => {});
    expect(() => node.exit(pid, reason as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(node.isAlive(pid)).toBe(true);
    // thrown: not taken for an Error (its chain is not read), kept inside a ThrownValueError
    const thrower = node.spawn(() => () => {
      throw reason;
    });
    const down = await exitOf(node, thrower);
    expect(down.reason).toMatchObject({ code: 'ERR_THROWN_VALUE' });
    expect((down.reason as unknown as { value: unknown }).value).toBe(reason);
    expect(traps).toEqual([]);
  });

  it('an unwatched crash with a hostile thrown value is logged, and the logger sees a description', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const pid = node.spawn(() => () => {
      throw revoked();
    });
    node.send(pid, 'go');
    await node.idle();
    expect(node.isAlive(pid)).toBe(false);
    expect(logger.error).toHaveBeenCalledTimes(1);
    expect(String(logger.error.mock.calls[0]![0])).toContain('ThrownValueError: a non-Error value was thrown: a proxy');
  });
});

describe('the value ctx.exit throws to unwind its own handler, kept and thrown again by a live process', () => {
  /** The value `ctx.exit` threw inside a handler, caught and kept by user code. */
  async function leakedUnwinder(node: ReturnType<typeof track>): Promise<unknown> {
    let kept: unknown;
    const pid = node.spawn((ctx) => () => {
      try {
        ctx.exit('normal');
      } catch (e) {
        kept = e;
        throw e;
      }
    });
    node.send(pid, 'go');
    await node.idle();
    expect(kept).toBeDefined();
    return kept;
  }

  it.each([
    ['a handler throwing it', (v: unknown) => () => () => {
      throw v;
    }],
    ['an async handler rejecting with it', (v: unknown) => () => () => Promise.reject(v)],
    ['an init throwing it', (v: unknown) => (): never => {
      throw v;
    }],
    ['an async init rejecting with it', (v: unknown) => () => Promise.reject(v) as never],
  ] as const)('%s crashes the process, which does not stay alive with its mailbox stranded', async (_what, init) => {
    const node = track();
    const kept = await leakedUnwinder(node);
    const pid = node.spawn(init(kept) as never);
    const p = probe(node);
    const ref = p.ctx.monitor(pid);
    node.send(pid, 'first');
    node.send(pid, 'second');
    const down = (await p.receive((m) => isDown(m) && m.ref === ref)) as Down;
    expect(down.reason).toMatchObject({ code: 'ERR_THROWN_VALUE' });
    expect((down.reason as unknown as { value: unknown }).value).toBe(kept);
    expect(node.isAlive(pid)).toBe(false);
  });
});

describe('a hostile value given as a pid', () => {
  /** A copy of `pid` whose fields read well once each, and throw from the second reading on. */
  function readOnce(pid: Pid): Pid {
    const reads = { node: 0, creation: 0, id: 0 };
    const field = <K extends keyof typeof reads>(key: K, value: unknown) => ({
      enumerable: true,
      get: () => {
        if (++reads[key] > 1) throw new TypeError(`${key} read again`);
        return value;
      },
    });
    return Object.defineProperties({}, { node: field('node', pid.node), creation: field('creation', pid.creation), id: field('id', pid.id) }) as Pid;
  }

  it('a pid-shaped object whose fields throw when read again names its process once, and never escapes as a raw error', async () => {
    const node = track();
    const p = probe(node);
    const target = probe(node);
    node.send(readOnce(target), 'by node.send');
    p.ctx.send(readOnce(target), 'by ctx.send');
    expect(node.isAlive(readOnce(target))).toBe(true);
    expect(Pid.equals(node.info(readOnce(target))!.pid, target)).toBe(true);
    p.ctx.link(readOnce(target));
    expect(node.info(target)?.links.map(String)).toEqual([String(p)]);
    p.ctx.unlink(readOnce(target));
    expect(node.info(target)?.links).toEqual([]);
    const ref = p.ctx.monitor(readOnce(target));
    expect(node.info(target)?.monitoredBy.map(String)).toEqual([String(p)]);
    p.ctx.demonitor(ref);
    p.ctx.sendAfter(readOnce(target), 'by sendAfter', 0);
    await target.receive((m) => m === 'by sendAfter');
    expect(target.messages).toEqual(['by node.send', 'by ctx.send', 'by sendAfter']);
    const victim = probe(node);
    node.exit(readOnce(victim), 'shutdown');
    expect(node.isAlive(victim)).toBe(false);
    const other = probe(node);
    p.ctx.exit(readOnce(other), 'shutdown');
    expect(node.isAlive(other)).toBe(false);
  });


  it('node.exit refuses a proxy without running any of its traps', () => {
    const node = track();
    let traps = 0;
    const count = (): undefined => {
      traps++;
      return undefined;
    };
    const proxy = new Proxy({}, { getPrototypeOf: () => (traps++, Object.prototype), get: count, has: () => (traps++, false), ownKeys: () => (traps++, []) });
    expect(() => node.exit(proxy as never, 'kill')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(traps).toBe(0);
  });
});
