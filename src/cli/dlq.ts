import { type Stats, statSync } from 'node:fs';
import { StoreUnavailableError, StoreVersionError } from '../errors.js';
import { type Record_ } from '../delivery/stores/DeadLetterStore.js';
import { SqliteStore, type SqliteStoreOptions } from '../delivery/stores/SqliteStore.js';
import type { DeadLetterFilter } from '../runtime/serviceSlots.js';
import { type CommandSpec, type Io, ioOf, meantCommand, type Output, runCommand, UsageError, usageOf, type Values } from './args.js';
import { clean, cleanJson } from './topView.js';

type Command = 'list' | 'show' | 'retry' | 'purge';

const store = {
  type: 'string',
  value: '<file>',
  required: true,
  description: "the SQLite dead letter store (a node's services.deadLetters.store path)",
} as const;
const jsonOption = { type: 'boolean', description: 'print JSON' } as const;
const filters = {
  status: { type: 'string', value: '<status>', choices: ['pending', 'parked'], description: 'entries with this status' },
  reason: { type: 'string', value: '<reason>', description: 'entries dead-lettered for this reason (noproc, timeout, ...)' },
  recipient: { type: 'string', value: '<name|pid>', description: 'entries for this recipient, as list prints it' },
  'older-than': {
    type: 'number',
    value: '<ms>',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    expected: 'a number of ms >= 0',
    description: 'entries whose first failure is at least this many ms old',
  },
} as const;
const all = { type: 'boolean', description: 'every entry (when no id and no filter is given)' } as const;

const SUBCOMMANDS = {
  list: {
    name: 'dlq list',
    summary: 'the entries, oldest first, as a table',
    synopsis: '--store <file> [filters] [--limit n] [--json]',
    options: { store, ...filters, limit: { type: 'number', value: '<n>', integer: true, min: 1, max: 1_000_000, description: 'at most this many entries', default: 100 }, json: jsonOption },
    footer: [
      "attempts: the dead letter queue's own redelivery attempts of the entry (0 when it was added); a",
      "supervised send's attempts before it gave the message up are its metadata.attempts (keel dlq show).",
    ].join('\n'),
  },
  show: {
    name: 'dlq show',
    summary: 'one entry, field by field',
    synopsis: '<id> --store <file> [--json]',
    options: { store, json: jsonOption },
    positionals: Infinity,
  },
  retry: {
    name: 'dlq retry',
    summary: 'mark entries due now (parked ones too), for the node that opens the store to deliver',
    synopsis: '<id>... | [filters] | --all  --store <file> [--json]',
    options: { store, ...filters, all, json: jsonOption },
    positionals: Infinity,
    footer: [
      'Marking changes the file only: a node delivers the entries. One that has the store open (its',
      'services.deadLetters.store) reads the file again at least every 5 s and retries them then; when',
      'none has it open, the next node that opens it retries them as soon as its dead letter queue starts.',
      'A retry that fails (the recipient not there yet) counts as an attempt: the entry waits its backoff,',
      'and is parked after maxRetries. The command says which of the two applies.',
    ].join('\n'),
  },
  purge: {
    name: 'dlq purge',
    summary: 'delete the entries a filter selects (or --all)',
    synopsis: '[filters] | --all  --store <file> [--json]',
    options: { store, ...filters, all, json: jsonOption },
  },
} as const satisfies Record<Command, CommandSpec>;

const NAMES = Object.keys(SUBCOMMANDS) as Command[];

/** `keel dlq --help`: the subcommands, one line each. */
export const DLQ_USAGE = [
  'usage: keel dlq <command> --store <file> [options]',
  '',
  '  inspects and manages a SQLite dead letter store directly, without a node',
  '',
  'commands:',
  ...NAMES.map((n) => `  ${n.padEnd(6)} ${SUBCOMMANDS[n].summary}`),
  '',
  '  keel dlq <command> --help prints the options of a command. More: docs/delivery.md.',
  '',
  'exit code: 0 done; 1 not all done (an unknown id: the ids found are done, the others named; a store',
  'that could not be opened, read or written: nothing was changed); 2 bad usage, no file at --store,',
  'a file that is not a dead letter store, or the store of a newer Keel (a newer schema version).',
].join('\n');

/** The usage of `keel dlq <command>` (or of `keel dlq` with none), for `keel help dlq [command]`. */
export function dlqUsage(command?: string): string | undefined {
  if (command === undefined) return DLQ_USAGE;
  return (NAMES as string[]).includes(command) ? usageOf(SUBCOMMANDS[command as Command]) : undefined;
}

