import {
  createNode,
  sendSupervised,
  seededRandom,
  SimulatedClock,
  type Context,
  type Logger,
  type Pid,
  type SendOutcome,
} from '../index.js';
import { InvalidArgumentError } from '../errors.js';
import { LoadWindow } from './signals.js';
import { heapLine, HeapSampler, type HeapReport } from './heapSampler.js';
import { checkRunOptions, setProgress, SOAK_MAX_BURST } from './soak.js';
import { count } from './soakReport.js';

/** `keel soak --overload`'s knobs. */
export interface OverloadOptions {
  /** Seconds of load (default 60). */
  duration: number;
  /** Messages per second each policy's producer sends (default 100,000); its consumer handles a tenth of that. */
  rate: number;
  /** Seeds the producers' mix of sends (default 1). */
  seed: number;
  json: boolean;
  /** On a SimulatedClock: the same seed, the same report, byte for byte (the real heap is printed apart). */
  simulate: boolean;
  /**
   * @internal Faults a test injects to prove a check fails: `loseOne`, a consumer that forgets one raw
   * message it handled; `doubleDrop`, the first drop event of a raw message after that loss, on its
   * lane, taken twice (one drop reported twice).
   */
  inject?: { loseOne?: boolean; doubleDrop?: boolean };
  /** @internal The heap sampler's full GC. */
  gc?: () => void;
  /**
   * @internal Ends the load early when aborted (`keel soak --overload`'s first Ctrl-C): the consumers
   * then drain, and the run accounts for every message sent and reports, as at the end of its duration.
   */
  stop?: AbortSignal;
}

export const OVERLOAD_DEFAULTS: OverloadOptions = { duration: 60, rate: 100_000, seed: 1, json: false, simulate: false };

export const OVERLOAD_POLICIES = ['reject', 'drop_newest', 'drop_oldest'] as const;
export type OverloadPolicy = (typeof OVERLOAD_POLICIES)[number];
/** Each consumer's bounded mailbox, at most (a run too short to fill it gets a smaller one: {@link overloadCapacity}). */
export const OVERLOAD_CAPACITY = 1000;
/** The producer is this many times faster than its consumer. */
export const OVERLOAD_FACTOR = 10;
/** The fewest messages a producer may send: a consumer then falls at least 18 behind, past a mailbox of 2. */
export const OVERLOAD_MIN_MESSAGES = 20;

/**
 * Each consumer's mailbox for a run: {@link OVERLOAD_CAPACITY}, or a tenth of what a producer sends
 * when that is less, so that every run overflows (its consumer falls nine tenths behind): a short
 * run's mailbox of 1,000 never filled, and its policies could not be seen at work.
 */
export function overloadCapacity(o: { duration: number; rate: number }): number {
  return Math.max(2, Math.min(OVERLOAD_CAPACITY, Math.floor((o.rate * o.duration) / OVERLOAD_FACTOR)));
}
const TICK_MS = 10;
const MAX_BURST_S = 0.25;
const SETTLE_GRACE_MS = 30_000;
/** A supervised `'handled'` send waits this long: far longer than a full mailbox takes to drain, so none is expected to time out (each one that did would be reported by its outcome). */
const HANDLED_TIMEOUT_MS = 60_000;

/** The kinds of send each producer mixes: raw `ctx.send`, supervised at `'enqueued'`, supervised at `'handled'` (both `onError: 'ignore'`, no retries). */
const KINDS = ['raw', 'enqueued', 'handled'] as const;
type KindName = (typeof KINDS)[number];
/** The mix, out of 10: 5 raw, 3 enqueued, 2 handled. */
const MIX: readonly number[] = [0, 0, 0, 0, 0, 1, 1, 1, 2, 2];

/**
 * How one kind of send fared on one policy, message by message (by its sequence number, which the
 * message carries, and the drop event's `message` with it).
 */
export interface OverloadKind {
  sent: number;
  /** Its messages handled once, and never dropped. */
  handled: number;
  /** Its messages a `keel.message.dropped` event (reason `mailbox_full`) named once, never handled: refused, or (`drop_oldest`) evicted. */
  dropped: number;
  /** Of the drop events of its messages, those a `drop_oldest` mailbox evicted after taking them. */
  evicted: number;
  /** Its messages neither handled, dropped, nor withdrawn with a `timeout` outcome: lost without a word (must be 0). */
  unaccounted: number;
  /** Extra ends of its messages: handled or dropped more than once, or both (must be 0). */
  twice: number;
  /** The first sequence numbers (at most 3) of its messages unaccounted, and of those that ended twice. */
  seqs: { unaccounted: number[]; twice: number[] };
  /** Supervised only: the outcomes. `failed` by reason. */
  ok: number;
  failed: Record<string, number>;
}

