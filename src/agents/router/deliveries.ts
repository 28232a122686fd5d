import { sendSupervised, type FailureReason, type SendOutcome } from '../../delivery/sendSupervised.js';
import { Delivery } from '../../runtime/kernel.js';
import { unwatch } from '../internal/watch.js';
import type { Signal } from '../Signal.js';
import type { MessageFlow } from '../../telemetry/tracing.js';
import { count, dropEvent, type Flight, type State, type Sub } from './table.js';

/**
 * @internal The router's deliveries. Each is one supervised message with `ack: 'handled'`, made
 * without the general supervised send's per-message machinery (a `Send` record, a promise and its
 * reactions, an exit watch on the router, a timer per message): the delivery itself is the
 * envelope's listener, its settlement is queued and the queue is counted in one microtask per batch,
 * and one router-wide timer, armed for the earliest pending deadline, times out every delivery.
 * The outcome is the one `sendSupervised(…, { ack: 'handled', timeout, onError: 'ignore' })` would
 * give: `handled`, or `timeout` (the unstarted copy is withdrawn), `process_down` (crashed handling
 * it, or died first) or `mailbox_full` (refused or evicted by a bounded mailbox). While someone
 * listens to the supervised send span, deliveries go through `sendSupervised` itself (which emits it).
 *
 * A delivery belongs to the router's table, not to its process: one in flight when the router
 * crashes still settles into the table, and the restarted router counts it.
 */
export class InFlight implements Flight {
  declare readonly state: State;
  declare readonly sub: Sub;
  declare readonly signal: Signal;
  declare readonly id: string;
  /** On the node's timers' time (monotonic on the real clock: a wall clock stepped neither cuts nor stretches a timeout); Infinity when no timeout applies here (none, or the span path's own). */
  declare readonly deadline: number;
  /** `'ok'`, a failure, or undefined while pending. */
  declare outcome: 'ok' | FailureReason | undefined;
  constructor(state: State, sub: Sub, signal: Signal, id: string, deadline: number) {
    (this as { state: State }).state = state;
    (this as { sub: Sub }).sub = sub;
    (this as { signal: Signal }).signal = signal;
    (this as { id: string }).id = id;
    (this as { deadline: number }).deadline = deadline;
    this.outcome = undefined;
  }

  handled(): void {
    this.settle('ok');
  }

  failed(reason: 'crashed' | 'down' | 'dropped' | 'withdrawn'): void {
    // withdrawn: by the router itself, which has already settled it (timeout, or stopped for good)
    if (reason !== 'withdrawn') this.settle(reason === 'dropped' ? 'mailbox_full' : 'process_down');
  }

  settle(outcome: 'ok' | FailureReason): void {
    if (this.outcome !== undefined) return;
    this.outcome = outcome;
    const state = this.state;
    if (state.node.telemetry.flow !== undefined) state.node.telemetry.flow.release(this, outcome === 'ok' ? undefined : outcome);
    state.settledQueue[state.settledCount++] = this;
    if (!state.drainQueued) {
      state.drainQueued = true;
      queueMicrotask(() => drain(state));
    }
  }
}

/** Starts deliveries from `sub`'s buffer, in order, while fewer than `maxInFlight` are in flight (only while the router runs). */
export function pump(state: State, sub: Sub): void {
  if (!state.running) return;
  while (sub.inFlight < sub.maxInFlight && sub.buffer.size > 0) {
    const signal = sub.buffer.shift();
    state.buffered--;
    sub.inFlight++;
    state.inFlight++;
    const node = state.node;
    const id = node.nextMessageId();
    if (node.telemetry.flow !== undefined) {
      pumpTraced(node.telemetry.flow, state, sub, signal, id);
      continue;
    }
    if (state.spanWatched) {
      const f = new InFlight(state, sub, signal, id, Infinity);
      sub.flights.push(f);
      // from the node, as the fast path's deliveries outlive the router's process
      sendSupervised(node, sub.pid, signal, { ...state.send, id }).then(
        (r: SendOutcome) => f.settle(r.ok ? 'ok' : r.reason),
        () => f.settle('aborted'), // with onError 'ignore' a send only rejects on a bug below
      );
      continue;
    }
    const timeout = state.deliveryTimeout;
    const f = new InFlight(state, sub, signal, id, timeout === Infinity ? Infinity : node.coarseTimerNow() + timeout);
    sub.flights.push(f);
    const target = node.lookupTarget(sub.pid);
    const r = target === undefined ? Delivery.NoProc : node.deliverEnvelope(state.proc, target, signal, id, f);
    if (r !== Delivery.Enqueued) f.settle(r === Delivery.MailboxFull ? 'mailbox_full' : 'noproc');
    // one timer for all: armed when none is, or when this deadline is earlier (a restart with a shorter timeout)
    else if (f.outcome === undefined && f.deadline !== Infinity && (state.timer === undefined || f.deadline < state.timerAt)) arm(state, f.deadline, f.deadline - timeout);
  }
}

/**
 * Message-flow tracing: a delivery in a span (the child of the span that routed the signal, ended
 * when the delivery settles), through `sendSupervised`, so the subscriber's handler span is a child
 * of the send's. Deliveries of a signal routed untraced are made as `sendSupervised` makes them.
 */
function pumpTraced(flow: MessageFlow, state: State, sub: Sub, signal: Signal, id: string): void {
  const f = new InFlight(state, sub, signal, id, Infinity);
  sub.flights.push(f);
  const parent = flow.tagOf(signal);
  const span = parent === undefined ? undefined : flow.start('keel.signal_router.deliver', parent, { router: state.name, subscriber: String(sub.pid), type: signal.type });
  if (span !== undefined) flow.hold(f, span);
  const send = (): Promise<SendOutcome> => sendSupervised(state.node, sub.pid, signal, { ...state.send, id });
  (span === undefined ? send() : flow.within(span.context, send)).then(
    (r: SendOutcome) => f.settle(r.ok ? 'ok' : r.reason),
    () => f.settle('aborted'),
  );
}