interface Parsed {
  command: Command;
  store: string;
  json: boolean;
  all: boolean;
  ids: string[];
  filter: DeadLetterFilter & { limit?: number };
}

/** An id as list prints it: a decimal integer, no sign, no leading zero, no spaces (`Number()` takes much more). */
const ID = /^[1-9][0-9]*$/;

type AnyValues = Values<(typeof SUBCOMMANDS)['list']['options'] & (typeof SUBCOMMANDS)['retry']['options']>;

function toParsed(command: Command, values: AnyValues, ids: string[]): Parsed {
  // --store= (an unset variable: --store=$DLQ) said "no store at " and named no path
  if (values.store === '') throw new UsageError('--store is empty: give the path of the dead letter store file');
  if (command === 'show' && ids.length > 1) throw new UsageError(`show takes one id, got ${ids.join(' ')}`);
  if (command === 'show' && ids.length === 0) throw new UsageError('give the id of the dead letter to show (keel dlq list prints the ids)');
  const bad = ids.find((id) => !ID.test(id) || !Number.isSafeInteger(Number(id)));
  if (bad !== undefined) throw new UsageError(`${JSON.stringify(bad)} is not a dead letter id: ids are decimal integers, as list prints them`);
  const filter: DeadLetterFilter = {
    ...(values.status === undefined ? {} : { status: values.status as 'pending' | 'parked' }),
    ...(values.reason === undefined ? {} : { reason: values.reason }),
    ...(values.recipient === undefined ? {} : { recipient: values.recipient }),
    ...(values['older-than'] === undefined ? {} : { olderThanMs: values['older-than'] }),
  };
  // the ids select alone: a filter beside them would be ignored, marking entries it excludes
  const filterFlags = (['status', 'reason', 'recipient', 'older-than'] as const).filter((k) => values[k] !== undefined);
  if (command === 'retry' && ids.length > 0 && filterFlags.length > 0) throw new UsageError(`give ids or a filter, not both: got ids ${ids.join(' ')} and --${filterFlags.join(', --')}`);
  const selects = ids.length > 0 || Object.keys(filter).length > 0 || values.all === true;
  if (command === 'retry' && !selects) throw new UsageError('give ids, a filter, or --all to mark every entry');
  if (command === 'purge' && !selects) throw new UsageError('give a filter, or --all to delete every entry');
  return {
    command,
    store: values.store!,
    json: values.json === true,
    all: values.all === true,
    ids,
    filter: { ...filter, ...(values.limit === undefined ? {} : { limit: values.limit }) },
  };
}

function table(records: Record_[]): string {
  // what a record holds is anyone's text (a recipient, a reason): shown with its control characters escaped
  const rows = records.map((r) => [
    r.id, r.status, r.recipient, r.reason, String(r.attempts), when(r.nextRetryAt),
    r.undecodable === undefined ? preview(r.message) : `(undecodable: ${r.undecodable.bytes} bytes)`,
  ].map((cell) => clean(String(cell))));
  const head = ['id', 'status', 'recipient', 'reason', 'attempts', 'next retry', 'message'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}

/** A time of a record as ISO text; one a Date cannot hold (1e17, a text another connection wrote) as it is. */
function when(ms: unknown): string {
  const d = typeof ms === 'number' ? new Date(ms) : undefined;
  return d === undefined || Number.isNaN(d.getTime()) ? clean(String(ms)) : d.toISOString();
}

function preview(message: unknown): string {
  let text: string;
  try {
    text = json(message, 0);
  } catch {
    text = String(message);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** How many objects deep a value is printed (the outermost is 1); a deeper one is "[Nested too deeply]". */
const MAX_DEPTH = 100;

/**
 * A stored value as JSON takes it: bigints as `10n`, Maps as objects, Sets as arrays, and a value met
 * again on its own path (a cycle, which a node stores) as "[Circular]"; a value met on two paths is
 * printed on both; one past MAX_DEPTH as "[Nested too deeply]". Everything else as JSON.stringify prints it.
 */
function jsonable(value: unknown, path = new Set<object>()): unknown {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value !== 'object' || value === null) return value;
  if (path.has(value)) return '[Circular]';
  // a node stores a message of any depth (v8.serialize takes thousands of levels): printing one needs a stack as deep
  if (path.size >= MAX_DEPTH) return '[Nested too deeply]';
  path.add(value);
  try {
    if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]: [unknown, unknown]) => [k, jsonable(v, path)]));
    if (value instanceof Set) return [...value].map((v: unknown) => jsonable(v, path));
    if (Array.isArray(value)) return value.map((v: unknown) => jsonable(v, path));
    if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return value; // a Date
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonable(v, path)]));
  } finally {
    path.delete(value);
  }
}

