/**
 * Errors of delivery and its stores: a supervised send that failed, a message a store cannot keep,
 * a store file that is owned, cannot be opened or is too new, a dead letter too large.
 */
import { KeelError } from './base.js';

/** A supervised send with `onError: 'raise'` failed; `outcome` says how. */
export class DeliveryError extends KeelError {
  readonly outcome: unknown;
  constructor(target: string, reason: string, attempts: number, outcome: unknown) {
    super('ERR_DELIVERY', `delivery to ${target} failed after ${attempts} attempt(s): ${reason}`);
    this.outcome = outcome;
  }
}

/** A message a durable store cannot keep (a function, a symbol, a class instance with behaviour). */
export class NotSerializableError extends KeelError {
  readonly path: string;
  /** What the value at `path` is (a function, a symbol, a class instance, ...). */
  readonly what: string;
  /**
   * `subject`: what must be plain data (a dead letter's message unless told; the agent store's
   * values; a message sent to another node). `carried`: the kinds of data that subject takes.
   */
  constructor(path: string, what: string, subject = "a dead letter's message", carried = 'objects, arrays, primitives, bigints, Dates, Maps, Sets, typed arrays') {
    super('ERR_NOT_SERIALIZABLE', `${subject} must be plain data (${carried}); ${path} is ${what}`);
    this.path = path;
    this.what = what;
  }
}

/** Another node (in this or another OS process) owns the SQLite file. */
export class StoreInUseError extends KeelError {
  constructor(file: string, owner: string, store = 'dead letter store') {
    super('ERR_STORE_IN_USE', `the ${store} ${file} is owned by ${owner}; two nodes never share one ${store === 'dead letter store' ? 'queue' : 'store'}`);
  }
}

/**
 * The SQLite dead letter store could not be opened: its path is a directory, its directory does not
 * exist or cannot be written, the file is not a database, or another connection holds it locked.
 * `cause` is the driver's own error; the message says the path and what to do.
 */
export class StoreUnavailableError extends KeelError {
  readonly file: string;
  /** SQLite's code (`SQLITE_CANTOPEN`, `SQLITE_BUSY`, `SQLITE_NOTADB`, ...), when the driver gave one. */
  readonly sqliteCode: string | undefined;
  /** Why, in a few words: the driver's message. */
  readonly why: string;
  /** What to do about it. */
  readonly hint: string;
  constructor(file: string, why: string, sqliteCode: string | undefined, hint: string, cause: unknown, store = 'dead letter store') {
    super('ERR_STORE_UNAVAILABLE', `the ${store} ${file} could not be opened: ${why}${sqliteCode === undefined ? '' : ` (${sqliteCode})`}; ${hint}`, { cause });
    this.file = file;
    this.sqliteCode = sqliteCode;
    this.why = why;
    this.hint = hint;
  }
}

/**
 * A store file stamped (`PRAGMA user_version`) with a schema version newer than the one this Keel
 * writes: made by a newer Keel, whose tables this one could misread or damage. Refused before
 * anything is written to it (`ERR_STORE_UNAVAILABLE`, as any store that cannot be opened).
 */
export class StoreVersionError extends StoreUnavailableError {
  /** The file's schema version. */
  readonly version: number;
  /** The newest schema version this Keel reads and writes. */
  readonly supported: number;
  constructor(file: string, version: number, supported: number, store = 'dead letter store') {
    super(
      file,
      `its schema version (user_version) is ${version}, newer than the version ${supported} this Keel writes`,
      undefined,
      'open it with the Keel that made it, or a newer one; this one leaves the file as it is',
      undefined,
      store,
    );
    this.version = version;
    this.supported = supported;
  }
}

/** A dead letter too large for its durable store: refused alone, as a message that cannot be serialized is. */
export class DeadLetterTooLargeError extends KeelError {
  /** The size of the serialized message and metadata. */
  readonly bytes: number;
  /** The most the store takes. */
  readonly limit: number;
  constructor(bytes: number, limit: number, cause?: unknown) {
    super(
      'ERR_DEAD_LETTER_TOO_LARGE',
      `a dead letter's message and metadata take ${bytes} bytes serialized: too large for the store, which takes at most ${limit} bytes per entry; dead-letter something smaller, such as a reference to where the data is kept`,
      cause === undefined ? undefined : { cause },
    );
    this.bytes = bytes;
    this.limit = limit;
  }
}
