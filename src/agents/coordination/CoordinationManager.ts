import { InvalidArgumentError, isKeelError, toError } from '../../errors.js';
import { markComponent } from '../../otp/internal/lifecycle.js';
import { observeCircuits } from '../observe.js';
import { deadLetterAndReport, type DeadLetterResult } from '../../delivery/deadLetter.js';
import { sendSupervised, type SendOutcome } from '../../delivery/sendSupervised.js';
import { flowOf } from '../../telemetry/tracing.js';
import { GenServer, type From, type GenServerSpec } from '../../otp/GenServer.js';
import { keelServer } from '../../otp/internal/keelServer.js';
import { isDown } from '../../runtime/messages.js';
import { isInstance } from '../../runtime/safe.js';
import { checkTarget, isPid, nameOf, Pid, type Ref, type Target, targetText } from '../../runtime/Pid.js';
import { kernelOf } from '../../runtime/kernel.js';
import type { Context, Node } from '../../runtime/types.js';
import { componentCaller, componentHandle, componentNode, nameFor, startComponent } from '../component.js';
import { componentState, endsForGood, peekComponentState, releaseComponentState } from '../internal/componentState.js';
import { watchProcess } from '../internal/watch.js';
import { CircuitBreaker } from './CircuitBreaker.js';
import { badCoordinate, refusal, type Settings, toSettings } from './options.js';
import { type Circuit, type Counts, DeadLettered, type Entry, type Flight, FlightTimeout, HalfOpen, type Kept, Quiet, Settled, type State } from './state.js';
import type {
  CoordinationFailure,
  CoordinationManagerHandle,
  CoordinationManagerOptions,
  CoordinationOutcome,
  CoordinationProtocol,
  CoordinationStats,
} from './types.js';


const EVENT = 'keel.coordination_manager.';
const KIND = 'coordination_manager';

/** A circuit's key: the name, or the full text of the pid (a copy of a pid has no string form of its own). */
function keyOf(target: Target): string {
  const name = nameOf(target);
  return name !== undefined ? `name:${name}` : `pid:${Pid.format(target as Pid)}`;
}

function alive(ctx: Context<any>): boolean {
  return !ctx.signal.aborted;
}

/** Sends `message` to the manager itself, unless it has exited meanwhile. */
function toSelf(ctx: Context<any>, message: Settled | DeadLettered): void {
  if (alive(ctx)) ctx.send(ctx.self, message);
}

function emit(ctx: Context<any>, event: string, measurements: Record<string, number>, metadata: Record<string, unknown>): void {
  ctx.node.telemetry.execute(EVENT + event, measurements, { manager: ctx.self, ...metadata });
}

/** Adds a dead letter; never throws (a refusal or an unavailable queue is logged and reported as such). */
function addDeadLetter(ctx: Context<any>, target: Target, entry: Entry, reason: string): Promise<DeadLetterResult> {
  const metadata = (): object => ({ id: entry.id, sender: String(entry.sender), coordinator: String(ctx.self) });
  return deadLetterAndReport(ctx.node, { recipient: target, message: entry.message, reason, metadata }, `coordination: message ${entry.id} to ${targetText(target)}`);
}

/** Dead-letters `entry`; the manager counts it (and answers `from`, if given) when the queue has answered. */
function deadLetter(ctx: Context<any>, key: string, target: Target, entry: Entry, reason: string, from?: From<CoordinationOutcome>): void {
  void addDeadLetter(ctx, target, entry, reason).then((result) => toSelf(ctx, new DeadLettered(key, entry.id, reason, result, from)));
}

