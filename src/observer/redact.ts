/**
 * What an observer without `allowPayloads` shows of an error or an exit reason: its kind, never its
 * text. A crash's message, a workflow task's error, a supervisor's restart reason can carry the data
 * the process worked on (an order, a card number, a prompt), as a dead letter's last error does.
 */

/** The exit reasons and codes that are words, shown as they are. */
const WORD = /^[A-Za-z][\w.-]{0,63}$/;
/** `Name: message` (an Error as `formatReason` and the components write it): the name. */
const NAMED = /^([A-Za-z_$][\w$]{0,63}): /;

/** The kind of an error or reason text: a one-word code as it is, an error's name, `{ shutdown: … }`, else `(hidden)`. */
export function reasonKind(text: string): string {
  if (WORD.test(text)) return text;
  if (text.startsWith('{ shutdown:')) return '{ shutdown: … }';
  const m = NAMED.exec(text);
  return m === null ? '(hidden)' : m[1]!;
}

/**
 * How deep {@link hideErrorTexts} goes: past it, a value is hidden whole. A supervision tree 8
 * supervisors deep (as far as the walk goes) nests 3 levels per supervisor: well within it.
 */
const HIDE_DEPTH = 64;

/**
 * `value` (JSON data an answer carries) with every string under an `error` or `reason` key reduced
 * to its {@link reasonKind}. A new value; the given one is left as it is. Fails closed: an object
 * nested deeper than {@link HIDE_DEPTH} is `'(hidden)'`, never shown unread.
 */
export function hideErrorTexts(value: unknown, depth = HIDE_DEPTH): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (depth <= 0) return '(hidden)';
  if (Array.isArray(value)) return value.map((v) => hideErrorTexts(v, depth - 1));
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, v] of Object.entries(value)) {
    out[k] = (k === 'error' || k === 'reason') && typeof v === 'string' ? reasonKind(v) : hideErrorTexts(v, depth - 1);
  }
  return out;
}
