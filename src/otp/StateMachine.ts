import { markBehaviour } from './internal/lifecycle.js';
import { describe, InvalidArgumentError, StartError, toError } from '../errors.js';
import { isInstance } from '../runtime/safe.js';
import { exitedWith, HeldEvent, isBounded, isDead, kernelOfProcess, NO_HELD, type Proc } from '../runtime/kernel.js';
import { type ExitReason } from '../runtime/messages.js';
import type { Target, TimerRef } from '../runtime/Pid.js';
import type { Context, Node } from '../runtime/types.js';
import { type CallProtocol, GenServer, type GenServerSpec, type ReplyOf, type ServerName, type ServerPid, type StartOptions } from './GenServer.js';
import { type From, PendingCall } from './internal/calls.js';
import { ADMITS, SYS_VIEW, type SysView } from './internal/sys.js';
import { admitsWhileSuspended, CastMessage, madeBy } from './internal/server.js';
import { equal } from './internal/stateEqual.js';
import { nextSlice, SLICE } from './internal/slice.js';
import { adopt, isThenable } from './internal/thenable.js';
import { field, has, NEXT, readResult, readTimeout, REPEAT, STOP, type CallbackMode, type TimeoutAction, unreadable, validateSpec } from './internal/statemRead.js';
import type { AnySpec, Ev, StateMachineSpec, TimeoutKind } from './internal/statemSpec.js';

/** The most actions one result may list (a proxy may claim 2^32 - 1 valid ones). */
const MAX_ACTIONS = 100_000;

export type { HandleEventSpec, StateFunctionsSpec, StateMachineAction, StateMachineEvent, StateMachineInit, StateMachineSpec, Transition } from './internal/statemSpec.js';


/** A timeout in flight: the message its timer sends (or the event queued, for 0 ms). Stale once replaced or cancelled. */
class Timeout {
  readonly kind: TimeoutKind;
  readonly name: string;
  readonly content: unknown;
  ref: TimerRef | undefined = undefined;
  constructor(kind: TimeoutKind, name: string, content: unknown) {
    this.kind = kind;
    this.name = name;
    this.content = content;
  }
}

const INIT = Symbol('keel.statem.init');

const NO_ACTIONS: readonly unknown[] = [];


/** A running state machine: the GenServer state of the server it runs on. */
class Machine {
  readonly spec: AnySpec;
  /** The callback mode the machine started with (gen_statem reads callback_mode once). */
  readonly mode: CallbackMode;
  readonly ctx: Context<any>;
  state: unknown;
  data: unknown;
  /** Events postponed in the current state, oldest first (an unbounded machine's: a bounded one's the kernel keeps). */
  postponed: Ev[] = [];
  /**
   * True for a machine whose mailbox is bounded: its postponed events count against the capacity, so
   * the kernel keeps them (as the messages a suspended server holds), and its replay takes them back.
   */
  readonly bounded: boolean;
  /**
   * A bounded machine's event whose supervised message (if any) is the one in flight: the mailbox's
   * event being handled, or the postponed one taken back. Only that event, postponed, takes the
   * message with it: an inserted event or a timeout, postponed, is no message of a sender's.
   */
  carrier: Ev | Timeout | undefined = undefined;
  /**
   * Events to handle before the mailbox's next (inserted, replayed postponed ones: a bounded
   * machine's as the kernel's {@link HeldEvent}s), the next one last: taking one and putting some in
   * front are O(1) each, however many are queued.
   */
  readonly events: (Ev | HeldEvent)[] = [];
  /** The 0 ms timeouts, handled once no event is queued (gen_statem's `t0q`), in the order they were set. */
  readonly zero = new Set<Timeout>();
  eventTimeout: Timeout | undefined = undefined;
  stateTimeout: Timeout | undefined = undefined;
  readonly generic = new Map<string, Timeout>();
  /** The event timeout (not 0 ms) the transition being made asked for (started once it is done, if nothing is queued). */
  pendingEventTimeout: { ms: number; content: unknown } | undefined = undefined;
  stopped = false;
  terminated = false;
  /** Set by an enter call's transition that asks `repeatState`: the enter loop calls it again. */
  again = false;
  /** What every call returns to the GenServer (the machine replies through actions). */
  readonly noreply = { noreply: true as const, state: this };

