import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serialize } from 'node:v8';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { type DeadLetter, sendSupervised } from '../../src/index.js';
import { DLQ_USAGE, dlqUsage, runDlq } from '../../src/cli/dlq.js';
import type { NewRecord } from '../../src/delivery/stores/DeadLetterStore.js';
import { SqliteStore, type SqliteStoreOptions } from '../../src/delivery/stores/SqliteStore.js';
import { SqliteAgentStore } from '../../src/agents/store/SqliteAgentStore.js';
import { probe, TestClock } from '../../src/testing/index.js';
import { useBuiltPackage } from '../childProcesses.js';
import { ok, useNodes, useTempFiles } from '../support.js';

// registered before useNodes(): after-each hooks run in reverse order, so nodes close their files first
const tmpfile = useTempFiles('keel-cli-', 'dlq.db');

const track = useNodes();

const T = Date.UTC(2025, 0, 1, 12, 0, 0);

/** Runs `keel dlq …` with a fixed clock; returns the exit code and what it printed. */
function run(argv: string[], now = T, internal: SqliteStoreOptions = {}): { code: number; out: string } {
  const lines: string[] = [];
  const code = runDlq(argv, (line) => lines.push(line), () => now, internal);
  return { code, out: lines.join('\n') };
}

const RECORDS: NewRecord[] = [
  {
    recipient: 'billing',
    message: { charge: 500, currency: 'EUR' },
    reason: 'timeout',
    metadata: { id: 'm-1' },
    attempts: 2,
    firstFailedAt: T - 60_000,
    lastAttemptAt: T - 1000,
    nextRetryAt: T + 30_000,
    lastError: 'not handled within 5000 ms',
    status: 'pending',
  },
  {
    recipient: '<keel-1.7.3>',
    message: 'ping',
    reason: 'noproc',
    metadata: {},
    attempts: 0,
    firstFailedAt: T - 120_000,
    lastAttemptAt: T - 120_000,
    nextRetryAt: T + 1000,
    lastError: 'noproc',
    status: 'parked',
  },
  {
    recipient: 'orders',
    message: { items: ['apple', 'banana', 'cherry', 'damson', 'elderberry'], total: 10n, tags: new Map([['a', 1]]) },
    reason: 'mailbox_full',
    metadata: { id: 'm-3' },
    attempts: 5,
    firstFailedAt: T - 30_000,
    lastAttemptAt: T - 5000,
    nextRetryAt: T + 5000,
    lastError: 'mailbox_full',
    status: 'parked',
  },
];

/** A store file holding RECORDS as ids 1, 2, 3 (written the way a node writes, then closed). */
async function knownStore(): Promise<string> {
  const file = tmpfile();
  const store = new SqliteStore(file, undefined);
  try {
    const ids = await Promise.all(RECORDS.map((r) => store.add(r)));
    expect(ids).toEqual(['1', '2', '3']);
  } finally {
    store.close();
  }
  return file;
}

/** Holds the write lock of `file` from a second connection (`BEGIN IMMEDIATE`) until `release()`. */
function writeLock(file: string): { release(): void } {
  const db = new Database(file);
  db.exec('BEGIN IMMEDIATE');
  return {
    release: () => {
      db.exec('ROLLBACK');
      db.close();
    },
  };
}

/** What a command could have changed about a file: its bytes (a hash), its journal mode, the files beside it. */
function fileState(file: string): { sha256: string; journalMode: unknown; directory: string[] } {
  const sha256 = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  const db = new Database(file, { readonly: true });
  let journalMode: unknown;
  try {
    journalMode = db.pragma('journal_mode', { simple: true });
  } finally {
    db.close();
  }
  return { sha256, journalMode, directory: fs.readdirSync(path.dirname(file)).sort() };
}

/** A busy timeout of 20 ms instead of 5 s: a locked file fails the command at once. */
const SHORT_BUSY = { busyTimeoutMs: 20 };

/** The rows of a store file, read through a fresh better-sqlite3 connection. */
function rows(file: string): { seq: number; status: string; next_retry_at: number; recipient: string }[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT seq, status, next_retry_at, recipient FROM dead_letters ORDER BY seq').all() as { seq: number; status: string; next_retry_at: number; recipient: string }[];
  } finally {
    db.close();
  }
}

describe('keel dlq list', () => {
  it('prints a table of the entries in insertion order', async () => {
    const file = await knownStore();
    const { code, out } = run(['list', '--store', file]);
    expect(code).toBe(0);
    expect(out).toBe(
      [
        'id  status   recipient     reason        attempts  next retry                message',
        '1   pending  billing       timeout       2         2025-01-01T12:00:30.000Z  {"charge":500,"currency":"EUR"}',
        '2   parked   <keel-1.7.3>  noproc        0         2025-01-01T12:00:01.000Z  "ping"',
        '3   parked   orders        mailbox_full  5         2025-01-01T12:00:05.000Z  {"items":["apple","banana","cherry","damson","elderberry"...',
      ].join('\n'),
    );
  });

  it('filters by status, reason, recipient and --older-than, and limits', async () => {
    const file = await knownStore();
    const idsOf = (argv: string[]): string[] => {
      const { code, out } = run(['list', '--store', file, '--json', ...argv]);
      expect(code).toBe(0);
      return (JSON.parse(out) as { id: string }[]).map((r) => r.id);
    };
    expect(idsOf([])).toEqual(['1', '2', '3']);
    expect(idsOf(['--status', 'parked'])).toEqual(['2', '3']);
    expect(idsOf(['--status', 'pending'])).toEqual(['1']);
    expect(idsOf(['--reason', 'noproc'])).toEqual(['2']);
    expect(idsOf(['--recipient', 'orders'])).toEqual(['3']);
    // failed at least 45 s before T: 1 (60 s) and 2 (120 s)
    expect(idsOf(['--older-than', '45000'])).toEqual(['1', '2']);
    expect(idsOf(['--status', 'parked', '--limit', '1'])).toEqual(['2']);
    expect(run(['list', '--store', file, '--reason', 'nothing like it'])).toEqual({ code: 0, out: '(no dead letters)' });
  });

  it('--json prints the records, bigints as "10n" and Maps as objects', async () => {
    const file = await knownStore();
    const { code, out } = run(['list', '--store', file, '--json']);
    expect(code).toBe(0);
    expect(JSON.parse(out)).toEqual([
      { id: '1', ...RECORDS[0] },
      { id: '2', ...RECORDS[1] },
      { id: '3', ...RECORDS[2], message: { items: ['apple', 'banana', 'cherry', 'damson', 'elderberry'], total: '10n', tags: { a: 1 } } },
    ]);
  });
});