/** The one delivery of a message: a supervised send, never repeated by the manager. */
function launch(state: State, ctx: Context<any>, c: Circuit, entry: Entry, kind: Flight['kind'], from?: From<CoordinationOutcome>): void {
  // a drain's timeout is the manager's own, so that it knows whether the receiver had started it
  const timed = kind === 'drain' && state.s.ack === 'handled' && state.s.timeout !== Infinity;
  const flight: Flight = { ...entry, key: c.key, target: c.target, kind, from, timer: undefined, abort: timed ? new AbortController() : undefined, timedOut: undefined, result: undefined };
  state.held.add(entry.id);
  state.flights.set(entry.id, flight);
  c.inFlight++;
  if (kind !== 'direct') c.draining = true;
  let sent: Promise<SendOutcome>;
  try {
    const flow = flowOf(ctx.node.telemetry);
    // message-flow tracing: a buffered message is sent later, in another handler, as the child of the coordinate call that brought it
    const traced = flow === undefined ? undefined : flow.tagOf(entry);
    const send = (): Promise<SendOutcome> => sendSupervised(ctx, c.target, entry.message, {
      ack: state.s.ack,
      timeout: timed ? Infinity : state.s.timeout,
      retries: 0,
      id: entry.id,
      onError: 'ignore',
      metadata: { sender: entry.sender, coordinator: ctx.self },
      ...(flight.abort !== undefined ? { signal: flight.abort.signal } : {}),
    });
    sent = traced === undefined ? send() : flow!.within(traced, send);
    if (timed) flight.timer = ctx.sendAfter(ctx.self, new FlightTimeout(entry.id) as never, state.s.timeout);
  } catch (e) {
    sent = Promise.reject(e);
  }
  const settle = (result: Settled['result']): void => {
    if (!alive(ctx)) return; // settled by the manager's exit: its successor finds the flight without an outcome
    flight.result = result;
    toSelf(ctx, new Settled(entry.id, result));
  };
  sent.then(
    (outcome) => settle(outcome.ok ? { ok: true } : { ok: false, reason: outcome.reason }),
    (e: unknown) => {
      // a throw, not an outcome: the manager itself as a 'handled' receiver, or a bug below
      const reason: CoordinationFailure = isKeelError(e, 'ERR_DEADLOCK') ? 'deadlock' : 'noproc';
      if (reason !== 'deadlock') ctx.node.logger.error(`coordination: the delivery of ${entry.id} to ${String(c.target)} threw`, e);
      settle({ ok: false, reason });
    },
  );
}

/** The breaker opened at `now`: its reset timer is armed (an earlier one cancelled) and the opening reported. */
function opened(ctx: Context<any>, c: Circuit, now: number, reason: CoordinationFailure): void {
  if (c.timer !== undefined) ctx.cancelTimer(c.timer);
  armReset(ctx, c, now);
  emit(ctx, 'circuit_opened', { failures: c.breaker.failures, buffered: c.buffer.length }, { receiver: c.target, reason });
}

/** A timer for the breaker's reset time, tagged with its opening. */
/** The least time a name's idle circuit keeps its breaker's memory (see {@link quietMs}). */
const QUIET_MS = 60_000;

/**
 * The breakers' time: the timers' (monotonic on the real clock), as the reset timer counts, so a wall
 * clock stepped back does not hold an open circuit for the step, nor one stepped forward half-open a
 * kept one at once (the observer is shown their times as dates, see `observeCircuits`).
 */
function timerNow(ctx: Context<any>): number {
  return kernelOf(ctx.node).timerNow();
}

function armReset(ctx: Context<any>, c: Circuit, now: number): void {
  // a kept circuit's reset time may have passed while no manager ran: it half-opens at once
  c.timer = ctx.sendAfter(ctx.self, new HalfOpen(c.key, c.breaker.openings) as never, Math.max(0, c.breaker.resetAt - now));
}

/** Sends the next buffered message, if none is in flight: in order, one at a time. */
function drainNext(state: State, ctx: Context<any>, c: Circuit): void {
  if (c.draining || c.breaker.state === 'open') return;
  const next = c.buffer.shift();
  if (next !== undefined) launch(state, ctx, c, next, 'drain');
}

/**
 * Forgets a name receiver's circuit once it holds nothing worth keeping (a pid's goes with its Down).
 * One that holds nothing but its breaker's memory (failures counted, or half-open) is forgotten after
 * {@link quietMs} with nothing sent to it: a name nobody registers again (a name per user, say)
 * leaves no circuit behind for ever.
 */
function releaseIfIdle(state: State, c: Circuit): void {
  if (c.ref !== undefined || c.buffer.length > 0 || c.inFlight > 0 || c.breaker.state === 'open') return;
  if (c.breaker.state === 'closed' && c.breaker.failures === 0) state.circuits.delete(c.key);
  else if (c.quiet === undefined) c.quiet = state.ctx.sendAfter(state.ctx.self, new Quiet(c.key, ++c.quiets) as never, quietMs(state.s));
}