  constructor(spec: AnySpec, mode: CallbackMode, ctx: Context<any>, state: unknown, data: unknown) {
    this.spec = spec;
    this.mode = mode;
    this.ctx = ctx;
    this.state = state;
    this.data = data;
    this.bounded = isBounded(ctx as Proc);
  }

  /** Handles one event from the mailbox, then everything it queued. */
  run(ev: Ev | Timeout): void | Promise<void> {
    if (this.bounded) this.carrier = ev;
    const r = this.dispatch(ev);
    if (isThenable(r)) return r.then(() => this.drain());
    if (this.queued()) return this.drain();
  }

  queued(): boolean {
    return this.events.length > 0 || this.zero.size > 0;
  }

  drain(): void | Promise<void> {
    let n = 0;
    // a process killed while an async callback ran, or between two slices, handles nothing more
    while (!this.stopped && !isDead(this.ctx as Proc)) {
      // a long run of queued events (each inserting the next) is handled in slices: between two,
      // the node's other processes run, as the BEAM preempts a process however long it loops
      if (++n > SLICE) return nextSlice().then(() => this.drain());
      let next: Ev | HeldEvent | Timeout | undefined = this.events.pop();
      if (next === undefined) {
        next = this.zero.values().next().value;
        if (next === undefined) return;
        this.zero.delete(next);
      } else if (next instanceof HeldEvent) {
        // a bounded machine's replayed event, taken back from the kernel (gone if it was evicted or withdrawn)
        const ev = kernelOfProcess(this.ctx as Proc).takePostponed(this.ctx as Proc, next);
        if (ev === NO_HELD) continue;
        this.carrier = ev as Ev;
        const r = this.dispatch(ev as Ev);
        if (isThenable(r)) return r.then(() => this.#replayed());
        this.#replayed(false);
        continue;
      }
      const r = this.dispatch(next);
      if (isThenable(r)) return r.then(() => this.drain());
    }
  }

  /** A replayed event handled: its supervised message (in flight since taken back) is settled handled; then the rest. */
  #replayed(thenDrain = true): void | Promise<void> {
    if (!isDead(this.ctx as Proc)) kernelOfProcess(this.ctx as Proc).settleInflight(this.ctx as Proc);
    if (thenDrain) return this.drain();
  }

