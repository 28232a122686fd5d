import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { StoreUnavailableError } from '../errors.js';
import { checkFilter, type Record_ } from '../delivery/stores/DeadLetterStore.js';
import { SqliteStore, type SqliteStoreOptions } from '../delivery/stores/SqliteStore.js';
import type { DeadLetterFilter } from '../runtime/serviceSlots.js';

export const DLQ_USAGE = `usage: keel dlq <list|show|retry|purge> --store <file.db> [options]

  list   [--status pending|parked] [--reason R] [--recipient R] [--older-than MS] [--limit N] [--json]
  show   <id> [--json]
  retry  <id>... | [filters] | --all   mark entries due now; the node that owns the store delivers them at its next wake
  purge  [filters]             delete matching entries (at least one filter, or --all)`;

type Command = 'list' | 'show' | 'retry' | 'purge';
const COMMANDS: readonly string[] = ['list', 'show', 'retry', 'purge'] satisfies Command[];

interface Parsed {
  command: Command;
  store: string;
  json: boolean;
  all: boolean;
  ids: string[];
  filter: DeadLetterFilter & { limit?: number };
}

/** Bad usage (exit 2): its message, then the usage; or its message alone, one line, when it says all. */
class UsageError extends Error {
  constructor(message: string, readonly alone = false) {
    super(message);
  }
}

/** An id as list prints it: a decimal integer, no sign, no leading zero, no spaces (`Number()` takes much more). */
const ID = /^[1-9][0-9]*$/;
const MS = /^[0-9]+(?:\.[0-9]+)?$/;

function parse(argv: string[]): Parsed {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      store: { type: 'string' },
      json: { type: 'boolean', default: false },
      all: { type: 'boolean', default: false },
      status: { type: 'string' },
      reason: { type: 'string' },
      recipient: { type: 'string' },
      'older-than': { type: 'string' },
      limit: { type: 'string' },
    },
  });
  const [command, ...ids] = positionals;
  if (command === undefined || !COMMANDS.includes(command) || values.store === undefined) throw new UsageError('');
  if ((command === 'list' || command === 'purge') && ids.length > 0) throw new UsageError(`${command} takes no ids, got ${ids.join(' ')}`);
  if (command === 'show' && ids.length > 1) throw new UsageError(`show takes one id, got ${ids.join(' ')}`);
  const bad = ids.find((id) => !ID.test(id) || !Number.isSafeInteger(Number(id)));
  if (bad !== undefined) throw new UsageError(`keel dlq ${command}: ${JSON.stringify(bad)} is not a dead letter id: ids are decimal integers, as list prints them`, true);
  const { 'older-than': olderThan, limit } = values;
  if (olderThan !== undefined && !MS.test(olderThan)) throw new UsageError(`--older-than must be a number of ms >= 0, got ${JSON.stringify(olderThan)}`);
  if (limit !== undefined && (!ID.test(limit) || !Number.isSafeInteger(Number(limit)))) throw new UsageError(`--limit must be a positive integer, got ${JSON.stringify(limit)}`);
  const filter = checkFilter({
    ...(values.status === undefined ? {} : { status: values.status }),
    ...(values.reason === undefined ? {} : { reason: values.reason }),
    ...(values.recipient === undefined ? {} : { recipient: values.recipient }),
    ...(olderThan === undefined ? {} : { olderThanMs: Number(olderThan) }),
  });
  return {
    command: command as Command,
    store: values.store,
    json: values.json,
    all: values.all,
    ids,
    filter: { ...filter, ...(limit === undefined ? {} : { limit: Number(limit) }) },
  };
}