/** JSON that a terminal shows as text: every control character in it escaped (`\u009b`), as JSON allows. */
function json(value: unknown, indent = 2): string {
  return cleanJson(JSON.stringify(jsonable(value), null, indent) ?? String(value));
}

/** A record as --json prints it: an undecodable one without the message and metadata it does not have. */
function view(r: Record_): object {
  if (r.undecodable === undefined) return r;
  const { message: _message, metadata: _metadata, ...rest } = r;
  return rest;
}

/**
 * What `attempts` counts, beside the sender's count in the metadata: the queue's own redelivery
 * attempts (0 when the entry was added), against a supervised send's delivery attempts before it
 * gave the message up (`metadata.attempts`, set by sendSupervised when it dead-letters).
 */
function attemptsNote(r: Record_): string {
  const sender = r.undecodable === undefined ? (r.metadata as { attempts?: unknown }).attempts : undefined;
  const queue = "the dead letter queue's redelivery attempts";
  return typeof sender === 'number' ? `${queue}; metadata.attempts ${sender}: the sender's delivery attempts before it dead-lettered the message` : queue;
}

/** One record, field by field. */
function fields(r: Record_): string {
  const shown = (k: string, v: unknown): string => {
    if (r.undecodable !== undefined && k === 'message') return `(undecodable: ${r.undecodable.bytes} bytes) ${clean(r.undecodable.error)}`;
    if (r.undecodable !== undefined && k === 'metadata') return '(undecodable: stored with the message)';
    if (k === 'message' || k === 'metadata' || k === 'lastError') return json(v);
    if (k === 'attempts') return `${String(v)} (${attemptsNote(r)})`;
    return k.endsWith('At') ? when(v) : clean(String(v));
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
  // the store's hint for a file it cannot open is about the path (its directory, its permissions): a damaged file is none of that
  const damaged = code?.startsWith('SQLITE_CORRUPT') === true ? "the file is damaged: restore it from a backup, or salvage its rows with the sqlite3 shell's .recover" : undefined;
  const todo = locked(code) ? 'another connection holds a write lock on the file: run the command again once it is released' : (damaged ?? hint);
  return `keel dlq ${command}: could not ${verb} ${file}: ${why}${writes ? '; no dead letter was changed' : ''}${todo === undefined ? '' : `; ${todo}`}`;
}

/**
 * `keel dlq …`: works on a SQLite dead letter store directly (there is no live node). Exit codes:
 * 0 done; 1 not done (an unknown id, or a store that could not be opened, read or written: nothing
 * was changed); 2 bad usage, no store at the path, or a file that is not a store. A command reports
 * success only once its change is in the file: its output is printed after the store has closed
 * without a failure. Results go to `out`, errors to `err` (a bare function takes both). `internal`
 * is for the tests (a short busy timeout).
 */
export function runDlq(argv: readonly string[], output: Output, now: () => number = () => Date.now(), internal: SqliteStoreOptions = {}): number {
  const io = ioOf(output);
  const [command, ...rest] = argv;
  if (command === '--help' || command === '-h') {
    io.out(DLQ_USAGE);
    return 0;
  }
  if (command === undefined || !(NAMES as string[]).includes(command)) {
    const what =
      command === undefined
        ? 'give a command: list, show, retry or purge'
        : command.startsWith('-')
          ? `give the command (list, show, retry or purge) first, then its options: got '${command}'`
          : `unknown command '${command}'${meantCommand(command, NAMES)}: the dlq commands are list, show, retry and purge`;
    io.err(`keel dlq: ${what} (keel dlq --help prints the usage)`);
    return 2;
  }
  const name = command as Command;
  const spec: CommandSpec = SUBCOMMANDS[name];
  return runCommand(spec, rest, io, (values, positionals) => toParsed(name, values as AnyValues, positionals), (args) => open(args, io, now(), internal));
}

/** Opens the store, runs the command on it, closes it, and prints the outcome once the file has it. */
function open(args: Parsed, io: Io, t: number, internal: SqliteStoreOptions): number {
  let stat: Stats | undefined;
  try {
    stat = statSync(args.store);
  } catch {
    // ENOENT, ENOTDIR, ENAMETOOLONG, EACCES on a directory on the way: no file to open there
  }
  if (stat === undefined) {
    io.err(`keel dlq: no store at ${args.store}`);
    return 2;
  }
  // SQLite would wait forever on a named pipe (<(…)) for data that never comes; a directory is SQLite's to refuse
  if (!stat.isFile() && !stat.isDirectory()) {
    io.err(`keel dlq: ${args.store} is not a regular file (a pipe, a socket or a device): give the path of a dead letter store file`);
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
    // a newer Keel's store is not one this Keel reads: bad usage as a file that is no store, left as it is
    if (e instanceof StoreVersionError) {
      io.err(`keel dlq: cannot open ${args.store}: ${e.why}; ${e.hint}`);
      return 2;
    }
    if (e instanceof StoreUnavailableError && e.sqliteCode !== 'SQLITE_NOTADB') {
      // no driver error: the store's own refusal (an older file another live process has open), said as it is
      io.err(failure(args.command, e.file, e.cause ?? new Error(e.why), true, e.hint));
      return 1;
    }
    io.err(`keel dlq: cannot open ${args.store}: ${e instanceof StoreUnavailableError ? e.why : (e as Error).message}`);
    return 2;
  }
  const lines: { err: boolean; text: string }[] = [];
  let code: number;
  try {
    code = command(args, store, t, { out: (text) => lines.push({ err: false, text }), err: (text) => lines.push({ err: true, text }) });
  } catch (e) {
    // a file raised to a newer format while the write waited for its lock (by a newer Keel): refused, nothing changed
    if (sqliteCode(e) === undefined && !(e instanceof StoreVersionError)) throw e;
    failed ??= { error: e };
    code = 1;
  } finally {
    // makes the writes still queued; one that fails is reported to the handler above
    store.close();
  }
  if (failed !== undefined) {
    const error = failed.error;
    // a newer format is said as the open says it: why, and what to do
    io.err(error instanceof StoreVersionError ? failure(args.command, store.file, new Error(error.why), false, error.hint) : failure(args.command, store.file, error, false));
    return 1;
  }
  for (const { err, text } of lines) (err ? io.err : io.out)(text);
  return code;
}

/** What happens to the entries `retry` marked, and when: who delivers them. */
function deliveredBy(store: SqliteStore): string {
  const owner = store.owner();
  if (owner !== undefined) {
    return `node ${owner.owner} (OS process ${owner.osPid}) has this store open: it looks at the file at least every 5 s and retries them then`;
  }
  return 'no node has this store open: the next node that opens it as its dead letter store retries them as soon as it starts';
}

/** Runs one command on the open store; `io` collects its output, shown only if every write succeeds. */
function command(args: Parsed, store: SqliteStore, t: number, io: Io): number {
  switch (args.command) {
    case 'list': {
      const { limit = 100, ...filter } = args.filter;
      const { entries, cursor } = store.list(filter, t, limit, undefined);
      const more = cursor === undefined ? '' : `\n(more entries than ${limit}: use --limit to see more)`;
      io.out(args.json ? json(entries.map(view)) : entries.length === 0 ? '(no dead letters)' : table(entries) + more);
      return 0;
    }
    case 'show': {
      const r = store.get(args.ids[0]!);
      if (r === undefined) {
        io.err(`keel dlq: no dead letter ${args.ids[0]!}`);
        return 1;
      }
      io.out(args.json ? json(view(r)) : fields(r));
      return 0;
    }
    case 'retry': {
      const { limit: _limit, ...filter } = args.filter;
      const found = args.ids.map((id) => [id, store.get(id)] as const);
      const missing = found.filter(([, r]) => r === undefined).map(([id]) => id);
      // every entry the filter selects (their ids only: the messages are not read)
      const targets = args.ids.length > 0 ? found.flatMap(([id, r]) => (r === undefined ? [] : [id])) : store.ids(filter, t);
      for (const id of targets) store.update(id, { status: 'pending', nextRetryAt: t });
      io.out(
        args.json
          ? json({ marked: targets, ...(missing.length > 0 ? { notFound: missing } : {}) })
          : `${targets.length === 0 ? `marked no dead letter: ${args.ids.length > 0 ? 'none of the ids is in the store' : 'none matches'}` : `marked ${targets.length} dead letter(s) due now; ${deliveredBy(store)}`}${missing.length > 0 ? `\nno dead letter ${missing.join(', ')}` : ''}`,
      );
      return missing.length > 0 ? 1 : 0;
    }
    case 'purge': {
      const { limit: _limit, ...filter } = args.filter;
      const n = store.purge(filter, t);
      io.out(args.json ? json({ purged: n }) : `purged ${n} dead letter(s)`);
      return 0;
    }
  }
  return 2;
}
