import { describe, expect, it } from 'vitest';
import { createNode, GenServer, seededRandom, sendSupervised, SimulatedClock, type Node } from '../../src/index.js';
import { expectKeelError, thrown } from '../support.js';

/** A node on a fresh simulated clock, shut down by the test. */
function simulated(seed = 7): { clock: SimulatedClock; node: Node } {
  const clock = new SimulatedClock({ start: 0 });
  return { clock, node: createNode({ clock, random: seededRandom(seed), logger: { info() {}, warn() {}, error() {} } }) };
}

describe('SimulatedClock', () => {
  it('jumps to each due timer while the node is idle: an hour of minute ticks in real milliseconds', async () => {
    const { clock, node } = simulated();
    const ticks: number[] = [];
    const pid = node.spawn((ctx) => (m) => {
      if (m === 'tick') {
        ticks.push(clock.now());
        ctx.sendAfter(ctx.self, 'tick', 60_000);
      }
    });
    node.send(pid, 'tick');
    clock.setTimer(3_600_000, () => node.exit(pid, 'kill'));
    const started = performance.now();
    await clock.drained();
    expect(performance.now() - started).toBeLessThan(10_000); // a failure guard: it is milliseconds
    expect(clock.now()).toBe(3_600_000);
    // the kill was set first, so at 3,600,000 it fires before that minute's tick (ties in creation order)
    expect(ticks).toHaveLength(60);
    expect(ticks.every((t, i) => t === i * 60_000)).toBe(true);
    await node.shutdown();
  });

  it('fires timers in deadline order, ties in creation order, and a cleared one never', async () => {
    const clock = new SimulatedClock({ start: 100 });
    const fired: string[] = [];
    clock.setTimer(50, () => fired.push('b@150'));
    clock.setTimer(10, () => fired.push('a@110'));
    const cleared = clock.setTimer(20, () => fired.push('never'));
    clock.setTimer(50, () => fired.push('c@150'));
    clock.setTimer(-5, () => fired.push('now@100'));
    clock.clearTimer(cleared);
    await clock.drained();
    expect(fired).toEqual(['now@100', 'a@110', 'b@150', 'c@150']);
    expect(clock.now()).toBe(150);
  });

  it('ends when only unref()ed timers are left, as Node exits, and fires them when time passes for others', async () => {
    const clock = new SimulatedClock();
    const fired: number[] = [];
    clock.setTimer(1_000, () => fired.push(1_000)).unref();
    await clock.drained();
    expect(fired).toEqual([]);
    expect(clock.pendingTimers).toBe(1);
    clock.setTimer(5_000, () => fired.push(5_000));
    await clock.drained();
    expect(fired).toEqual([1_000, 5_000]);
  });

  it('does not move while a process is runnable: a call times out on virtual time only', async () => {
    const { clock, node } = simulated();
    const server = await GenServer.start(node, { init: () => 0, handleCall: () => ({ noreply: true as const, state: 0 }) });
    const started = clock.now();
    const e = await GenServer.call(node, server, 'hang', 30_000).catch((error: unknown) => error);
    expectKeelError(e, 'ERR_CALL_TIMEOUT');
    expect(clock.now() - started).toBe(30_000);
    await node.shutdown();
  });

  it('gives the same run for the same seed: retries with jittered backoff land at the same virtual times', async () => {
    const run = async (seed: number): Promise<number[]> => {
      const { clock, node } = simulated(seed);
      const times: number[] = [];
      node.telemetry.attach('t', ['keel.supervised_send.retry'], () => void times.push(clock.now()));
      await Promise.all(Array.from({ length: 20 }, (_, i) => sendSupervised(node, `nobody-${i % 3}`, i, { retries: 5, onError: 'ignore' })));
      await node.shutdown();
      return times;
    };
    const a = await run(11);
    expect(a).toHaveLength(100);
    expect(await run(11)).toEqual(a);
    expect(await run(12)).not.toEqual(a);
  });

  it('draws a node’s creation from its seeded random, so pids and message ids repeat too', async () => {
    const ids = async (): Promise<[number, string]> => {
      const node = createNode({ name: 'sim', clock: new SimulatedClock(), random: seededRandom(5), logger: { info() {}, warn() {}, error() {} } });
      const outcome = await sendSupervised(node, 'nobody', 'x', { onError: 'ignore' });
      await node.shutdown();
      return [node.creation, outcome.id];
    };
    const [creation, id] = await ids();
    expect(await ids()).toEqual([creation, id]);
    expect(id).toBe(`sim-${creation}-1`);
  });

  it('refuses a start that is not a finite number and a delay that is not a number', () => {
    expectKeelError(thrown(() => new SimulatedClock({ start: NaN })), 'ERR_INVALID_ARGUMENT');
    expectKeelError(thrown(() => new SimulatedClock().setTimer(NaN, () => undefined)), 'ERR_INVALID_ARGUMENT');
  });

  it('refuses an option it does not know (a clock started at 5000 with { now: 5000 } started at 0) and options it cannot read, with ERR_INVALID_ARGUMENT naming the option', () => {
    expectKeelError(thrown(() => new SimulatedClock({ now: 5000 } as never)), 'ERR_INVALID_ARGUMENT', 'options.now');
    const getter = {
      get start(): number {
        throw new Error('getter');
      },
    };
    expectKeelError(thrown(() => new SimulatedClock(getter)), 'ERR_INVALID_ARGUMENT', 'options.start');
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expectKeelError(thrown(() => new SimulatedClock(proxy)), 'ERR_INVALID_ARGUMENT');
  });

  it('clearTimer with a timer of another SimulatedClock leaves this clock’s timers alone', async () => {
    const a = new SimulatedClock({ start: 0 });
    const b = new SimulatedClock({ start: 0 });
    const fired: string[] = [];
    a.setTimer(10, () => fired.push('a1'));
    a.setTimer(20, () => fired.push('a2'));
    const b1 = b.setTimer(5, () => fired.push('b1'));
    a.clearTimer(b1);
    expect(a.pendingTimers).toBe(2);
    expect(b.pendingTimers).toBe(1);
    await Promise.all([a.drained(), b.drained()]);
    expect(fired.sort()).toEqual(['a1', 'a2', 'b1']);
  });

  it('refuses an infinite delay, which would move virtual time to Infinity and refuse every node timer after it', async () => {
    const { clock, node } = simulated();
    expectKeelError(thrown(() => clock.setTimer(Infinity, () => undefined)), 'ERR_INVALID_ARGUMENT');
    expect(clock.pendingTimers).toBe(0);
    clock.setTimer(Number.MAX_VALUE, () => undefined);
    await clock.drained();
    expect(clock.now()).toBe(Number.MAX_VALUE);
    // from there any further delay would end past the largest finite time
    expectKeelError(thrown(() => clock.setTimer(Number.MAX_VALUE, () => undefined)), 'ERR_INVALID_ARGUMENT');
    expect(clock.pendingTimers).toBe(0);
    expect(clock.now()).toBe(Number.MAX_VALUE);
    await node.shutdown();
  });
  it('guards a shutdown on virtual time: a stubborn process is killed after timeoutMs of the clock, the same at every run', async () => {
    const run = async (): Promise<[number, number]> => {
      const { clock, node } = simulated();
      let ticks = 0;
      const ticker = node.spawn((ctx) => (m) => {
        if (m === 'tick') {
          ticks++;
          ctx.sendAfter(ctx.self, 'tick', 1000);
        }
      });
      node.send(ticker, 'tick');
      // traps exits and never stops: the shutdown waits for it until its guard runs out
      node.spawn((ctx) => {
        ctx.trapExits(true);
        return () => undefined;
      });
      await node.idle();
      // on real time the guard let the ticker run for 50 real ms: hundreds of thousands of virtual ms, a different number at each run
      await node.shutdown({ timeoutMs: 5000 });
      return [clock.now(), ticks];
    };
    const first = await run();
    expect(first).toEqual([5000, 5]);
    expect(await run()).toEqual(first);
  });

  it('guards idle({ timeoutMs }) on virtual time: a process busy on a timer of the clock times it out after timeoutMs of the clock', async () => {
    const { clock, node } = simulated();
    const pid = node.spawn(() => () => new Promise<void>(() => undefined));
    node.send(pid, 'hang');
    clock.setTimer(60_000, () => undefined);
    const e = await node.idle({ timeoutMs: 1000 }).catch((error: unknown) => error);
    expectKeelError(e, 'ERR_IDLE_TIMEOUT');
    expect(clock.now()).toBe(1000);
    await node.shutdown();
  });
  it('jumps straight to a node timer far in the future: no wake-up every 2^31 - 1 ms (a host timer’s limit) on the way', async () => {
    const { clock, node } = simulated();
    const got: number[] = [];
    node.spawn((ctx) => {
      ctx.sendAfter(ctx.self, 'late', 1e300);
      return (m) => {
        if (m === 'late') got.push(clock.now());
      };
    });
    // 1e300 / 2^31 wake-ups: the simulation never ended
    await clock.drained();
    expect(got).toEqual([1e300]);
    await node.shutdown();
  });
});