  /**
   * A bounded machine postpones `ev`: the kernel keeps it, counted against the capacity, with the
   * message it is reported as if a drop_oldest mailbox evicts it (a call's: it fails at once), and
   * the supervised message in flight if `ev` is the event that came as it (the {@link carrier}).
   */
  #postpone(ev: Ev): void {
    const msg = ev.type === 'call' ? ev.from : ev.type === 'cast' ? new CastMessage(ev.content) : ev.type === 'info' ? ev.content : ev;
    const carried = ev === this.carrier;
    if (carried) this.carrier = undefined;
    kernelOfProcess(this.ctx as Proc).postpone(this.ctx as Proc, ev, msg, carried, admits);
  }

  dispatch(item: Ev | Timeout): void | Promise<void> {
    let ev: Ev;
    if (item instanceof Timeout) {
      if (!this.#take(item)) return; // cancelled or replaced: not an event
      ev = item.kind === 'generic_timeout'
        ? { type: 'generic_timeout', name: item.name, content: item.content }
        : { type: item.kind, content: item.content };
    } else {
      ev = item;
    }
    // any event cancels the event timeout
    if (this.eventTimeout !== undefined) this.#cancel(this.eventTimeout);
    if (ev.type === 'call') (ev.from as PendingCall).taken();
    // inline rather than through then(): its callback would be a closure made for every event
    const res = this.#callback(ev);
    return isThenable(res) ? adopt(res).then((r) => this.#settled(ev, r)) : this.transition(ev, res, false);
  }

  /**
   * An async callback's result, applied unless the machine died while it ran: a killed process
   * changes nothing more (its timeout actions would be zombie calls, its replies go to callers
   * already told of its exit).
   */
  #settled(ev: Ev, res: unknown): void | Promise<void> {
    if (isDead(this.ctx as Proc)) return;
    return this.transition(ev, res, false);
  }

  #callback(ev: Ev): unknown {
    const spec = this.spec;
    if (this.mode.handleEvent) {
      const handle = spec.handleEvent;
      if (typeof handle !== 'function') throw new InvalidArgumentError('spec.handleEvent', 'the handleEvent function the machine started with', handle);
      return handle.call(spec, ev, this.state, this.data, this.ctx);
    }
    // Object.prototype's functions ('toString', 'constructor', ...) are no state functions (a class's methods are)
    const states = spec.states;
    if (typeof states !== 'object' || states === null) throw new InvalidArgumentError('spec.states', 'the states object the machine started with', states);
    const f = typeof this.state === 'string' && (Object.hasOwn(states, this.state) || !(this.state in Object.prototype)) ? states[this.state] : undefined;
    if (typeof f !== 'function') throw new InvalidArgumentError('states', `a state function for the state ${describe(this.state)}`, f);
    return f.call(states, ev, this.data, this.ctx);
  }

  /** Applies a callback's result for `ev` (for an enter call: `enter`). */
  transition(ev: Ev, res: unknown, enter: boolean, init = false): void | Promise<void> {
    // every field of the result, and of each action, is read once (a getter may answer differently
    // when read again) and guarded: what cannot be read is ERR_INVALID_ARGUMENT naming it
    const r = readResult(res, enter);
    const kind = r.kind;
    const actions = r.actions ?? NO_ACTIONS;
    let isList = false;
    let n = 0;
    try {
      isList = Array.isArray(actions); // a revoked proxy throws
      if (isList) n = (actions as readonly unknown[]).length;
    } catch (e) {
      throw unreadable(actions, 'actions', isList ? 'length' : undefined, e);
    }
    if (!isList) throw new InvalidArgumentError('actions', 'an array of actions', actions);
    // an array's length is an integer from 0 to 2^32 - 1; a proxy may answer anything (Infinity: a
    // loop to it would never end, the node frozen; -1 or NaN: no action, silently)
    // and a proxy answering 2^32 - 1 would have the loop read billions of valid actions: no list
    // that big is built by hand, so past MAX_ACTIONS it is refused too, before any is read
    if (n >>> 0 !== n || n > MAX_ACTIONS) throw new InvalidArgumentError('actions.length', `an array length of at most ${MAX_ACTIONS} (an integer from 0)`, n);
    const list = actions as readonly unknown[];
    if (!enter) this.pendingEventTimeout = undefined;
    let postpone = false;
    let inserted: Ev[] | undefined;
    let timeouts: TimeoutAction[] | undefined;
    for (let i = 0; i < n; i++) {
      // the element, its type and (a reply's) from and reply, each read once in one guarded block:
      // named reads, each site its own (a helper's one keyed read, shared by every field, was megamorphic)
      let a: unknown;
      let type: unknown;
      let from: unknown;
      let reply: unknown;
      let reading: string | undefined; // undefined: the element itself
      try {
        a = list[i];
        if (typeof a === 'string') type = a;
        else if (typeof a === 'object' && a !== null) {
          reading = 'type';
          type = (a as { type?: unknown }).type;
          if (type === 'reply') {
            reading = 'from';
            from = (a as { from?: unknown }).from;
            reading = 'reply';
            reply = (a as { reply?: unknown }).reply;
          }
        }
      } catch (e) {
        throw reading === undefined ? unreadable(list, i, undefined, e) : unreadable(a, i, reading, e);
      }
      if (type === 'reply') {
        if (!isInstance(from, PendingCall)) throw new InvalidArgumentError('reply action', 'a call event\'s `from`', from);
        from.reply(reply);
        continue;
      }
      if (kind === STOP) throw new InvalidArgumentError('action of a stop result', 'a reply action', a);
      if (type === 'hibernate') continue;
      if (type === 'postpone') {
        if (enter) throw new InvalidArgumentError('action of a state enter call', 'no postpone (an enter call is no event)', a);
        if (init) throw new InvalidArgumentError('init actions', 'no postpone (init handles no event)', a);
        postpone = true;
      } else if (type === 'next_event') {
        if (enter) throw new InvalidArgumentError('action of a state enter call', 'no next_event', a);
        const given = field(a as object, 'kind', i);
        const k = given === undefined ? 'internal' : given; // a null kind is refused, as it was
        const content = field(a as object, 'content', i);
        if (k === 'call') {
          // a call event again, with a call's from (this one's or one held): its reply is the inserted event's
          const from = field(a as object, 'from', i);
          if (!isInstance(from, PendingCall)) throw new InvalidArgumentError('next_event from', "a call event's `from`", from);
          (inserted ??= []).push({ type: 'call', request: content, from } as Ev);
          continue;
        }
        if (k !== 'internal' && k !== 'cast' && k !== 'info') throw new InvalidArgumentError('next_event kind', "'internal', 'cast', 'info' or 'call'", k);
        (inserted ??= []).push({ type: k, content } as Ev);
      } else if (type === 'timeout' || type === 'state_timeout' || type === 'generic_timeout') {
        (timeouts ??= []).push(readTimeout(a as object, type, i));
      } else {
        throw new InvalidArgumentError('action', 'reply, postpone, hibernate, next_event, timeout, state_timeout or generic_timeout', a);
      }
    }
    if (kind === STOP) {
      if (r.hasData) this.data = r.data;
      return this.stop(r.stop as ExitReason);
    }
    const oldState = this.state;
    const same = kind !== NEXT || equal(r.nextState, oldState);
    if (enter && !same) {
      // as gen_statem: an enter call cannot change the state (only repeat it); the machine crashes
      // with the data it had (terminate sees that), not the refused result's
      throw new InvalidArgumentError('state enter result', `no change of state (in ${describe(oldState)}; use repeatState, keepState or stop)`, res);
    }
    if (r.hasData) this.data = r.data;
    const changed = !enter && !same;
    if (postpone) {
      if (this.bounded) this.#postpone(ev);
      else this.postponed.push(ev);
      if (ev.type === 'call') (ev.from as PendingCall).held();
    } else if (ev.type === 'call' && (ev.from as PendingCall).pending) {
      (ev.from as PendingCall).deferred();
    }
    if (kind === NEXT) this.state = r.nextState;
    if (changed) {
      // a state change replays the postponed events, oldest first, and cancels the state timeout
      if (this.bounded) {
        const kept = kernelOfProcess(this.ctx as Proc).replayPostponed(this.ctx as Proc);
        if (kept.length > 0) pushReversed(this.events, kept);
      } else if (this.postponed.length > 0) {
        pushReversed(this.events, this.postponed);
        this.postponed = [];
      }
      if (this.stateTimeout !== undefined) this.#cancel(this.stateTimeout);
    }
    // inserted events come first, in the order of their actions; an inserted call waits on the
    // machine's queue, as a postponed one does: 'queued' if the machine dies first, however it dies
    if (inserted !== undefined) {
      for (const e of inserted) if (e.type === 'call') (e.from as PendingCall).held();
      pushReversed(this.events, inserted);
    }
    if (timeouts !== undefined) for (const t of timeouts) this.#setTimeout(t);
    if (this.mode.stateEnter && (changed || kind === REPEAT || init)) {
      // a repeat asked by an enter call: the enter loop calls it again (no deeper on the stack)
      if (enter) {
        this.again = true;
        return;
      }
      return then(this.enter(oldState), () => this.#startEventTimeout());
    }
    if (!enter) this.#startEventTimeout();
  }

  /**
   * The state enter call, again for as long as it answers `repeatState` (a loop, as gen_statem's:
   * however many times in a row). A repeat enters again from the state before the whole transition,
   * as gen_statem commits the state only once the transition is done.
   */
  enter(oldState: unknown): void | Promise<void> {
    let n = 0;
    while (!this.stopped && !isDead(this.ctx as Proc)) {
      // in slices, as the queued events are: an enter call repeating for good does not freeze the node
      if (++n > SLICE) return nextSlice().then(() => this.enter(oldState));
      const ev: Ev = { type: 'enter', oldState };
      const res = this.#callback(ev);
      if (isThenable(res)) return adopt(res).then((r) => this.#entered(ev, r));
      const t = this.transition(ev, res, true);
      if (!this.again) return t;
      this.again = false;
    }
  }

  /** An async enter call's result applied; a repeat enters again. */
  #entered(ev: Ev & { type: 'enter' }, res: unknown): void | Promise<void> {
    if (isDead(this.ctx as Proc)) return; // killed while it ran: as #settled
    const t = this.transition(ev, res, true);
    if (!this.again) return t;
    this.again = false;
    return this.enter(ev.oldState);
  }

  #setTimeout(a: TimeoutAction): void {
    const { type, name, ms, content, cancel } = a;
    if (type === 'timeout') {
      // the last event timeout of the transition (its enter call's included) wins
      this.pendingEventTimeout = undefined;
      if (this.eventTimeout !== undefined) this.#cancel(this.eventTimeout);
      if (cancel || ms === Infinity) return;
      if (ms !== 0) {
        // started once the transition is done, and only if no event is queued then (one would cancel it)
        this.pendingEventTimeout = { ms, content };
        return;
      }
      // a 0 ms one is queued like the other 0 ms timeouts, in the order of its action, as
      // gen_statem's (OTP 23.2+): before the mailbox, and cancelled by any event handled before it
    }
    const old = type === 'state_timeout' ? this.stateTimeout : type === 'generic_timeout' ? this.generic.get(name) : undefined;
    if (old !== undefined) this.#cancel(old);
    if (cancel || ms === Infinity) return;
    const t = new Timeout(type, name, content);
    this.#store(t);
    if (ms === 0) this.zero.add(t);
    else t.ref = this.ctx.sendAfter(this.ctx.self, t, ms);
  }

  #startEventTimeout(): void {
    const p = this.pendingEventTimeout;
    this.pendingEventTimeout = undefined;
    if (p === undefined || this.stopped || this.queued()) return;
    const t = new Timeout('timeout', '', p.content);
    this.#store(t);
    t.ref = this.ctx.sendAfter(this.ctx.self, t, p.ms);
  }

  #store(t: Timeout): void {
    if (t.kind === 'timeout') this.eventTimeout = t;
    else if (t.kind === 'state_timeout') this.stateTimeout = t;
    else this.generic.set(t.name, t);
  }

  /** True if `t` is the live timeout of its kind (and forgets it: it fired). */
  #take(t: Timeout): boolean {
    const live = t.kind === 'timeout' ? this.eventTimeout : t.kind === 'state_timeout' ? this.stateTimeout : this.generic.get(t.name);
    if (live !== t) return false;
    this.#forget(t);
    return true;
  }

  #forget(t: Timeout): void {
    if (t.kind === 'timeout') this.eventTimeout = undefined;
    else if (t.kind === 'state_timeout') this.stateTimeout = undefined;
    else this.generic.delete(t.name);
  }

  #cancel(t: Timeout): void {
    if (t.ref !== undefined) this.ctx.cancelTimer(t.ref);
    else this.zero.delete(t); // a 0 ms timeout waits in the queue: it goes, so that it delays no event timeout
    this.#forget(t);
  }

  /** A `stop` result: `terminate`, then exit with `reason` (with the error `terminate` threw instead, if it threw: as gen_statem). */
  stop(reason: ExitReason): void | Promise<void> {
    this.stopped = true;
    const failed = (e: unknown): void => {
      if (exitedWith(this.ctx as Proc, e)) throw e; // terminate ended the process itself (ctx.exit): it exits with that reason
      this.ctx.node.logger.error(`terminate of ${String(this.ctx.self)} threw`, e);
      this.ctx.exit(toError(e));
    };
    let t: void | Promise<void>;
    try {
      t = this.terminate(reason);
    } catch (e) {
      return failed(e);
    }
    return isThenable(t) ? adopt(t).then(() => this.ctx.exit(reason), failed) : this.ctx.exit(reason);
  }

  /** Runs the spec's `terminate` once; what it throws (or rejects with) is the caller's to report. */
  terminate(reason: ExitReason): void | Promise<void> {
    if (this.terminated) return;
    this.terminated = true;
    this.stopped = true;
    // the calls still waiting in the machine were never handled
    // (a bounded machine's postponed calls, kept by the kernel, were marked held when postponed)
    for (const e of [...this.postponed, ...this.events]) if (!(e instanceof HeldEvent) && e.type === 'call') (e.from as PendingCall).held();
    const terminate = this.spec.terminate;
    if (terminate === undefined) return;
    const r = terminate.call(this.spec, reason, this.state, this.data);
    if (isThenable(r)) return adopt(r).then(() => undefined);
  }
}