/** A store file holding `records` as ids 1, 2, … (written the way a node writes, then closed). */
async function storeOf(records: NewRecord[]): Promise<string> {
  const file = tmpfile();
  const store = new SqliteStore(file, undefined);
  try {
    await Promise.all(records.map((r) => store.add(r)));
  } finally {
    store.close();
  }
  return file;
}

/** What a terminal would act on: C0 and C1 controls, DEL, line/paragraph separators, bidirectional overrides. */
const TERMINAL_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describe('keel dlq output with hostile strings', () => {
  const HOSTILE: NewRecord = {
    ...RECORDS[0]!,
    recipient: 'evil\x1b[2Jname',
    reason: 'why\u009b31m',
    message: { t: '\x1b]0;x\x07', c: '\u009b2J', b: '\u202e' },
    metadata: { id: 'm-\x1b[5m' },
    lastError: 'boom\x1b[31m\r',
  };

  it('list, show and their --json print every control character escaped (a name, a reason or a message cannot drive the terminal); --json still parses back to the values', async () => {
    const file = await storeOf([HOSTILE]);
    for (const argv of [['list'], ['show', '1'], ['list', '--json'], ['show', '1', '--json']]) {
      const { code, out } = run([...argv, '--store', file]);
      expect(code).toBe(0);
      expect(out).not.toMatch(TERMINAL_CONTROL);
    }
    const list = run(['list', '--store', file]).out.split('\n');
    expect(list[1]).toBe(
      '1   pending  evil\\x1b[2Jname  why\\x9b31m  2         2025-01-01T12:00:30.000Z  {"t":"\\u001b]0;x\\u0007","c":"\\u009b2J","b":"\\u202e"}',
    );
    const show = run(['show', '1', '--store', file]).out.split('\n');
    expect(show).toContain('recipient      evil\\x1b[2Jname');
    expect(show).toContain('reason         why\\x9b31m');
    expect(show).toContain('lastError      "boom\\u001b[31m\\r"');
    expect(JSON.parse(run(['show', '1', '--store', file, '--json']).out)).toEqual({ id: '1', ...HOSTILE });
    expect(JSON.parse(run(['list', '--store', file, '--json']).out)).toEqual([{ id: '1', ...HOSTILE }]);
  });
});

describe('keel dlq on a message with a cycle', () => {
  // a node stores one (the structural check and v8.serialize both take cycles)
  function cyclic(): { message: unknown; printed: unknown } {
    const shared = { x: 1 };
    const message: Record<string, unknown> = { a: 1, shared, again: shared };
    message.self = message;
    const tags = new Map<string, unknown>([['k', 1]]);
    tags.set('me', tags);
    message.tags = tags;
    // a value met again on its own path is "[Circular]"; one met on two paths is printed on both
    return { message, printed: { a: 1, shared: { x: 1 }, again: { x: 1 }, self: '[Circular]', tags: { k: 1, me: '[Circular]' } } };
  }

  it('list, show and their --json print it, the cycle as "[Circular]" (they threw a TypeError with a stack trace)', async () => {
    const { message, printed } = cyclic();
    const file = await storeOf([{ ...RECORDS[0]!, message, metadata: { id: 'm-1', loop: message } }]);
    const list = run(['list', '--store', file]);
    expect(list.code).toBe(0);
    expect(list.out.split('\n')[1]).toBe('1   pending  billing    timeout  2         2025-01-01T12:00:30.000Z  {"a":1,"shared":{"x":1},"again":{"x":1},"self":"[Circular...');
    const listJson = run(['list', '--store', file, '--json']);
    expect(listJson.code).toBe(0);
    expect(JSON.parse(listJson.out)).toEqual([{ id: '1', ...RECORDS[0], message: printed, metadata: { id: 'm-1', loop: printed } }]);
    const show = run(['show', '1', '--store', file]);
    expect(show.code).toBe(0);
    expect(show.out).toContain('"self": "[Circular]"');
    const showJson = run(['show', '1', '--store', file, '--json']);
    expect(showJson.code).toBe(0);
    expect(JSON.parse(showJson.out)).toEqual({ id: '1', ...RECORDS[0], message: printed, metadata: { id: 'm-1', loop: printed } });
  });
});

describe('keel dlq on a message nested deeper than JSON can print', () => {
  /** `leaf` in `levels` arrays. */
  const nested = (levels: number, leaf: unknown): unknown => {
    let v = leaf;
    for (let i = 0; i < levels; i++) v = [v];
    return v;
  };

  it('list, show and their --json print it down to 100 levels, deeper as "[Nested too deeply]" (they died of a RangeError with a stack trace)', async () => {
    // a node stores it: v8.serialize takes a message 3000 levels deep
    const file = await storeOf([{ ...RECORDS[0]!, message: nested(3000, 1) }]);
    const list = run(['list', '--store', file]);
    expect(list.code).toBe(0);
    expect(list.out.split('\n')[1]).toBe(`1   pending  billing    timeout  2         2025-01-01T12:00:30.000Z  ${'['.repeat(57)}...`);
    const listJson = run(['list', '--store', file, '--json']);
    expect(listJson.code).toBe(0);
    // the array of entries is level 1, an entry level 2: its message's arrays start at level 3
    expect(JSON.parse(listJson.out)).toEqual([{ id: '1', ...RECORDS[0], message: nested(98, '[Nested too deeply]') }]);
    const showJson = run(['show', '1', '--store', file, '--json']);
    expect(showJson.code).toBe(0);
    expect(JSON.parse(showJson.out)).toEqual({ id: '1', ...RECORDS[0], message: nested(99, '[Nested too deeply]') });
    const show = run(['show', '1', '--store', file]);
    expect(show.code).toBe(0);
    expect(show.out).toContain('"[Nested too deeply]"');
  });
});

describe('keel dlq on times past the range of a Date', () => {
  it('list and show print such a time as its number (they threw a RangeError: a node with a long backoff, initialMs and maxMs 1e17, writes one; so can another connection)', async () => {
    const file = await storeOf([{ ...RECORDS[0]!, nextRetryAt: 1e17 }, RECORDS[1]!]);
    const db = new Database(file);
    try {
      db.prepare("UPDATE dead_letters SET first_failed_at = 'soon' WHERE seq = 2").run();
    } finally {
      db.close();
    }
    const list = run(['list', '--store', file]);
    expect(list.code).toBe(0);
    expect(list.out.split('\n')[1]).toBe('1   pending  billing       timeout  2         100000000000000000        {"charge":500,"currency":"EUR"}');
    const show = run(['show', '1', '--store', file]);
    expect(show.code).toBe(0);
    expect(show.out.split('\n')).toContain('nextRetryAt    100000000000000000');
    const other = run(['show', '2', '--store', file]);
    expect(other.code).toBe(0);
    expect(other.out.split('\n')).toContain('firstFailedAt  soon');
  });
});

