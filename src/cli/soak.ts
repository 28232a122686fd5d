import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createNode,
  DynamicSupervisor,
  GenServer,
  InvalidArgumentError,
  isKeelError,
  type LeaksFoundError,
  sendSupervised,
  seededRandom,
  SimulatedClock,
  Supervisor,
  type ChildSpec,
  type Context,
  type Down,
  formatReason,
  type GenServerSpec,
  type Logger,
  type Node,
  type Pid,
  type SendOutcome,
} from '../index.js';
import { expectNoLeaks } from '../testing/expectNoLeaks.js';
import { LoadWindow } from './signals.js';
import { heapLine, HeapSampler } from './heapSampler.js';
import { count, printReport, type SoakReport } from './soakReport.js';

export { count };
export type { SoakReport };
import { SoakLedger } from './soakLedger.js';
import { ChaosKills, LossyWorkers } from './soakChaos.js';

/** `keel soak`'s knobs (`--duration 60 --rate 100000 --kill 0.1 --seed 1 --json --simulate`). */
export interface SoakOptions {
  /** Seconds of load (default 60). */
  duration: number;
  /** Messages per second the producers send, paced on the node's clock (default 100,000). */
  rate: number;
  /** The fraction of the workers killed per second (default 0.1: 6 of the 60 workers a second). */
  kill: number;
  /** Seeds the node's random (backoff jitter, the chaos's victims) and the traffic (default 1). */
  seed: number;
  /** Print one JSON line instead of the report. */
  json: boolean;
  /**
   * Run on a SimulatedClock: virtual time, deterministic scheduling; the same seed prints the same
   * report byte for byte (the heap figures, real, are printed apart).
   */
  simulate: boolean;
  /**
   * @internal Faults a test injects to prove a check fails (not a CLI flag): `loseOne`, a worker that
   * handles a message and forgets it; `leak`, workers that keep {@link KEPT_PER_MESSAGE} bytes of
   * every message they handle (enough that even a loaded machine's few thousand messages a second
   * outgrow the heap's tolerance within the run); `loseLossy`, a lossy worker that handles a message of
   * the kind `'enqueued, log, by name'` and forgets it (a silent loss of a kind that may be dropped);
   * `doubleDrop`, the first `receiver_exited` event of a lossy worker taken twice for its first
   * message (one drop reported twice).
   */
  inject?: { loseOne?: boolean; leak?: boolean; loseLossy?: boolean; doubleDrop?: boolean };
  /** @internal The heap sampler's full GC (a test passes a fake to prove the memory check fails). */
  gc?: () => void;
  /**
   * @internal The node's scheduler time source (`scheduler.now`; not with `simulate`, whose slices
   * count messages): a test passes one that jumps, so that every slice ends after one message, as on
   * a heavily loaded machine.
   */
  scheduler?: { now: () => number };
  /**
   * @internal Ends the load early when aborted (`keel soak`'s first Ctrl-C): the soak then drains,
   * accounts for every message sent and reports, as at the end of its duration.
   */
  stop?: AbortSignal;
  /**
   * @internal Handed the soak's node once it is created: a test reaches into the running soak through
   * it (ends the chaos process, `soak.chaos`, as an operator's `exit` would).
   */
  onNode?: (node: Node) => void;
}

export const SOAK_DEFAULTS: SoakOptions = { duration: 60, rate: 100_000, kill: 0.1, seed: 1, json: false, simulate: false };

/** The workers: named ones under a Supervisor (sent to by name), lossy ones under another, a pool under a DynamicSupervisor (sent to by pid). */
export const SOAK_WORKERS = { named: 24, lossy: 12, pool: 24 } as const;
const WORKERS = SOAK_WORKERS.named + SOAK_WORKERS.lossy + SOAK_WORKERS.pool;
const PRODUCERS = 4;
/** The producers send what is due, and the chaos process kills its share of the kills per second, every 10 ms of the node's clock... */
const TICK_MS = 10;
/** ...at most this much of their backlog at once (a quarter of a second's worth), so a stall does not end in one giant burst. */
const MAX_BURST_S = 0.25;
/**
 * ...and never more than this many messages per producer in one tick, whatever `--rate` asks: a rate
 * no machine sends (2e9 msg/s) made a single turn of hundreds of millions of sends, and the heap ran
 * out. Past it the load falls behind, and the report says TARGET NOT REACHED.
 */