/**
 * What a bounded machine's mailbox takes past the events it postponed (or holds, suspended): what a
 * suspended server takes (system calls, stops), and its own timeouts: a state timeout may be what
 * ends the postponing, and it must not be refused by the events it is to replay.
 */
function admits(msg: unknown): boolean {
  return admitsWhileSuspended(msg) || madeBy(msg, Timeout);
}

/** Puts `items` on the stack `events` so that the first of them is taken first. */
function pushReversed<T>(events: T[], items: readonly T[]): void {
  for (let i = items.length - 1; i >= 0; i--) events.push(items[i]!);
}


/**
 * `f(value)`, after `value` settles if it is a promise. A thenable that is no Promise is adopted
 * (its `then` may return nothing, or call back twice): what is returned is a Promise, always awaited.
 */
function then<T>(value: unknown, f: (v: any) => T): T | Promise<Awaited<T>> {
  return isThenable(value) ? (adopt(value).then(f) as Promise<Awaited<T>>) : f(value);
}

const VIEW: SysView = {
  behaviour: 'StateMachine',
  get: (m) => ({ state: (m as Machine).state, data: (m as Machine).data }),
  set: (m, next) => {
    if (typeof next !== 'object' || next === null || !has(next, 'state', 'replaceState result') || !has(next, 'data', 'replaceState result')) {
      throw new InvalidArgumentError('replaceState result', '{ state, data }', next);
    }
    // read once each, guarded: a revoked proxy is ERR_INVALID_ARGUMENT, the state kept
    const state = field(next, 'state', 'replaceState result');
    const data = field(next, 'data', 'replaceState result');
    (m as Machine).state = state;
    (m as Machine).data = data;
    return m;
  },
};