/**
 * How long a name's circuit holding only its breaker's memory waits for traffic before it is forgotten:
 * a minute, or ten reset periods if longer. At most Number.MAX_VALUE: ten times a reset period past a
 * tenth of it (each finite, so a valid option) is Infinity, a delay no timer takes.
 */
function quietMs(s: Settings): number {
  return Math.min(Number.MAX_VALUE, Math.max(QUIET_MS, 10 * s.resetAfterMs));
}

/** Something came for the circuit: its quiet timer, if armed, is off. */
function stirred(state: State, c: Circuit): void {
  if (c.quiet === undefined) return;
  state.ctx.cancelTimer(c.quiet);
  c.quiet = undefined;
  c.quiets++; // a Quiet already queued is stale
}

function quiet(state: State, msg: Quiet): void {
  const c = state.circuits.get(msg.key);
  if (c === undefined || c.quiets !== msg.n) return;
  c.quiet = undefined;
  if (c.ref === undefined && c.buffer.length === 0 && c.inFlight === 0 && c.breaker.state !== 'open') state.circuits.delete(c.key);
}

/** The receiver died: its circuit goes, its buffered messages are dead-lettered, its timer is cancelled. */
function release(state: State, ctx: Context<any>, c: Circuit, reason: string): void {
  state.circuits.delete(c.key);
  if (c.ref !== undefined) state.byRef.delete(c.ref);
  if (c.timer !== undefined) ctx.cancelTimer(c.timer);
  stirred(state, c);
  const buffered = c.buffer.splice(0);
  for (const entry of buffered) {
    state.held.delete(entry.id);
    deadLetter(ctx, c.key, c.target, entry, reason);
  }
  emit(ctx, 'agent_released', { deadLettered: buffered.length, inFlight: c.inFlight }, { receiver: c.target, reason });
}

/** The circuit of `receiver`, made (and a pid monitored) on first use; undefined for a dead pid. */
function circuitFor(state: State, ctx: Context<any>, receiver: Target): Circuit | undefined {
  const key = keyOf(receiver);
  const known = state.circuits.get(key);
  if (known !== undefined) {
    stirred(state, known);
    return known;
  }
  let ref: Ref | undefined;
  if (nameOf(receiver) === undefined) {
    if (!ctx.node.isAlive(receiver)) return undefined;
    const watch = watchProcess(ctx, receiver as Pid, 'coordination');
    if (watch === 'noproc') return undefined;
    ref = watch.ref;
  }
  const c: Circuit = { key, target: receiver, breaker: new CircuitBreaker(state.s), buffer: [], inFlight: 0, draining: false, timer: undefined, ref, quiet: undefined, quiets: 0 };
  state.circuits.set(key, c);
  if (ref !== undefined) state.byRef.set(ref, key);
  return c;
}

function failedWith(state: State, id: string, reason: CoordinationFailure): CoordinationOutcome {
  state.n.failed++;
  return { outcome: 'failed', id, reason };
}

function coordinate(
  state: State,
  ctx: Context<any>,
  req: { sender: Pid; receiver: Target; message: unknown; id: string },
  from: From<CoordinationOutcome>,
): CoordinationOutcome | undefined {
  const { id } = req;
  if (state.held.has(id)) return failedWith(state, id, 'duplicate');
  if (!ctx.node.isAlive(req.sender)) return failedWith(state, id, 'sender_down');
  const name = nameOf(req.receiver);
  const self = name !== undefined ? ctx.node.registry.whereis(name) : req.receiver;
  if (self !== undefined && String(self) === String(ctx.self)) return failedWith(state, id, 'deadlock'); // it would wait for itself
  const c = circuitFor(state, ctx, req.receiver);
  if (c === undefined) return failedWith(state, id, 'noproc');
  const entry: Entry = { id, sender: req.sender, message: req.message };
  const flow = flowOf(ctx.node.telemetry);
  if (flow !== undefined) flow.tag(entry, flow.contextOf(ctx));
  if (c.breaker.state === 'closed' && c.buffer.length === 0) {
    launch(state, ctx, c, entry, 'direct', from);
    return undefined;
  }
  if (c.breaker.state === 'half_open' && c.buffer.length === 0 && !c.draining) {
    launch(state, ctx, c, entry, 'probe', from);
    return undefined;
  }
  if (c.buffer.length >= state.s.bufferCapacity) {
    if (state.s.onBufferFull === 'reject') {
      releaseIfIdle(state, c);
      return failedWith(state, id, 'buffer_full');
    }
    state.held.add(id); // until the queue answers: a duplicate meanwhile is refused
    deadLetter(ctx, c.key, c.target, entry, 'buffer_full', from);
    return undefined;
  }
  c.buffer.push(entry);
  state.held.add(id);
  state.n.bufferedTotal++;
  const position = c.buffer.length;
  emit(ctx, 'buffered', { position }, { receiver: c.target, id, sender: req.sender, state: c.breaker.state });
  return { outcome: 'buffered', id, position };
}

