// Crash durability of the SQLite dead letter queue, in seeded rounds. Each round:
//
// 1. a child OS process adds dead letters to a fresh store file, through `node.deadLetters.add` and
//    through `sendSupervised(..., { onError: 'dead_letter' })` to a name nobody holds, and reports
//    each acknowledged one (id, message, metadata, message id) over IPC; the parent SIGKILLs it
//    once a random number of them has come in (adds of the next group commit are then in flight);
// 2. a node here reopens the file: every acknowledged id is there, pending, its message and
//    metadata deep-equal (NaN, -0, bigints, Maps, `__proto__` keys...) to what was reported;
// 3. a second child restarts on the file with the recipient present, a slow one that finishes a
//    message only when the parent says so, and is SIGKILLed in the middle of the redeliveries
//    (while the receiver holds one, or just after it was let go, at random);
// 4. a node here owns the file again, with the recipient present, and redelivers what is left.
//
// Nothing acknowledged is lost: an entry gone from the file after (3) was finished by the receiver
// there, and every other one is handed to the receiver in (4). An entry is handed over twice only if
// it was in flight at the kill of (3) (its handling had begun, and it was still in the file), and
// both times under the same message id (`ctx.messageId`), so that the receiver can dedupe.
//
// 10 rounds by default; `KEEL_LONG=1` runs 100. A failing round names its seed:
// `KEEL_CRASH_SEED=<seed> KEEL_CRASH_ROUNDS=1 npx vitest run test/reliability/crashDurability.test.ts`
// replays it (the kill lands at the same count of reports; where the child is then is up to timing).
import { randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { type DeadLetter, isDown, isExit } from '../../src/index.js';
import { TestClock } from '../../src/testing/index.js';
import { useBuiltPackage, useChildren } from '../childProcesses.js';
import { ok, seeded, useNodes, useTempFiles } from '../support.js';

const ADDER = fileURLToPath(new URL('../fixtures/crash-adder-child.mjs', import.meta.url));
const REDELIVERER = fileURLToPath(new URL('../fixtures/crash-redeliver-child.mjs', import.meta.url));

const LONG = process.env.KEEL_LONG === '1';
const ROUNDS = Number(process.env.KEEL_CRASH_ROUNDS ?? (LONG ? 100 : 10));
const BASE_SEED = Number(process.env.KEEL_CRASH_SEED ?? randomInt(1, 2 ** 31));
/** Rounds run side by side (each has its own file and children): child processes are slow to start. */
const PARALLEL = 3;
/** The first child is killed after 1 to this many acknowledged dead letters. */
const MAX_ACKED = 60;

const tmpfile = useTempFiles('keel-crash-', 'dead-letters.db');
const forkChild = useChildren();
const track = useNodes();
const builtKeel = useBuiltPackage();

/** What the adding child reports for each acknowledged dead letter. */
interface Acked {
  readonly id: string;
  readonly via: 'add' | 'send';
  readonly message: { readonly n: number; readonly body: unknown };
  readonly metadata: Record<string, unknown>;
  /** The send's message id (`via: 'send'`). */
  readonly messageId?: string;
}

interface Handling {
  readonly handling?: number;
  readonly messageId?: string;
  readonly ready?: number;
}

interface RoundResult {
  readonly seed: number;
  readonly acked: number;
  /** Acknowledged entries missing from the file, or never finished by their receiver. */
  readonly lost: number;
  /** Entries in the file after the first kill that were never acknowledged (their add was in flight). */
  readonly unacked: number;
  /** Entries handed to the receiver by the second child. */
  readonly redeliveredBeforeKill: number;
  /** Entries whose handling had begun at the second kill and that were still in the file. */
  readonly inFlight: number;
  /** Entries handed over both before and after the second kill. */
  readonly duplicates: number;
  readonly problems: readonly string[];
}

/** The store file's entries, listed by a node made here (on a clock at 0: nothing comes due). */
function storeNode(file: string, clock = new TestClock({ start: 0 })) {
  return track({ clock, services: { deadLetters: { store: { kind: 'sqlite', path: file }, backoff: { initialMs: 1000, maxMs: 1000, jitter: 'none' } } } });
}

async function listAll(node: ReturnType<typeof storeNode>): Promise<DeadLetter[]> {
  const all: DeadLetter[] = [];
  for (let cursor: string | undefined; ; ) {
    const page = ok(await node.deadLetters.list({ limit: 1000, ...(cursor === undefined ? {} : { cursor }) }));
    all.push(...page.entries);
    if (page.cursor === undefined) return all;
    cursor = page.cursor;
  }
}

/** The metadata a dead letter is stored with: the send's adds its message id, attempts and last error. */
function storedMetadata(a: Acked): Record<string, unknown> {
  return a.via === 'add' ? a.metadata : { ...a.metadata, id: a.messageId, attempts: 1, lastError: 'noproc' };
}

function nOf(message: unknown): number {
  return (message as { n: number }).n;
}

async function round(seed: number): Promise<RoundResult> {
  const random = seeded(seed);
  const problems: string[] = [];
  const file = tmpfile();

  // 1. add, and be killed after `killAfter` acknowledgements
  const killAfter = 1 + Math.floor(random() * MAX_ACKED);
  const adder = forkChild<Acked>(ADDER, [builtKeel(), file, String(seed)], { serialization: 'advanced' });
  const acked = new Map<string, Acked>();
  adder.onMessage((m) => acked.set(m.id, m));
  await adder.next(() => acked.size >= killAfter);
  const first = await adder.kill();
  if (first.signal !== 'SIGKILL') problems.push(`the adding child ended with ${JSON.stringify(first)}, not SIGKILL`);

  // 2. every acknowledged entry is in the file, pending, intact
  let node = storeNode(file);
  const stored = await listAll(node);
  await node.shutdown();
  const byId = new Map(stored.map((e) => [e.id, e]));
  for (const a of acked.values()) {
    const e = byId.get(a.id);
    if (e === undefined) {
      problems.push(`acknowledged dead letter ${a.id} (n ${a.message.n}, via ${a.via}) is not in the file after the kill`);
      continue;
    }
    const expected = { recipient: 'rcpt', reason: 'noproc', status: 'pending', attempts: 0, message: a.message, metadata: storedMetadata(a) };
    const actual = { recipient: e.recipient, reason: e.reason, status: e.status, attempts: e.attempts, message: e.message, metadata: e.metadata };
    if (!isDeepStrictEqual(actual, expected)) problems.push(`dead letter ${a.id} (n ${a.message.n}, via ${a.via}) is not intact`);
  }
  const byN = new Map(stored.map((e) => [nOf(e.message), e]));
  const ackedByN = new Map([...acked.values()].map((a) => [a.message.n, a]));

  // 3. a restart on the file, with a slow recipient, killed in the middle of its redeliveries
  const killAt = 1 + Math.floor(random() * stored.length);
  const letGo = random() < 0.5; // the receiver is let go of the last one just before the kill
  const redeliverer = forkChild<Handling>(REDELIVERER, [builtKeel(), file], { serialization: 'advanced' });
  const handled2 = new Map<number, string[]>();
  const granted = new Set<number>();
  let handlings = 0;
  let killing = false;
  redeliverer.onMessage((m) => {
    if (m.handling === undefined) return;
    handlings++;
    handled2.set(m.handling, [...(handled2.get(m.handling) ?? []), m.messageId ?? '(none)']);
    // reports still read after the kill get no grant: the child is gone (and a write to it fails)
    if (!killing && (handlings < killAt || letGo)) {
      granted.add(m.handling);
      redeliverer.process.send({ grant: m.handling }, () => undefined);
    }
  });
  await redeliverer.next(() => handlings >= killAt);
  killing = true;
  const second = await redeliverer.kill();
  if (second.signal !== 'SIGKILL') problems.push(`the redelivering child ended with ${JSON.stringify(second)}, not SIGKILL`);
  for (const [n, ids] of handled2) if (ids.length > 1) problems.push(`n ${n} was handed over ${ids.length} times before the kill`);

  // 4. a node owns the file again, the recipient present: it redelivers what is left
  const clock = new TestClock({ start: 0 });
  node = storeNode(file, clock);
  const left = await listAll(node);
  const leftNs = new Set(left.map((e) => nOf(e.message)));
  const handled3 = new Map<number, { message: unknown; ids: string[] }>();
  const rcpt = node.spawn((ctx) => (message: unknown) => {
    if (isDown(message) || isExit(message)) return;
    const n = nOf(message);
    const seen = handled3.get(n) ?? { message, ids: [] };
    seen.ids.push(ctx.messageId ?? '(none)');
    handled3.set(n, seen);
  });
  node.registry.register('rcpt', rcpt);
  await clock.advance(1000);
  await node.idle();
  const remaining = await listAll(node);
  await node.shutdown();
  if (remaining.length > 0) problems.push(`${remaining.length} entries are still in the file after the redelivery: ${remaining.map((e) => e.id).join(', ')}`);

  // nothing lost: an entry gone after (3) was finished there; every other one is handed over in (4)
  let lost = [...acked.keys()].filter((id) => !byId.has(id)).length;
  for (const e of stored) {
    const n = nOf(e.message);
    if (!leftNs.has(n)) {
      if (!granted.has(n)) {
        lost++;
        problems.push(`dead letter ${e.id} (n ${n}) left the file after the restart although its receiver never finished it`);
      }
      continue;
    }
    const seen = handled3.get(n);
    if (seen === undefined) {
      lost++;
      problems.push(`dead letter ${e.id} (n ${n}) was never handed to its receiver after the restart`);
      continue;
    }
    if (seen.ids.length > 1) problems.push(`n ${n} was handed over ${seen.ids.length} times after the restart, with no kill`);
    if (!isDeepStrictEqual(seen.message, e.message)) problems.push(`dead letter ${e.id} (n ${n}) was redelivered with another message`);
  }
  for (const n of handled3.keys()) if (!byN.has(n)) problems.push(`n ${n} was handed over, but no such entry was in the file`);

  // duplicates: only entries in flight at the kill, under the same message id; a send's keeps its own
  let inFlight = 0;
  let duplicates = 0;
  for (const [n, ids2] of handled2) {
    if (leftNs.has(n)) inFlight++;
    const ids3 = handled3.get(n)?.ids;
    if (ids3 === undefined) continue;
    duplicates++;
    if (!leftNs.has(n)) problems.push(`n ${n} was handed over again, but it was not in flight at the kill`);
    if (ids3.some((id) => id !== ids2[0])) problems.push(`n ${n} was handed over again under another message id: ${ids2[0]} before the kill, ${ids3.join(', ')} after`);
  }
  for (const [n, a] of ackedByN) {
    if (a.via !== 'send') continue;
    const ids = [...(handled2.get(n) ?? []), ...(handled3.get(n)?.ids ?? [])];
    if (ids.some((id) => id !== a.messageId)) problems.push(`n ${n} (a send's, message id ${a.messageId}) was handed over as ${ids.join(', ')}`);
  }

  return {
    seed,
    acked: acked.size,
    lost,
    unacked: stored.filter((e) => !acked.has(e.id)).length,
    redeliveredBeforeKill: handled2.size,
    inFlight,
    duplicates,
    problems,
  };
}

describe('the SQLite dead letter queue under SIGKILL, in seeded rounds', () => {
  it(
    `loses nothing acknowledged, keeps it intact, and hands each entry over at least once, twice only when in flight at the kill and under one message id (${ROUNDS} rounds)`,
    async () => {
      const seeds = Array.from({ length: ROUNDS }, (_, i) => BASE_SEED + i);
      const results: RoundResult[] = [];
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < seeds.length) {
          const seed = seeds[next++]!;
          try {
            results.push(await round(seed));
          } catch (e) {
            throw new Error(`crash round with seed ${seed} failed (replay: KEEL_CRASH_SEED=${seed} KEEL_CRASH_ROUNDS=1): ${String(e)}`, { cause: e });
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(PARALLEL, seeds.length) }, worker));

      const sum = (key: 'acked' | 'lost' | 'unacked' | 'redeliveredBeforeKill' | 'inFlight' | 'duplicates'): number => results.reduce((s, r) => s + r[key], 0);
      const failed = results.filter((r) => r.problems.length > 0).length;
      console.log(
        `crash durability: ${results.length} rounds from seed ${BASE_SEED} (${failed} with problems): ${sum('acked')} dead letters acknowledged, ` +
          `${sum('lost')} lost; ${sum('unacked')} more committed unacknowledged; ${sum('redeliveredBeforeKill')} handed over before the ` +
          `second kill, ${sum('inFlight')} in flight at it; ${sum('duplicates')} handed over twice`,
      );
      for (const r of results) {
        expect(r.problems, `round with seed ${r.seed} (replay: KEEL_CRASH_SEED=${r.seed} KEEL_CRASH_ROUNDS=1)`).toEqual([]);
      }
      expect(results).toHaveLength(ROUNDS);
      // the rounds did what they are for: entries were acknowledged, and kills landed mid-redelivery
      expect(sum('acked')).toBeGreaterThanOrEqual(ROUNDS);
      expect(sum('inFlight')).toBeGreaterThan(0);
    },
    LONG ? 600_000 : 60_000,
  );
});