describe('keel dlq retry on more entries than a page', () => {
  it('--all (as a filter) marks every entry it selects, past the first 1,000,000 (they marked those only, and said so as if they were all)', () => {
    const file = tmpfile();
    new SqliteStore(file, undefined).close(); // the schema
    const n = 1_000_003;
    const db = new Database(file);
    try {
      const payload = serialize(['m', {}]);
      db.prepare(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) INSERT INTO dead_letters (recipient, payload, reason, attempts, first_failed_at, last_attempt_at, next_retry_at, last_error, status) SELECT 'r', ?, 'noproc', 0, 0, 0, 0, NULL, 'parked' FROM c",
      ).run(n, payload);
    } finally {
      db.close();
    }
    const { code, out } = run(['retry', '--all', '--store', file]);
    expect(code).toBe(0);
    expect(out.split('\n')[0]).toMatch(/^marked 1000003 dead letter\(s\) due now; /);
    const check = new Database(file, { readonly: true });
    try {
      expect(check.prepare("SELECT status, next_retry_at AS at, COUNT(*) AS n FROM dead_letters GROUP BY status, next_retry_at").all()).toEqual([{ status: 'pending', at: T, n }]);
    } finally {
      check.close();
    }
  }, 60_000);
});

describe('keel dlq show', () => {
  it('prints one record, field by field', async () => {
    const file = await knownStore();
    const { code, out } = run(['show', '2', '--store', file]);
    expect(code).toBe(0);
    expect(out).toBe(
      [
        'id             2',
        'recipient      <keel-1.7.3>',
        'message        "ping"',
        'reason         noproc',
        'metadata       {}',
        "attempts       0 (the dead letter queue's redelivery attempts)",
        `firstFailedAt  ${new Date(T - 120_000).toISOString()}`,
        `lastAttemptAt  ${new Date(T - 120_000).toISOString()}`,
        `nextRetryAt    ${new Date(T + 1000).toISOString()}`,
        'lastError      "noproc"',
        'status         parked',
      ].join('\n'),
    );
  });

  it('--json prints the record as JSON', async () => {
    const file = await knownStore();
    const { code, out } = run(['show', '1', '--json', '--store', file]);
    expect(code).toBe(0);
    expect(JSON.parse(out)).toEqual({ id: '1', ...RECORDS[0] });
  });

  it('exits 1 for an unknown id; no id at all is bad usage (exit 2)', async () => {
    const file = await knownStore();
    expect(run(['show', '99', '--store', file])).toEqual({ code: 1, out: 'keel dlq: no dead letter 99' });
    expect(run(['show', '--store', file])).toEqual({ code: 2, out: 'keel dlq show: give the id of the dead letter to show (keel dlq list prints the ids)' });
  });

  it("says what attempts counts: the queue's redeliveries (0 for a fresh entry), beside the sender's delivery attempts in metadata.attempts", async () => {
    const file = tmpfile();
    const node = track({ services: { deadLetters: { store: { kind: 'sqlite', path: file } } } });
    // one send and one retry to a name nobody has: dead-lettered after 2 attempts of the sender
    const outcome = await sendSupervised(node, 'nobody', { n: 1 }, { retries: 1, backoff: { initialMs: 1, maxMs: 1 }, onError: 'dead_letter' });
    expect(outcome).toMatchObject({ ok: false, attempts: 2, deadLetterId: '1' });
    await node.shutdown();
    const { code, out } = run(['show', '1', '--store', file]);
    expect(code).toBe(0);
    const attempts = out.split('\n').find((l) => l.startsWith('attempts '));
    expect(attempts).toBe(
      "attempts       0 (the dead letter queue's redelivery attempts; metadata.attempts 2: the sender's delivery attempts before it dead-lettered the message)",
    );
    expect(JSON.parse(run(['show', '1', '--store', file, '--json']).out)).toMatchObject({ attempts: 0, metadata: { attempts: 2 } });
  });
});

describe('keel dlq on a store with an undecodable row', () => {
  const DECODE_ERROR = 'Error: Unable to deserialize cloned data due to invalid or unsupported version.';

  /** knownStore() with entry 2's payload and entry 3's last error corrupted by another connection. */
  async function corruptStore(): Promise<string> {
    const file = await knownStore();
    const db = new Database(file);
    try {
      db.prepare("UPDATE dead_letters SET payload = x'deadbeef' WHERE seq = 2").run();
      db.prepare("UPDATE dead_letters SET last_error = x'0badc0de' WHERE seq = 3").run();
    } finally {
      db.close();
    }
    return file;
  }

  it('list shows it as undecodable with its raw size, and the other entries as they are', async () => {
    const file = await corruptStore();
    const { code, out } = run(['list', '--store', file]);
    expect(code).toBe(0);
    expect(out).toBe(
      [
        'id  status   recipient     reason        attempts  next retry                message',
        '1   pending  billing       timeout       2         2025-01-01T12:00:30.000Z  {"charge":500,"currency":"EUR"}',
        '2   parked   <keel-1.7.3>  noproc        0         2025-01-01T12:00:01.000Z  (undecodable: 4 bytes)',
        '3   parked   orders        mailbox_full  5         2025-01-01T12:00:05.000Z  {"items":["apple","banana","cherry","damson","elderberry"...',
      ].join('\n'),
    );
  });

  it('list --json and show --json give it without message and metadata, with undecodable: { bytes, error }', async () => {
    const file = await corruptStore();
    const listed = run(['list', '--store', file, '--json']);
    expect(listed.code).toBe(0);
    const { message: _message, metadata: _metadata, ...rest } = RECORDS[1]!;
    const undecodable = { id: '2', ...rest, undecodable: { bytes: 4, error: DECODE_ERROR } };
    const records = JSON.parse(listed.out) as Record<string, unknown>[];
    expect(records[1]).toEqual(undecodable);
    expect(records[2]).toEqual({
      id: '3',
      ...RECORDS[2],
      message: { items: ['apple', 'banana', 'cherry', 'damson', 'elderberry'], total: '10n', tags: { a: 1 } },
      lastError: `undecodable last error (4 bytes): ${DECODE_ERROR}`,
    });
    const shown = run(['show', '2', '--store', file, '--json']);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.out)).toEqual(undecodable);
  });

  it('show prints it field by field, the message as undecodable with its size and why', async () => {
    const file = await corruptStore();
    const { code, out } = run(['show', '2', '--store', file]);
    expect(code).toBe(0);
    expect(out).toBe(
      [
        'id             2',
        'recipient      <keel-1.7.3>',
        `message        (undecodable: 4 bytes) ${DECODE_ERROR}`,
        'reason         noproc',
        'metadata       (undecodable: stored with the message)',
        "attempts       0 (the dead letter queue's redelivery attempts)",
        `firstFailedAt  ${new Date(T - 120_000).toISOString()}`,
        `lastAttemptAt  ${new Date(T - 120_000).toISOString()}`,
        `nextRetryAt    ${new Date(T + 1000).toISOString()}`,
        'lastError      "noproc"',
        'status         parked',
      ].join('\n'),
    );
  });
});