export interface OverloadLane {
  policy: OverloadPolicy;
  capacity: number;
  /** Achieved during the load (messages per second of the node's clock). */
  producerRate: number;
  consumerRate: number;
  sent: number;
  handled: number;
  dropped: number;
  /** The messages neither handled, dropped, nor supervised `'handled'` sends that timed out (withdrawn, reported by their outcome), by sequence number: must be 0. */
  unaccounted: number;
  byKind: Record<KindName, OverloadKind>;
  /** Whether the first and the last message sent were handled. */
  keptFirst: boolean;
  keptLast: boolean;
  checks: {
    /** Every message ended once, by its sequence number: handled, dropped with an event naming it, or timed out; for each kind. */
    countsExact: boolean;
    /** The supervised sends' outcomes agree with what the consumer handled and the events dropped. */
    outcomesExact: boolean;
    /** The consumer handled the messages in the order they were sent (one sender, one receiver). */
    ordered: boolean;
    /**
     * The mailbox did overflow (dropped > 0), and the policy kept what it keeps: the newest
     * (`drop_oldest`) or the oldest (`reject`, `drop_newest`). A load stopped early (Ctrl-C) before
     * its mailbox overflowed has nothing to hold: it passes.
     */
    policyHeld: boolean;
  };
}

export interface OverloadReport {
  options: { duration: number; rate: number; seed: number; simulate: boolean };
  /** Seconds of load on the node's clock (virtual under --simulate). */
  seconds: number;
  /** The load was stopped before its duration (Ctrl-C): `seconds` is what ran. */
  interrupted?: true;
  lanes: OverloadLane[];
  /** Dropped events that were none of the lanes' messages, or not `mailbox_full`: must be 0. */
  strayDrops: number;
  /** Lines the node logged. */
  log: { warnings: number; errors: number };
  memory?: HeapReport;
  elapsedMs?: number;
  checks: { countsExact: boolean; outcomesExact: boolean; ordered: boolean; policiesHeld: boolean; noStrayDrops: boolean; memoryFlat?: boolean };
}

export function overloadOptions(input: Partial<OverloadOptions>): OverloadOptions {
  const o = { ...OVERLOAD_DEFAULTS, ...input };
  checkRunOptions(o);
  if (o.rate * o.duration < OVERLOAD_MIN_MESSAGES) {
    throw new InvalidArgumentError('--rate', `at least ${OVERLOAD_MIN_MESSAGES} messages over the run (rate x duration), per producer: fewer overflow no mailbox`, o.rate * o.duration);
  }
  return o;
}

export function overloadPassed(r: OverloadReport): boolean {
  return Object.values(r.checks).every(Boolean);
}

type Message = { lane: number; kind: number; seq: number };

function isMessage(m: unknown): m is Message {
  return typeof m === 'object' && m !== null && typeof (m as Message).lane === 'number' && typeof (m as Message).kind === 'number' && typeof (m as Message).seq === 'number';
}

interface LaneState {
  readonly policy: OverloadPolicy;
  consumer: Pid;
  sent: number[];
  handled: number[];
  dropped: number[];
  evicted: number[];
  ok: number[];
  failed: Record<string, number>[];
  handledAtLoadEnd: number;
  lastSeq: number;
  ordered: boolean;
  firstHandled: boolean;
  lastHandledSeq: number;
  /** Tokens the consumer may spend: a tenth of what its producer sent. */
  tokens: number;
  wake: (() => void) | undefined;
  /**
   * Per message, by sequence number: times handled (bits 0-1, saturating at 3), times a drop event
   * named it (bits 2-3, saturating at 3), a `timeout` outcome (bit 4), its kind (bits 5-6). A byte a
   * message, allocated once, outside the V8 heap.
   */
  ends: Uint8Array;
}

const TIMED_OUT = 16;
const KIND_SHIFT = 5;
/** How many sequence numbers of each kind a report names, at most. */
const EXAMPLES = 3;

/** One more end of message `seq`: its two-bit count at `shift` (0: handled, 2: dropped), saturating at 3. */
function bump(ends: Uint8Array, seq: number, shift: number): void {
  if (seq < 0 || seq >= ends.length) return;
  const e = ends[seq]!;
  if (((e >> shift) & 3) < 3) ends[seq] = e + (1 << shift);
}

