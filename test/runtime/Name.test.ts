/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- typed names over the runtime's own primitives */
// Typed names (`Name.of<M>`, `GenServer.name<P, Cast>`): a registered name that carries the type of
// what its process accepts, usable wherever a pid is. Type-level checks run under `npm run typecheck`.
import { describe, expect, expectTypeOf, it } from 'vitest';
import { GenServer, isDown, isKeelError, Name, Supervisor, type Context, type Down, type GenServerSpec, type Pid } from '../../src/index.js';
import { probe } from '../../src/testing/index.js';
import { useNodes } from '../support.js';

const track = useNodes();

type Line = { type: 'line'; text: string };

describe('Name.of', () => {
  it('names a process for sends, monitors, info and whereis, typed end to end', async () => {
    const node = track();
    const Log = Name.of<Line>('log');
    const seen = probe<string>(node);
    const log = node.spawn<Line>((ctx) => (msg) => ctx.send(seen, msg.text), { name: Log });
    node.send(Log, { type: 'line', text: 'one' });
    const check = (): void => {
      // @ts-expect-error the name says the process takes lines
      node.send(Log, { type: 'line', txt: 'one' });
    };
    void check;
    seen.ctx.send(Log, { type: 'line', text: 'two' });
    expect([await seen.receive(), await seen.receive()]).toEqual(['one', 'two']);
    const found = node.registry.whereis(Log);
    expectTypeOf(found).toEqualTypeOf<Pid<Line> | undefined>();
    expect(found).toBe(log);
    expect(node.registry.whereis('log')).toBe(log); // the name is its text
    expect(node.isAlive(Log)).toBe(true);
    expect(node.info(Log)?.name).toBe('log');
    expect(String(Log)).toBe('log');
    expect(JSON.stringify({ to: Log })).toBe('{"to":"log"}');

    const watcher = probe<Down>(node);
    watcher.ctx.monitor(Log);
    node.exit(log, 'kill');
    const down = (await watcher.receive(isDown)) as Down;
    expect(down.reason).toBe('killed');
    expect(node.isAlive(Log)).toBe(false);
    expect(node.registry.whereis(Log)).toBeUndefined();
  });

  it('ties a spawn to its type: a process of other messages cannot take the name', () => {
    const node = track();
    const Log = Name.of<Line>('typed-log');
    const check = (): void => {
      // @ts-expect-error a process of numbers cannot be registered under a name of lines
      node.spawn((_ctx: Context<number>) => (_n: number) => {}, { name: Log });
      // @ts-expect-error an explicit message type must match the name's
      node.spawn<number>(() => () => {}, { name: Log });
    };
    void check;
    const ok = node.spawn<Line>(() => () => {}, { name: Log });
    expect(node.registry.whereis(Log)).toBe(ok);
  });

  it('registers and unregisters through the registry like a plain name', () => {
    const node = track();
    const Worker = Name.of<'go'>('worker');
    const pid = node.spawn<'go'>(() => () => {});
    node.registry.register(Worker, pid);
    expect(node.registry.names()).toEqual(['worker']);
    let err: unknown;
    try {
      node.registry.register(Name.of('worker'), node.spawn(() => () => {}));
    } catch (e) {
      err = e;
    }
    expect(isKeelError(err) && err.code).toBe('ERR_NAME_TAKEN');
    expect(node.registry.unregister(Worker)).toBe(true);
    expect(node.registry.unregister(Worker)).toBe(false);
  });

  it('drops a send to a name nobody holds with a noproc event, as a plain name does', async () => {
    const node = track();
    const dropped: { reason: unknown; to: unknown }[] = [];
    node.telemetry.attach('dropped', ['keel.message.dropped'], (_event, _m, meta) => dropped.push({ reason: meta.reason, to: meta.to }));
    node.send(Name.of<string>('nobody'), 'hello');
    await node.idle();
    expect(dropped).toEqual([{ reason: 'noproc', to: 'nobody' }]);
  });

  it('refuses what is not a name: empty text, non-strings, and look-alike objects as targets', () => {
    const node = track();
    const codes: unknown[] = [];
    const attempts: (() => unknown)[] = [
      () => Name.of(''),
      () => Name.of(42 as never),
      () => Name.of(undefined as never),
      () => node.send({ text: 'log' } as never, 'x'),
      () => node.registry.whereis({ text: 'log' } as never),
      () => node.spawn(() => () => {}, { name: { text: 'log' } as never }),
    ];
    for (const attempt of attempts) {
      try {
        attempt();
        codes.push('no error');
      } catch (e) {
        codes.push(isKeelError(e) ? e.code : e);
      }
    }
    expect(codes).toEqual(Array(attempts.length).fill('ERR_INVALID_ARGUMENT'));
    expect(Name.is(Name.of('a'))).toBe(true);
    expect(Name.is({ text: 'a' })).toBe(false);
    expect(Object.isFrozen(Name.of('a'))).toBe(true);
  });

  it("refuses a name made with its class's constructor from text that is not a non-empty string (ERR_INVALID_ARGUMENT, not a raw TypeError)", () => {
    const node = track();
    const pid = node.spawn(() => () => {});
    // the class is not exported, but any name leads to it
    const NameClass = Object.getPrototypeOf(Name.of('a')).constructor as new (text: unknown) => Name;
    for (const text of [42, '', undefined, { length: 3 }]) {
      const e = (() => {
        try {
          new NameClass(text);
          return 'no error';
        } catch (error) {
          return error;
        }
      })();
      expect(isKeelError(e, 'ERR_INVALID_ARGUMENT'), String(text)).toBe(true);
    }
    expect(node.registry.names()).toEqual([]);
    expect(node.info(pid)?.name).toBeUndefined();
    // a well-made one is a name as Name.of's
    const made = new NameClass('made');
    expect(Object.isFrozen(made)).toBe(true); // its text cannot be swapped for a number afterwards
    node.registry.register(made, pid);
    expect(node.registry.whereis('made')).toBe(pid);
  });
});