export const SOAK_MAX_BURST = 10_000;
/** How long, after the load, the soak waits for the last outcomes before it accounts (on the node's clock): past it, a send still waiting is unaccounted. */
const SETTLE_GRACE_MS = 30_000;
/** How long, after the load, the soak waits for the last victims to come back (on the node's clock). */
const RESTART_GRACE_MS = 5000;
/** Rounds of the dead letter queue's manual retry of what is pending, after the load. */
const DRAIN_ROUNDS = 10;
/** What a worker keeps of every message it handles when a test injects a leak. */
const KEPT_PER_MESSAGE = 8 * 1024;

const BACKOFF = { initialMs: 5, factor: 2, maxMs: 200 };

/** How a kind is sent: every kind gives the same options, so that the sends' options objects share one shape (see `send`). */
interface KindOptions {
  readonly ack: 'enqueued' | 'handled';
  /** Per attempt, `'handled'` only (ignored for `'enqueued'`). */
  readonly timeout: number;
  readonly retries: number;
  readonly backoff: typeof BACKOFF;
  readonly onError: 'dead_letter' | 'log' | 'ignore';
}

/** One kind of traffic: how it is sent, to which workers, and its share of the messages (percent). */
interface Kind {
  readonly label: string;
  readonly to: 'named' | 'lossy' | 'pool';
  readonly share: number;
  readonly options: KindOptions;
}

const kind = (label: string, to: Kind['to'], share: number, ack: KindOptions['ack'], onError: KindOptions['onError'], retries: number): Kind => ({
  label,
  to,
  share,
  options: { ack, timeout: 2000, retries, backoff: BACKOFF, onError },
});

/**
 * The traffic. Acknowledged at `'enqueued'` with `'log'` or `'ignore'`, a message whose receiver dies
 * with it queued is reported only by that death's `receiver_exited` event (its count, and the ids of the supervised messages among them): those
 * kinds go to the lossy workers alone, and nothing else does, so that those events' counts are
 * exactly their messages. Every other kind dead-letters, or reports its failure in its outcome.
 */
export const SOAK_KINDS: readonly Kind[] = [
  kind('enqueued, dead_letter, by name', 'named', 25, 'enqueued', 'dead_letter', 3),
  kind('enqueued, dead_letter, by pid', 'pool', 15, 'enqueued', 'dead_letter', 3),
  kind('enqueued, log, by name', 'lossy', 8, 'enqueued', 'log', 2),
  kind('enqueued, ignore, by name', 'lossy', 7, 'enqueued', 'ignore', 1),
  kind('handled, dead_letter, by name', 'named', 15, 'handled', 'dead_letter', 3),
  kind('handled, dead_letter, by pid', 'pool', 10, 'handled', 'dead_letter', 2),
  kind('handled, log, by name', 'named', 10, 'handled', 'log', 1),
  kind('handled, ignore, by pid', 'pool', 10, 'handled', 'ignore', 0),
];
/** The kind whose message a lossy worker forgets when a test injects `loseLossy`: the first lossy kind. */
const LOSE_LOSSY_KIND = SOAK_KINDS.findIndex((k) => k.label === 'enqueued, log, by name');
/** The chaos process's name: an operator (or a test) finds it by it. */
export const CHAOS_NAME = 'soak.chaos';
const LOSSY_KINDS: ReadonlySet<number> = new Set(SOAK_KINDS.flatMap((k, i) => (k.to === 'lossy' ? [i] : [])));

/** Validates options (shared by the CLI and the tests). */
export function soakOptions(input: Partial<SoakOptions>): SoakOptions {
  const o = { ...SOAK_DEFAULTS, ...input };
  checkRunOptions(o);
  if (typeof o.kill !== 'number' || !(o.kill >= 0 && o.kill <= 1)) throw new InvalidArgumentError('--kill', 'a fraction of the workers per second, from 0 to 1', o.kill);
  // a run that sends nothing balances by construction (sent 0 = handled 0 + ...) and would pass every check
  if (dueBy(o.rate, o.duration * 1000) < 1) {
    // worded as the 2e9 limit's, with what was given: rate x duration (a tiny --duration with the default --rate named the rate alone)
    throw new InvalidArgumentError('--rate', `at least ${PRODUCERS} messages over the run (rate x duration), one per producer: a soak that sends nothing proves nothing`, o.rate * o.duration);
  }
  return o;
}