/** The GenServer spec a state machine runs on. */
function serverSpec(spec: AnySpec, mode: CallbackMode): GenServerSpec<Machine, CallProtocol, unknown> {
  return markBehaviour({
    init: (arg: unknown, ctx) => {
      const r = spec.init(arg, ctx);
      return then(r, (res: unknown) => {
        if (typeof res !== 'object' || res === null || !has(res, 'state', 'init result') || !has(res, 'data', 'init result')) {
          throw new InvalidArgumentError('init result', '{ state, data, actions? }', res);
        }
        const state = field(res, 'state', 'init result');
        const data = field(res, 'data', 'init result');
        const actions = field(res, 'actions', 'init result');
        const m = new Machine(spec, mode, ctx, state, data);
        return { state: m, continue: { [INIT]: actions } };
      });
    },
    handleContinue: (info, m) => {
      // after init, before the mailbox: init's actions, the first enter call, the inserted events
      const actions = (info as { [INIT]: unknown })[INIT];
      const ev: Ev = { type: 'info', content: undefined };
      const r = then(applyInit(m, ev, actions), () => m.drain());
      return then(r, () => m);
    },
    handleCall: (request, from, m) => {
      const r = m.run({ type: 'call', request, from } as Ev);
      return isThenable(r) ? r.then(() => m.noreply) : m.noreply;
    },
    handleCast: (content, m) => then(m.run({ type: 'cast', content }), () => m),
    handleInfo: (msg, m) => then(m.run(isInstance(msg, Timeout) ? msg : { type: 'info', content: msg }), () => m),
    terminate: (reason, m) => m?.terminate(reason),
    formatStatus: spec.formatStatus === undefined ? undefined : (view: unknown) => spec.formatStatus!.call(spec, view as { state: unknown; data: unknown }),
    [SYS_VIEW]: VIEW,
    [ADMITS]: admits,
  } as GenServerSpec<Machine, CallProtocol, unknown>, 'state_machine'); // its lifecycle events say what it is
}

