/* eslint-disable keel/no-unmanaged-monitor -- tests observe a machine's exit by a monitor's Down, the way STYLE.md 10 asks tests to wait */
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  type CallProtocol,
  type Exit,
  type ExitReason,
  GenServer,
  isExit,
  isKeelError,
  type Node,
  type Pid,
  type ServerPid,
  StateMachine,
  type StateMachineAction,
  type StateMachineEvent,
  type StateMachineSpec,
  Sys,
  type Transition,
} from '../../src/index.js';
import { captureEvents, probe } from '../../src/testing/index.js';
import { clockedNode, deferred, expectKeelError, failingWith, failure, failureModes, type FakeLogger, receiveDown, revokedProxy, trappingProxy, useNodes, watch, type Watched } from '../support.js';

const track = useNodes();

// ---- the door lock of the gen_statem docs ("Example", with state_enter and postponing) ----------

type Button = number;
type LockState = 'locked' | 'open';
interface LockData {
  readonly code: readonly Button[];
  readonly buttons: readonly Button[];
}
type LockCalls = { request: 'code_length'; reply: number };
type LockCast = { button: Button };
type LockMsg = 'lock' | 'button';

function codeLock(log: string[]): StateMachineSpec<LockState, LockData, LockCalls, LockCast, LockMsg, readonly Button[]> {
  type Ev = StateMachineEvent<LockState, LockCalls, LockCast, LockMsg>;
  type T = Transition<LockState, LockData, StateMachineAction<LockCalls, LockCast, LockMsg>>;
  // what every state does alike (the docs' handle_common)
  const common = (ev: Ev, data: LockData): T => {
    if (ev.type === 'call') return { keepState: true, actions: [{ type: 'reply', from: ev.from, reply: data.code.length }] };
    return { keepState: true };
  };
  return {
    init: (code) => ({ state: 'locked', data: { code, buttons: [] } }),
    stateEnter: true,
    states: {
      locked: (ev, data) => {
        switch (ev.type) {
          case 'enter':
            log.push('lock');
            return { keepState: true, data: { ...data, buttons: [] } };
          case 'state_timeout':
            log.push('buttons cleared');
            return { keepState: true, data: { ...data, buttons: [] } };
          case 'cast': {
            const kept = data.buttons.length < data.code.length ? data.buttons : data.buttons.slice(1);
            const buttons = [...kept, ev.content.button];
            if (buttons.join() === data.code.join()) return { nextState: 'open', data: { ...data, buttons: [] } };
            return { keepState: true, data: { ...data, buttons }, actions: [{ type: 'state_timeout', ms: 30_000, content: 'button' }] };
          }
          default:
            return common(ev, data);
        }
      },
      open: (ev, data) => {
        switch (ev.type) {
          case 'enter':
            log.push('unlock');
            return { keepState: true, actions: [{ type: 'state_timeout', ms: 10_000, content: 'lock' }] };
          case 'state_timeout':
            return { nextState: 'locked' };
          case 'cast':
            // buttons pressed while open count once the door has locked again
            return { keepState: true, actions: ['postpone'] };
          default:
            return common(ev, data);
        }
      },
    },
  };
}

describe('StateMachine: the door lock', () => {
  it('opens on the code, relocks on its state timeout, replays the buttons pressed while open', async () => {
    const { node, clock } = clockedNode(track);
    const log: string[] = [];
    const lock = await StateMachine.start(node, codeLock(log), [1, 2, 3]);
    await node.idle();
    expect(log).toEqual(['lock']); // the enter call after init
    expect(await StateMachine.call(node, lock, 'code_length')).toBe(3);
    for (const b of [9, 1, 2]) StateMachine.cast(node, lock, { button: b });
    await node.idle();
    expect(await Sys.getState(node, lock)).toEqual({ state: 'locked', data: { code: [1, 2, 3], buttons: [9, 1, 2] } });
    StateMachine.cast(node, lock, { button: 3 }); // the last three are the code
    await node.idle();
    expect(log).toEqual(['lock', 'unlock']);
    StateMachine.cast(node, lock, { button: 1 });
    StateMachine.cast(node, lock, { button: 2 });
    await clock.advance(9_999);
    expect(await Sys.getState(node, lock)).toEqual({ state: 'open', data: { code: [1, 2, 3], buttons: [] } });
    await clock.advance(1);
    expect(log).toEqual(['lock', 'unlock', 'lock']);
    // the postponed presses were replayed in the locked state, in order
    expect(await Sys.getState(node, lock)).toEqual({ state: 'locked', data: { code: [1, 2, 3], buttons: [1, 2] } });
    // 30 s without a press clears them; each press restarts that timeout
    await clock.advance(29_999);
    StateMachine.cast(node, lock, { button: 7 });
    await clock.advance(29_999);
    expect(log).toEqual(['lock', 'unlock', 'lock']);
    await clock.advance(1);
    expect(log).toEqual(['lock', 'unlock', 'lock', 'buttons cleared']);
    expect(((await Sys.getState(node, lock)) as { data: LockData }).data.buttons).toEqual([]);
  });

  it('types its calls: the reply type comes from the protocol', async () => {
    const { node } = clockedNode(track);
    const lock = await StateMachine.start(node, codeLock([]), [1]);
    expectTypeOf(lock).toEqualTypeOf<ServerPid<LockCalls, LockCast>>();
    const n = await StateMachine.call(node, lock, 'code_length');
    expectTypeOf(n).toEqualTypeOf<number>();
    expect(n).toBe(1);
    // a StateMachine is called exactly as a GenServer
    expect(await GenServer.call(node, lock, 'code_length')).toBe(1);
  });
});

// ---- a recorder: handle_event mode, every event logged, the transitions scripted per event -------

type Script = (ev: StateMachineEvent<string, CallProtocol, unknown, unknown>, state: string, data: number) => Transition<string, number, StateMachineAction<CallProtocol, unknown, unknown>>;

function describeEvent(ev: StateMachineEvent<string, CallProtocol, unknown, unknown>): string {
  switch (ev.type) {
    case 'enter':
      return `enter<-${ev.oldState}`;
    case 'call':
      return `call:${String(ev.request)}`;
    case 'generic_timeout':
      return `generic_timeout:${ev.name}:${String(ev.content)}`;
    default:
      return `${ev.type}:${String(ev.content)}`;
  }
}

/**
 * Casts 'go' to a machine whose async callback resolves `reached` and then awaits `gate`, kills the
 * machine there (its Down seen), then lets the callback settle and the node go idle.
 */
async function killMidCallback(node: Node, pid: Pid, reached: { promise: Promise<unknown> }, gate: { resolve(): void }): Promise<void> {
  const p = probe(node);
  const ref = p.ctx.monitor(pid);
  StateMachine.cast(node, pid, 'go');
  await reached.promise;
  node.exit(pid, 'kill');
  expect((await receiveDown(p, ref)).reason).toBe('killed');
  gate.resolve();
  await node.idle();
}

async function recorder(
  node: Parameters<typeof StateMachine.start>[0],
  script: Script,
  options: { stateEnter?: boolean; state?: string; actions?: StateMachineAction<CallProtocol, unknown, unknown>[]; terminate?: (reason: ExitReason, state: string, data: number) => void } = {},
) {
  const log: string[] = [];
  const pid = await StateMachine.start<string, number, CallProtocol, unknown, unknown>(node, {
    init: () => ({ state: options.state ?? 'a', data: 0, ...(options.actions === undefined ? {} : { actions: options.actions }) }),
    stateEnter: options.stateEnter ?? false,
    handleEvent: (ev, state, data) => {
      log.push(`${state}/${describeEvent(ev)}`);
      return script(ev, state, data);
    },
    ...(options.terminate === undefined ? {} : { terminate: options.terminate }),
  });
  return { pid, log };
}

const keep = { keepState: true } as const;