/** A drain was not handled in time: take back the copy not started, then end its send (settled as a timeout). */
function flightTimedOut(state: State, ctx: Context<any>, msg: FlightTimeout): void {
  const f = state.flights.get(msg.id);
  if (f === undefined || f.abort === undefined || f.timedOut !== undefined) return;
  f.timer = undefined;
  const node = kernelOf(ctx);
  const pid = node.lookupTarget(f.target)?.self;
  f.timedOut = pid !== undefined && node.withdrawEnvelope(pid, f.id) ? 'unstarted' : 'started';
  f.abort.abort(); // the send settles (as aborted): the Settled that follows is this timeout
}

function settled(state: State, ctx: Context<any>, msg: Settled): void {
  const f = state.flights.get(msg.id);
  if (f === undefined) return;
  state.flights.delete(msg.id);
  if (f.timer !== undefined) ctx.cancelTimer(f.timer);
  f.timer = undefined;
  state.held.delete(msg.id);
  const c = state.circuits.get(f.key); // gone if the receiver died meanwhile
  if (c !== undefined) {
    c.inFlight--;
    if (f.kind !== 'direct') c.draining = false;
  }
  const result: Settled['result'] = f.timedOut !== undefined ? { ok: false, reason: 'timeout' } : msg.result;
  if (result.ok) {
    if (f.kind === 'drain') state.n.flushed++;
    else {
      state.n.delivered++;
      GenServer.reply(f.from!, { outcome: 'delivered', id: f.id });
    }
    if (c !== undefined) {
      // a probe's or a flushed message's success closes a half-open circuit
      if (c.breaker.success(f.kind !== 'direct') === 'closed') emit(ctx, 'circuit_closed', { buffered: c.buffer.length }, { receiver: c.target });
      if (c.breaker.state === 'closed') drainNext(state, ctx, c);
      releaseIfIdle(state, c);
    }
    return;
  }
  if (f.kind !== 'drain') GenServer.reply(f.from!, failedWith(state, f.id, result.reason));
  else if (f.timedOut === 'started') {
    // the receiver may still finish it: dead-lettering it could deliver it twice
    state.n.unconfirmed++;
    ctx.node.logger.warn(`coordination: buffered message ${f.id} to ${String(f.target)} timed out while the receiver was handling it; not dead-lettered (it may still be handled)`);
    emit(ctx, 'unconfirmed', {}, { receiver: f.target, id: f.id, reason: 'timeout' });
  } else deadLetter(ctx, f.key, f.target, f, result.reason);
  if (c === undefined) return;
  // a failed probe, or a failure while flushing, re-opens at once (the rest stays buffered in order);
  // a direct delivery's failure counts towards the threshold
  const now = timerNow(ctx);
  if (c.breaker.failure(now, f.kind !== 'direct') === 'opened') opened(ctx, c, now, result.reason);
  releaseIfIdle(state, c);
}

function halfOpen(state: State, ctx: Context<any>, msg: HalfOpen): void {
  const c = state.circuits.get(msg.key);
  if (c === undefined || c.breaker.openings !== msg.opening || c.breaker.state !== 'open') return;
  c.timer = undefined;
  const now = timerNow(ctx);
  if (c.breaker.halfOpen(now) === undefined) {
    armReset(ctx, c, now); // woken before its reset time (a clock set back): it waits the rest
    return;
  }
  emit(ctx, 'circuit_half_open', { buffered: c.buffer.length }, { receiver: c.target });
  drainNext(state, ctx, c); // the first buffered message is the probe (else the next coordinate)
  releaseIfIdle(state, c); // nothing to probe with: a name's circuit is forgotten if nothing comes
}

