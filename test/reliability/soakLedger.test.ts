import { describe, expect, it } from 'vitest';
import { SoakLedger } from '../../src/cli/soakLedger.js';
import type { SendOutcome } from '../../src/index.js';

const ok = (seq: number): SendOutcome => ({ ok: true, id: SoakLedger.id(seq), attempts: 1 });
const failed = (seq: number, deadLetterId?: string): SendOutcome => ({
  ok: false,
  id: SoakLedger.id(seq),
  reason: 'noproc',
  attempts: 1,
  firstError: 'noproc',
  lastError: 'noproc',
  ...(deadLetterId === undefined ? {} : { deadLetterId }),
});

/** Kind 0 is an ordinary kind, kind 1 a lossy one (its drops counted by receiver_exited events). */
const LOSSY = new Set([1]);

describe('SoakLedger.account', () => {
  it('puts every message in exactly one class, and counts what is in none', () => {
    const ledger = new SoakLedger(10);
    const seqs = Array.from({ length: 9 }, (_, i) => ledger.next(i < 6 ? 0 : 1));
    expect(seqs).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(ledger.outstanding).toBe(9);
    // 0: handled twice (a duplicate); 1: dead-lettered by its outcome, still queued; 2: delivered,
    // then dead-lettered by its receiver's death, still queued; 3: reported failed; 4: no outcome
    // ever (unaccounted); 5: dead-lettered, then gone from the queue unhandled (unaccounted)
    ledger.handled(SoakLedger.id(0));
    ledger.handled(SoakLedger.id(0));
    ledger.outcome(ok(0));
    ledger.outcome(failed(1, '17'));
    ledger.queued(SoakLedger.id(1));
    ledger.outcome(ok(2));
    ledger.queued(SoakLedger.id(2));
    ledger.outcome(failed(3));
    ledger.outcome(failed(5, '18'));
    // lossy 6: handled; 7 and 8: acknowledged, never handled (one covered by the events' count)
    ledger.handled(SoakLedger.id(6));
    for (const seq of [6, 7, 8]) ledger.outcome(ok(seq));
    expect(ledger.outstanding).toBe(1);
    expect(ledger.queuedCount).toBe(2);
    const a = ledger.account(2, LOSSY, 1);
    expect(a.byKind).toEqual([
      { sent: 6, handled: 1, deadLettered: 2, failedReported: 1, dropped: 0, unaccounted: 2 },
      { sent: 3, handled: 1, deadLettered: 0, failedReported: 0, dropped: 1, unaccounted: 1 },
    ]);
    expect(a.total).toEqual({ sent: 9, handled: 2, deadLettered: 2, failedReported: 1, dropped: 1, unaccounted: 3 });
    expect(a.duplicates).toBe(1);
    expect(a.overlaps + a.foreign + a.overReported).toBe(0);
  });

  it('counts a message in two classes, ids that are not its own, and drops the events over-report', () => {
    const ledger = new SoakLedger(4);
    ledger.next(0);
    ledger.next(0);
    ledger.next(1);
    // 0: handled, yet still queued; 1: handled, yet reported failed
    ledger.handled(SoakLedger.id(0));
    ledger.outcome(ok(0));
    ledger.queued(SoakLedger.id(0));
    ledger.handled(SoakLedger.id(1));
    ledger.outcome(failed(1));
    ledger.handled(SoakLedger.id(2));
    ledger.outcome(ok(2));
    // not ours: never sent, another id scheme, no id at all
    for (const id of [SoakLedger.id(3), 'keel-1-2-3', 's', 's12x', undefined]) ledger.handled(id);
    ledger.queued('s99');
    const a = ledger.account(2, LOSSY, 2);
    expect(a.total).toEqual({ sent: 3, handled: 3, deadLettered: 0, failedReported: 0, dropped: 0, unaccounted: 0 });
    expect(a.overlaps).toBe(2);
    expect(a.foreign).toBe(6);
    // two receiver_exited messages counted, and no lossy message missing
    expect(a.overReported).toBe(2);
  });

  it('resolves settled() once every outcome arrived, a rejection counted as a reported failure', async () => {
    const ledger = new SoakLedger(2);
    await ledger.settled(); // nothing sent: at once
    ledger.next(0);
    ledger.next(0);
    let settled = false;
    const waiting = ledger.settled().then(() => (settled = true));
    ledger.outcome(ok(0));
    await Promise.resolve();
    expect(settled).toBe(false);
    ledger.rejection(1);
    await waiting;
    expect(settled).toBe(true);
    expect(ledger.rejected).toBe(1);
    expect(ledger.account(1, LOSSY, 0).total).toEqual({ sent: 2, handled: 0, deadLettered: 0, failedReported: 1, dropped: 0, unaccounted: 1 });
  });

  it('refuses a message past its capacity', () => {
    const ledger = new SoakLedger(1);
    ledger.next(0);
    expect(() => ledger.next(0)).toThrow(RangeError);
  });
});