/** Init's actions (a keep-state transition of no event), then the first enter call (from the state itself). */
function applyInit(m: Machine, ev: Ev, actions: unknown): void | Promise<void> {
  return m.transition(ev, { keepState: true, actions: actions ?? [] }, false, true);
}

async function started<P extends CallProtocol, Cast>(p: Promise<ServerPid<P, Cast>>): Promise<ServerPid<P, Cast>> {
  try {
    return await p;
  } catch (e) {
    if (isInstance(e, StartError)) throw new StartError('StateMachine', e.reason, e.message.replace(/^GenServer failed to start: /, ''));
    throw e;
  }
}

/**
 * StateMachine: a process that is a state machine, after Erlang's `gen_statem`. It runs on a
 * GenServer's server, so it is called, cast to, stopped, named and supervised as one; `Sys` works
 * on it too (its state is `{ state, data }`).
 *
 * @example
 * ```ts
 * type Calls = { request: 'flip'; reply: 'on' | 'off' };
 * const pid = await StateMachine.start<'on' | 'off', number, Calls>(node, {
 *   init: () => ({ state: 'off', data: 0 }),
 *   states: {
 *     off: (ev, n) => (ev.type === 'call' ? { nextState: 'on', data: n + 1, actions: [{ type: 'reply', from: ev.from, reply: 'on' }] } : { keepState: true }),
 *     on: (ev) => (ev.type === 'call' ? { nextState: 'off', actions: [{ type: 'reply', from: ev.from, reply: 'off' }] } : { keepState: true }),
 *   },
 * });
 * await StateMachine.call(node, pid, 'flip'); // 'on'
 * ```
 */