describe('StateMachine: postponed events', () => {
  it('replays postponed events oldest first on a state change, after inserted events, before the mailbox', async () => {
    const { node } = clockedNode(track);
    const { pid, log } = await recorder(node, (ev, state) => {
      if (ev.type !== 'cast') return keep;
      if (state === 'a' && ev.content === 'go') return { nextState: 'b', actions: [{ type: 'next_event', content: 'x' }, { type: 'next_event', content: 'y' }] };
      if (state === 'a') return { keepState: true, actions: ['postpone'] };
      return keep;
    });
    for (const m of [1, 2, 3, 'go', 4]) StateMachine.cast(node, pid, m);
    await node.idle();
    expect(log).toEqual(['a/cast:1', 'a/cast:2', 'a/cast:3', 'a/cast:go', 'b/internal:x', 'b/internal:y', 'b/cast:1', 'b/cast:2', 'b/cast:3', 'b/cast:4']);
  });

  it('keeps postponed events over keepState, repeatState and a nextState equal to the state (compared structurally)', async () => {
    const { node } = clockedNode(track);
    const log: string[] = [];
    const pid = await StateMachine.start<{ phase: string }, number, CallProtocol, string>(node, {
      init: () => ({ state: { phase: 'a' }, data: 0 }),
      handleEvent: (ev, state) => {
        if (ev.type !== 'cast') return keep;
        log.push(`${state.phase}/${ev.content}`);
        if (ev.content === 'same') return { nextState: { phase: 'a' } };
        if (ev.content === 'repeat') return { repeatState: true };
        if (ev.content === 'change') return { nextState: { phase: 'b' } };
        return state.phase === 'a' ? { keepState: true, actions: [{ type: 'postpone' }] } : keep;
      },
    });
    for (const m of ['p', 'same', 'repeat', 'change']) StateMachine.cast(node, pid, m);
    await node.idle();
    expect(log).toEqual(['a/p', 'a/same', 'a/repeat', 'a/change', 'b/p']);
  });

  it('compares cyclic states structurally without overflowing the stack: an equal one is no change, a different one is', async () => {
    const { node } = clockedNode(track);
    type Cyclic = { phase: string; self?: Cyclic };
    const cyclic = (phase: string): Cyclic => {
      const s: Cyclic = { phase };
      s.self = s;
      return s;
    };
    const log: string[] = [];
    const pid = await StateMachine.start<Cyclic, number, CallProtocol, string>(node, {
      init: () => ({ state: cyclic('a'), data: 0 }),
      stateEnter: true,
      handleEvent: (ev, state) => {
        if (ev.type === 'enter') log.push(`enter ${state.phase}`);
        else if (ev.type === 'cast') log.push(`${state.phase}/${ev.content}`);
        if (ev.type !== 'cast') return { keepState: true };
        if (ev.content === 'same') return { nextState: cyclic(state.phase) };
        if (ev.content === 'change') return { nextState: cyclic('b') };
        return { keepState: true, actions: ['postpone'] };
      },
    });
    const p = probe(node);
    const ref = p.ctx.monitor(pid);
    for (const m of ['p', 'same', 'change']) StateMachine.cast(node, pid, m);
    await node.idle();
    expect(log).toEqual(['enter a', 'a/p', 'a/same', 'a/change', 'enter b', 'b/p']);
    expect(node.isAlive(pid)).toBe(true);
    await StateMachine.stop(node, pid);
    expect((await receiveDown(p, ref)).reason).toBe('normal');
  });

  it('compares a deeply nested state without overflowing the stack, and a state that cannot be read (a revoked proxy, a throwing getter) by identity, never crashing', async () => {
    const { node } = clockedNode(track);
    const nested = (depth: number, leaf: string): unknown => {
      let s: unknown = leaf;
      for (let i = 0; i < depth; i++) s = [s];
      return s;
    };
    const revoked = revokedProxy();
    const throwingGetter = (): object => Object.defineProperty({}, 'phase', { enumerable: true, get: () => { throw new Error('getter'); } });
    const throwing = throwingGetter();
    const states: Record<string, () => unknown> = {
      deepA: () => nested(50_000, 'a'),
      deepB: () => nested(50_000, 'b'),
      revoked: () => revoked,
      otherRevoked: () => revokedProxy(),
      throwing: () => throwing,
      otherThrowing: throwingGetter,
      holed: () => Object.assign(new Array<number>(2), { 1: 1 }), // [ <hole>, 1 ]
      filled: () => [5, 1],
    };
    const log: string[] = [];
    const pid = await StateMachine.start<unknown, string, CallProtocol, string>(node, {
      init: () => ({ state: 'start', data: 'start' }),
      stateEnter: true,
      handleEvent: (ev, _state, data) => {
        if (ev.type === 'enter') log.push(`enter ${data}`);
        if (ev.type !== 'cast') return { keepState: true };
        log.push(`${data}->${ev.content}`);
        return { nextState: states[ev.content]!(), data: ev.content };
      },
    });
    const p = probe(node);
    const ref = p.ctx.monitor(pid);
    // deepA again is equal (no enter), deepB differs at its leaf; the same proxy is no change, another one is
    for (const m of ['deepA', 'deepA', 'deepB', 'revoked', 'revoked', 'otherRevoked', 'throwing', 'throwing', 'otherThrowing', 'holed', 'filled']) StateMachine.cast(node, pid, m);
    await node.idle();
    expect(log).toEqual([
      'enter start',
      'start->deepA', 'enter deepA',
      'deepA->deepA',
      'deepA->deepB', 'enter deepB',
      'deepB->revoked', 'enter revoked',
      'revoked->revoked',
      'revoked->otherRevoked', 'enter otherRevoked',
      'otherRevoked->throwing', 'enter throwing',
      'throwing->throwing',
      'throwing->otherThrowing', 'enter otherThrowing',
      'otherThrowing->holed', 'enter holed',
      'holed->filled', 'enter filled', // a hole is undefined, not 5
    ]);
    expect(node.isAlive(pid)).toBe(true);
    await StateMachine.stop(node, pid);
    expect((await receiveDown(p, ref)).reason).toBe('normal');
  });

  it('replays a huge postponed queue in linear time, in order, with the events it inserts first', async () => {
    const { node } = clockedNode(track);
    const n = 200_000;
    const handled: number[] = []; // a replayed cast k as k, the event it inserted as -(k + 1)
    const pid = await StateMachine.start<string, null, CallProtocol, number | 'go', number>(node, {
      init: () => ({ state: 'a', data: null }),
      handleEvent: (ev, state) => {
        if (ev.type === 'internal') {
          handled.push(-(ev.content + 1));
          return keep;
        }
        if (ev.type !== 'cast') return keep;
        const k = ev.content;
        if (k === 'go') return { nextState: 'b' };
        if (state === 'a') return { keepState: true, actions: ['postpone'] };
        handled.push(k);
        // every 1000th inserts an event, handled before the next postponed one
        return k % 1000 === 0 ? { keepState: true, actions: [{ type: 'next_event', content: k }] } : keep;
      },
    });
    for (let i = 0; i < n; i++) StateMachine.cast(node, pid, i);
    await node.idle();
    StateMachine.cast(node, pid, 'go');
    await node.idle();
    expect(handled).toEqual(Array.from({ length: n }, (_, i) => (i % 1000 === 0 ? [i, -(i + 1)] : [i])).flat());
  }, 5000); // a failure guard: taking one event off the front of an array made this quadratic (10 s, not 0.1)

  it('postpones a call: it is answered once replayed, and its caller waits meanwhile', async () => {
    const { node } = clockedNode(track);
    const { pid } = await recorder(node, (ev, state) => {
      if (ev.type === 'call' && state === 'a') return { keepState: true, actions: ['postpone'] };
      if (ev.type === 'call') return { keepState: true, actions: [{ type: 'reply', from: ev.from, reply: `${state}:${String(ev.request)}` }] };
      if (ev.type === 'cast') return { nextState: 'b' };
      return keep;
    });
    const answer = watch(StateMachine.call(node, pid, 'q'));
    await node.idle();
    expect(answer.status).toBe('pending');
    StateMachine.cast(node, pid, 'open');
    await node.idle();
    expect(answer).toMatchObject({ status: 'resolved', value: 'b:q' });
  });
});