function deadLettered(state: State, ctx: Context<any>, msg: DeadLettered): void {
  if ('deadLetterId' in msg.result) state.n.deadLettered++;
  else state.n.deadLetterUnavailable++;
  const c = state.circuits.get(msg.key);
  emit(ctx, 'dead_lettered', {}, { receiver: c?.target ?? msg.key, id: msg.id, reason: msg.reason, ...msg.result });
  if (msg.from === undefined) return;
  state.held.delete(msg.id);
  state.n.failed++;
  GenServer.reply(msg.from, { outcome: 'failed', id: msg.id, reason: 'buffer_full', ...msg.result });
  if (c !== undefined) releaseIfIdle(state, c);
}

function statsOf(state: State): CoordinationStats {
  let open = 0;
  let halfOpen = 0;
  let buffered = 0;
  for (const c of state.circuits.values()) {
    if (c.breaker.state === 'open') open++;
    else if (c.breaker.state === 'half_open') halfOpen++;
    buffered += c.buffer.length;
  }
  return {
    agents: state.circuits.size,
    open,
    halfOpen,
    buffered,
    inFlight: state.flights.size,
    delivered: state.n.delivered,
    failed: state.n.failed,
    bufferedTotal: state.n.bufferedTotal,
    flushed: state.n.flushed,
    deadLettered: state.n.deadLettered,
    deadLetterUnavailable: state.n.deadLetterUnavailable,
    unconfirmed: state.n.unconfirmed,
    redelivered: state.n.redelivered,
  };
}

function newKept(): Kept {
  const n: Counts = { delivered: 0, failed: 0, bufferedTotal: 0, flushed: 0, deadLettered: 0, deadLetterUnavailable: 0, unconfirmed: 0, redelivered: 0 };
  return { circuits: new Map(), flights: new Map(), n, seq: 0 };
}

/** The table was left for a successor, but a component of another kind took the name: its buffers are dead-lettered, as at a stop. */
function discardKept(node: Node, kept: Kept): void {
  for (const c of kept.circuits.values()) {
    for (const entry of c.buffer.splice(0)) {
      const metadata = { id: entry.id, sender: String(entry.sender), coordinator: 'discarded' };
      void deadLetterAndReport(node, { recipient: c.target, message: entry.message, reason: 'coordinator_stopped', metadata }, `coordination: message ${entry.id} to ${targetText(c.target)}`);
    }
  }
}

/**
 * A successor resumes its predecessor's table: pid receivers are monitored again (one that died
 * meanwhile is released: its buffer dead-lettered), open circuits get their reset timer back (at the
 * kept reset time), and the deliveries that were in flight at the exit are settled: one whose
 * outcome had come in is settled with it; a buffered one without (the exit aborted its send,
 * withdrawing the copy the receiver had not started) goes back to the head of its buffer and is
 * delivered again, with the same id (`ctx.messageId`): at least once; a direct one, whose caller
 * was answered `coordinator_down`, is counted and reported `unconfirmed` (it may have been handled).
 */