export const StateMachine = {
  /** A typed name for a state machine of calls `P` and casts `Cast` (the same as a GenServer's). */
  name<P extends CallProtocol, Cast = never>(text: string): ServerName<P, Cast> {
    return GenServer.name<P, Cast>(text);
  },

  /** Starts a state machine (not linked); resolves with its pid once `init` has finished, rejects with `ERR_START_FAILED`. */
  start<State, Data, P extends CallProtocol = CallProtocol, Cast = never, Msg = never, Arg = any>(
    from: Node | Context<any>,
    spec: StateMachineSpec<State, Data, P, Cast, Msg, Arg>,
    arg?: Arg,
    options: StartOptions<NoInfer<P>, NoInfer<Cast>> = {},
  ): Promise<ServerPid<P, Cast>> {
    const mode = validateSpec(spec);
    return started(GenServer.start(from, serverSpec(spec as unknown as AnySpec, mode), arg, options as StartOptions) as Promise<ServerPid<P, Cast>>);
  },

  /** Starts a state machine linked to the calling process. */
  startLink<State, Data, P extends CallProtocol = CallProtocol, Cast = never, Msg = never, Arg = any>(
    from: Context<any>,
    spec: StateMachineSpec<State, Data, P, Cast, Msg, Arg>,
    arg?: Arg,
    options: StartOptions<NoInfer<P>, NoInfer<Cast>> = {},
  ): Promise<ServerPid<P, Cast>> {
    const mode = validateSpec(spec);
    return started(GenServer.startLink(from, serverSpec(spec as unknown as AnySpec, mode), arg, options as StartOptions) as Promise<ServerPid<P, Cast>>);
  },

  /** Calls a state machine: exactly `GenServer.call` (same errors, timeout and typing). */
  call<P extends CallProtocol = CallProtocol, const R extends P['request'] = P['request']>(
    from: Node | Context<any>,
    target: ServerPid<P, any> | ServerName<P, any> | Target,
    request: R,
    options?: number | { timeout?: number; signal?: AbortSignal },
  ): Promise<ReplyOf<P, R>> {
    return GenServer.call<P, R>(from, target, request, options);
  },

  /** Casts to a state machine (a `cast` event). */
  cast<Cast>(from: Node | Context<any>, target: ServerPid<any, Cast> | ServerName<any, Cast> | Target, request: NoInfer<Cast>): void {
    GenServer.cast<Cast>(from, target, request);
  },

  /** Replies to a call event from anywhere (as a `reply` action does). */
  reply<R>(from: From<R>, value: R): void {
    GenServer.reply(from, value);
  },

  /** Stops a state machine: `terminate(reason, state, data)`, then exit; as `GenServer.stop`. */
  stop(from: Node | Context<any>, target: Target, reason: ExitReason = 'normal', timeout = Infinity): Promise<void> {
    return GenServer.stop(from, target, reason, timeout);
  },
};