describe('StateMachine: inserted events and enter calls', () => {
  it('handles inserted events in the order of their actions before anything in the mailbox', async () => {
    const { node } = clockedNode(track);
    const { pid, log } = await recorder(node, (ev) =>
      ev.type === 'cast' && ev.content === 'start'
        ? { keepState: true, actions: [{ type: 'next_event', content: 1 }, { type: 'next_event', kind: 'cast', content: 2 }, { type: 'next_event', kind: 'info', content: 3 }] }
        : keep);
    StateMachine.cast(node, pid, 'start');
    StateMachine.cast(node, pid, 'later');
    await node.idle();
    expect(log).toEqual(['a/cast:start', 'a/internal:1', 'a/cast:2', 'a/info:3', 'a/cast:later']);
  });

  it("inserts a call event with a call's from (kind: 'call'): the call is answered when that event is handled", async () => {
    const { node } = clockedNode(track);
    const seen: string[] = [];
    const pid = await StateMachine.start(node, {
      init: () => ({ state: 'idle' as string, data: 0 }),
      handleEvent: (ev, state) => {
        if (ev.type !== 'call') return { keepState: true };
        seen.push(`${state}/${String(ev.request)}`);
        // an alias: handled again as the call it stands for, in the state it leads to
        if (ev.request === 'alias') return { nextState: 'busy', actions: [{ type: 'next_event', kind: 'call', from: ev.from, content: 'real' }] };
        return { keepState: true, actions: [{ type: 'reply', from: ev.from, reply: `${state}:${String(ev.request)}` }] };
      },
    });
    expect(await StateMachine.call(node, pid, 'alias')).toBe('busy:real');
    expect(seen).toEqual(['idle/alias', 'busy/real']);
  });

  it("refuses a next_event of kind 'call' whose from is not a call's (the machine crashes with ERR_INVALID_ARGUMENT)", async () => {
    const { node } = clockedNode(track);
    const pid = await StateMachine.start(node, {
      init: () => ({ state: 'a', data: 0 }),
      handleEvent: () => ({ keepState: true, actions: [{ type: 'next_event', kind: 'call', from: {} as never, content: 'x' }] }),
    });
    const p = probe(node);
    const ref = p.ctx.monitor(pid);
    const call = watch(StateMachine.call(node, pid, 'go'));
    const down = await receiveDown(p, ref);
    expectKeelError(down.reason, 'ERR_INVALID_ARGUMENT');
    await node.idle();
    expect(call.status).toBe('rejected');
    expectKeelError(call.error, 'ERR_CALL_EXIT');
    expect(String((down.reason as Error).message)).toContain('next_event from');
  });

  it("runs init's inserted events after the first enter call, before the mailbox", async () => {
    const { node } = clockedNode(track);
    const { pid, log } = await recorder(node, () => keep, { stateEnter: true, actions: [{ type: 'next_event', content: 'boot' }] });
    StateMachine.cast(node, pid, 'm');
    await node.idle();
    expect(log).toEqual(['a/enter<-a', 'a/internal:boot', 'a/cast:m']);
  });

  it('a repeatState from an enter call enters again with the state before the whole transition', async () => {
    const { node } = clockedNode(track);
    let repeated = false;
    const { pid, log } = await recorder(
      node,
      (ev, state) => {
        if (ev.type === 'enter' && state === 'b' && !repeated) {
          repeated = true;
          return { repeatState: true };
        }
        if (ev.type === 'cast') return { nextState: 'b' };
        return keep;
      },
      { stateEnter: true },
    );
    StateMachine.cast(node, pid, 'go');
    await node.idle();
    // gen_statem commits the state once the transition is done: the repeated enter is from 'a' again
    expect(log).toEqual(['a/enter<-a', 'a/cast:go', 'b/enter<-a', 'b/enter<-a']);
  });


  it('an enter call may repeat itself any number of times in a row without overflowing the stack (as gen_statem loops)', async () => {
    const { node } = clockedNode(track);
    const pid = await StateMachine.start<string, number, CallProtocol, string>(node, {
      init: () => ({ state: 'a', data: 0 }),
      stateEnter: true,
      handleEvent: (ev, _state, data) => {
        if (ev.type === 'cast') return { nextState: 'b', data: 0 };
        // the enter call of 'b' repeats 100 000 times, then keeps its state
        if (ev.type === 'enter' && ev.oldState === 'a' && data < 100_000) return { repeatState: true, data: data + 1 };
        return { keepState: true };
      },
    });
    StateMachine.cast(node, pid, 'go');
    await node.idle();
    expect(node.isAlive(pid)).toBe(true);
    expect(await Sys.getState(node, pid)).toEqual({ state: 'b', data: 100_000 });
  });
  it('calls enter on a state change and on repeatState, with the old state, before the inserted events', async () => {
    const { node } = clockedNode(track);
    const { pid, log } = await recorder(
      node,
      (ev, state) => {
        if (ev.type === 'enter') return keep;
        if (ev.type === 'cast' && ev.content === 'next') return { nextState: state === 'a' ? 'b' : 'a', actions: [{ type: 'next_event', content: 'i' }] };
        if (ev.type === 'cast' && ev.content === 'repeat') return { repeatState: true };
        return keep;
      },
      { stateEnter: true },
    );
    for (const m of ['next', 'repeat', 'stay']) StateMachine.cast(node, pid, m);
    await node.idle();
    expect(log).toEqual(['a/enter<-a', 'a/cast:next', 'b/enter<-a', 'b/internal:i', 'b/cast:repeat', 'b/enter<-b', 'b/cast:stay']);
  });

  it('lets an enter call repeat itself and keep its state, and crashes the machine when it tries to change state', async () => {
    const { node } = clockedNode(track);
    let enters = 0;
    const { pid, log } = await recorder(
      node,
      (ev) => {
        if (ev.type === 'enter') return ++enters === 2 ? { repeatState: true } : { nextState: 'a' }; // nextState of the current state is allowed
        if (ev.type === 'cast' && ev.content === 'bad') return { nextState: 'b' };
        if (ev.type === 'cast') return { repeatState: true };
        return keep;
      },
      { stateEnter: true },
    );
    StateMachine.cast(node, pid, 'again');
    await node.idle();
    expect(log).toEqual(['a/enter<-a', 'a/cast:again', 'a/enter<-a', 'a/enter<-a']);
    const p = probe(node);
    const ref = p.ctx.monitor(pid);
    enters = 10; // the next enter call answers nextState 'a' while in state 'b': a bad enter result
    StateMachine.cast(node, pid, 'bad');
    const down = await receiveDown(p, ref);
    expectKeelError(down.reason, 'ERR_INVALID_ARGUMENT', 'state enter result');
  });

  it("keeps the data of before a refused enter result: terminate sees it, as gen_statem's terminate gets the data it had", async () => {
    const { node } = clockedNode(track);
    const seen: unknown[] = [];
    const pid = await StateMachine.start<string, number, CallProtocol, string, number>(node, {
      init: () => ({ state: 'a', data: 1 }),
      stateEnter: true,
      handleEvent: (ev, state) => {
        if (ev.type === 'enter') return state === 'a' ? { keepState: true } : { nextState: 'c', data: 99 }; // refused: an enter call cannot change state
        return { nextState: 'b', data: 2 };
      },
      terminate: (_reason, state, data) => void seen.push(state, data),
    });
    const p = probe(node);
    const ref = p.ctx.monitor(pid);
    StateMachine.cast(node, pid, 'go');
    expectKeelError((await receiveDown(p, ref)).reason, 'ERR_INVALID_ARGUMENT', 'state enter result');
    expect(seen).toEqual(['b', 2]);
  });

  it('refuses postpone and next_event from an enter call (the machine crashes)', async () => {
    for (const action of ['postpone', { type: 'next_event', content: 1 }] as const) {
      const { node } = clockedNode(track);
      const result = watch(StateMachine.start<string, number, CallProtocol, never, number>(node, { init: () => ({ state: 'a', data: 0 }), stateEnter: true, handleEvent: () => ({ keepState: true, actions: [action] }) }));
      await node.idle();
      expect(result.status).toBe('resolved');
      expect(node.isAlive(result.value!)).toBe(false);
    }
  });
});