/** Counts the settled deliveries (a microtask per batch), then keeps their subscribers' deliveries going. */
function drain(state: State): void {
  // the queue's storage is kept from batch to batch (no regrowth per batch); read slots are cleared
  const q = state.settledQueue;
  state.spanWatched = state.spanProbe.active;
  let i = 0;
  try {
    // settling may start deliveries that settle at once (a dead subscriber): they join this loop
    for (; i < state.settledCount; i++) {
      const f = q[i]!;
      q[i] = undefined;
      settled(state, f);
    }
  } finally {
    if (i < state.settledCount) {
      // a throw below (a bug): that settlement is dropped, the others are still counted, nothing wedges
      const rest = q.slice(i + 1, state.settledCount);
      q.fill(undefined, 0, state.settledCount);
      for (let k = 0; k < rest.length; k++) q[k] = rest[k];
      state.settledCount = rest.length;
      queueMicrotask(() => drain(state));
    } else {
      state.settledCount = 0;
      state.drainQueued = false;
    }
  }
}

function settled(state: State, f: Flight): void {
  const sub = f.sub;
  const flights = sub.flights;
  const at = flights[0] === f ? 0 : flights.indexOf(f);
  if (at === 0) flights.shift();
  else if (at > 0) flights.splice(at, 1);
  sub.inFlight--;
  if (sub.removed && flights.length === 0) state.orphans.delete(sub.key);
  if (state.closed) return; // counted as router_down when the router stopped
  state.inFlight--;
  if (f.outcome === 'ok') state.delivered++;
  else {
    state.failed++;
    count(state, 'delivery_failed', 1);
    sub.dropped++;
    dropEvent(state, 'delivery_failed', sub, 1, f.signal, { failure: f.outcome });
    // the subscriber died: what it has buffered is dropped as subscriber_down now, as its Down
    // (which may still be queued behind this settlement) would; the Down then finds no entry
    if (!sub.removed && !state.node.isAlive(sub.pid)) removeSub(state, sub, 'subscriber_down');
  }
  if (!sub.removed) pump(state, sub);
}

/** The router-wide timeout timer: fails every delivery past its deadline, then re-arms for the earliest one pending. */
function sweep(this: State): void {
  this.timer = undefined;
  expire(this);
}

/** Fails the deliveries past their deadline and arms the timer for the earliest one pending (also when a router resumes: its timeout may differ). */
export function expire(state: State): void {
  if (state.timer !== undefined) state.node.cancelEntry(state.timer);
  state.timer = undefined;
  if (state.closed) return;
  const now = state.node.timerNow(); // the deadlines' time, as the timer's
  let next = Infinity;
  const visit = (sub: Sub): void => {
    for (const f of sub.flights) {
      if (f.outcome !== undefined || f.deadline === Infinity) continue;
      if (f.deadline <= now) {
        f.settle('timeout');
        // take back a copy not yet started (as a supervised send does at its timeout)
        state.node.withdrawEnvelope(sub.pid, f.id, f);
      } else if (f.deadline < next) next = f.deadline;
    }
  };
  for (const sub of state.subs.values()) if (sub.flights.length > 0) visit(sub);
  for (const sub of state.orphans.values()) visit(sub);
  if (next !== Infinity) arm(state, next, now);
}

function arm(state: State, at: number, now: number): void {
  if (state.timer !== undefined) state.node.cancelEntry(state.timer);
  state.timer = state.node.schedule(Math.max(0, at - now), sweep, false, state);
  state.timerAt = at;
}

/** Removes a subscriber: its subscriptions, its buffer (dropped with `reason`) and, unless it died, its monitor. */
export function removeSub(state: State, sub: Sub, reason: 'subscriber_down' | 'unsubscribed'): void {
  sub.removed = true;
  state.subs.delete(sub.key);
  for (const pattern of sub.patterns) state.trie.remove(pattern, sub.key);
  sub.patterns.clear();
  state.matches.clear();
  if (sub.flights.length > 0) state.orphans.set(sub.key, sub);
  if (reason === 'unsubscribed' && state.running) unwatch(state.ctx, sub);
  const n = sub.buffer.clear();
  if (n > 0) {
    state.buffered -= n;
    count(state, reason, n);
    dropEvent(state, reason, sub, n);
  }
}

/**
 * The router stopped for good: what it still held is reported lost, per subscriber (those in flight
 * may have been handled), and the copies not yet started are withdrawn.
 */
export function close(state: State): void {
  if (state.closed) return;
  state.closed = true;
  state.running = false;
  if (state.timer !== undefined) state.node.cancelEntry(state.timer);
  state.timer = undefined;
  for (const sub of state.subs.values()) {
    const n = sub.buffer.size + sub.inFlight;
    if (n > 0) {
      count(state, 'router_down', n);
      dropEvent(state, 'router_down', sub, n);
    }
  }
  // in flight for subscribers already removed (unsubscribed with deliveries pending)
  let orphans = state.inFlight;
  for (const sub of state.subs.values()) orphans -= sub.inFlight;
  if (orphans > 0) {
    count(state, 'router_down', orphans);
    if (state.droppedProbe.active) state.node.telemetry.execute('keel.signal_router.dropped', { count: orphans }, { router: state.name, reason: 'router_down', subscriber: undefined });
  }
  for (const sub of [...state.subs.values(), ...state.orphans.values()]) {
    for (const f of sub.flights) if (f.outcome === undefined) state.node.withdrawEnvelope(sub.pid, f.id, f);
  }
}