/**
 * The largest `--duration` and `--seed`: the producers' seeds are derived from it in 32 bits
 * (`Math.imul`), so a seed past 2^32 - 1 would replay another seed's producers; a week keeps a typo from a run that never ends.
 */
export const SOAK_LIMITS = { duration: 7 * 86_400, seed: 0xffff_ffff } as const;

/** The options the soak and the overload run share: `--duration` and `--rate` positive, `--seed` an integer >= 0, within SOAK_LIMITS, at most 2e9 messages over the run. */
export function checkRunOptions(o: { duration: unknown; rate: unknown; seed: unknown }): void {
  for (const [key, what] of [['duration', 'a positive number of seconds'], ['rate', 'a positive number of messages per second']] as const) {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0)) throw new InvalidArgumentError(`--${key}`, what, v);
  }
  if ((o.duration as number) > SOAK_LIMITS.duration) throw new InvalidArgumentError('--duration', `at most ${SOAK_LIMITS.duration} seconds (a week)`, o.duration);
  if (!Number.isSafeInteger(o.seed) || (o.seed as number) < 0) throw new InvalidArgumentError('--seed', 'an integer >= 0', o.seed);
  if ((o.seed as number) > SOAK_LIMITS.seed) throw new InvalidArgumentError('--seed', `an integer from 0 to ${SOAK_LIMITS.seed}`, o.seed);
  // the overload run's too (per producer): past it, a tick's burst alone runs the heap out
  const messages = (o.rate as number) * (o.duration as number);
  if (messages > 2e9) throw new InvalidArgumentError('--rate', 'at most 2e9 messages over the run (rate x duration)', messages);
}

/** True when every check of the report passed. */
export function soakPassed(r: SoakReport): boolean {
  return Object.values(r.checks).every(Boolean);
}

/** The messages each producer sends by the time `ms` of load have passed. */
function dueBy(rate: number, ms: number): number {
  return Math.floor((rate / PRODUCERS) * (ms / 1000));
}

/** Waits `ms` on the node's clock. */
function wait(node: Node, ms: number): Promise<void> {
  return new Promise((resolve) => node.clock.setTimer(ms, resolve));
}

/**
 * `npm run soak`: producers send at `rate` with supervised send (both acks, retries with backoff,
 * dead-lettering to a SQLite store, logging or ignoring failures) to workers under three
 * supervisors, while a chaos process kills `kill` of the workers every second. After the load the
 * dead letter queue redelivers what is pending; then a ledger puts every message sent in exactly
 * one class, `expectNoLeaks` audits the node, and the heap's start, end and max are compared.
 */
