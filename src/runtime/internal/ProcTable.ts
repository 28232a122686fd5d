import type { Proc } from './Proc.js';

const SHIFT = 10;
const CHUNK = 1 << SHIFT; // 1,024
const SLOT = CHUNK - 1;

/**
 * The chunk number of an id: a shift from 0 to 2^31 (small integers), exact division elsewhere (a
 * negative id, which no process has, gets a negative chunk and is found nowhere).
 */
function chunkOf(id: number): number {
  return id >= 0 && id < 0x80000000 ? id >> SHIFT : Math.floor(id / CHUNK);
}

class Chunk {
  // holey, never filled: an empty slot reads as undefined (a chunk is made per 1,024 spawns)
  readonly slots: (Proc | undefined)[] = new Array<Proc | undefined>(CHUNK);
  live = 0;
}

/**
 * @internal The process table, indexed by pid id: chunks of 1,024 slots. A chunk is freed as soon
 * as all its ids were handed out and all its processes died, and the freed chunks at the front are
 * trimmed, so a node that spawns forever holds memory for its live processes only.
 */
export class ProcTable {
  #chunks: (Chunk | undefined)[] = [];
  #base = 0; // the chunk number of #chunks[0]
  #size = 0;
  #maxId = 0;
  /** Messages handled by the processes that died (for a node-wide message rate that a death does not pull down). */
  handledByDead = 0;

  get size(): number {
    return this.#size;
  }

  set(id: number, p: Proc): void {
    const ci = chunkOf(id) - this.#base;
    let c = this.#chunks[ci];
    if (c === undefined) c = this.#chunks[ci] = new Chunk();
    c.slots[id & SLOT] = p;
    c.live++;
    this.#size++;
    if (id > this.#maxId) this.#maxId = id;
  }

  get(id: number): Proc | undefined {
    const ci = chunkOf(id) - this.#base;
    return ci < 0 ? undefined : this.#chunks[ci]?.slots[id & SLOT];
  }

  delete(id: number): void {
    const chunkNo = chunkOf(id);
    const ci = chunkNo - this.#base;
    const c = ci < 0 ? undefined : this.#chunks[ci];
    if (c === undefined || c.slots[id & SLOT] === undefined) return;
    c.slots[id & SLOT] = undefined;
    c.live--;
    this.#size--;
    if (c.live === 0 && (chunkNo + 1) * CHUNK <= this.#maxId + 1) {
      this.#chunks[ci] = undefined;
      if (ci === 0) this.#trim();
    }
  }

  /** The live processes in id (start) order. */
  values(): Proc[] {
    const out: Proc[] = [];
    for (const c of this.#chunks) {
      if (c === undefined) continue;
      for (const p of c.slots) if (p !== undefined) out.push(p);
    }
    return out;
  }

  #trim(): void {
    let n = 0;
    while (n < this.#chunks.length && this.#chunks[n] === undefined) n++;
    this.#chunks.splice(0, n);
    this.#base += n;
  }
}
