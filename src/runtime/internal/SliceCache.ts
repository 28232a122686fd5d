/**
 * @internal A time read at most once per scheduler slice: `at(slice)` reads it at the first ask of
 * a slice (a slice is named by its start) and answers that reading until the next slice.
 */
export class SliceCache {
  readonly #read: () => number;
  #slice = -1;
  #value = 0;
  constructor(read: () => number) {
    this.#read = read;
  }

  at(slice: number): number {
    if (this.#slice !== slice) {
      this.#slice = slice;
      this.#value = this.#read();
    }
    return this.#value;
  }
}