function resume(state: State, ctx: Context<any>): void {
  for (const c of [...state.circuits.values()]) {
    c.timer = undefined; // the predecessor's timers went with it
    c.quiet = undefined;
    c.ref = undefined;
    if (nameOf(c.target) !== undefined) continue;
    const watch = watchProcess(ctx, c.target as Pid, 'coordination');
    if (watch === 'noproc') {
      release(state, ctx, c, 'receiver_down');
      continue;
    }
    c.ref = watch.ref;
    state.byRef.set(watch.ref, c.key);
  }
  for (const c of state.circuits.values()) for (const e of c.buffer) state.held.add(e.id);
  for (const f of [...state.flights.values()]) {
    f.timer = undefined; // the predecessor's timer went with it
    if (f.kind === 'drain' && f.result !== undefined) {
      state.held.add(f.id);
      settled(state, ctx, new Settled(f.id, f.result));
      continue;
    }
    state.flights.delete(f.id);
    const c = state.circuits.get(f.key);
    if (c !== undefined) {
      c.inFlight--;
      if (f.kind !== 'direct') c.draining = false;
    }
    const entry: Entry = { id: f.id, sender: f.sender, message: f.message };
    if (f.kind === 'drain') {
      if (c === undefined) {
        deadLetter(ctx, f.key, f.target, entry, 'receiver_down');
        continue;
      }
      c.buffer.unshift(entry);
      state.held.add(f.id);
      state.n.redelivered++;
      emit(ctx, 'redelivered', {}, { receiver: f.target, id: f.id });
      continue;
    }
    // a direct delivery or a probe: its caller's call exited with the manager, answered failed
    // (coordinator_down). An outcome that came in before the exit still moves the breaker. A failure
    // is a call answered failed; a success or no outcome yet is unconfirmed (handled or maybe
    // handled, its caller told otherwise), never delivered: that counts the calls answered so
    const now = timerNow(ctx);
    if (f.result?.ok === false) {
      state.n.failed++;
      if (c?.breaker.failure(now, f.kind !== 'direct') === 'opened') opened(ctx, c, now, f.result.reason);
      continue;
    }
    if (f.result?.ok === true && c?.breaker.success(f.kind !== 'direct') === 'closed') emit(ctx, 'circuit_closed', { buffered: c.buffer.length }, { receiver: c.target });
    state.n.unconfirmed++;
    emit(ctx, 'unconfirmed', {}, { receiver: f.target, id: f.id, reason: 'coordinator_down' });
  }
  const now = timerNow(ctx);
  for (const c of [...state.circuits.values()]) {
    if (c.breaker.state === 'open') {
      if (c.timer === undefined) armReset(ctx, c, now);
    } else drainNext(state, ctx, c);
    releaseIfIdle(state, c);
  }
}

const spec: GenServerSpec<State, CoordinationProtocol, never, { s: Settings; name: string }> = keelServer({
  init({ s, name }, ctx) {
    ctx.trapExits(true); // so that a shutdown runs terminate
    // the table of a predecessor under this name (killed, crashed, or shut down by its supervisor), or a new one
    const { state: kept, resumed } = componentState(ctx.node, name, KIND, newKept, (k) => discardKept(ctx.node, k));
    const state: State = { name, s, ctx, circuits: kept.circuits, byRef: new Map(), held: new Set(), flights: kept.flights, n: kept.n };
    if (resumed) {
      const inFlight = kept.flights.size;
      resume(state, ctx);
      let buffered = 0;
      for (const c of state.circuits.values()) buffered += c.buffer.length;
      emit(ctx, 'resumed', { circuits: state.circuits.size, buffered, inFlight }, {});
    }
    return state;
  },

  handleCall(request, from, state, ctx) {
    switch (request?.type) {
      case 'coordinate': {
        const bad = badCoordinate(request);
        if (bad !== undefined) return { reply: bad as never, state };
        const reply = coordinate(state, ctx, request, from as From<CoordinationOutcome>);
        return reply === undefined ? { noreply: true, state } : { reply, state };
      }
      case 'stats':
        return { reply: statsOf(state), state };
      case 'circuit': {
        const bad = refusal(() => checkTarget(request.receiver, 'receiver'));
        if (bad !== undefined) return { reply: bad as never, state };
        const c = state.circuits.get(keyOf(request.receiver));
        return { reply: c === undefined ? undefined : { state: c.breaker.state, consecutiveFailures: c.breaker.failures, buffered: c.buffer.length, inFlight: c.inFlight }, state };
      }
      default:
        // a bad request is the caller's mistake: it gets a typed error, the manager keeps running
        return { reply: new InvalidArgumentError('request', "a coordination manager call ({ type: 'coordinate' | 'stats' | 'circuit' })", request) as never, state };
    }
  },

  handleInfo(message, state, ctx) {
    if (isInstance(message, Settled)) settled(state, ctx, message);
    else if (isInstance(message, HalfOpen)) halfOpen(state, ctx, message);
    else if (isInstance(message, Quiet)) quiet(state, message);
    else if (isInstance(message, FlightTimeout)) flightTimedOut(state, ctx, message);
    else if (isInstance(message, DeadLettered)) deadLettered(state, ctx, message);
    else if (isDown(message)) {
      const key = state.byRef.get(message.ref);
      const c = key === undefined ? undefined : state.circuits.get(key);
      if (c !== undefined) release(state, ctx, c, 'receiver_down');
    }
    // anything else (an exit signal of a link, a stray message) is ignored: no sender can crash the manager
    return state;
  },

  async terminate(reason, state) {
    const ctx = state.ctx;
    // any exit but a normal stop keeps the table for a successor under the name (it resumes the
    // buffers); at a normal stop or the node's shutdown, there is none: every buffered message is
    // dead-lettered and the table released
    if (!endsForGood(reason) && !kernelOf(ctx).stopping) return;
    releaseComponentState(ctx.node, state.name);
    const adds: Promise<unknown>[] = [];
    for (const c of state.circuits.values()) {
      for (const entry of c.buffer.splice(0)) adds.push(addDeadLetter(ctx, c.target, entry, 'coordinator_stopped'));
    }
    const unknown = [...state.flights.values()].filter((f) => f.kind === 'drain');
    if (unknown.length > 0) {
      // a buffered message being flushed may still be handled: it is not dead-lettered (never twice), but reported
      ctx.node.logger.warn(`coordination: the manager stopped while buffered messages were being delivered (their fate is unknown): ${unknown.map((f) => f.id).join(', ')}`);
      for (const f of unknown) emit(ctx, 'unconfirmed', {}, { receiver: f.target, id: f.id, reason: 'coordinator_stopped' });
    }
    await Promise.all(adds);
  },
}, 'a coordination manager (use its handle)', 'bare');
markComponent(spec, 'coordination_manager', observeCircuits); // an observer finds it, and reads it through the `observe` system call

