/**
 * @internal The router's ties between local processes and other nodes' processes (links, monitors
 * both ways). Each is an entry kept twice: in the peer's maps (so that the peer's death answers each
 * once, with `noconnection`) and in the local process's book (so that the local death tells the
 * peer: exit signals to links, `Down`s to monitors, demonitors).
 */
import type { Kernel, Proc } from '../../runtime/kernel.js';
import type { ExitReason } from '../../runtime/messages.js';
import type { Pid } from '../../runtime/Pid.js';
import type { RemoteHost } from './host.js';
import type { LinkEntry, MonitorIn, MonitorOut, Peer } from './Peer.js';
import { encodeReason } from './wire.js';

/** A local process's ties to other nodes' processes. */
export class Book {
  readonly links = new Set<LinkEntry>();
  readonly monitorsOut = new Set<MonitorOut>();
  readonly monitorsIn = new Set<MonitorIn>();
  unhook: (() => void) | undefined = undefined;
  get empty(): boolean {
    return this.links.size === 0 && this.monitorsOut.size === 0 && this.monitorsIn.size === 0;
  }
}

export class Ties {
  readonly #host: RemoteHost;
  readonly #kernel: Kernel;
  readonly #books = new Map<Proc, Book>();

  constructor(host: RemoteHost) {
    this.#host = host;
    this.#kernel = host.kernel;
  }

  /** Local processes with ties to other nodes (for leak checks). */
  get size(): number {
    return this.#books.size;
  }

  /** The book of a local process with ties to other nodes, if it has any. */
  bookOf(p: Proc): Book | undefined {
    return this.#books.get(p);
  }

  book(p: Proc): Book {
    let book = this.#books.get(p);
    if (book === undefined) {
      book = new Book();
      this.#books.set(p, book);
      const b = book;
      book.unhook = this.#kernel.onProcExit(p, (reason) => this.#died(p, b, reason));
    }
    return book;
  }

  #release(p: Proc, book: Book): void {
    if (!book.empty) return;
    book.unhook?.();
    this.#books.delete(p);
  }

  /** A local process with ties to other nodes died: each peer hears of it once. */
  #died(p: Proc, book: Book, reason: ExitReason): void {
    this.#books.delete(p);
    let encoded: string | undefined;
    const reasonText = (): string => (encoded ??= encodeReason(this.#host, reason));
    // as a local death: the Downs of monitors first, then the exit signals of links
    for (const entry of book.monitorsIn) {
      entry.peer.monitorsIn.delete(entry.refId);
      this.#host.push(entry.peer, `["D",${entry.ownerId},${entry.refId},${p.self.id},${reasonText()}]`);
    }
    for (const entry of book.links) {
      entry.peer.links.delete(`${p.self.id}:${entry.remote.id}`);
      // a link being unlinked is gone for this process: its death is not an exit signal to the peer
      if (entry.unlinking === 0) this.#host.push(entry.peer, `["x",${p.self.id},${entry.remote.id},${reasonText()},1]`);
    }
    for (const entry of book.monitorsOut) {
      entry.peer.monitorsOut.delete(entry.ref.id);
      this.#host.push(entry.peer, `["d",${p.self.id},${entry.ref.id}]`);
    }
  }

  addLink(peer: Peer, local: Proc, remote: Pid, key: string): void {
    const entry: LinkEntry = { peer, local, remote, unlinking: 0 };
    peer.links.set(key, entry);
    this.book(local).links.add(entry);
  }

  removeLink(entry: LinkEntry): void {
    entry.peer.links.delete(`${entry.local.self.id}:${entry.remote.id}`);
    const book = this.#books.get(entry.local);
    if (book === undefined) return;
    book.links.delete(entry);
    this.#release(entry.local, book);
  }

  removeMonitorOut(entry: MonitorOut): void {
    entry.peer.monitorsOut.delete(entry.ref.id);
    const book = this.#books.get(entry.owner);
    if (book === undefined) return;
    book.monitorsOut.delete(entry);
    this.#release(entry.owner, book);
  }

  removeMonitorIn(entry: MonitorIn): void {
    entry.peer.monitorsIn.delete(entry.refId);
    const book = this.#books.get(entry.target);
    if (book === undefined) return;
    book.monitorsIn.delete(entry);
    this.#release(entry.target, book);
  }
}
