/** Decimal strings of 0–999 as they are, and padded to three digits; shared by every sequence. */
let plain: readonly string[] | undefined;
let padded: readonly string[] | undefined;

/**
 * @internal A counter that yields `prefix + n` for n = 1, 2, 3, … in plain decimal, as
 * `prefix + ++n` would, without converting a number to a string per call: the digits below the
 * thousands come from a shared table and the rest is rebuilt once per thousand (a send's message
 * id is on the hot path of supervised send).
 */
export class IdSequence {
  readonly #prefix: string;
  #block: string;
  #table: readonly string[];
  #high = 0;
  #low = 0;

  constructor(prefix: string) {
    this.#prefix = prefix;
    this.#block = prefix;
    this.#table = plain ??= Array.from({ length: 1000 }, (_, i) => String(i));
  }

  next(): string {
    if (++this.#low === 1000) {
      this.#low = 0;
      this.#block = this.#prefix + ++this.#high;
      this.#table = padded ??= Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));
    }
    return this.#block + this.#table[this.#low]!;
  }
}