describe('StateMachine: timeouts on the node clock', () => {
  it('a state timeout fires in its state, is restarted by setting it again, and is cancelled by a state change', async () => {
    const { node, clock } = clockedNode(track);
    const { pid, log } = await recorder(node, (ev, state) => {
      if (ev.type === 'cast' && ev.content === 'arm') return { keepState: true, actions: [{ type: 'state_timeout', ms: 100, content: state }] };
      if (ev.type === 'cast' && ev.content === 'move') return { nextState: state === 'a' ? 'b' : 'a' };
      if (ev.type === 'cast' && ev.content === 'repeat') return { repeatState: true };
      return keep;
    });
    StateMachine.cast(node, pid, 'arm');
    await clock.advance(60);
    StateMachine.cast(node, pid, 'arm'); // restarts it: due at 160
    StateMachine.cast(node, pid, 'repeat'); // no state change: it keeps running
    await clock.advance(99);
    expect(log.filter((l) => l.includes('timeout'))).toEqual([]);
    await clock.advance(1);
    expect(log.at(-1)).toBe('a/state_timeout:a');
    StateMachine.cast(node, pid, 'arm');
    StateMachine.cast(node, pid, 'move');
    await clock.advance(1000);
    expect(log.filter((l) => l.includes('timeout'))).toEqual(['a/state_timeout:a']);
    expect(node.internals().timers).toBe(0);
  });

  it('reads each field of a timeout action once: an ms getter that answers 100, then NaN, sets a 100 ms timeout', async () => {
    const { node, clock } = clockedNode(track);
    const reads: Record<string, number> = {};
    const counted = (fields: Record<string, unknown[]>): object =>
      Object.defineProperties(
        {},
        Object.fromEntries(
          Object.entries(fields).map(([key, answers]) => [
            key,
            { enumerable: true, get: () => answers[Math.min((reads[key] = (reads[key] ?? 0) + 1) - 1, answers.length - 1)] },
          ]),
        ),
      );
    const { pid, log } = await recorder(node, (ev) => {
      if (ev.type === 'cast' && ev.content === 'arm') {
        return { keepState: true, actions: [counted({ type: ['generic_timeout'], name: ['t', 7], ms: [100, NaN], content: ['fired', 'other'], cancel: [undefined, true] }) as never] };
      }
      return keep;
    });
    StateMachine.cast(node, pid, 'arm');
    await node.idle();
    expect(reads).toEqual({ type: 1, name: 1, ms: 1, content: 1, cancel: 1 });
    await clock.advance(99);
    expect(log.filter((l) => l.includes('timeout'))).toEqual([]);
    await clock.advance(1);
    expect(log.at(-1)).toBe('a/generic_timeout:t:fired');
    expect(node.isAlive(pid)).toBe(true);
  });

  it('a state timeout set in the transition that changes state runs in the new state; cancel and Infinity cancel it', async () => {
    const { node, clock } = clockedNode(track);
    const { pid, log } = await recorder(node, (ev, state) => {
      if (ev.type === 'cast' && ev.content === 'move') return { nextState: 'b', actions: [{ type: 'state_timeout', ms: 10, content: 'moved' }] };
      if (ev.type === 'cast' && ev.content === 'arm') return { keepState: true, actions: [{ type: 'state_timeout', ms: 10, content: state }] };
      if (ev.type === 'cast' && ev.content === 'cancel') return { keepState: true, actions: [{ type: 'state_timeout', cancel: true }] };
      if (ev.type === 'cast' && ev.content === 'never') return { keepState: true, actions: [{ type: 'state_timeout', ms: Infinity, content: 'x' }] };
      return keep;
    });
    StateMachine.cast(node, pid, 'move');
    await clock.advance(10);
    expect(log.at(-1)).toBe('b/state_timeout:moved');
    for (const stop of ['cancel', 'never']) {
      StateMachine.cast(node, pid, 'arm');
      StateMachine.cast(node, pid, stop);
      await clock.advance(100);
    }
    expect(log.filter((l) => l.includes('timeout'))).toEqual(['b/state_timeout:moved']);
    expect(node.internals().timers).toBe(0);
  });

  it('an event timeout is cancelled by any event, and fires when none comes', async () => {
    const { node, clock } = clockedNode(track);
    const { pid, log } = await recorder(node, (ev) =>
      ev.type === 'cast' && ev.content === 'arm' ? { keepState: true, actions: [{ type: 'timeout', ms: 50, content: 'idle' }] } : keep);
    StateMachine.cast(node, pid, 'arm');
    await clock.advance(49);
    node.send(pid, 'any message');
    await clock.advance(100);
    expect(log).toEqual(['a/cast:arm', 'a/info:any message']);
    StateMachine.cast(node, pid, 'arm');
    await clock.advance(50);
    expect(log.at(-1)).toBe('a/timeout:idle');
    expect(node.internals().timers).toBe(0);
  });

  it('an event timeout is not started while inserted events are queued', async () => {
    const { node, clock } = clockedNode(track);
    const { pid, log } = await recorder(node, (ev) =>
      ev.type === 'cast' ? { keepState: true, actions: [{ type: 'timeout', ms: 0, content: 'zero' }, { type: 'next_event', content: 'n' }] } : keep);
    StateMachine.cast(node, pid, 'go');
    await clock.advance(100);
    expect(log).toEqual(['a/cast:go', 'a/internal:n']);
  });

  it('0 ms timeouts come after the queued events but before the mailbox, a 0 ms event timeout too (as OTP 23.2+: a waiting message does not cancel it)', async () => {
    const { node } = clockedNode(track);
    const { pid, log } = await recorder(node, (ev) => {
      if (ev.type === 'cast' && ev.content === 'zero') {
        return { keepState: true, actions: [{ type: 'state_timeout', ms: 0, content: 's' }, { type: 'generic_timeout', name: 'g', ms: 0, content: 'g' }, { type: 'next_event', content: 'n' }] };
      }
      if (ev.type === 'cast' && ev.content === 'idle0') return { keepState: true, actions: [{ type: 'timeout', ms: 0, content: 'e' }] };
      return keep;
    });
    StateMachine.cast(node, pid, 'zero');
    StateMachine.cast(node, pid, 'after');
    await node.idle();
    expect(log).toEqual(['a/cast:zero', 'a/internal:n', 'a/state_timeout:s', 'a/generic_timeout:g:g', 'a/cast:after']);
    log.length = 0;
    StateMachine.cast(node, pid, 'idle0');
    await node.idle();
    StateMachine.cast(node, pid, 'idle0');
    StateMachine.cast(node, pid, 'waiting');
    await node.idle();
    expect(log).toEqual(['a/cast:idle0', 'a/timeout:e', 'a/cast:idle0', 'a/timeout:e', 'a/cast:waiting']);
  });

  it('a 0 ms event timeout takes its place among the 0 ms timeouts of its transition: before a later one it fires, after an earlier one it is cancelled (as OTP)', async () => {
    const { node } = clockedNode(track);
    const { pid, log } = await recorder(node, (ev, state) => {
      if (ev.type === 'cast' && ev.content === 'event first') return { keepState: true, actions: [{ type: 'timeout', ms: 0, content: 'e' }, { type: 'state_timeout', ms: 0, content: 's' }] };
      if (ev.type === 'cast' && ev.content === 'state first') return { keepState: true, actions: [{ type: 'state_timeout', ms: 0, content: 's' }, { type: 'timeout', ms: 0, content: 'e' }] };
      if (ev.type === 'cast' && ev.content === 'move') return { nextState: 'b', actions: [{ type: 'timeout', ms: 0, content: 'e' }] };
      if (ev.type === 'enter' && state === 'b') return { keepState: true, actions: [{ type: 'generic_timeout', name: 'g', ms: 0, content: 'g' }] };
      return keep;
    }, { stateEnter: true });
    StateMachine.cast(node, pid, 'event first');
    StateMachine.cast(node, pid, 'state first');
    // the event transition's timeouts come before its enter call's, as gen_statem collects both
    StateMachine.cast(node, pid, 'move');
    await node.idle();
    expect(log).toEqual([
      'a/enter<-a',
      'a/cast:event first', 'a/timeout:e', 'a/state_timeout:s',
      'a/cast:state first', 'a/state_timeout:s',
      'a/cast:move', 'b/enter<-a', 'b/timeout:e', 'b/generic_timeout:g:g',
    ]);
    expect(node.internals().timers).toBe(0);
  });

  it('a cancelled 0 ms timeout leaves the queue: it holds back no event timeout', async () => {
    const { node, clock } = clockedNode(track);
    const { pid, log } = await recorder(node, (ev) => {
      if (ev.type === 'cast' && ev.content === 'state') {
        return { keepState: true, actions: [{ type: 'state_timeout', ms: 0, content: 'z' }, { type: 'state_timeout', cancel: true }, { type: 'timeout', ms: 100, content: 'et' }] };
      }
      if (ev.type === 'cast' && ev.content === 'generic') {
        return { keepState: true, actions: [{ type: 'generic_timeout', name: 'g', ms: 0, content: 'z' }, { type: 'generic_timeout', name: 'g', cancel: true }, { type: 'timeout', ms: 100, content: 'et2' }] };
      }
      return keep;
    });
    StateMachine.cast(node, pid, 'state');
    await clock.advance(100);
    StateMachine.cast(node, pid, 'generic');
    await clock.advance(100);
    expect(log).toEqual(['a/cast:state', 'a/timeout:et', 'a/cast:generic', 'a/timeout:et2']);
    expect(node.internals().timers).toBe(0);
  });

  it('generic timeouts survive state changes, run by name, and are restarted or cancelled by name', async () => {
    const { node, clock } = clockedNode(track);
    const { pid, log } = await recorder(node, (ev, state) => {
      if (ev.type !== 'cast') return keep;
      const [cmd, name] = String(ev.content).split(' ');
      if (cmd === 'arm') return { keepState: true, actions: [{ type: 'generic_timeout', name: name!, ms: 100, content: `${name}@${state}` }] };
      if (cmd === 'cancel') return { keepState: true, actions: [{ type: 'generic_timeout', name: name!, cancel: true }] };
      if (cmd === 'move') return { nextState: state === 'a' ? 'b' : 'a' };
      return keep;
    });
    StateMachine.cast(node, pid, 'arm x');
    StateMachine.cast(node, pid, 'arm y');
    StateMachine.cast(node, pid, 'arm z');
    await clock.advance(50);
    StateMachine.cast(node, pid, 'move');
    StateMachine.cast(node, pid, 'arm y'); // restarted: due at 150, content from state b
    StateMachine.cast(node, pid, 'cancel z');
    await clock.advance(50);
    expect(log.filter((l) => l.includes('timeout'))).toEqual(['b/generic_timeout:x:x@a']);
    await clock.advance(50);
    expect(log.filter((l) => l.includes('timeout'))).toEqual(['b/generic_timeout:x:x@a', 'b/generic_timeout:y:y@b']);
    await clock.advance(1000);
    expect(log.filter((l) => l.includes('timeout'))).toHaveLength(2);
    expect(node.internals().timers).toBe(0);
  });

  it('refuses a bad timeout action: the machine crashes with ERR_INVALID_ARGUMENT', async () => {
    for (const action of [{ type: 'state_timeout', ms: -1, content: 1 }, { type: 'generic_timeout', ms: 1, content: 1 }, { type: 'timeout', ms: Number.NaN, content: 1 }, { type: 'teleport' }]) {
      const { node } = clockedNode(track);
      const { pid } = await recorder(node, () => ({ keepState: true, actions: [action as never] }));
      const p = probe(node);
      const ref = p.ctx.monitor(pid);
      StateMachine.cast(node, pid, 'go');
      expectKeelError((await receiveDown(p, ref)).reason, 'ERR_INVALID_ARGUMENT');
    }
  });
});

