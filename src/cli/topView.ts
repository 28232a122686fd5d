// What `keel top` shows: the observer's JSON as text, like Erlang's etop (a header of the node's
// figures, then the top processes or one process's detail). Pure functions of the data: the same
// snapshot renders the same text. Everything comes from the network, so nothing is trusted: a
// field of the wrong type renders as '-', and every string is cleaned of control characters (a
// process named with an escape sequence must not drive the terminal).

/** What one refresh fetched: the overview and the top processes, or the overview and one process. */
export type TopSnapshot = { overview: unknown; processes: unknown } | { overview: unknown; process: unknown };

/** Control characters (C0, DEL, C1), the line and paragraph separators and the bidirectional overrides, shown escaped. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** `text` with every control character shown as `\xNN` / `\uNNNN`: safe to write to a terminal. */
export function clean(text: string): string {
  return text.replace(UNSAFE, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** What JSON.stringify leaves as it is (it escapes C0 only) and a terminal may act on. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** JSON text with those characters escaped as `\uNNNN` too: the same JSON, safe to write to a terminal. */
export function cleanJson(text: string): string {
  return text.replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

// ---- display width: what a terminal gives a text, not its length in UTF-16 code units ----------

/** East Asian Wide and Fullwidth code points (Unicode's EastAsianWidth W and F, emoji aside: see {@link displayWidth}). */
const WIDE: readonly (readonly [number, number])[] = [
  [0x1100, 0x115f], // Hangul Jamo leads
  [0x2329, 0x232a],
  [0x2e80, 0x303e], // CJK radicals, Kangxi, ideographic description, CJK symbols and punctuation
  [0x3041, 0x33ff], // Hiragana, Katakana, Bopomofo, Hangul compatibility Jamo, Kanbun, CJK strokes, enclosed, compatibility
  [0x3400, 0x4dbf], // CJK extension A
  [0x4e00, 0x9fff], // CJK unified ideographs
  [0xa000, 0xa4cf], // Yi
  [0xa960, 0xa97f], // Hangul Jamo extended A
  [0xac00, 0xd7a3], // Hangul syllables
  [0xf900, 0xfaff], // CJK compatibility ideographs
  [0xfe10, 0xfe19], // vertical forms
  [0xfe30, 0xfe6f], // CJK compatibility forms, small form variants
  [0xff00, 0xff60], // fullwidth forms
  [0xffe0, 0xffe6],
  [0x16fe0, 0x18cff], // Tangut, Khitan and their ideographic symbols
  [0x1b000, 0x1b2ff], // Kana supplement and extensions, Nushu
  [0x1f200, 0x1f2ff], // enclosed ideographic supplement
  [0x20000, 0x2fffd], // CJK extensions B to F, compatibility supplement
  [0x30000, 0x3fffd], // CJK extensions G, H
];

/**
 * Code points a terminal gives no column: combining and enclosing marks, format characters (zero-width
 * space and joiner, BOM) but the soft hyphen (U+00AD: 1, as wcwidth gives it), Hangul vowels and
 * finals (of the Jamo block and of Jamo Extended-B).
 */
const ZERO = /^(?!\u00AD)[\p{Mn}\p{Me}\p{Cf}\u1160-\u11ff\ud7b0-\ud7ff]$/u;
/** A character shown as an emoji by default (two columns): an emoji, a flag's half, a skin-tone modifier shown alone. */
const EMOJI_PRESENTATION = /^\p{Emoji_Presentation}$/u;
/** A character that may be asked to show as an emoji (U+FE0F after it); after any other (a letter), U+FE0F does nothing. */
const EMOJI_CAPABLE = /^\p{Emoji}$/u;

function codePointWidth(cp: number, ch: string): number {
  if (ZERO.test(ch)) return 0;
  if (EMOJI_PRESENTATION.test(ch)) return 2;
  let lo = 0;
  let hi = WIDE.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [from, to] = WIDE[mid]!;
    if (cp < from) hi = mid - 1;
    else if (cp > to) lo = mid + 1;
    else return 2;
  }
  return 1;
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/**
 * The columns one grapheme (a user-perceived character) takes. One that starts with an emoji (a ZWJ
 * sequence, a flag, a modified or keycap emoji, or an emoji-capable character asking for it with
 * U+FE0F) is one emoji: 2. Otherwise its characters' widths, as a terminal lays them out: U+FE0F
 * after a letter is a letter of 1 (it counted 2), and a skin-tone modifier after a letter is shown
 * alone, a swatch of 2 after it (it counted 2 with the letter).
 */
function graphemeWidth(g: string): number {
  const first = String.fromCodePoint(g.codePointAt(0)!);
  if (EMOJI_PRESENTATION.test(first) || (EMOJI_CAPABLE.test(first) && g.includes('\uFE0F'))) return 2;
  let w = 0;
  for (const ch of g) w += codePointWidth(ch.codePointAt(0)!, ch);
  return w;
}

/** Whether every character of `text` is printable ASCII, whose width is its length (the common case, counted fast). */
const ASCII = /^[\x20-\x7e]*$/;

/**
 * The columns `text` takes on a terminal: East Asian wide and fullwidth characters and emoji 2,
 * combining marks and zero-width characters 0, the others 1. For text already {@link clean}ed.
 */
export function displayWidth(text: string): number {
  if (ASCII.test(text)) return text.length;
  let w = 0;
  for (const { segment } of graphemes.segment(text)) w += graphemeWidth(segment);
  return w;
}

/** The longest start of `text` at most `width` columns wide, cut between graphemes (never half a wide character, never a mark without its letter). */
export function cutToWidth(text: string, width: number): string {
  if (ASCII.test(text)) return text.length > width ? text.slice(0, Math.max(0, width)) : text;
  let w = 0;
  let end = 0;
  for (const { segment, index } of graphemes.segment(text)) {
    w += graphemeWidth(segment);
    if (w > width) return text.slice(0, index);
    end = index + segment.length;
  }
  return text.slice(0, end);
}

/** `text` padded with spaces to `width` columns, at its end or (`start`) its start. */
function pad(text: string, width: number, start = false): string {
  const fill = ' '.repeat(Math.max(0, width - displayWidth(text)));
  return start ? fill + text : text + fill;
}

type Fields = Record<string, unknown>;

function fields(value: unknown): Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Fields) : {};
}

function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** How deep `show` lists arrays in arrays; deeper ones are JSON text (or unprintable: nested past what JSON.stringify can print). */
const LIST_DEPTH = 8;

/** A value of the observer's JSON as one short cleaned piece of text. */
export function show(value: unknown, max = 200, depth = 0): string {
  let text: string;
  if (value === null || value === undefined) text = '-';
  else if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'boolean') text = String(value);
  else if (Array.isArray(value) && depth < LIST_DEPTH) text = value.length === 0 ? '(none)' : value.map((v) => show(v, max, depth + 1)).join(', ');
  else {
    try {
      text = JSON.stringify(value) ?? '-';
    } catch {
      text = '(unprintable)';
    }
  }
  const safe = clean(text);
  // cut by the columns it takes: a name of wide characters cut by its length was twice as wide as its column
  return displayWidth(safe) > max ? `${cutToWidth(safe, max - 1)}…` : safe;
}