/**
 * `npm run soak -- --overload`: for each overflow policy, a producer sends `rate` messages a second
 * (raw sends, and supervised sends at both acks) to a consumer with a bounded mailbox that handles
 * one message for every ten sent. Every message is handled or dropped with a `keel.message.dropped`
 * event, counted exactly, and the supervised sends' outcomes agree; the heap stays flat.
 */
export async function runOverload(input: Partial<OverloadOptions> = {}, print: (line: string) => void = console.log, aside: (line: string) => void = print): Promise<OverloadReport> {
  const o = overloadOptions(input);
  const clock = o.simulate ? new SimulatedClock({ start: 0 }) : undefined;
  const log = { warnings: 0, errors: 0 };
  const logger: Logger = { info: () => undefined, warn: () => void log.warnings++, error: () => void log.errors++ };
  const node = createNode({ name: 'keel-overload', ...(clock === undefined ? {} : { clock }), random: seededRandom(o.seed), logger, services: false });
  const realStart = performance.now();
  const durationMs = o.duration * 1000;
  const loadWindow = new LoadWindow(durationMs, () => node.clock.now(), o.stop);
  const heap = new HeapSampler(node, o.duration, o.gc);
  const zero = () => KINDS.map(() => 0);
  const lanes: LaneState[] = OVERLOAD_POLICIES.map((policy) => ({
    policy,
    consumer: undefined as unknown as Pid,
    sent: zero(),
    handled: zero(),
    dropped: zero(),
    evicted: zero(),
    ok: zero(),
    failed: KINDS.map(() => ({})),
    handledAtLoadEnd: 0,
    lastSeq: -1,
    ordered: true,
    firstHandled: false,
    lastHandledSeq: -1,
    tokens: 0,
    wake: undefined,
    ends: new Uint8Array(Math.floor(o.rate * o.duration)),
  }));
  let strayDrops = 0;
  /** The lane whose consumer forgot a message (`inject.loseOne`), and whether a drop there is yet to be taken twice (`inject.doubleDrop`). */
  let lostLane = -1;
  let doubleDrop = o.inject?.doubleDrop === true;
  node.telemetry.attach('keel-overload', ['keel.message.dropped'], (_event, m, meta) => {
    const message = meta.message;
    const lane = isMessage(message) ? lanes[message.lane] : undefined;
    if (lane === undefined || meta.reason !== 'mailbox_full' || (m.count ?? 1) !== 1) {
      strayDrops += m.count ?? 1;
      return;
    }
    const { kind, seq } = message as Message;
    // the fault a test injects: a drop reported twice, on the lane that lost a message
    const times = doubleDrop && kind === 0 && (message as Message).lane === lostLane ? ((doubleDrop = false), 2) : 1;
    for (let i = 0; i < times; i++) {
      lane.dropped[kind]!++;
      if (meta.overflow === 'drop_oldest') lane.evicted[kind]!++;
      bump(lane.ends, seq, 2);
    }
  });
  let outstanding = 0;
  let settledWaiter: (() => void) | undefined;
  const settle = (): void => {
    if (--outstanding === 0 && settledWaiter !== undefined) settledWaiter();
  };
  try {
    let lose = o.inject?.loseOne === true;
    const consumerInit = (lane: LaneState) => () => {
      const take = (m: Message): void => {
        // the fault a test injects: a consumer that handles a raw message (after its first hundred) and forgets it
        if (lose && m.kind === 0 && m.seq >= 100) {
          lose = false;
          lostLane = m.lane;
          return;
        }
        lane.handled[m.kind]!++;
        bump(lane.ends, m.seq, 0);
        if (m.seq <= lane.lastSeq) lane.ordered = false;
        lane.lastSeq = m.seq;
        if (m.seq === 0) lane.firstHandled = true;
        lane.lastHandledSeq = m.seq;
      };
      return (m: unknown): void | Promise<void> => {
        if (!isMessage(m)) return;
        if (lane.tokens >= 1) {
          lane.tokens--;
          take(m);
          return;
        }
        // no token: busy until the producer's next tick grants some, while its mailbox fills
        return new Promise<void>((resolve) => {
          lane.wake = () => {
            lane.tokens--;
            take(m);
            resolve();
          };
        });
      };
    };
    const grant = (lane: LaneState, n: number): void => {
      lane.tokens += n;
      if (lane.tokens >= 1 && lane.wake !== undefined) {
        const wake = lane.wake;
        lane.wake = undefined;
        wake();
      }
    };
    const capacity = overloadCapacity(o);
    for (const lane of lanes) {
      lane.consumer = node.spawn(consumerInit(lane), { name: `overload.${lane.policy}`, mailbox: { capacity, overflow: lane.policy } });
    }

    const perTick = (ms: number) => Math.floor(o.rate * (ms / 1000));
    // never more than SOAK_MAX_BURST in one tick: a rate no machine sends would otherwise be one turn of
    // hundreds of millions of sends, and the heap would run out
    const maxBurst = Math.min(SOAK_MAX_BURST, Math.max(1, Math.ceil(o.rate * MAX_BURST_S)));
    let finished = 0;
    let loadDone!: () => void;
    const load = new Promise<void>((resolve) => {
      loadDone = resolve;
    });
    loadWindow.start();
    heap.start();
    const total = (of: (lane: LaneState) => number[]): number => lanes.reduce((n, lane) => n + of(lane).reduce((a, b) => a + b, 0), 0);
    const progress = clock === undefined && !o.json ? setProgress(node, aside, () => `sent ${total((l) => l.sent)}, handled ${total((l) => l.handled)}, dropped ${total((l) => l.dropped)}`) : undefined;
    const handledOptions = { ack: 'handled' as const, timeout: HANDLED_TIMEOUT_MS, onError: 'ignore' as const };
    const enqueuedOptions = { ack: 'enqueued' as const, onError: 'ignore' as const };
    lanes.forEach((lane, index) => {
      node.spawn<'tick'>((ctx: Context<'tick'>) => {
        const random = seededRandom((Math.imul(o.seed, 0x9e3779b1) + index + 1) >>> 0);
        let seq = 0;
        let owedTokens = 0;
        const onOutcome = (kind: number, seq: number, outcome: SendOutcome): void => {
          if (outcome.ok) lane.ok[kind]!++;
          else {
            lane.failed[kind]![outcome.reason] = (lane.failed[kind]![outcome.reason] ?? 0) + 1;
            // withdrawn: its end is this outcome
            if (outcome.reason === 'timeout' && seq < lane.ends.length) lane.ends[seq]! |= TIMED_OUT;
          }
          settle();
        };
        const tick = (): void => {
          const elapsed = loadWindow.elapsed();
          const n = Math.min(perTick(Math.min(elapsed, loadWindow.endMs)) - seq, maxBurst);
          for (let i = 0; i < n; i++) {
            const kind = MIX[Math.floor(random() * MIX.length)]!;
            const message: Message = { lane: index, kind, seq: seq++ };
            lane.sent[kind]!++;
            if (message.seq < lane.ends.length) lane.ends[message.seq] = kind << KIND_SHIFT;
            if (kind === 0) {
              // eslint-disable-next-line keel/no-raw-send -- the overload run measures raw sends too: each one refused or evicted is a keel.message.dropped event
              ctx.send(lane.consumer, message);
            } else {
              outstanding++;
              void sendSupervised(ctx, lane.consumer, message, kind === 1 ? enqueuedOptions : handledOptions).then((outcome) => onOutcome(kind, message.seq, outcome));
            }
          }
          // the consumer handles one message for every OVERLOAD_FACTOR sent
          owedTokens += n / OVERLOAD_FACTOR;
          const whole = Math.floor(owedTokens);
          owedTokens -= whole;
          grant(lane, whole);
          if (elapsed < loadWindow.endMs) ctx.sendAfter(ctx.self, 'tick', TICK_MS);
          else {
            lane.handledAtLoadEnd = lane.handled.reduce((a, b) => a + b, 0);
            if (++finished === lanes.length) loadDone();
          }
        };
        ctx.sendAfter(ctx.self, 'tick', TICK_MS);
        return () => tick(); // its own ticks are all it is sent
      });
    });

    await load;
    const loadMs = loadWindow.end();
    // no more samples a second; the end sample is taken once the load has drained (below)
    heap.endLoad();
    if (progress !== undefined) node.clock.clearTimer(progress.timer);
    // the consumers drain what is left in their mailboxes, then the last outcomes arrive
    for (const lane of lanes) grant(lane, Infinity);
    let grace: unknown;
    const settled = outstanding === 0 ? Promise.resolve() : new Promise<void>((resolve) => (settledWaiter = resolve));
    await Promise.race([settled, new Promise<void>((resolve) => (grace = node.clock.setTimer(SETTLE_GRACE_MS, resolve)))]);
    node.clock.clearTimer(grace);
    await node.idle();
    // the heap's end sample (after a full GC), now that the consumers have drained and the last
    // outcomes are in: at the end of the load, the full mailboxes and the sends waiting for their
    // outcomes would count as growth
    heap.stop();

    const seconds = loadMs / 1000;
    const reports = lanes.map((lane): OverloadLane => {
      const byKind = Object.fromEntries(
        KINDS.map((name, k): [KindName, OverloadKind] => [
          name,
          { sent: lane.sent[k]!, handled: 0, dropped: 0, evicted: lane.evicted[k]!, unaccounted: 0, twice: 0, seqs: { unaccounted: [], twice: [] }, ok: lane.ok[k]!, failed: { ...lane.failed[k]! } },
        ]),
      ) as Record<KindName, OverloadKind>;
      // every message sent ends exactly once, by its sequence number: handled, dropped with an event naming it, or timed out
      const kinds = KINDS.map((name) => byKind[name]);
      let timedOut = 0;
      const sent = lane.sent.reduce((a, b) => a + b, 0);
      for (let seq = 0; seq < Math.min(sent, lane.ends.length); seq++) {
        const e = lane.ends[seq]!;
        const k = kinds[e >> KIND_SHIFT]!;
        const h = e & 3;
        const d = (e >> 2) & 3;
        const ends = h + d + ((e & TIMED_OUT) !== 0 && h + d === 0 ? 1 : 0);
        if (ends === 0) {
          k.unaccounted++;
          if (k.seqs.unaccounted.length < EXAMPLES) k.seqs.unaccounted.push(seq);
        } else if (h === 1 && d === 0) k.handled++;
        else if (h === 0 && d === 1) k.dropped++;
        else if (h === 0 && d === 0) timedOut++;
        if (ends > 1) {
          k.twice += ends - 1;
          if (k.seqs.twice.length < EXAMPLES) k.seqs.twice.push(seq);
        }
      }
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      const handled = sum(kinds.map((k) => k.handled));
      const dropped = sum(kinds.map((k) => k.dropped));
      const unaccounted = sum(kinds.map((k) => k.unaccounted));
      const failedTotal = (k: OverloadKind) => sum(Object.values(k.failed));
      const { enqueued: enq, handled: h } = byKind;
      const kindsExact = kinds.every((k) => k.unaccounted === 0 && k.twice === 0);
      // refused: a failed outcome and an event; evicted from a drop_oldest mailbox after its acknowledgement: an ok outcome and an event
      const refused = enq.dropped - enq.evicted;
      const outcomesExact =
        enq.ok + failedTotal(enq) === enq.sent && failedTotal(enq) === (enq.failed.mailbox_full ?? 0) && (enq.failed.mailbox_full ?? 0) === refused && enq.ok === enq.handled + enq.evicted;
      const handledExact = h.ok + failedTotal(h) === h.sent && h.ok === h.handled && (h.failed.mailbox_full ?? 0) === h.dropped && failedTotal(h) === h.dropped + timedOut;
      const lastSeq = sent - 1;
      const keptFirst = lane.firstHandled;
      const keptLast = lane.lastHandledSeq === lastSeq;
      return {
        policy: lane.policy,
        capacity,
        producerRate: seconds > 0 ? Math.round(sent / seconds) : 0,
        consumerRate: seconds > 0 ? Math.round(lane.handledAtLoadEnd / seconds) : 0,
        sent,
        handled,
        dropped,
        unaccounted,
        byKind,
        keptFirst,
        keptLast,
        checks: {
          countsExact: sent === handled + dropped + timedOut && sent <= lane.ends.length && kindsExact,
          outcomesExact: outcomesExact && handledExact,
          ordered: lane.ordered,
          policyHeld: dropped > 0 ? (lane.policy === 'drop_oldest' ? keptLast : keptFirst) : loadWindow.interrupted,
        },
      };
    });
    const memory = heap.report();
    const all = (key: keyof OverloadLane['checks']) => reports.every((r) => r.checks[key]);
    const report: OverloadReport = {
      options: { duration: o.duration, rate: o.rate, seed: o.seed, simulate: o.simulate },
      seconds,
      ...(loadWindow.interrupted ? { interrupted: true as const } : {}),
      lanes: reports,
      strayDrops,
      log,
      ...(o.simulate ? {} : { memory, elapsedMs: Math.round(performance.now() - realStart) }),
      checks: {
        countsExact: all('countsExact'),
        outcomesExact: all('outcomesExact') && outstanding === 0,
        ordered: all('ordered'),
        policiesHeld: all('policyHeld'),
        noStrayDrops: strayDrops === 0,
        ...(o.simulate || !memory.measured ? {} : { memoryFlat: memory.flat }),
      },
    };
    if (o.json) print(JSON.stringify(report));
    else printReport(report, print);
    if (o.simulate) aside(`  memory        (real heap, not part of the replayable report) ${heapLine(memory)}`);
    return report;
  } finally {
    loadWindow.release();
    await node.shutdown();
  }
}