describe('StateMachine: calls, stop and errors', () => {
  it('fails a call as GenServer does: the stage of ERR_CALL_EXIT tells the handled call from the postponed one', async () => {
    const { node } = clockedNode(track);
    const { pid } = await recorder(node, (ev) => {
      if (ev.type === 'call' && ev.request === 'later') return { keepState: true, actions: ['postpone'] };
      if (ev.type === 'call' && ev.request === 'boom') throw new Error('boom');
      return keep;
    });
    const postponed = watch(StateMachine.call(node, pid, 'later'));
    const unanswered = watch(StateMachine.call(node, pid, 'ignored'));
    await node.idle();
    const boom = watch(StateMachine.call(node, pid, 'boom'));
    await node.idle();
    expectKeelError(boom.error, 'ERR_CALL_EXIT', 'while handling this call', 'boom');
    expectKeelError(postponed.error, 'ERR_CALL_EXIT', 'queued');
    expect((postponed.error as { stage: string }).stage).toBe('queued');
    expect((unanswered.error as { stage: string }).stage).toBe('deferred');
    expectKeelError(await failure(() => StateMachine.call(node, pid, 'x')), 'ERR_NOPROC');
  });

  it.each(['killed', 'crashed'])("fails an inserted call event still queued when the machine is %s with stage 'queued', as a postponed one", async (how) => {
    const { node } = clockedNode(track);
    const gate = deferred();
    const reached = deferred();
    const pid = await StateMachine.start<string, null, CallProtocol, never, string>(node, {
      init: () => ({ state: 'a', data: null }),
      handleEvent: async (ev) => {
        // the call goes back on the machine's queue behind an internal event that waits
        if (ev.type === 'call' && ev.request === 'alias') return { keepState: true, actions: [{ type: 'next_event', content: 'wait' }, { type: 'next_event', kind: 'call', from: ev.from, content: 'real' }] };
        if (ev.type === 'internal') {
          reached.resolve();
          await gate.promise;
          throw new Error('crash');
        }
        return keep;
      },
    });
    const call = watch(StateMachine.call(node, pid, 'alias', 60_000));
    await reached.promise;
    if (how === 'killed') node.exit(pid, 'kill');
    else gate.resolve();
    await node.idle();
    expect(node.isAlive(pid)).toBe(false);
    // before: 'deferred' when killed (the stage its first handling left), 'queued' when it crashed
    expectKeelError(call.error, 'ERR_CALL_EXIT', 'queued');
    expect((call.error as { stage: string }).stage).toBe('queued');
    gate.resolve();
  });

  it('times a call out on the node clock, names the machine called by name, refuses a call to itself', async () => {
    const { node, clock } = clockedNode(track);
    const Named = StateMachine.name<{ request: string; reply: string }, string>('machine');
    let self: Watched<unknown> | undefined;
    await StateMachine.start<string, number, { request: string; reply: string }, string>(
      node,
      {
        init: () => ({ state: 'a', data: 0 }),
        handleEvent: (ev, _s, _d, ctx) => {
          // eslint-disable-next-line keel/no-self-call -- the deadlock is what is tested
          if (ev.type === 'cast') self = watch(StateMachine.call(ctx, ctx.self, 'me'));
          return { keepState: true };
        },
      },
      undefined,
      { name: Named },
    );
    const late = watch(StateMachine.call(node, Named, 'anything', 100));
    await clock.advance(100);
    expectKeelError(late.error, 'ERR_CALL_TIMEOUT', "'machine'", '100 ms');
    StateMachine.cast(node, Named, 'x');
    await node.idle();
    expectKeelError(self?.error, 'ERR_DEADLOCK');
    expectKeelError(await failure(() => StateMachine.call(node, 'nobody', 'x')), 'ERR_NOPROC', "'nobody'");
  });

  it('answers a call later with StateMachine.reply', async () => {
    const { node } = clockedNode(track);
    let held: unknown;
    const { pid } = await recorder(node, (ev) => {
      if (ev.type === 'call') held = ev.from;
      if (ev.type === 'cast') StateMachine.reply(held as never, 'now');
      return keep;
    });
    const answer = watch(StateMachine.call(node, pid, 'q'));
    await node.idle();
    expect(answer.status).toBe('pending');
    StateMachine.cast(node, pid, 'answer');
    await node.idle();
    expect(answer).toMatchObject({ status: 'resolved', value: 'now' });
  });

  it('stops on a stop result: replies first, then terminate(reason, state, data), then exits with the reason', async () => {
    const { node } = clockedNode(track);
    const seen: unknown[] = [];
    const { pid } = await recorder(
      node,
      (ev, _state, data) => (ev.type === 'call' ? { stop: { shutdown: 'done' }, data: data + 1, actions: [{ type: 'reply', from: ev.from, reply: 'bye' }] } : keep),
      { state: 's', terminate: (reason, state, data) => void seen.push(reason, state, data) },
    );
    const p = probe(node);
    const ref = p.ctx.monitor(pid);
    expect(await StateMachine.call(node, pid, 'stop')).toBe('bye');
    expect((await receiveDown(p, ref)).reason).toEqual({ shutdown: 'done' });
    expect(seen).toEqual([{ shutdown: 'done' }, 's', 1]);
  });

  it('runs terminate on StateMachine.stop and after a crash', async () => {
    const { node } = clockedNode(track);
    const seen: unknown[] = [];
    const { pid } = await recorder(node, () => keep, { terminate: (reason, state) => void seen.push(reason, state) });
    await StateMachine.stop(node, pid, 'shutdown');
    expect(seen).toEqual(['shutdown', 'a']);
    const crashing = await recorder(node, () => {
      throw new Error('bad');
    }, { terminate: (reason) => void seen.push(String(reason)) });
    const p = probe(node);
    const ref = p.ctx.monitor(crashing.pid);
    StateMachine.cast(node, crashing.pid, 1);
    await receiveDown(p, ref);
    expect(seen).toEqual(['shutdown', 'a', 'Error: bad']);
  });

  it.each(failureModes)("exits with terminate's error when terminate %s, on a stop result (the replies still sent), on StateMachine.stop and after a crash, and logs it once", async (mode) => {
    const { node } = clockedNode(track);
    const p = probe(node);
    const failed = new Error('terminate failed');
    const terminate = failingWith(mode, failed) as () => void;
    // a stop result with a reply
    const stopping = await recorder(node, (ev) => (ev.type === 'call' ? { stop: 'normal', actions: [{ type: 'reply', from: ev.from, reply: 'bye' }] } : keep), { terminate });
    let ref = p.ctx.monitor(stopping.pid);
    expect(await StateMachine.call(node, stopping.pid, 'stop')).toBe('bye');
    expect((await receiveDown(p, ref)).reason).toBe(failed);
    // StateMachine.stop
    const stopped = await recorder(node, () => keep, { terminate });
    ref = p.ctx.monitor(stopped.pid);
    const e = await failure(() => StateMachine.stop(node, stopped.pid, 'shutdown'));
    expectKeelError(e, 'ERR_CALL_EXIT', 'terminate failed');
    expect((await receiveDown(p, ref)).reason).toBe(failed);
    // a crash
    const crashing = await recorder(node, () => {
      throw new Error('bad');
    }, { terminate });
    ref = p.ctx.monitor(crashing.pid);
    StateMachine.cast(node, crashing.pid, 1);
    expect((await receiveDown(p, ref)).reason).toBe(failed);
    expect((node.logger as FakeLogger).errors.filter((args) => args.includes(failed))).toHaveLength(3);
  });

  it('refuses a result or an action that cannot be read: the machine crashes with ERR_INVALID_ARGUMENT naming it, not a raw TypeError', async () => {
    const throwing = (key: string): object =>
      Object.defineProperty({}, key, {
        enumerable: true,
        get: () => {
          throw new Error('getter');
        },
      });
    const unreadableElement = new Proxy([1], {
      get: (target, key) => {
        if (key === '0') throw new Error('element');
        return Reflect.get(target, key) as unknown;
      },
    });
    const cases: [string, () => unknown, string][] = [
      ['a revoked proxy', () => revokedProxy(), 'state callback result'],
      ['a proxy whose traps throw', () => trappingProxy(), 'state callback result'],
      ['actions whose getter throws', () => Object.assign(throwing('actions'), { keepState: true }), 'state callback result.actions'],
      ['actions a revoked proxy', () => ({ keepState: true, actions: revokedProxy() }), '`actions`'],
      ['an action list whose element cannot be read', () => ({ keepState: true, actions: unreadableElement }), 'actions[0]'],
      ['an action a revoked proxy', () => ({ keepState: true, actions: ['hibernate', revokedProxy()] }), 'actions[1]'],
      ["an action's type getter throws", () => ({ keepState: true, actions: [throwing('type')] }), 'actions[0].type'],
      ["a timeout action's ms getter throws", () => ({ keepState: true, actions: [Object.assign(throwing('ms'), { type: 'timeout' })] }), 'actions[0].ms'],
      ["a reply action's from getter throws", () => ({ keepState: true, actions: [Object.assign(throwing('from'), { type: 'reply' })] }), 'actions[0].from'],
    ];
    for (const [what, result, named] of cases) {
      const { node } = clockedNode(track);
      const { pid } = await recorder(node, (ev) => (ev.type === 'cast' ? (result() as never) : keep));
      const p = probe(node);
      const ref = p.ctx.monitor(pid);
      StateMachine.cast(node, pid, 'go');
      const { reason } = await receiveDown(p, ref);
      expect(isKeelError(reason, 'ERR_INVALID_ARGUMENT'), what).toBe(true);
      expectKeelError(reason, 'ERR_INVALID_ARGUMENT', named);
    }
    // an enter call's result, and init's actions
    const { node } = clockedNode(track);
    const { pid } = await recorder(node, (ev, state) => (ev.type === 'cast' ? { nextState: 'b' } : ev.type === 'enter' && state === 'b' ? (revokedProxy() as never) : keep), { stateEnter: true });
    const p = probe(node);
    const ref = p.ctx.monitor(pid);
    StateMachine.cast(node, pid, 'go');
    expectKeelError((await receiveDown(p, ref)).reason, 'ERR_INVALID_ARGUMENT', 'state enter result');
    // init's actions run as the start resolves: their crash comes to a linked starter that traps exits
    p.ctx.trapExits();
    const started = await StateMachine.startLink<string, number, CallProtocol, string>(p.ctx, { init: () => ({ state: 'a', data: 0, actions: [revokedProxy() as never] }), handleEvent: () => keep });
    const exit = (await p.receive((m) => isExit(m) && m.from === started)) as Exit;
    expectKeelError(exit.reason, 'ERR_INVALID_ARGUMENT', 'actions[0]');
  });

  it('refuses an action list whose length is no array length (a proxy answering Infinity, 1e300, -1, 1.5, NaN or a string) or more than 100,000 (a proxy answering 2^32 - 1: billions of valid actions would freeze the node): the machine crashes with ERR_INVALID_ARGUMENT naming it, reading no element', async () => {
    for (const length of [Infinity, 1e300, 2 ** 32, 2 ** 32 - 1, 100_001, -1, 1.5, NaN, '3']) {
      let reads = 0;
      // an array to Array.isArray, every element a valid action: a loop to its length never ends
      const endless = new Proxy([], {
        get: (target, key) => {
          if (key === 'length') return length;
          if (typeof key === 'string' && /^\d+$/.test(key)) {
            if (++reads > 1000) throw new Error('read past 1000 elements');
            return 'hibernate';
          }
          return Reflect.get(target, key) as unknown;
        },
      });
      const { node } = clockedNode(track);
      const { pid } = await recorder(node, (ev) => (ev.type === 'cast' ? { keepState: true, actions: endless as never } : keep));
      const p = probe(node);
      const ref = p.ctx.monitor(pid);
      StateMachine.cast(node, pid, 'go');
      const { reason } = await receiveDown(p, ref);
      expectKeelError(reason, 'ERR_INVALID_ARGUMENT', '`actions.length`', 'an array length of at most');
      expect(String((reason as Error).message), String(length)).toContain('at most 100000');
      expect(reads, String(length)).toBe(0);
    }
  });

  it("refuses an init result or a replaceState result that cannot be read with ERR_INVALID_ARGUMENT naming it (a start refused, the state kept)", async () => {
    const { node } = clockedNode(track);
    const start = await failure(() => StateMachine.start<string, number, CallProtocol, string>(node, { init: () => revokedProxy() as never, handleEvent: () => keep }));
    expectKeelError(start, 'ERR_START_FAILED', 'init result');
    expect(isKeelError((start as { reason: unknown }).reason, 'ERR_INVALID_ARGUMENT')).toBe(true);
    const pid = await StateMachine.start<string, number, CallProtocol, string>(node, { init: () => ({ state: 'a', data: 0 }), handleEvent: () => keep });
    expectKeelError(await failure(() => Sys.replaceState(node, pid, () => revokedProxy() as never)), 'ERR_INVALID_ARGUMENT', 'replaceState result');
    expect(await Sys.getState(node, pid)).toEqual({ state: 'a', data: 0 });
  });

  it('reads each field of a result once: a nextState getter that answers b, then c, moves to b', async () => {
    const { node } = clockedNode(track);
    let reads = 0;
    const { pid } = await recorder(node, (ev) =>
      ev.type === 'cast'
        ? (Object.defineProperty({}, 'nextState', { enumerable: true, get: () => (++reads === 1 ? 'b' : 'c') }) as never)
        : keep);
    StateMachine.cast(node, pid, 'go');
    await node.idle();
    expect(reads).toBe(1);
    expect(await Sys.getState(node, pid)).toEqual({ state: 'b', data: 0 });
  });

  it('crashes on a result that is no transition, or a missing state function', async () => {
    for (const result of [undefined, 42, { state: 'b' }, { keepState: true, actions: 'postpone' }, { stop: 'done' }, { keepState: true, actions: [{ type: 'reply', from: {}, reply: 1 }] }, { keepState: true, actions: [{ type: 'next_event', kind: null, content: 1 }] }]) {
      const { node } = clockedNode(track);
      const { pid } = await recorder(node, () => result as never);
      const p = probe(node);
      const ref = p.ctx.monitor(pid);
      StateMachine.cast(node, pid, 'go');
      expectKeelError((await receiveDown(p, ref)).reason, 'ERR_INVALID_ARGUMENT');
    }
    const { node } = clockedNode(track);
    const pid = await StateMachine.start<'a' | 'b', null, CallProtocol, string>(node, { init: () => ({ state: 'a', data: null }), states: { a: () => ({ nextState: 'b' }), b: undefined as never } });
    const p = probe(node);
    const ref = p.ctx.monitor(pid);
    StateMachine.cast(node, pid, 'go'); // to state b
    StateMachine.cast(node, pid, 'go'); // no function for it
    expectKeelError((await receiveDown(p, ref)).reason, 'ERR_INVALID_ARGUMENT', 'state function', '"b"');
  });

  it.each(['toString', 'constructor', 'hasOwnProperty'])("finds no state function for the state '%s' on the states object's prototype: the machine crashes saying so", async (state) => {
    const { node } = clockedNode(track);
    const pid = await StateMachine.start<string, null, CallProtocol, string>(node, { init: () => ({ state: 'a', data: null }), states: { a: () => ({ nextState: state }) } });
    const p = probe(node);
    const ref = p.ctx.monitor(pid);
    StateMachine.cast(node, pid, 'go'); // to the state
    StateMachine.cast(node, pid, 'go'); // no function for it
    expectKeelError((await receiveDown(p, ref)).reason, 'ERR_INVALID_ARGUMENT', 'state function', `"${state}"`);
  });

  it("takes a state's function from the states object's class, and an own one named as Object.prototype's", async () => {
    const { node } = clockedNode(track);
    class States {
      a(): Transition<string, null> {
        return { nextState: 'toString' };
      }
    }
    const states = Object.assign(new States(), { toString: () => ({ keepState: true, data: 'in toString' }) }) as unknown as Record<string, () => Transition<string, null>>;
    const pid = await StateMachine.start<string, null, CallProtocol, string>(node, { init: () => ({ state: 'a', data: null }), states });
    StateMachine.cast(node, pid, 'go');
    StateMachine.cast(node, pid, 'go');
    expect(await Sys.getState(node, pid)).toEqual({ state: 'toString', data: 'in toString' });
  });

  it("keeps the callback mode it started with (gen_statem's callback_mode): a spec changed afterwards changes no machine running", async () => {
    const { node } = clockedNode(track);
    const log: string[] = [];
    const spec: { init: () => { state: string; data: null }; states: object; stateEnter?: boolean; handleEvent?: () => unknown } = {
      init: () => ({ state: 'a', data: null }),
      states: {
        a: (ev: { type: string }) => (log.push(`a/${ev.type}`), ev.type === 'cast' ? { nextState: 'b' } : keep),
        b: (ev: { type: string }) => (log.push(`b/${ev.type}`), keep),
      },
    };
    const pid = await StateMachine.start<string, null, CallProtocol, string>(node, spec as never);
    // the spec object reused for another machine: with enter calls, in handle_event mode
    spec.stateEnter = true;
    spec.handleEvent = () => (log.push('handleEvent'), keep);
    StateMachine.cast(node, pid, 'go');
    StateMachine.cast(node, pid, 'again');
    await node.idle();
    expect(log).toEqual(['a/cast', 'b/cast']);
    // stateEnter turned on after the start: no enter call on the state change
    const other: { init: () => { state: string; data: null }; handleEvent: (ev: { type: string }, state: string) => unknown; stateEnter?: boolean } = {
      init: () => ({ state: 'a', data: null }),
      handleEvent: (ev, state) => (log.push(`${state}/${ev.type}`), ev.type === 'cast' ? { nextState: 'b' } : keep),
    };
    const second = await StateMachine.start<string, null, CallProtocol, string>(node, other as never);
    other.stateEnter = true;
    StateMachine.cast(node, second, 'go');
    await node.idle();
    expect(log).toEqual(['a/cast', 'b/cast', 'a/cast']);
  });

  it('refuses a bad spec at once, and fails the start of a bad init with ERR_START_FAILED', async () => {
    const { node } = clockedNode(track);
    const both = { init: () => ({ state: 'a', data: 0 }), handleEvent: () => ({ keepState: true }), states: {} };
    // the last four cannot be read: before, a raw TypeError (or the getter's own error) out of start
    const throwing = (key: string): object => Object.defineProperty({ init: () => ({}), handleEvent: () => ({ keepState: true }) }, key, { get: () => { throw new Error('getter'); } });
    for (const spec of [null, {}, { init: () => ({}) }, both, { init: () => ({}), handleEvent: () => 1, stateEnter: 'yes' }, revokedProxy(), trappingProxy(), throwing('init'), throwing('stateEnter')]) {
      expectKeelError(await failure(() => StateMachine.start(node, spec as never)), 'ERR_INVALID_ARGUMENT');
    }
    const e = await failure(() => StateMachine.start(node, { init: () => 'locked' as never, handleEvent: () => ({ keepState: true }) }));
    expectKeelError(e, 'ERR_START_FAILED', 'StateMachine failed to start', 'init result');
    const thrown = await failure(() => StateMachine.start(node, { init: () => { throw new Error('no'); }, handleEvent: () => ({ keepState: true }) }));
    expectKeelError(thrown, 'ERR_START_FAILED', 'StateMachine', 'no');
  });

  it('refuses a spec with a misspelt key, naming the one it likely meant (state_enter would never turn enter calls on); a key near the mode not chosen is left alone', async () => {
    const { node } = clockedNode(track);
    const init = () => ({ state: 'a', data: 0 });
    const handleEvent = () => ({ keepState: true });
    const keys = 'init, handleEvent, states, stateEnter, terminate, formatStatus';
    for (const [spec, text] of [
      [{ init, handleEvent, state_enter: true }, `\`spec.state_enter\`: no such key (a StateMachine spec has ${keys}), got true; did you mean \`stateEnter\`? (misspelt, it would never be used)`],
      [{ init, handleEvent, terminat: handleEvent }, `\`spec.terminat\`: no such key (a StateMachine spec has ${keys}), got a function (handleEvent); did you mean \`terminate\`? (misspelt, it would never be used)`],
      [{ init, handleevent: handleEvent }, `\`spec.handleevent\`: no such key (a StateMachine spec has ${keys}), got a function (handleEvent); did you mean \`handleEvent\`? (misspelt, it would never be used)`],
    ] as const) {
      const e = await failure(() => StateMachine.start(node, spec as never));
      expectKeelError(e, 'ERR_INVALID_ARGUMENT');
      expect((e as Error).message).toBe(text);
    }
    // `state` beside handleEvent is data of the spec's own, not a misspelt `states`
    const pid = await StateMachine.start(node, { init, handleEvent, state: 'helper' } as never);
    expect(node.isAlive(pid)).toBe(true);
  });

  it('hands an unreadable message or cast (a revoked proxy) to the callback as an event, without crashing', async () => {
    const { node } = clockedNode(track);
    const log: string[] = [];
    const pid = await StateMachine.start<string, null, CallProtocol, unknown>(node, {
      init: () => ({ state: 'a', data: null }),
      handleEvent: (ev, state) => {
        log.push(`${state}/${ev.type}`);
        return keep;
      },
    });
    // a raw message that cannot be read: the hostile input tested
    node.send(pid, revokedProxy());
    StateMachine.cast(node, pid, revokedProxy());
    await node.idle();
    expect(log).toEqual(['a/info', 'a/cast']);
    expect(node.isAlive(pid)).toBe(true);
  });

  it('takes a thenable result (no Promise) as a promise: the next event waits for it, its rejection crashes the machine', async () => {
    const { node } = clockedNode(track);
    let called = deferred();
    let settle: ((value: unknown) => void) | undefined;
    let fail: ((reason: unknown) => void) | undefined;
    // a PromiseLike whose then() returns nothing, as a hand-written or foreign thenable may
    const thenable = {
      then: (ok: (value: unknown) => void, ko: (reason: unknown) => void): void => {
        settle = ok;
        fail = ko;
        called.resolve();
      },
    };
    const { pid, log } = await recorder(node, (ev, state) => {
      if (ev.type === 'cast' && ev.content === 'slow') return thenable as never;
      if (ev.type === 'call') return { keepState: true, actions: [{ type: 'reply', from: ev.from, reply: state }] };
      return keep;
    });
    StateMachine.cast(node, pid, 'slow');
    const next = watch(StateMachine.call(node, pid, 'state?'));
    await called.promise;
    await node.settle();
    expect(next.status).toBe('pending');
    settle!({ nextState: 'b' });
    settle!({ nextState: 'c' }); // a second call back is nothing
    await node.idle();
    expect(log).toEqual(['a/cast:slow', 'b/call:state?']);
    expect(next).toMatchObject({ status: 'resolved', value: 'b' });
    called = deferred();
    const p = probe(node);
    const ref = p.ctx.monitor(pid);
    StateMachine.cast(node, pid, 'slow');
    await called.promise;
    fail!(new Error('thenable failed'));
    expect(String((await receiveDown(p, ref)).reason)).toBe('Error: thenable failed');
  });

  it("lets the node's other processes run while it handles a long run of inserted events, and dies at once when killed", async () => {
    const { node } = clockedNode(track);
    let handled = 0;
    // each event inserts the next: a million events in a row, none from the mailbox
    const spinner = await StateMachine.start<string, null, CallProtocol, string, number>(node, {
      init: () => ({ state: 'a', data: null }),
      handleEvent: (ev) => {
        handled++;
        return ev.type === 'cast' || (ev.type === 'internal' && ev.content < 1_000_000) ? { keepState: true, actions: [{ type: 'next_event', content: ev.type === 'cast' ? 1 : ev.content + 1 }] } : keep;
      },
    });
    const other = await StateMachine.start<string, null, { request: 'ping'; reply: number }>(node, {
      init: () => ({ state: 'a', data: null }),
      handleEvent: (ev) => (ev.type === 'call' ? { keepState: true, actions: [{ type: 'reply', from: ev.from, reply: handled }] } : keep),
    });
    StateMachine.cast(node, spinner, 'spin');
    const seen = await StateMachine.call(node, other, 'ping');
    expect(seen).toBeLessThan(1_000_000); // answered while the spinner was still at it
    const p = probe(node);
    const ref = p.ctx.monitor(spinner);
    node.exit(spinner, 'kill');
    expect((await receiveDown(p, ref)).reason).toBe('killed');
    const at = handled;
    await node.idle();
    expect(handled).toBe(at); // a dead machine handles nothing more
  });

  it("lets the node's other processes run while an enter call repeats itself a million times", async () => {
    const { node } = clockedNode(track);
    let entered = 0;
    const spinner = await StateMachine.start<string, null, CallProtocol, string>(node, {
      init: () => ({ state: 'a', data: null }),
      stateEnter: true,
      handleEvent: (ev, state) => {
        if (ev.type === 'cast') return { nextState: 'b' };
        return ev.type === 'enter' && state === 'b' && ++entered < 1_000_000 ? { repeatState: true } : keep;
      },
    });
    const other = await StateMachine.start<string, null, { request: 'ping'; reply: number }>(node, {
      init: () => ({ state: 'a', data: null }),
      handleEvent: (ev) => (ev.type === 'call' ? { keepState: true, actions: [{ type: 'reply', from: ev.from, reply: entered }] } : keep),
    });
    StateMachine.cast(node, spinner, 'go');
    expect(await StateMachine.call(node, other, 'ping')).toBeLessThan(1_000_000); // answered meanwhile
    await node.idle();
    expect(entered).toBe(1_000_000);
    expect(await Sys.getState(node, spinner)).toEqual({ state: 'b', data: null });
  });

  it.each(['an event', 'an enter call'])('applies nothing of an async callback for %s settling after the machine was killed: no timer set, no zombie call reported', async (kind) => {
    const { node } = clockedNode(track);
    const gate = deferred();
    const reached = deferred();
    const late: StateMachineAction<CallProtocol, string, number>[] = [{ type: 'state_timeout', ms: 10, content: 0 }, { type: 'generic_timeout', name: 'g', ms: 10, content: 0 }];
    const pid = await StateMachine.start<string, null, CallProtocol, string, number>(node, {
      init: () => ({ state: 'a', data: null }),
      stateEnter: kind === 'an enter call',
      handleEvent: async (ev, state) => {
        if (ev.type === 'enter' && state === 'a') return keep;
        if (kind === 'an enter call' && ev.type !== 'enter') return { nextState: 'b' };
        reached.resolve();
        await gate.promise; // killed here
        return kind === 'an enter call' ? { keepState: true, actions: late } : { nextState: 'b', actions: late };
      },
    });
    const zombies = captureEvents(node, ['keel.process.zombie_call']);
    await killMidCallback(node, pid, reached, gate);
    // before: its timeout actions were set from the dead process, each reported as a zombie call
    expect(zombies.events).toEqual([]);
    expect(node.internals().timers).toBe(0);
  });

  it('handles no more events once killed during an async callback: the events it had queued die with it', async () => {
    const { node } = clockedNode(track);
    const log: string[] = [];
    const gate = deferred();
    const reached = deferred();
    const pid = await StateMachine.start<string, null, CallProtocol, string, number>(node, {
      init: () => ({ state: 'a', data: null }),
      handleEvent: async (ev) => {
        log.push(ev.type === 'internal' ? `internal:${ev.content}` : ev.type);
        if (ev.type === 'cast') return { keepState: true, actions: [{ type: 'next_event', content: 1 }] };
        if (ev.type === 'internal' && ev.content === 1) {
          reached.resolve();
          await gate.promise; // killed here, with 2 to be inserted
          return { keepState: true, actions: [{ type: 'next_event', content: 2 }] };
        }
        return keep;
      },
    });
    await killMidCallback(node, pid, reached, gate);
    expect(log).toEqual(['cast', 'internal:1']);
  });

  it('runs async callbacks one event at a time, in order', async () => {
    const { node } = clockedNode(track);
    const log: string[] = [];
    const pid = await StateMachine.start<string, number, CallProtocol, number>(node, {
      init: async () => ({ state: 'a', data: 0 }),
      stateEnter: true,
      handleEvent: async (ev, state, data) => {
        await Promise.resolve();
        log.push(`${state}:${ev.type === 'cast' ? ev.content : ev.type}`);
        if (ev.type === 'cast' && ev.content === 2) return { nextState: 'b', data: data + 1, actions: [{ type: 'next_event', kind: 'cast', content: 9 }] };
        return { keepState: true };
      },
    });
    for (const n of [1, 2, 3]) StateMachine.cast(node, pid, n);
    await node.idle();
    expect(log).toEqual(['a:enter', 'a:1', 'a:2', 'b:enter', 'b:9', 'b:3']);
    expect(await Sys.getState(node, pid)).toEqual({ state: 'b', data: 1 });
  });
});