/** 83 s as `1m 23s`, 1 h 2 min as `1h 02m`, 3 days as `3d 00h`. */
export function duration(ms: unknown): string {
  const n = num(ms);
  if (n === undefined || n < 0) return '-';
  const s = Math.floor(n / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h ${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
  return `${Math.floor(s / 86_400)}d ${String(Math.floor(s / 3600) % 24).padStart(2, '0')}h`;
}

/** Bytes as MB with one decimal. */
function mb(bytes: unknown): string {
  const n = num(bytes);
  return n === undefined ? '-' : `${(n / 1_048_576).toFixed(1)} MB`;
}

/** The time of day of `at` (ms since the epoch), UTC. */
function clock(at: unknown): string {
  const n = num(at);
  if (n === undefined) return '-';
  const d = new Date(n);
  return Number.isNaN(d.getTime()) ? '-' : `${d.toISOString().slice(11, 19)} UTC`;
}

/** The header: the node's figures from `GET /api/overview`, three lines. */
export function renderOverview(overview: unknown): string[] {
  const o = fields(overview);
  const lag = fields(o.eventLoopLagMs);
  const heap = fields(o.heap);
  const dl = fields(o.deadLetters);
  const lagText = num(lag.mean) === undefined ? '-' : `${show(lag.mean)} ms (p99 ${show(lag.p99)}, max ${show(lag.max)})`;
  const rate = num(o.messageRate) === undefined ? '-' : `${show(o.messageRate)}/s`;
  const deadLetters = o.deadLetters === null || o.deadLetters === undefined ? '-' : `${show(dl.pending)} pending, ${show(dl.parked)} parked`;
  // the event loop's utilization, from an observer that measures it
  const busy = Object.hasOwn(o, 'busyPercent') ? `   event loop busy ${num(o.busyPercent) === undefined ? '-' : `${show(o.busyPercent)}%`}` : '';
  return [
    `node ${show(o.node, 80)}   uptime ${duration(o.uptimeMs)}   at ${clock(o.at)}`,
    `processes ${show(o.processes)}   run queue ${show(o.runQueue)}   timers ${show(o.timers)}   event-loop lag ${lagText}${busy}`,
    `heap ${mb(heap.used)} of ${mb(heap.total)} (rss ${mb(heap.rss)})   messages ${rate}   dead letters ${deadLetters}   suspected leaks ${show(o.suspectedLeaks)}`,
  ];
}

/** The columns every row has, in order; any other field the server sends (but those hidden) becomes a column after them. */
const KNOWN = ['pid', 'name', 'status', 'mailbox', 'handled'] as const;
/** Fields an observer may add, where they go (after `after`) and their heads. */
const OPTIONAL: Readonly<Record<string, { after: string; head: string }>> = {
  kind: { after: 'name', head: 'KIND' },
  rate: { after: 'handled', head: 'RATE/S' },
  busyPercent: { after: 'rate', head: 'BUSY%' },
  ageMs: { after: 'busyPercent', head: 'AGE' },
};
const HIDDEN = new Set<string>(['id', 'longMailbox', 'ageExact']);
const NAME_WIDTH = 32;

/** The columns for `rows`: the known ones, the optional ones present (in their places), then the others (at most 8). */
function columnsOf(rows: readonly Fields[]): string[] {
  const present = new Set<string>();
  for (const row of rows) for (const key of Object.keys(row)) present.add(key);
  const columns: string[] = [...KNOWN];
  for (const [key, { after }] of Object.entries(OPTIONAL)) {
    if (!present.has(key)) continue;
    let at = columns.indexOf(after);
    // an optional column after another that is absent: after the last column it would follow
    for (let k = after; at < 0 && OPTIONAL[k] !== undefined; k = OPTIONAL[k]!.after) at = columns.indexOf(OPTIONAL[k]!.after);
    columns.splice(at + 1, 0, key);
  }
  const others = [...present].filter((k) => !HIDDEN.has(k) && !columns.includes(k));
  return [...columns, ...others.slice(0, 8)];
}

/** A cell: an age as a duration (`>` when the observer knows only a lower bound), a long mailbox flagged `!`. */
function cell(row: Fields, column: string): string {
  if (column === 'ageMs' && num(row.ageMs) !== undefined) return `${row.ageExact === false ? '>' : ''}${duration(row.ageMs)}`;
  const text = show(row[column], column === 'name' ? NAME_WIDTH : 40);
  return column === 'mailbox' && row.longMailbox === true ? `${text}!` : text;
}

/** The processes table from `GET /api/processes`: a title line, the column heads, a row per process. */
export function renderProcesses(page: unknown): string[] {
  const p = fields(page);
  const rows = Array.isArray(p.processes) ? p.processes.map(fields) : [];
  const columns = columnsOf(rows);
  const long = rows.some((r) => r.longMailbox === true);
  const cells = rows.map((r) => columns.map((c) => cell(r, c)));
  const heads = columns.map((c) => OPTIONAL[c]?.head ?? clean(c).toUpperCase());
  const numeric = columns.map((c) => rows.length > 0 && rows.every((r) => r[c] === null || r[c] === undefined || typeof r[c] === 'number'));
  const widths = columns.map((_, i) => Math.max(displayWidth(heads[i]!), ...cells.map((row) => displayWidth(row[i]!))));
  const line = (row: string[]): string =>
    row
      .map((text, i) => pad(text, widths[i]!, numeric[i]))
      .join('  ')
      .trimEnd();
  const title = `top ${rows.length} of ${show(p.total)} processes by ${show(p.sort, 20)}`;
  const out = [title, '', line(heads), ...cells.map(line)];
  if (long) out.push('', "! a long mailbox (past the node's long-mailbox threshold)");
  return out;
}

/** The order of a process's fields in its detail; the server's other fields follow. */
const DETAIL = ['pid', 'name', 'status', 'mailbox', 'handled', 'longMailbox', 'trapExits', 'timers', 'links', 'monitors', 'monitoredBy', 'state'];

/** A process's detail from `GET /api/process/<pid>`: one field a line. */
export function renderProcess(detail: unknown): string[] {
  const d = fields(detail);
  const keys = [...DETAIL.filter((k) => Object.hasOwn(d, k)), ...Object.keys(d).filter((k) => !DETAIL.includes(k))];
  const width = Math.max(0, ...keys.map((k) => displayWidth(clean(k))));
  return [`process ${show(d.pid)}`, '', ...keys.map((k) => `${pad(clean(k), width)}  ${show(d[k], 2000)}`)];
}

/** One refresh of `keel top`: the header, a blank line, then the table or the detail; lines cut at `columns` when given. */
export function renderFrame(snapshot: TopSnapshot, columns?: number): string {
  const body = 'process' in snapshot ? renderProcess(snapshot.process) : renderProcesses(snapshot.processes);
  const lines = [...renderOverview(snapshot.overview), '', ...body];
  const cut = columns !== undefined && Number.isSafeInteger(columns) && columns > 0 ? lines.map((l) => cutToWidth(l, columns)) : lines;
  return cut.join('\n');
}
