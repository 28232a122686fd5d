/**
 * The soak's report: what it accounts for (soak.ts makes it), and the report as text, the same for
 * the same report, whatever the locale (a simulated run's replays byte for byte).
 */
import { type HeapReport, heapLine } from './heapSampler.js';
import type { KindAccount, KindIds } from './soakLedger.js';

/** Everything the soak accounts for. */
export interface SoakReport {
  options: { duration: number; rate: number; kill: number; seed: number; simulate: boolean };
  workers: { total: number; named: number; lossy: number; pool: number };
  /** `seconds` of load on the node's clock (virtual under --simulate); `target` the messages the rate asks for; `rate` achieved. */
  load: { seconds: number; target: number; sent: number; rate: number; reached: boolean; interrupted?: true };
  /**
   * Every message sent is in exactly one class, by its id: `handled` (the dead letter queue's
   * redeliveries included), `deadLettered` (in the queue at the end), `failedReported` (its outcome
   * said so), `droppedReported` (lossy kinds: named by a `receiver_exited` event of its receiver), or
   * `unaccounted` (lost without a word: must be 0). `duplicates`: extra deliveries of messages
   * handled more than once; `overlaps`: messages in two classes; `foreign`: handled, dead-lettered
   * or dropped ids the soak never sent; `overReported`: namings by drop events of messages that
   * ended otherwise, or named again; `droppedUnnamed`: messages the lossy workers' drop events
   * counted without naming their id (must be 0).
   */
  messages: {
    sent: number;
    handled: number;
    duplicates: number;
    deadLettered: number;
    failedReported: number;
    droppedReported: number;
    unaccounted: number;
    overlaps: number;
    foreign: number;
    overReported: number;
    droppedUnnamed: number;
    rejected: number;
  };
  /** Per kind, its messages' classes, and the first ids of those in no class or over-reported. */
  byKind: (KindAccount & { kind: string; ids: KindIds })[];
  /**
   * `kills` every kill, `killsDuringStart` those of a child its supervisor was still starting (its
   * start fails and is retried: see soakChaos.ts's ChaosKills); `restarts` the supervisors' restarts (one
   * per kill of a running child), `restartsFailed` their failed starts, retried (one per kill during
   * a start); `missed`: ticks that found no live victim. `endedEarly`, only when the chaos process
   * ended before its last tick (an operator's exit, a crash of its own code): its exit reason, and
   * `owed` the kills the load owed (`kills + missed` fell short of it).
   */
  chaos: {
    kills: number;
    killsDuringStart: number;
    missed: number;
    restarts: number;
    restartsFailed: number;
    supervisorsGaveUp: number;
    workersAlive: number;
    endedEarly?: string;
    owed?: number;
  };
  /** The queue's own counts (`recovered`: redeliveries its receivers handled), and `inQueue`: its entries the ledger found, at the end. */
  deadLetters: { added: number; byReason: Record<string, number>; recovered: number; pending: number; parked: number; evicted: number; refused: number; failed: number; inQueue: number };
  /** `keel.message.dropped` events during the run: the messages they count, by reason. */
  droppedEvents: Record<string, number>;
  /** What `expectNoLeaks(node)` found at the end. */
  leaks: { count: number; found: string[] };
  /** Lines the node logged (a `'log'` send's failure is a warning). */
  log: { warnings: number; errors: number };
  /** Real heap figures: absent under --simulate (printed apart there: they are not part of the replay). */
  memory?: HeapReport;
  /** Real time the run took, ms: absent under --simulate. */
  elapsedMs?: number;
  checks: { messagesAccounted: boolean; oneClassEach: boolean; deadLettersAccounted: boolean; noLeaks: boolean; supervisionHeld: boolean; memoryFlat?: boolean };
}

/** An integer with thousands separators (the same whatever the locale: the report must replay byte for byte). */
export function count(n: number): string {
  // the integer part only: a fractional --rate's digits after the point are not grouped
  const [whole, fraction] = String(n).split('.');
  return whole!.replace(/\B(?=(\d{3})+(?!\d))/g, ',') + (fraction === undefined ? '' : `.${fraction}`);
}

