/** Incarnations remembered as gone for good, and peers remembered as downed for silence: each at most this many. */
export const REMEMBERED = 1024;

/**
 * @internal What a cluster remembers of peers no longer up: the incarnations gone for good (replaced
 * by a new one, or gone with a goodbye), whose late frames are dropped, and the peers downed for
 * silence, which are told first that they were down should the same incarnation speak again. Both
 * are bounded (a cluster whose nodes take a new name per start downs a new one at each crash): a
 * peer downed for silence and silent through {@link REMEMBERED} later ones is taken for gone for good.
 */
export class Incarnations {
  /** `name:incarnation` of peers gone for good, oldest first. */
  readonly #dead = new Set<string>();
  /** Peers downed for silence: name to incarnation, oldest first. */
  readonly #silenced = new Map<string, number>();

  isDead(name: string, incarnation: number): boolean {
    return this.#dead.has(`${name}:${incarnation}`);
  }

  /** Remembers `name`'s `incarnation` as gone for good. */
  dead(name: string, incarnation: number): void {
    this.#dead.add(`${name}:${incarnation}`);
    if (this.#dead.size > REMEMBERED) this.#dead.delete(this.#dead.values().next().value!);
  }

  /** The incarnation of `name` downed for silence, if one is remembered. */
  silenced(name: string): number | undefined {
    return this.#silenced.get(name);
  }

  /** Remembers `name`'s `incarnation` as downed for silence; past the bound, the oldest is taken for gone for good. */
  silence(name: string, incarnation: number): void {
    this.#silenced.set(name, incarnation);
    if (this.#silenced.size > REMEMBERED) {
      const [oldest, inc] = this.#silenced.entries().next().value!;
      this.#silenced.delete(oldest);
      this.dead(oldest, inc);
    }
  }

  /** Forgets `name`'s silence (it spoke again, or its incarnation said goodbye). */
  unsilence(name: string): void {
    this.#silenced.delete(name);
  }
}