describe('keel dlq retry', () => {
  it('marks the given entries due now (status pending, nextRetryAt = now), parked ones included', async () => {
    const file = await knownStore();
    const now = T + 7;
    const { code, out } = run(['retry', '1', '3', '--store', file], now);
    expect(code).toBe(0);
    expect(out).toBe('marked 2 dead letter(s) due now; no node has this store open: the next node that opens it as its dead letter store retries them as soon as it starts');
    expect(rows(file)).toEqual([
      { seq: 1, status: 'pending', next_retry_at: now, recipient: 'billing' },
      { seq: 2, status: 'parked', next_retry_at: T + 1000, recipient: '<keel-1.7.3>' },
      { seq: 3, status: 'pending', next_retry_at: now, recipient: 'orders' },
    ]);
  });

  it('marks the entries a filter selects; --json lists the marked ids; unknown ids mark nothing and are reported (exit 1)', async () => {
    const file = await knownStore();
    expect(run(['retry', '--store', file, '--status', 'parked', '--json'], T + 1)).toEqual({ code: 0, out: JSON.stringify({ marked: ['2', '3'] }, null, 2) });
    expect(rows(file).map((r) => [r.status, r.next_retry_at])).toEqual([
      ['pending', T + 30_000],
      ['pending', T + 1],
      ['pending', T + 1],
    ]);
    expect(run(['retry', '404', '--store', file, '--json'])).toEqual({ code: 1, out: JSON.stringify({ marked: [], notFound: ['404'] }, null, 2) });
    // the ids found are marked, the others named (exit 1: not all done)
    expect(run(['retry', '1', '404', '--store', file, '--json'], T + 2)).toEqual({ code: 1, out: JSON.stringify({ marked: ['1'], notFound: ['404'] }, null, 2) });
    expect(rows(file)[0]!.next_retry_at).toBe(T + 2);
    expect(run(['retry', '--store', file]).code).toBe(2); // no selection: --all is required to mark everything
  });

  it('a live node owning the store delivers the marked entries at its next wake (the 5 s durable poll)', async () => {
    const file = tmpfile();
    const clock = new TestClock({ start: T });
    // entries come due only after an hour; a single failed attempt parks one
    const node = track({
      clock,
      random: () => 1,
      services: { deadLetters: { store: { kind: 'sqlite', path: file }, maxRetries: 1, backoff: { initialMs: 3_600_000, factor: 2, maxMs: 3_600_000 } } },
    });
    const waiting = ok(await node.deadLetters.add({ recipient: 'late', message: 'waiting', reason: 'noproc' }));
    const parked = ok(await node.deadLetters.add({ recipient: 'late', message: 'parked', reason: 'noproc' }));
    expect(ok(await node.deadLetters.retry([parked]))).toEqual([{ id: parked, ok: false, reason: 'noproc' }]);
    expect((ok(await node.deadLetters.get(parked)) as DeadLetter).status).toBe('parked');
    await node.idle();
    const p = probe(node);
    node.registry.register('late', p);

    // the CLI works on the file while the node owns it, and says so
    expect(run(['retry', '--store', file, '--recipient', 'late'], clock.now())).toEqual({
      code: 0,
      out: `marked 2 dead letter(s) due now; node ${node.name}-${node.creation} (OS process ${process.pid}) has this store open: it looks at the file at least every 5 s and retries them then`,
    });
    for (const id of [waiting, parked]) {
      expect(ok(await node.deadLetters.get(id))).toMatchObject({ status: 'pending', nextRetryAt: T });
    }
    await clock.advance(4999);
    await node.idle();
    expect(p.messages).toEqual([]);
    await clock.advance(1);
    expect(await p.receive((m) => m === 'waiting')).toBe('waiting');
    expect(await p.receive((m) => m === 'parked')).toBe('parked');
    await node.idle();
    expect(ok(await node.deadLetters.list()).entries).toEqual([]);
    expect(ok(await node.deadLetters.stats())).toMatchObject({ pending: 0, parked: 0, succeeded: 2 });
  });
});

describe('keel dlq retry on a store no node has open', () => {
  it('says so; the next node that opens the store retries the marked entries as soon as it starts, before any time passes', async () => {
    const file = await knownStore(); // written and closed: no node has it open
    expect(run(['retry', '1', '3', '--store', file], T)).toEqual({
      code: 0,
      out: 'marked 2 dead letter(s) due now; no node has this store open: the next node that opens it as its dead letter store retries them as soon as it starts',
    });
    // nothing happens to them until then
    expect(rows(file).map((r) => [r.seq, r.status, r.next_retry_at])).toEqual([[1, 'pending', T], [2, 'parked', T + 1000], [3, 'pending', T]]);

    const clock = new TestClock({ start: T + 60_000 });
    const node = track({ clock, services: { deadLetters: { store: { kind: 'sqlite', path: file } } } });
    const billing = probe(node);
    const orders = probe(node);
    node.registry.register('billing', billing);
    node.registry.register('orders', orders);
    // the queue's process starts with the node, finds the entries due and wakes at once (a 0 ms timer)
    await clock.advance(0);
    expect(await billing.receive()).toEqual({ charge: 500, currency: 'EUR' });
    expect(await orders.receive()).toEqual({ items: ['apple', 'banana', 'cherry', 'damson', 'elderberry'], total: 10n, tags: new Map([['a', 1]]) });
    await node.idle();
    expect(clock.now()).toBe(T + 60_000); // at its start: no poll, no backoff waited for
    // delivered and removed; the entry that was not marked is still parked
    expect(ok(await node.deadLetters.list()).entries.map((e) => [e.id, e.status])).toEqual([['2', 'parked']]);
    expect(ok(await node.deadLetters.stats())).toMatchObject({ succeeded: 2, parked: 1, pending: 0 });
  });
});

describe('keel dlq purge', () => {
  it('deletes the entries a filter selects and prints how many', async () => {
    const file = await knownStore();
    expect(run(['purge', '--store', file, '--status', 'parked', '--reason', 'noproc'])).toEqual({ code: 0, out: 'purged 1 dead letter(s)' });
    expect(rows(file).map((r) => r.seq)).toEqual([1, 3]);
    expect(run(['purge', '--store', file, '--older-than', '45000', '--json'])).toEqual({ code: 0, out: JSON.stringify({ purged: 1 }, null, 2) });
    expect(rows(file).map((r) => r.seq)).toEqual([3]);
  });

  it('refuses without a filter (exit 2, nothing deleted); --all deletes every entry', async () => {
    const file = await knownStore();
    const refused = run(['purge', '--store', file]);
    expect(refused.code).toBe(2);
    expect(refused.out).toContain('--all');
    expect(rows(file)).toHaveLength(3);
    // --limit is not a filter
    expect(run(['purge', '--store', file, '--limit', '1']).code).toBe(2);
    expect(rows(file)).toHaveLength(3);
    expect(run(['purge', '--store', file, '--all'])).toEqual({ code: 0, out: 'purged 3 dead letter(s)' });
    expect(rows(file)).toEqual([]);
  });
});