/** The soak's report as text, a line at a time (what `keel soak` prints without --json). */
export function printReport(r: SoakReport, print: (line: string) => void): void {
  const ok = (b: boolean | undefined) => (b === false ? 'FAILED' : 'ok');
  const by = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ${count(v)}`).join(', ') || 'none';
  const { load: l, messages: m, chaos: c, deadLetters: d, checks } = r;
  const o = r.options;
  print('');
  print(
    `keel soak: ${o.duration} s at ${count(o.rate)} msg/s, killing ${Number((o.kill * 100).toPrecision(12))}% of the ${r.workers.total} workers a second, seed ${o.seed}` +
      (o.simulate ? ', on virtual time (simulated: the same --seed replays this report byte for byte)' : `, in ${((r.elapsedMs ?? 0) / 1000).toFixed(1)} s of real time`),
  );
  print(
    `  load          sent ${count(l.sent)} of ${count(l.target)} in ${l.seconds.toFixed(1)} s: ${count(l.rate)} msg/s` +
      (l.reached ? ' (target reached)' : l.interrupted === true ? ' (interrupted: the load was stopped early)' : ` (TARGET NOT REACHED: ${count(l.target - l.sent)} messages short; this machine could not send ${count(o.rate)} msg/s)`),
  );
  print(
    `  messages      sent ${count(m.sent)} = handled ${count(m.handled)} + dead-lettered ${count(m.deadLettered)} + reported failed ${count(m.failedReported)}` +
      ` + dropped with their receiver and named by its receiver_exited event ${count(m.droppedReported)}; unaccounted ${count(m.unaccounted)}  [${ok(checks.messagesAccounted)}]`,
  );
  print(
    `                duplicates ${count(m.duplicates)} (handled again: at-least-once); in two classes ${m.overlaps}, not ours ${m.foreign}, over-reported ${m.overReported}, ` +
      `dropped unnamed ${m.droppedUnnamed}  [${ok(checks.oneClassEach)}]`,
  );
  for (const k of r.byKind) {
    print(
      `    ${k.kind.padEnd(32)} sent ${count(k.sent).padStart(9)}  handled ${count(k.handled).padStart(9)}  dead-lettered ${count(k.deadLettered).padStart(6)}` +
        `  failed ${count(k.failedReported).padStart(6)}  dropped ${count(k.dropped).padStart(6)}  unaccounted ${count(k.unaccounted)}  over-reported ${count(k.overReported)}`,
    );
  }
  // each kind's ids in no class, or reported dropped though they ended otherwise (or twice), by name
  for (const k of r.byKind) {
    const some = (n: number, ids: string[]): string => `${ids.join(', ')}${n > ids.length ? ', ...' : ''}`;
    if (k.unaccounted > 0) {
      print(`  lost          ${k.kind}: ${count(k.unaccounted)} message id(s) in no class, neither handled, dead-lettered, reported failed nor named by a drop event (${some(k.unaccounted, k.ids.unaccounted)})  [FAILED]`);
    }
    if (k.overReported > 0) {
      print(`  over-reported ${k.kind}: ${count(k.overReported)} drop naming(s) of message ids handled, dead-lettered, reported failed or named already (${some(k.overReported, k.ids.overReported)})  [FAILED]`);
    }
  }
  print(`  chaos         kills ${count(c.kills)} (${count(c.killsDuringStart)} during a start; no live victim ${c.missed}), supervisor restarts ${count(c.restarts)} (failed starts retried ${count(c.restartsFailed)}), supervisors that gave up ${c.supervisorsGaveUp}, workers alive at the end ${c.workersAlive}/${r.workers.total}  [${ok(checks.supervisionHeld)}]`);
  if (c.endedEarly !== undefined) print(`  chaos ended   early (exit reason: ${c.endedEarly}): it struck or missed ${count(c.kills + c.missed)} of the ${count(c.owed ?? 0)} kills the load owed`);
  print(
    `  dead letters  added ${count(d.added)} (${by(d.byReason)}): recovered by the queue ${count(d.recovered)}, pending ${count(d.pending)}, parked ${count(d.parked)}, ` +
      `evicted ${d.evicted}, refused ${d.refused}, failed ${d.failed}; found by the ledger ${count(d.inQueue)}  [${ok(checks.deadLettersAccounted)}]`,
  );
  print(`  dropped       keel.message.dropped events counted ${by(r.droppedEvents)} message(s)`);
  print(`  leaks         ${r.leaks.count}${r.leaks.found.map((f) => `\n                - ${f}`).join('')}  [${ok(checks.noLeaks)}]`);
  print(`  log           warnings ${count(r.log.warnings)}, errors ${count(r.log.errors)}`);
  if (r.memory !== undefined) print(`  memory        ${heapLine(r.memory)}${r.memory.measured ? `  [${ok(checks.memoryFlat)}]` : ''}`);
  const failed = Object.entries(checks).filter(([, v]) => !v).map(([k]) => k);
  if (failed.length === 0) print('  checks        all passed');
  else {
    print(`  checks        FAILED: ${failed.join(', ')}`);
    print(`  replay        npm run soak -- --seed ${o.seed} --duration ${o.duration} --rate ${o.rate} --kill ${o.kill} --simulate`);
  }
}