type CounterCalls = { request: { type: 'get' }; reply: number } | { request: { type: 'add'; n: number }; reply: number };
type CounterCast = { type: 'reset' };

const counterSpec: GenServerSpec<number, CounterCalls, CounterCast, number> = {
  init: (start) => start,
  handleCall: (req, _from, n) => (req.type === 'get' ? { reply: n, state: n } : { reply: n + req.n, state: n + req.n }),
  handleCast: (_req, _n) => 0,
};

describe('GenServer.name', () => {
  it('types a call by name end to end, and ties the spec started under it', async () => {
    const node = track();
    const Counter = GenServer.name<CounterCalls, CounterCast>('counter');
    const pid = await GenServer.start(node, counterSpec, 10, { name: Counter });
    const n = await GenServer.call(node, Counter, { type: 'add', n: 5 });
    expectTypeOf(n).toEqualTypeOf<number>();
    expect(n).toBe(15);
    GenServer.cast(node, Counter, { type: 'reset' });
    expect(await GenServer.call(node, Counter, { type: 'get' })).toBe(0);
    expect(node.registry.whereis(Counter)).toBe(pid);
    const check = async (): Promise<void> => {
      // @ts-expect-error not a request of the counter's protocol
      await GenServer.call(node, Counter, { type: 'mul', n: 2 });
      // @ts-expect-error not a cast of the counter
      GenServer.cast(node, Counter, { type: 'clear' });
      const Other = GenServer.name<{ request: 'ping'; reply: 'pong' }>('other');
      // @ts-expect-error a name of other calls cannot name a counter
      await GenServer.start(node, counterSpec, 0, { name: Other });
    };
    void check;
    await GenServer.stop(node, Counter);
    expect(node.registry.whereis(Counter)).toBeUndefined();
  });
});

describe('a supervisor under a typed name', () => {
  it('registers under it and answers calls made through it', async () => {
    const node = track();
    const Top = Name.of('top');
    const sup = await Supervisor.start(node, [], { strategy: 'one_for_one', name: Top });
    expect(node.registry.whereis(Top)).toBe(sup);
    expect(await Supervisor.countChildren(node, Top)).toEqual({ specs: 0, active: 0, supervisors: 0, workers: 0 });
  });
});

describe('errors about a typed name', () => {
  it('say the name as they do for a plain one', async () => {
    const node = track();
    const Cache = GenServer.name<{ request: 'get'; reply: number }>('cahce');
    const err = await GenServer.call(node, Cache, 'get').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isKeelError(err) && err.code).toBe('ERR_NOPROC');
    expect((err as Error).message).toBe("cannot call: no process is registered under the name 'cahce'");
  });
});