describe('keel dlq arguments', () => {
  it('says in one line what is wrong with bad arguments and exits 2, leaving the store untouched', async () => {
    const file = await knownStore();
    const LIST_OPTIONS = 'keel dlq list takes --store, --status, --reason, --recipient, --older-than, --limit, --json and --help';
    const bad: [string[], string][] = [
      [[], 'keel dlq: give a command: list, show, retry or purge (keel dlq --help prints the usage)'],
      [['list'], "keel dlq list: --store <file> is missing: the SQLite dead letter store (a node's services.deadLetters.store path)"],
      [['frobnicate', '--store', file], "keel dlq: unknown command 'frobnicate': the dlq commands are list, show, retry and purge (keel dlq --help prints the usage)"],
      [['--store', file, 'list'], "keel dlq: give the command (list, show, retry or purge) first, then its options: got '--store' (keel dlq --help prints the usage)"],
      [['list', '--store'], "keel dlq list: Option '--store <value>' argument missing: give it as --store <file> or --store=<file>"],
      [['list', '--store', file, '--bogus'], `keel dlq list: Unknown option '--bogus'. ${LIST_OPTIONS}`],
      [['list', '--store', file, '--all'], `keel dlq list: Unknown option '--all'. ${LIST_OPTIONS}`],
      [['list', '--store', file, '--status', 'dead'], "keel dlq list: expected `--status` to be 'pending' | 'parked', got \"dead\""],
      [['list', '--store', file, '--older-than', 'soon'], 'keel dlq list: --older-than must be a number, got "soon"'],
      [['list', '--store', file, '--older-than', '-5'], 'keel dlq list: expected `--older-than` to be a number of ms >= 0, got -5'],
      [['list', '--store', file, '--older-than=1e400'], 'keel dlq list: expected `--older-than` to be a number of ms >= 0, got "1e400"'],
      [['list', '--store', file, '--older-than', '1e300'], 'keel dlq list: expected `--older-than` to be a number of ms >= 0, got 1e+300'],
      [['list', '--store', file, '--reason'], "keel dlq list: Option '--reason <value>' argument missing: give it as --reason <reason> or --reason=<reason>"],
      [['list', '--store', file, '--json=yes'], "keel dlq list: Option '--json' does not take an argument"],
      [['show', '1', '--store', file, '--status', 'parked'], "keel dlq show: Unknown option '--status'. keel dlq show takes --store, --json and --help"],
      [['purge', '--store', file, '--limit', '1'], "keel dlq purge: Unknown option '--limit'. keel dlq purge takes --store, --status, --reason, --recipient, --older-than, --all, --json and --help"],
    ];
    for (const [argv, message] of bad) expect(run(argv), argv.join(' ')).toEqual({ code: 2, out: message });
    expect(rows(file)).toHaveLength(3);
  });

  it('an empty --store (--store=$UNSET) is bad usage that says so, not "no store at " with no path', () => {
    for (const argv of [['list', '--store='], ['retry', '--all', '--store', ''], ['purge', '--all', '--store=']]) {
      expect(run(argv)).toEqual({ code: 2, out: `keel dlq ${argv[0]!}: --store is empty: give the path of the dead letter store file` });
    }
  });

  it('retry that marks nothing says so, not that a node will retry "them" (exit 0 for a filter, 1 for unknown ids as before)', async () => {
    const file = await knownStore();
    const before = rows(file);
    expect(run(['retry', '--reason', 'nomatch', '--store', file])).toEqual({ code: 0, out: 'marked no dead letter: none matches' });
    expect(run(['retry', '98', '99', '--store', file])).toEqual({ code: 1, out: 'marked no dead letter: none of the ids is in the store\nno dead letter 98, 99' });
    expect(run(['retry', '--reason', 'nomatch', '--json', '--store', file])).toEqual({ code: 0, out: '{\n  "marked": []\n}' });
    expect(rows(file)).toEqual(before);
  });

  it('takes --name=value as well as --name value', async () => {
    const file = await knownStore();
    const ids = (argv: string[]): string[] => (JSON.parse(run(argv).out) as { id: string }[]).map((r) => r.id);
    expect(ids(['list', `--store=${file}`, '--status=parked', '--limit=1', '--json'])).toEqual(['2']);
    expect(ids(['list', '--store', file, '--status', 'parked', '--limit', '1', '--json'])).toEqual(['2']);
    expect(ids(['list', `--store=${file}`, '--older-than=45000', '--json'])).toEqual(['1', '2']);
  });

  it('--help or -h prints the usage of dlq or of one of its commands (exit 0), and touches no file', () => {
    const file = tmpfile();
    expect(run(['--help'])).toEqual({ code: 0, out: DLQ_USAGE });
    expect(run(['-h'])).toEqual({ code: 0, out: DLQ_USAGE });
    for (const command of ['list', 'show', 'retry', 'purge']) {
      const help = run([command, '--store', file, '--help']);
      expect(help.code, command).toBe(0);
      expect(help.out).toBe(dlqUsage(command));
      expect(help.out.startsWith(`usage: keel dlq ${command} `)).toBe(true);
      expect(run([command, '-h']).out).toBe(help.out);
    }
    for (const command of ['list', 'show', 'retry', 'purge']) expect(DLQ_USAGE).toContain(`\n  ${command} `);
    // retry says who delivers what it marks, and when
    expect(dlqUsage('retry')).toContain('the next node that opens it retries them as soon as its dead letter queue starts');
    // list says what its attempts column counts
    expect(dlqUsage('list')).toContain("attempts: the dead letter queue's own redelivery attempts");
    expect(fs.existsSync(file)).toBe(false);
  });

  it('refuses a --limit that is not a positive integer (exit 2)', async () => {
    const file = await knownStore();
    for (const [limit, given] of [['0', '0'], ['-1', '-1'], ['1.5', '1.5'], ['2000000', '2000000'], ['1e999', '"1e999"']] as const) {
      expect(run(['list', '--store', file, '--limit', limit]), `--limit ${limit}`).toEqual({
        code: 2,
        out: `keel dlq list: expected \`--limit\` to be an integer from 1 to 1000000, got ${given}`,
      });
    }
    expect(run(['list', '--store', file, '--limit', 'many'])).toEqual({ code: 2, out: 'keel dlq list: --limit must be a number, got "many"' });
  });

  it('does not create a store file for a usage error', () => {
    const file = tmpfile();
    expect(run(['list', '--store', file, '--bogus']).code).toBe(2);
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe('keel dlq ids', () => {
  it('takes decimal integers only: 0x1, 1e0, " 1 ", +1, 0b1, 01, 1.0 and 0 are no id (exit 2, one line; -1 reads as an unknown option), and nothing is changed', async () => {
    const file = await knownStore();
    const before = fileState(file);
    for (const id of ['0x1', '1e0', ' 1 ', '+1', '0b1', '01', '1.0', '0', '9007199254740993']) {
      for (const argv of [['show', id], ['retry', id], ['retry', '3', id]]) {
        expect(run([...argv, '--store', file]), argv.join(' ')).toEqual({
          code: 2,
          out: `keel dlq ${argv[0]}: ${JSON.stringify(id)} is not a dead letter id: ids are decimal integers, as list prints them`,
        });
      }
    }
    // a negative number reads as an option: bad usage too
    expect(run(['show', '-1', '--store', file])).toEqual({ code: 2, out: "keel dlq show: Unknown option '-1'. keel dlq show takes --store, --json and --help" });
    expect(fileState(file)).toEqual(before);
    expect(run(['show', '1', '--store', file, '--json']).code).toBe(0);
  });

  it('list and purge take no ids, and show takes one (exit 2): an id there was silently ignored', async () => {
    const file = await knownStore();
    const cases: [string[], string][] = [
      [['list', '1'], "keel dlq list: Unexpected argument '1': keel dlq list takes no arguments, only options"],
      [['purge', '3', '--all'], "keel dlq purge: Unexpected argument '3': keel dlq purge takes no arguments, only options"],
      [['show', '1', '2'], 'keel dlq show: show takes one id, got 1 2'],
    ];
    for (const [argv, message] of cases) expect(run([...argv, '--store', file]), argv.join(' ')).toEqual({ code: 2, out: message });
    expect(rows(file)).toHaveLength(3);
  });
});

describe('keel dlq retry, ids or a filter', () => {
  it('refuses ids with a filter (exit 2, nothing marked): the filter was silently ignored and entries it excludes were marked', async () => {
    const file = await knownStore();
    const before = rows(file);
    const cases: [string[], string][] = [
      [['retry', '1', '--reason', 'noproc'], 'keel dlq retry: give ids or a filter, not both: got ids 1 and --reason'],
      [['retry', '1', '3', '--status', 'pending', '--older-than', '0'], 'keel dlq retry: give ids or a filter, not both: got ids 1 3 and --status, --older-than'],
    ];
    for (const [argv, message] of cases) expect(run([...argv, '--store', file], T + 1), argv.join(' ')).toEqual({ code: 2, out: message });
    expect(rows(file)).toEqual(before);
  });
});

describe('keel dlq on a file that is not a Keel store', () => {
  /** A SQLite file of another application, with a dead_letters table of its own (rollback journal, as SQLite creates it). */
  function foreignFile(columns = 'id INTEGER PRIMARY KEY, body TEXT, created TEXT'): string {
    const file = tmpfile();
    const db = new Database(file);
    try {
      db.exec(`CREATE TABLE dead_letters (${columns})`);
    } finally {
      db.close();
    }
    return file;
  }

  it('exits 2 for every command, and leaves its bytes, its journal mode and its directory as they were', () => {
    const file = foreignFile();
    const before = fileState(file);
    expect(before.journalMode).toBe('delete');
    for (const argv of [['list'], ['list', '--json'], ['show', '1'], ['retry', '1'], ['retry', '--all'], ['purge', '--all']]) {
      expect(run([...argv, '--store', file], T, SHORT_BUSY), argv.join(' ')).toEqual({
        code: 2,
        out: `keel dlq: cannot open ${file}: ${path.resolve(file)} is not a Keel dead letter store (its dead_letters table has other columns: id, body, created)`,
      });
      expect(fileState(file), argv.join(' ')).toEqual(before);
    }
  });

  it('a file with the dead_letters table of a store but no dead_letter_owner table is not a store either (exit 2)', () => {
    const file = foreignFile(
      'seq INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL, payload BLOB NOT NULL, reason TEXT NOT NULL, attempts INTEGER NOT NULL, first_failed_at INTEGER NOT NULL, last_attempt_at INTEGER NOT NULL, next_retry_at INTEGER NOT NULL, last_error BLOB, status TEXT NOT NULL',
    );
    expect(run(['list', '--store', file])).toEqual({
      code: 2,
      out: `keel dlq: cannot open ${file}: ${path.resolve(file)} is not a Keel dead letter store (it has no dead_letter_owner table)`,
    });
  });
});

describe('keel dlq list and show never write', () => {
  it('leave a store in rollback-journal mode as it is: the same bytes, no WAL switch, no -wal or -shm file', async () => {
    const file = await knownStore();
    const db = new Database(file);
    db.pragma('journal_mode = DELETE');
    db.close();
    const before = fileState(file);
    expect(before.journalMode).toBe('delete');
    for (const argv of [['list'], ['list', '--json', '--status', 'parked'], ['show', '2'], ['show', '3', '--json'], ['show', '99']]) {
      expect(run([...argv, '--store', file]).code, argv.join(' ')).toBe(argv[1] === '99' ? 1 : 0);
      expect(fileState(file), argv.join(' ')).toEqual(before);
    }
  });
});

describe('keel dlq list, limited', () => {
  it('says when there are more entries than it shows', async () => {
    const file = await knownStore(); // three entries
    const { code, out } = run(['list', '--store', file, '--limit', '2']);
    expect(code).toBe(0);
    expect(out.split('\n')).toHaveLength(4); // header, two rows, the hint
    expect(out.endsWith('(more entries than 2: use --limit to see more)')).toBe(true);
    expect(run(['list', '--store', file, '--limit', '3']).out).not.toContain('more entries');
  });
});

describe('keel dlq on a store that cannot be written', () => {
  it('retry: while another connection holds the write lock it fails (exit 1, the reason printed) and the entry is unchanged; once released, the same command marks it', async () => {
    const file = await knownStore();
    const before = rows(file);
    const lock = writeLock(file);
    let failed: { code: number; out: string };
    try {
      failed = run(['retry', '2', '--store', file], T + 7, SHORT_BUSY);
    } finally {
      lock.release();
    }
    expect(failed).toEqual({
      code: 1,
      out: `keel dlq retry: could not write ${path.resolve(file)}: database is locked (SQLITE_BUSY); no dead letter was changed; another connection holds a write lock on the file: run the command again once it is released`,
    });
    expect(rows(file)).toEqual(before);
    // --json too: no "marked" report for a change that was not made
    const lockAgain = writeLock(file);
    try {
      const { code, out } = run(['retry', '--all', '--json', '--store', file], T + 7, SHORT_BUSY);
      expect(code).toBe(1);
      expect(out).not.toContain('marked');
    } finally {
      lockAgain.release();
    }
    expect(rows(file)).toEqual(before);

    expect(run(['retry', '2', '--store', file], T + 7, SHORT_BUSY)).toEqual({ code: 0, out: 'marked 1 dead letter(s) due now; no node has this store open: the next node that opens it as its dead letter store retries them as soon as it starts' });
    expect(rows(file)[1]).toEqual({ seq: 2, status: 'pending', next_retry_at: T + 7, recipient: '<keel-1.7.3>' });
  });

  it('purge: while another connection holds the write lock it fails (exit 1, the reason printed) and nothing is deleted; once released, the same command deletes', async () => {
    const file = await knownStore();
    const lock = writeLock(file);
    let failed: { code: number; out: string };
    try {
      failed = run(['purge', '--all', '--store', file], T, SHORT_BUSY);
    } finally {
      lock.release();
    }
    expect(failed).toEqual({
      code: 1,
      out: `keel dlq purge: could not write ${path.resolve(file)}: database is locked (SQLITE_BUSY); no dead letter was changed; another connection holds a write lock on the file: run the command again once it is released`,
    });
    expect(rows(file).map((r) => r.seq)).toEqual([1, 2, 3]);

    expect(run(['purge', '--all', '--store', file], T, SHORT_BUSY)).toEqual({ code: 0, out: 'purged 3 dead letter(s)' });
    expect(rows(file)).toEqual([]);
  });

  it('a store that needs a write to be opened (a file left in rollback-journal mode) fails while locked (exit 1, not a usage error); once released, the command runs', async () => {
    const file = await knownStore();
    const db = new Database(file);
    db.pragma('journal_mode = DELETE');
    db.close();
    const before = rows(file);
    const lock = writeLock(file);
    let failed: { code: number; out: string };
    try {
      failed = run(['retry', '1', '--store', file], T + 7, SHORT_BUSY);
    } finally {
      lock.release();
    }
    expect(failed).toEqual({
      code: 1,
      out: `keel dlq retry: could not open ${path.resolve(file)}: database is locked (SQLITE_BUSY); no dead letter was changed; another connection holds a write lock on the file: run the command again once it is released`,
    });
    expect(rows(file)).toEqual(before);
    expect(run(['retry', '1', '--store', file], T + 7, SHORT_BUSY).code).toBe(0);
    expect(rows(file)[0]).toMatchObject({ seq: 1, status: 'pending', next_retry_at: T + 7 });
  });

  it('a file that is not a store is bad usage (exit 2), and is left as it was', () => {
    const text = tmpfile();
    fs.writeFileSync(text, 'not a database, not even close');
    const notDb = run(['purge', '--all', '--store', text], T, SHORT_BUSY);
    expect(notDb.code).toBe(2);
    expect(notDb.out).toBe(`keel dlq: cannot open ${text}: file is not a database`);
    expect(fs.readFileSync(text, 'utf8')).toBe('not a database, not even close');
    const empty = tmpfile();
    fs.writeFileSync(empty, '');
    expect(run(['purge', '--all', '--store', empty], T, SHORT_BUSY)).toEqual({
      code: 2,
      out: `keel dlq: cannot open ${empty}: ${path.resolve(empty)} is not a Keel dead letter store (it has no dead_letters table)`,
    });
    expect(fs.statSync(empty).size).toBe(0);
  });

  it('a store that SQLite cannot open (here a directory) is a failure (exit 1), not bad usage: one line that says what to do', () => {
    const dir = path.dirname(tmpfile());
    fs.mkdirSync(dir, { recursive: true });
    for (const command of ['list', 'retry']) {
      const r = run([command, '--all', '--store', dir].filter((a) => command === 'retry' || a !== '--all'), T, SHORT_BUSY);
      // a directory opens read-only and fails at its first read (the check that it is a store)
      expect(r, command).toEqual({
        code: 1,
        out: `keel dlq ${command}: could not open ${dir}: disk I/O error (SQLITE_IOERR_READ)${command === 'retry' ? '; no dead letter was changed' : ''}; ${dir} is a directory: give the path of a store file (a new file is created)`,
      });
    }
  });

  it('a damaged store (SQLITE_CORRUPT, here truncated) is a failure (exit 1) that says the file is damaged, not to check the permissions of its directory', async () => {
    const file = await knownStore();
    fs.truncateSync(file, 8192);
    const dir = path.dirname(file);
    for (const command of ['list', 'retry']) {
      const r = run([command, '--all', '--store', file].filter((a) => command === 'retry' || a !== '--all'), T, SHORT_BUSY);
      expect(r, command).toEqual({
        code: 1,
        out: `keel dlq ${command}: could not open ${file}: database disk image is malformed (SQLITE_CORRUPT)${command === 'retry' ? '; no dead letter was changed' : ''}; the file is damaged: restore it from a backup, or salvage its rows with the sqlite3 shell's .recover`,
      });
      expect(r.out).not.toContain(dir + ' exists');
    }
    expect(fs.statSync(file).size).toBe(8192);
  });

  it('list and show still read the store while another connection holds the write lock (WAL)', async () => {
    const file = await knownStore();
    const lock = writeLock(file);
    try {
      expect(run(['list', '--store', file, '--status', 'pending', '--json'], T, SHORT_BUSY).code).toBe(0);
      expect(run(['show', '3', '--store', file], T, SHORT_BUSY).code).toBe(0);
    } finally {
      lock.release();
    }
  });
});

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Runs the `keel` entry point, compiled (src/cli/keel.ts as `<build>/dist/cli/keel.js`, from the
 * private build of `useBuiltPackage`: the shared dist/ may be rebuilt by others at any moment), in a
 * child process, and waits for it to exit. A child that loaded the TypeScript through jiti compiled
 * every module again on each start, several seconds on a loaded machine; the compiled one starts in
 * a fraction of that.
 */
function keel(entry: string, argv: string[], timeoutMs = 0, user: { uid?: number; gid?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // timeoutMs (0: none) is a failure guard for a child that would never exit: it is killed, code null
    execFile(process.execPath, [entry, ...argv], { cwd: ROOT, timeout: timeoutMs, killSignal: 'SIGKILL', ...user }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr });
    });
  });
}