/**
 * Coordination between agents: every message goes through one supervised send to its receiver
 * (never resent, so a slow receiver never handles it twice), behind a circuit breaker per
 * receiver; while a circuit is open, messages wait in a bounded buffer (outcome `buffered`, not
 * `delivered`) and are delivered in order after a successful probe, or dead-lettered. A receiver's
 * state goes when it dies. See docs/agents/CoordinationManager.md.
 *
 * @example
 * ```ts
 * const cm = await CoordinationManager.start(node, { failureThreshold: 3, resetAfterMs: 2000 });
 * const r = await cm.coordinate(planner, executor, { type: 'step', n: 1 });
 * if (r.outcome === 'buffered') console.log('executor is failing; queued at', r.position);
 * if (r.outcome === 'failed') console.log(r.reason, r.deadLetterId);
 * ```
 */
export const CoordinationManager = {
  async start(from: Node | Context<any>, options?: CoordinationManagerOptions): Promise<CoordinationManagerHandle> {
    const s = toSettings(options);
    const node = componentNode(from);
    const name = nameFor(node, 'coordination_manager', options?.name);
    const pid = await startComponent(from, spec, { s, name }, name);
    const call = componentCaller<CoordinationProtocol>(node, name);
    const callTimeout = s.ack === 'handled' ? s.timeout + 5000 : 5000;
    let seq = 0; // while no table is held (the manager is not running: the call fails)
    return componentHandle<CoordinationManagerHandle>(node, name, pid, {
      coordinate(sender, receiver, message, o) {
        if (!isPid(sender)) throw new InvalidArgumentError('sender', 'a Pid', sender);
        checkTarget(receiver, 'receiver');
        if (o !== undefined && (typeof o !== 'object' || o === null)) throw new InvalidArgumentError('options', '{ id?: string }', o);
        const given = o?.id;
        if (given !== undefined && (typeof given !== 'string' || given === '')) throw new InvalidArgumentError('options.id', 'a non-empty string', given);
        // counted in the table, so that the handle of a manager started again under the name (resuming a
        // kept table) never reuses an id its predecessor left buffered
        const kept = peekComponentState<Kept>(node, name, KIND);
        const id = given ?? `${name}:${kept !== undefined ? ++kept.seq : ++seq}`;
        return call({ type: 'coordinate', sender, receiver, message, id }, { timeout: callTimeout }).catch((e: unknown): CoordinationOutcome => {
          if (isKeelError(e, 'ERR_CALL_TIMEOUT')) return { outcome: 'failed', id, reason: 'coordinator_timeout' };
          if (isKeelError(e, 'ERR_NOPROC') || isKeelError(e, 'ERR_CALL_EXIT')) return { outcome: 'failed', id, reason: 'coordinator_down' };
          throw toError(e);
        });
      },
      stats: () => call({ type: 'stats' }),
      circuit(receiver) {
        checkTarget(receiver, 'receiver');
        return call({ type: 'circuit', receiver });
      },
    });
  },
};