function printReport(r: OverloadReport, print: (line: string) => void): void {
  const ok = (b: boolean | undefined) => (b === false ? 'FAILED' : 'ok');
  const o = r.options;
  print('');
  print(
    `keel soak --overload: ${o.duration} s, each producer ${count(o.rate)} msg/s, ${OVERLOAD_FACTOR}x faster than its consumer (a bounded mailbox of ${count(r.lanes[0]?.capacity ?? OVERLOAD_CAPACITY)}), seed ${o.seed}` +
      (o.simulate ? ', on virtual time (simulated: the same --seed replays this report byte for byte)' : `, in ${((r.elapsedMs ?? 0) / 1000).toFixed(1)} s of real time`),
  );
  if (r.interrupted === true) print(`  interrupted   the load was stopped early, after ${r.seconds.toFixed(1)} s of ${o.duration} s`);
  for (const l of r.lanes) {
    print(
      `  ${l.policy.padEnd(12)}  sent ${count(l.sent)} = handled ${count(l.handled)} + dropped ${count(l.dropped)} (each a keel.message.dropped event); unaccounted ${l.unaccounted}` +
        `  [${ok(l.checks.countsExact)}]`,
    );
    print(`                producer ${count(l.producerRate)} msg/s, consumer ${count(l.consumerRate)} msg/s; first message handled ${l.keptFirst ? 'yes' : 'no'}, last ${l.keptLast ? 'yes' : 'no'}  [${ok(l.checks.policyHeld)}]; in order [${ok(l.checks.ordered)}]`);
    for (const k of KINDS) {
      const b = l.byKind[k];
      const outcomes = k === 'raw' ? '' : `; outcomes ok ${count(b.ok)}, failed ${Object.entries(b.failed).map(([why, n]) => `${why} ${count(n)}`).join(', ') || '0'}`;
      print(`      ${k.padEnd(9)} sent ${count(b.sent)}, handled ${count(b.handled)}, dropped ${count(b.dropped)}${b.evicted > 0 ? ` (evicted ${count(b.evicted)})` : ''}${outcomes}`);
      // a kind's messages that did not end exactly once, by sequence number
      const some = (n: number, seqs: number[]): string => `${seqs.map((q) => `#${q}`).join(', ')}${n > seqs.length ? ', ...' : ''}`;
      if (b.unaccounted > 0) print(`      ${k.padEnd(9)} lost: ${count(b.unaccounted)} message(s) neither handled, named by a drop event nor timed out (${some(b.unaccounted, b.seqs.unaccounted)})  [FAILED]`);
      if (b.twice > 0) print(`      ${k.padEnd(9)} ended twice: ${count(b.twice)} extra end(s), handled or named by a drop event again (${some(b.twice, b.seqs.twice)})  [FAILED]`);
    }
    print(`                supervised outcomes agree  [${ok(l.checks.outcomesExact)}]`);
  }
  print(`  stray drops   ${r.strayDrops}  [${ok(r.checks.noStrayDrops)}]`);
  print(`  log           warnings ${count(r.log.warnings)}, errors ${count(r.log.errors)}`);
  if (r.memory !== undefined) print(`  memory        ${heapLine(r.memory)}${r.memory.measured ? `  [${ok(r.checks.memoryFlat)}]` : ''}`);
  const failed = Object.entries(r.checks).filter(([, v]) => !v).map(([k]) => k);
  if (failed.length === 0) print('  checks        all passed');
  else {
    print(`  checks        FAILED: ${failed.join(', ')}`);
    print(`  replay        npm run soak -- --overload --seed ${o.seed} --duration ${o.duration} --rate ${o.rate} --simulate`);
  }
}