describe('keel dlq through the keel entry point', () => {
  // compiled once for the two tests below (a beforeAll of this describe only)
  const builtKeel = useBuiltPackage();
  const entry = (): string => fileURLToPath(new URL('cli/keel.js', builtKeel()));

  it('dispatches `keel dlq …` to the dlq command: list --json prints the records (exit 0); bad usage says what is wrong on stderr (exit 2)', async () => {
    const file = await knownStore();
    const [listed, usage] = await Promise.all([keel(entry(), ['dlq', 'list', '--store', file, '--json']), keel(entry(), ['dlq', 'list'])]);
    expect(listed.stderr).toBe('');
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual(JSON.parse(run(['list', '--store', file, '--json']).out));
    expect((JSON.parse(listed.stdout) as { id: string }[]).map((r) => r.id)).toEqual(['1', '2', '3']);
    expect(usage).toEqual({ code: 2, stdout: '', stderr: `${run(['list']).out}\n` });
    expect(usage.stderr).toContain('--store <file> is missing');
  }, 30_000);

  it('list on a file shared with the agent store (one keel.db for both, made in either order) prints its entries (exit 0); retry writes it, and both stores open it again', async () => {
    for (const agentsFirst of [true, false]) {
      const file = tmpfile();
      const agents = (): string[] => {
        const store = new SqliteAgentStore(file);
        try {
          return store.loadAll('coordinator').records.map((r) => r.key);
        } finally {
          store.close();
        }
      };
      const putAgent = (): void => {
        const store = new SqliteAgentStore(file);
        try {
          store.put('coordinator', 'workflow', 'wf-1', { step: 1 });
        } finally {
          store.close();
        }
      };
      if (agentsFirst) putAgent();
      const store = new SqliteStore(file, undefined);
      try {
        await Promise.all(RECORDS.map((r) => store.add(r)));
      } finally {
        store.close();
      }
      if (!agentsFirst) putAgent();
      const listed = await keel(entry(), ['dlq', 'list', '--store', file, '--json']);
      expect(listed.stderr, `agents first: ${agentsFirst}`).toBe('');
      expect(listed.code).toBe(0);
      expect((JSON.parse(listed.stdout) as { id: string }[]).map((r) => r.id)).toEqual(['1', '2', '3']);
      expect(run(['retry', '--all', '--store', file, '--json']).code).toBe(0);
      expect(agents()).toEqual(['wf-1']);
      const node = new SqliteStore(file, 'node-a');
      try {
        expect(node.list({}, 0, 10, undefined).entries.map((e) => e.recipient)).toEqual(RECORDS.map((r) => r.recipient));
      } finally {
        node.close();
      }
      expect(agents()).toEqual(['wf-1']);
    }
  }, 30_000);

  it.skipIf(process.platform === 'win32')('a path that is no regular file (a named pipe, as <(…) gives) is bad usage (exit 2) at once: SQLite would wait on it forever', async () => {
    const fifo = tmpfile();
    execFileSync('mkfifo', [fifo]);
    const [list, retry] = await Promise.all([keel(entry(), ['dlq', 'list', '--store', fifo], 20_000), keel(entry(), ['dlq', 'retry', '--all', '--store', fifo], 20_000)]);
    const stderr = `keel dlq: ${fifo} is not a regular file (a pipe, a socket or a device): give the path of a dead letter store file\n`;
    expect(list).toEqual({ code: 2, stdout: '', stderr });
    expect(retry).toEqual({ code: 2, stdout: '', stderr });
    expect(fs.statSync(fifo).isFIFO()).toBe(true);
  }, 30_000);

  // A store in WAL mode in a directory the command may not create files in (chmod 0555): SQLite
  // reads such a file through a -shm it must create beside it. Root ignores the mode, so as root the
  // commands run as nobody (uid 65534), for whom the directory is read-only as for any other user;
  // a child as that user first fails to create a file there, which shows the directory is read-only
  // for the commands. The store file is the test's (root's when root): nobody may not write it either.
  it.skipIf(process.platform === 'win32')('in a read-only directory, list and show read a store in WAL mode and create nothing beside it; retry and purge are one line on stderr and exit 1, the store unchanged', async () => {
    const file = await knownStore();
    const dir = path.dirname(file);
    // the file's bytes only: a read-only connection here would leave its -wal and -shm behind, which would let the commands read in place
    const before = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    expect(fs.readdirSync(dir)).toEqual(['dlq.db']);
    const user = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    // the private build is made 0700 (mkdtemp): the other user must reach it
    if (user.uid !== undefined) fs.chmodSync(path.resolve(path.dirname(entry()), '../..'), 0o755);
    fs.chmodSync(dir, 0o555);
    try {
      const probe = await new Promise<boolean>((resolve) => {
        execFile(process.execPath, ['-e', 'require("fs").writeFileSync(process.argv[1], "")', path.join(dir, 'probe')], user, (error) => resolve(error === null));
      });
      expect(probe, 'the directory is read-only for the commands').toBe(false);
      const [list, show, retry, purge] = await Promise.all([
        keel(entry(), ['dlq', 'list', '--store', file, '--json'], 20_000, user),
        keel(entry(), ['dlq', 'show', '1', '--store', file], 20_000, user),
        keel(entry(), ['dlq', 'retry', '--all', '--store', file], 20_000, user),
        keel(entry(), ['dlq', 'purge', '--all', '--store', file], 20_000, user),
      ]);
      expect(list.stderr).toBe('');
      expect(list.code).toBe(0);
      expect((JSON.parse(list.stdout) as { id: string }[]).map((r) => r.id)).toEqual(['1', '2', '3']);
      expect(show.stderr).toBe('');
      expect(show.code).toBe(0);
      expect(show.stdout).toContain('"charge": 500');
      for (const [command, r] of [['retry', retry], ['purge', purge]] as const) {
        expect(r.code, command).toBe(1);
        expect(r.stdout, command).toBe('');
        const lines = r.stderr.split('\n');
        expect(lines, command).toHaveLength(2); // one line, then the newline
        expect(lines[1]).toBe('');
        expect(lines[0], command).toMatch(new RegExp(`^keel dlq ${command}: could not (open|write) `));
        expect(lines[0], command).toContain(`${file}: attempt to write a readonly database (SQLITE_READONLY`);
        expect(lines[0], command).toContain('; no dead letter was changed');
      }
      expect(fs.readdirSync(dir)).toEqual(['dlq.db']); // no -wal, no -shm
    } finally {
      fs.chmodSync(dir, 0o755);
    }
    expect(createHash('sha256').update(fs.readFileSync(file)).digest('hex')).toBe(before);
  }, 30_000);

  it('a store SQLite cannot open is one line on stderr and exit 1, never a stack trace', async () => {
    const dir = path.dirname(tmpfile());
    const r = await keel(entry(), ['dlq', 'show', '1', '--store', dir]);
    expect(r).toEqual({
      code: 1,
      stdout: '',
      stderr: `keel dlq show: could not open ${dir}: disk I/O error (SQLITE_IOERR_READ); ${dir} is a directory: give the path of a store file (a new file is created)\n`,
    });
  }, 30_000);
});