/** A usage error's text: its own one line, or what was wrong (the first line of it) and the usage. */
function usage(error: unknown): string | undefined {
  if (error instanceof UsageError) return error.alone ? error.message : error.message === '' ? DLQ_USAGE : `keel dlq: ${error.message}\n\n${DLQ_USAGE}`;
  // node:util parseArgs (an unknown option, a missing value) and checkFilter (a bad --status)
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (code.startsWith('ERR_PARSE_ARGS_') || code === 'ERR_INVALID_ARGUMENT')) {
    return `keel dlq: ${(error as Error).message.split('\n')[0]!}\n\n${DLQ_USAGE}`;
  }
  return undefined;
}

function table(records: Record_[]): string {
  const rows = records.map((r) => [
    r.id, r.status, r.recipient, r.reason, String(r.attempts), new Date(r.nextRetryAt).toISOString(),
    r.undecodable === undefined ? preview(r.message) : `(undecodable: ${r.undecodable.bytes} bytes)`,
  ]);
  const head = ['id', 'status', 'recipient', 'reason', 'attempts', 'next retry', 'message'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

function preview(message: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(message, replacer) ?? String(message);
  } catch {
    text = String(message);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function replacer(_key: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `${v}n` : v instanceof Map ? Object.fromEntries(v) : v instanceof Set ? [...v] : v;
}

function json(value: unknown): string {
  return JSON.stringify(value, replacer, 2);
}

/** A record as --json prints it: an undecodable one without the message and metadata it does not have. */
function view(r: Record_): object {
  if (r.undecodable === undefined) return r;
  const { message: _message, metadata: _metadata, ...rest } = r;
  return rest;
}

/** One record, field by field. */
function fields(r: Record_): string {
  const shown = (k: string, v: unknown): string => {
    if (r.undecodable !== undefined && k === 'message') return `(undecodable: ${r.undecodable.bytes} bytes) ${r.undecodable.error}`;
    if (r.undecodable !== undefined && k === 'metadata') return '(undecodable: stored with the message)';
    if (k === 'message' || k === 'metadata' || k === 'lastError') return json(v);
    return k.endsWith('At') && typeof v === 'number' ? new Date(v).toISOString() : String(v);
  };
  return Object.entries(r)
    .filter(([k]) => k !== 'undecodable')
    .map(([k, v]) => `${k.padEnd(14)} ${shown(k, v)}`)
    .join('\n');
}

/** An error of the database itself (better-sqlite3's SqliteError: SQLITE_BUSY, SQLITE_FULL, ...), not a bug of ours. */
function sqliteCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

function locked(code: string | undefined): boolean {
  return code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED';
}

/**
 * What the CLI says when the store could not be opened, written or read: why, that nothing was
 * changed, and what to do (`hint`: the store's own, for a file it could not open).
 */
function failure(command: string, file: string, error: unknown, opening: boolean, hint?: string): string {
  const code = sqliteCode(error);
  const why = `${error instanceof Error ? error.message : String(error)}${code === undefined ? '' : ` (${code})`}`;
  const writes = command === 'retry' || command === 'purge';
  const verb = opening ? 'open' : writes ? 'write' : 'read';
  const todo = locked(code) ? 'another connection holds a write lock on the file: run the command again once it is released' : hint;
  return `keel dlq ${command}: could not ${verb} ${file}: ${why}${writes ? '; no dead letter was changed' : ''}${todo === undefined ? '' : `; ${todo}`}`;
}

/**
 * `keel dlq …`: works on a SQLite dead letter store directly (there is no live node). Exit codes:
 * 0 done; 1 not done (an unknown id, or a store that could not be opened, read or written: nothing
 * was changed); 2 bad usage, no store at the path, or a file that is not a store. A command reports
 * success only once its change is in the file: its output is printed after the store has closed
 * without a failure. `internal` is for the tests (a short busy timeout).
 */
export function runDlq(argv: string[], print: (line: string) => void, now: () => number = () => Date.now(), internal: SqliteStoreOptions = {}): number {
  let args: Parsed;
  try {
    args = parse(argv);
  } catch (e) {
    const text = usage(e);
    if (text === undefined) throw e;
    print(text);
    return 2;
  }
  if (!existsSync(args.store)) {
    print(`keel dlq: no store at ${args.store}`);
    return 2;
  }
  // the first write the store could not make (updates are written behind: at the latest in close())
  let failed: { error: unknown } | undefined;
  let store: SqliteStore;
  try {
    // list and show read on a read-only connection: they never write, not even to set the file up
    const access = args.command === 'list' || args.command === 'show' ? 'read' : 'write';
    store = new SqliteStore(args.store, undefined, (_message, error) => (failed ??= { error }), access, internal);
  } catch (e) {
    // a file that is not a store (or not a database) is bad usage; a store that could not be opened
    // (a directory, locked while it needs a write to be set up, read-only, an I/O error) is a failure
    if (e instanceof StoreUnavailableError && e.sqliteCode !== 'SQLITE_NOTADB') {
      print(failure(args.command, e.file, e.cause, true, e.hint));
      return 1;
    }
    print(`keel dlq: cannot open ${args.store}: ${e instanceof StoreUnavailableError ? e.why : (e as Error).message}`);
    return 2;
  }
  const lines: string[] = [];
  let code: number;
  try {
    code = command(args, store, now(), (line) => lines.push(line));
  } catch (e) {
    if (sqliteCode(e) === undefined) throw e;
    failed ??= { error: e };
    code = 1;
  } finally {
    // makes the writes still queued; one that fails is reported to the handler above
    store.close();
  }
  if (failed !== undefined) {
    print(failure(args.command, store.file, failed.error, false));
    return 1;
  }
  for (const line of lines) print(line);
  return code;
}

/** Runs one command on the open store; `print` collects its output, shown only if every write succeeds. */
function command(args: Parsed, store: SqliteStore, t: number, print: (line: string) => void): number {
  switch (args.command) {
    case 'list': {
      const { limit = 100, ...filter } = args.filter;
      const { entries, cursor } = store.list(filter, t, limit, undefined);
      const more = cursor === undefined ? '' : `\n(more entries than ${limit}: use --limit to see more)`;
      print(args.json ? json(entries.map(view)) : entries.length === 0 ? '(no dead letters)' : table(entries) + more);
      return 0;
    }
    case 'show': {
      const r = args.ids[0] === undefined ? undefined : store.get(args.ids[0]);
      if (r === undefined) {
        print(`keel dlq: no dead letter ${args.ids[0] ?? '(give an id)'}`);
        return 1;
      }
      print(args.json ? json(view(r)) : fields(r));
      return 0;
    }
    case 'retry': {
      const { limit: _limit, ...filter } = args.filter;
      if (args.ids.length === 0 && Object.keys(filter).length === 0 && !args.all) {
        print('keel dlq retry: give ids, a filter, or --all to mark every entry');
        return 2;
      }
      const found = args.ids.map((id) => [id, store.get(id)] as const);
      const missing = found.filter(([, r]) => r === undefined).map(([id]) => id);
      const targets = args.ids.length > 0 ? found.flatMap(([, r]) => (r === undefined ? [] : [r])) : store.list(filter, t, 1_000_000, undefined).entries;
      for (const r of targets) store.update(r.id, { status: 'pending', nextRetryAt: t });
      print(
        args.json
          ? json({ marked: targets.map((r) => r.id), ...(missing.length > 0 ? { notFound: missing } : {}) })
          : `marked ${targets.length} dead letter(s) due now; the owning node delivers them at its next wake${missing.length > 0 ? `\nno dead letter ${missing.join(', ')}` : ''}`,
      );
      return missing.length > 0 ? 1 : 0;
    }
    case 'purge': {
      const { limit: _limit, ...filter } = args.filter;
      if (Object.keys(filter).length === 0 && !args.all) {
        print('keel dlq purge: give a filter, or --all to delete every entry');
        return 2;
      }
      const n = store.purge(filter, t);
      print(args.json ? json({ purged: n }) : `purged ${n} dead letter(s)`);
      return 0;
    }
  }
  return 2;
}