export async function runSoak(input: Partial<SoakOptions> = {}, print: (line: string) => void = console.log, aside: (line: string) => void = print): Promise<SoakReport> {
  const o = soakOptions(input);
  const clock = o.simulate ? new SimulatedClock({ start: 0 }) : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'keel-soak-'));
  // a process that exits before the soak's end (a second Ctrl-C) removes it too
  const removeDir = (): void => rmSync(dir, { recursive: true, force: true });
  process.once('exit', removeDir);
  const log = { warnings: 0, errors: 0 };
  const logger: Logger = { info: () => undefined, warn: () => void log.warnings++, error: () => void log.errors++ };
  const node = createNode({
    name: 'keel-soak',
    ...(clock === undefined ? {} : { clock }),
    ...(o.scheduler === undefined ? {} : { scheduler: { now: o.scheduler.now } }),
    random: seededRandom(o.seed),
    logger,
    services: { deadLetters: { store: { kind: 'sqlite', path: join(dir, 'dead-letters.db') }, backoff: { initialMs: 250, factor: 2, maxMs: 2000 }, maxRetries: 8 } },
  });
  o.onNode?.(node);
  const realStart = performance.now();
  const durationMs = o.duration * 1000;
  const perProducer = dueBy(o.rate, durationMs);
  const loadWindow = new LoadWindow(durationMs, () => node.clock.now(), o.stop);
  const ledger = new SoakLedger(perProducer * PRODUCERS);
  const heap = new HeapSampler(node, o.duration, o.gc);

  // what the node reports: restarts, supervisors giving up, dead letters, dropped messages
  let restarts = 0;
  let restartsFailed = 0;
  let supervisorsGaveUp = 0;
  let addedEvents = 0;
  const deadLetterReasons: Record<string, number> = {};
  const droppedEvents: Record<string, number> = {};
  /** The lossy workers, by pid: their deaths' `receiver_exited` counts are the lossy kinds' drops. */
  const lossyWorkers = new LossyWorkers((id) => ledger.dropped(id));
  const chaosKills = new ChaosKills();
  let doubleDrop = o.inject?.doubleDrop === true;
  node.telemetry.attach('keel-soak', ['keel.supervisor.child_started', 'keel.supervisor.child_restarted', 'keel.supervisor.child_restart_failed', 'keel.supervisor.shutdown', 'keel.dead_letter_queue.message_added', 'keel.message.dropped'], (event, m, meta) => {
    if (event === 'keel.supervisor.child_started') chaosKills.started(meta);
    else if (event === 'keel.supervisor.child_restarted') {
      restarts++;
      chaosKills.started(meta);
    }
    else if (event === 'keel.supervisor.child_restart_failed') restartsFailed++;
    else if (event === 'keel.supervisor.shutdown') supervisorsGaveUp += meta.reason === 'max_restart_intensity' ? 1 : 0;
    else if (event === 'keel.dead_letter_queue.message_added') {
      addedEvents++;
      deadLetterReasons[String(meta.reason)] = (deadLetterReasons[String(meta.reason)] ?? 0) + 1;
    } else {
      const count = m.count ?? 1;
      droppedEvents[String(meta.reason)] = (droppedEvents[String(meta.reason)] ?? 0) + count;
      const before = lossyWorkers.droppedCount;
      lossyWorkers.dropped(meta, count);
      if (doubleDrop && lossyWorkers.droppedCount > before) {
        // the fault a test injects: the drop of this event's first message reported twice
        doubleDrop = false;
        lossyWorkers.dropped({ ...meta, ...(Array.isArray(meta.ids) ? { ids: meta.ids.slice(0, 1) } : {}) }, 1);
      }
    }
  });

  try {
    // ---- the workers: each handles a message by noting its id in the ledger ----
    let lose = o.inject?.loseOne === true;
    let loseLossy = o.inject?.loseLossy === true;
    const leaked: string[] | undefined = o.inject?.leak === true ? [] : undefined;
    const handle = (ctx: Context<any>, lossy: boolean, message: unknown): void => {
      // the faults a test injects: a worker that handles a message and forgets it, behind the
      // ledger's back; workers that keep something of every message
      if (lose && !lossy) {
        lose = false;
        return;
      }
      if (loseLossy && lossy && (message as { k?: unknown }).k === LOSE_LOSSY_KIND) {
        loseLossy = false;
        return;
      }
      leaked?.push(`${ctx.messageId ?? ''}${'.'.repeat(KEPT_PER_MESSAGE)}`);
      ledger.handled(ctx.messageId);
    };
    const worker = (lossy: boolean) => (ctx: Context<any>) => (message: unknown) => handle(ctx, lossy, message);
    const serverWorker: GenServerSpec<number> = {
      init: () => 0,
      handleInfo: (message, n, ctx) => {
        handle(ctx, false, message);
        return n + 1;
      },
    };
    const named = Array.from({ length: SOAK_WORKERS.named }, (_, i) => `soak.named.${i}`);
    const lossy = Array.from({ length: SOAK_WORKERS.lossy }, (_, i) => `soak.lossy.${i}`);
    /** The pool's workers, by slot: a restarted worker takes its slot's place. */
    const slots: Pid[] = [];
    // half the named workers are raw processes, half GenServers; each comes back under its name
    const namedSpecs: ChildSpec[] = named.map((name, i) => ({
      id: name,
      start: (ctx) => (i % 2 === 0 ? ctx.spawnLink(worker(false), { name }) : GenServer.startLink(ctx, serverWorker, undefined, { name })),
    }));
    const lossySpecs: ChildSpec[] = lossy.map((name) => ({ id: name, start: (ctx) => lossyWorkers.spawn(ctx, worker(true), name) }));
    const intensity = { maxRestarts: 1000, withinMs: 1000 };
    const root = await Supervisor.start(node, [
      // named workers come back after a short backoff: sends by name meanwhile find no process and retry
      { id: 'named', type: 'supervisor', start: (ctx) => Supervisor.startLink(ctx, namedSpecs, { ...intensity, backoff: { initialMs: 5, factor: 2, maxMs: 50 } }) },
      { id: 'lossy', type: 'supervisor', start: (ctx) => Supervisor.startLink(ctx, lossySpecs, intensity) },
      { id: 'pool', type: 'supervisor', start: (ctx) => DynamicSupervisor.startLink(ctx, { ...intensity, name: 'soak.pool' }) },
    ], { name: 'soak.root' });
    for (let j = 0; j < SOAK_WORKERS.pool; j++) {
      await DynamicSupervisor.startChild(node, 'soak.pool', {
        start: (ctx) => {
          const pid = ctx.spawnLink(worker(false));
          slots[j] = pid;
          return pid;
        },
      });
    }
    const workerPid = (i: number): Pid | undefined => {
      const pid = i < named.length ? node.registry.whereis(named[i]!) : i < named.length + lossy.length ? node.registry.whereis(lossy[i - named.length]!) : slots[i - named.length - lossy.length];
      return pid !== undefined && node.isAlive(pid) ? pid : undefined;
    };
    const aliveWorkers = (): number => {
      let n = 0;
      for (let i = 0; i < WORKERS; i++) if (workerPid(i) !== undefined) n++;
      return n;
    };


    // ---- the chaos: its share of the kills at each tick, victims drawn from the node's seeded random ----
    // Its last tick (the metronome's last, sent at or after the load's end) strikes what the whole
    // load owed, and the chaos then stops itself: the soak awaits that, so that every kill owed is
    // struck or missed before the report. Shut down at the load's end instead, it could die with that
    // tick still queued (a loaded machine's slice ends after the last producer's turn), those kills neither.
    let missed = 0;
    let chaosFinished = false;
    const chaos = node.spawn<'tick' | 'last'>((ctx) => {
      let struck = 0;
      return (message) => {
        // the kills due by now on the node's clock (a tick that comes late strikes what it owes)
        const elapsed = loadWindow.elapsed();
        const due = Math.floor((o.kill * WORKERS * Math.min(elapsed, loadWindow.endMs)) / 1000);
        for (; struck < due; struck++) {
          // a worker that is restarting is no victim: draw again, a few times
          let victim: Pid | undefined;
          for (let tries = 0; tries < 4 && victim === undefined; tries++) victim = workerPid(Math.floor(node.random() * WORKERS));
          if (victim === undefined) missed++;
          else chaosKills.strike(node, victim);
        }
        // a 'tick' strikes what is due; the 'last' one, then stops the chaos
        if (message !== 'last') return;
        chaosFinished = true;
        ctx.exit('normal');
      };
    }, { name: CHAOS_NAME });
    // the soak waits for the chaos's end with a monitor (as OTP would), not a promise its last tick
    // resolves: ended before it (an operator's exit, a defect of its own code), the chaos never
    // resolved that, and the soak hung after the load. Its Down releases the wait whatever the cause,
    // and the report says why it ended early.
    const chaosDone = new Promise<string | undefined>((resolve) => {
      node.spawn<Down>((ctx) => {
        // eslint-disable-next-line keel/no-unmanaged-monitor -- a watcher process that lives exactly until the Down: nothing to demonitor
        ctx.monitor(chaos);
        return (down) => {
          resolve(chaosFinished ? undefined : formatReason(down.reason));
          ctx.exit('normal');
        };
      });
    });

    // ---- the producers: paced on the node's clock, each with its own seeded traffic ----
    const shares: number[] = [];
    SOAK_KINDS.forEach((k, i) => {
      for (let s = 0; s < k.share; s++) shares.push(i);
    });
    if (shares.length !== 100) throw new Error(`the soak's traffic shares add up to ${shares.length}%, not 100%`);
    const onOutcome = (outcome: SendOutcome): void => ledger.outcome(outcome);
    const maxBurst = Math.min(SOAK_MAX_BURST, Math.max(1, Math.ceil((o.rate / PRODUCERS) * MAX_BURST_S)));
    let finished = 0;
    let loadDone!: () => void;
    const load = new Promise<void>((resolve) => {
      loadDone = resolve;
    });
    loadWindow.start();
    heap.start();
    const progress = clock === undefined && !o.json ? setProgress(node, aside, () => `sent ${ledger.sent}, outcomes pending ${ledger.outstanding}, kills ${chaosKills.kills}, restarts ${restarts}, dead letters ${addedEvents}`) : undefined;
    const producers: Pid<'tick'>[] = [];
    for (let p = 0; p < PRODUCERS; p++) {
      const producer = node.spawn<'tick'>((ctx) => {
        const random = seededRandom((Math.imul(o.seed, 0x9e3779b1) + p + 1) >>> 0);
        let mine = 0;
        const send = (): void => {
          const k = shares[Math.floor(random() * 100)]!;
          const kind = SOAK_KINDS[k]!;
          const to: Pid | string =
            kind.to === 'named' ? named[Math.floor(random() * named.length)]! : kind.to === 'lossy' ? lossy[Math.floor(random() * lossy.length)]! : slots[Math.floor(random() * slots.length)]!;
          const seq = ledger.next(k);
          // a literal of one shape for every kind, not a spread (`{ ...kind.options, id }`): on Node 20 a
          // spread with a key added costs about 0.7 µs, and its objects are slow to enumerate (a
          // micro-benchmark of such sends ran at a fifth of the rate)
          const ko = kind.options;
          const options = { ack: ko.ack, timeout: ko.timeout, retries: ko.retries, backoff: ko.backoff, onError: ko.onError, id: SoakLedger.id(seq) };
          sendSupervised(ctx, to, { k, seq }, options).then(onOutcome, () => ledger.rejection(seq));
        };
        return () => {
          const elapsed = loadWindow.elapsed();
          const n = Math.min(dueBy(o.rate, Math.min(elapsed, loadWindow.endMs)) - mine, maxBurst);
          for (let i = 0; i < n; i++) send();
          mine += n;
          if (elapsed >= loadWindow.endMs && ++finished === PRODUCERS) loadDone();
        };
      });
      producers.push(producer);
    }
    // the metronome: every tick the producers send what is due, then the chaos strikes, before the
    // workers have run, so that a victim dies with messages queued
    node.spawn<'tick'>((ctx) => {
      ctx.sendAfter(ctx.self, 'tick', TICK_MS);
      return () => {
        // the last tick: the load is over (the producers and the chaos read at least this elapsed time)
        const last = loadWindow.elapsed() >= loadWindow.endMs;
        // eslint-disable-next-line keel/no-raw-send -- the soak's own clockwork: a tick to its own producers, nothing to acknowledge
        for (const p of producers) ctx.send(p, 'tick');
        // eslint-disable-next-line keel/no-raw-send -- the soak's own clockwork: a tick to its own chaos process, which stops after its last
        ctx.send(chaos, last ? 'last' : 'tick');
        if (!last) ctx.sendAfter(ctx.self, 'tick', TICK_MS);
        else ctx.exit('normal');
      };
    });

    // ---- the load ends: chaos off, the last outcomes, the dead letter queue redelivers what is pending ----
    await load;
    const loadMs = loadWindow.end();
    // no more samples a second; the end sample is taken once the load has drained (below)
    heap.endLoad();
    if (progress !== undefined) node.clock.clearTimer(progress.timer);
    // the chaos's last tick, queued behind the producers' (or behind the load's end: see the chaos)
    const chaosEndedEarly = await chaosDone;
    let grace: unknown;
    await Promise.race([ledger.settled(), new Promise<void>((resolve) => (grace = node.clock.setTimer(SETTLE_GRACE_MS, resolve)))]);
    node.clock.clearTimer(grace);
    await node.idle();
    // the last victims come back (the named ones after their restart backoff)
    for (let waited = 0; waited < RESTART_GRACE_MS && aliveWorkers() < WORKERS; waited += 50) await wait(node, 50);
    await node.idle();
    for (let round = 0; round < DRAIN_ROUNDS; round++) {
      const s = await node.deadLetters.stats();
      if (s.pending === 0) break;
      await node.deadLetters.retry({ status: 'pending' });
      await node.idle();
      // entries the queue's own wake was retrying are left to it: give it time on the node's clock
      await wait(node, 250);
      await node.idle();
    }
    // the heap's end sample (after a full GC), now that the load's last messages, outcomes, restarts
    // and dead letters are through: at the end of the load, a loaded machine's backlog would count as growth
    heap.stop();

    // ---- the accounting ----
    for (let cursor: string | undefined; ; ) {
      const page = await node.deadLetters.list({ limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
      for (const e of page.entries) ledger.queued(e.metadata.id);
      if (page.cursor === undefined) break;
      cursor = page.cursor;
    }
    const a = ledger.account(SOAK_KINDS.length, LOSSY_KINDS);
    const dl = await node.deadLetters.stats();
    let leaks: string[] = [];
    try {
      expectNoLeaks(node);
    } catch (e) {
      if (!isKeelError(e, 'ERR_LEAKS_FOUND')) throw e;
      leaks = [...(e as LeaksFoundError).leaks];
    }
    await node.idle();
    const workersAlive = aliveWorkers();
    const t = a.total;
    const inQueue = ledger.queuedCount;
    const target = perProducer * PRODUCERS;
    const seconds = loadMs / 1000;
    const memory = heap.report();
    const report: SoakReport = {
      options: { duration: o.duration, rate: o.rate, kill: o.kill, seed: o.seed, simulate: o.simulate },
      workers: { total: WORKERS, ...SOAK_WORKERS },
      load: { seconds, target, sent: ledger.sent, rate: seconds > 0 ? Math.round(ledger.sent / seconds) : 0, reached: ledger.sent === target, ...(loadWindow.interrupted ? { interrupted: true as const } : {}) },
      messages: {
        sent: t.sent,
        handled: t.handled,
        duplicates: a.duplicates,
        deadLettered: t.deadLettered,
        failedReported: t.failedReported,
        droppedReported: t.dropped,
        unaccounted: t.unaccounted,
        overlaps: a.overlaps,
        foreign: a.foreign,
        overReported: a.overReported,
        droppedUnnamed: lossyWorkers.unnamed,
        rejected: ledger.rejected,
      },
      byKind: a.byKind.map((k, i) => ({ kind: SOAK_KINDS[i]!.label, ...k, ids: a.ids[i]! })),
      chaos: {
        kills: chaosKills.kills,
        killsDuringStart: chaosKills.duringStart,
        missed,
        restarts,
        restartsFailed,
        supervisorsGaveUp,
        workersAlive,
        ...(chaosEndedEarly === undefined ? {} : { endedEarly: chaosEndedEarly, owed: Math.floor((o.kill * WORKERS * loadWindow.endMs) / 1000) }),
      },
      deadLetters: { added: dl.added, byReason: sorted(deadLetterReasons), recovered: dl.succeeded, pending: dl.pending, parked: dl.parked, evicted: dl.evicted, refused: dl.refused, failed: dl.failed, inQueue },
      droppedEvents: sorted(droppedEvents),
      leaks: { count: leaks.length, found: leaks },
      log,
      ...(o.simulate ? {} : { memory, elapsedMs: Math.round(performance.now() - realStart) }),
      checks: {
        messagesAccounted: t.unaccounted === 0 && ledger.outstanding === 0 && t.sent === t.handled + t.deadLettered + t.failedReported + t.dropped,
        oneClassEach: a.overlaps === 0 && a.foreign === 0 && a.overReported === 0 && lossyWorkers.unnamed === 0,
        // every dead letter is the queue's: recovered, pending or parked, none evicted, refused or failed (its store could not write it); and the ledger found each one left
        deadLettersAccounted: dl.added === addedEvents && dl.added === dl.succeeded + dl.pending + dl.parked + dl.evicted && dl.evicted === 0 && dl.refused === 0 && dl.failed === 0 && inQueue === dl.pending + dl.parked,
        noLeaks: leaks.length === 0,
        // every kill of a running child restarted once, every kill during a start a failed start retried
        supervisionHeld:
          supervisorsGaveUp === 0 && workersAlive === WORKERS && restarts === chaosKills.kills - chaosKills.duringStart && restartsFailed === chaosKills.duringStart,
        ...(o.simulate || !memory.measured ? {} : { memoryFlat: memory.flat }),
      },
    };
    await GenServer.stop(node, root, 'shutdown');
    if (o.json) print(JSON.stringify(report));
    else printReport(report, print);
    if (o.simulate) aside(`  memory        (real heap, not part of the replayable report) ${heapLine(memory)}`);
    return report;
  } finally {
    loadWindow.release();
    await node.shutdown();
    process.off('exit', removeDir);
    removeDir();
  }
}

/** A progress line every second of real time (not in a simulation, not with --json): the soak's, and the overload run's. */
export function setProgress(node: Node, print: (line: string) => void, line: () => string): { timer: unknown } {
  const started = node.clock.now();
  const state: { timer: unknown } = { timer: undefined };
  const arm = (): void => {
    state.timer = node.clock.setTimer(1000, () => {
      print(`  ${Math.round((node.clock.now() - started) / 1000)} s: ${line()}`);
      arm();
    });
  };
  arm();
  return state;
}

function sorted(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
