/**
 * The options of `GlobalRegistry.start` (the public `GlobalOptions`, exported from
 * `GlobalRegistry.ts`): what each means, its default, and the checks a start makes of them before it
 * opens anything.
 */
import { checkKeys, InvalidArgumentError } from '../../errors.js';
import type { Kernel } from '../../runtime/kernel.js';
import { Cluster } from '../Cluster.js';
import type { ConnectionChoice } from './store.js';

/** How a node's global registry reaches its bucket, and its lease settings. */
export interface GlobalOptions extends ConnectionChoice {
  /** The node's cluster (its `Cluster.join`): node-down events and sends to owners on other nodes go through it. */
  readonly cluster: Cluster;
  /** The KV bucket's name, `[A-Za-z0-9_-]{1,64}` (every node of the cluster uses the same one). Default `KEEL_global`. */
  readonly bucket?: string;
  /** How long a lease lasts past each renewal (ms). Renewed every `leaseMs / 3`. Default 5000. */
  readonly leaseMs?: number;
  /** How long past a lease's deadline another node waits before taking the name (ms): bounds clock drift and queue delay. Default 1000. */
  readonly marginMs?: number;
  /**
   * How long a delete's marker stays in the bucket before a sweep removes it (ms). A watch that
   * lost its connection for longer may miss a delete. Each node sweeps every `markerGraceMs / 2`
   * (at least a second apart).
   * Default 1,800,000 (30 minutes, as `kv.purgeDeletes`); 0 sweeps every marker.
   */
  readonly markerGraceMs?: number;
  /**
   * How long a `sync()` waits for the watch to bring its write back before it rejects with
   * `SyncTimeoutError` (ms); the start's own sync too. `sync({ timeoutMs })` overrides it for one
   * call. Default 30,000.
   */
  readonly syncTimeoutMs?: number;
}

const KNOWN = ['cluster', 'connection', 'servers', 'connectionOptions', 'bucket', 'leaseMs', 'marginMs', 'markerGraceMs', 'syncTimeoutMs'];
const BUCKET = /^[A-Za-z0-9_-]{1,64}$/;

/** The options of a start, checked, with their defaults. */
export interface Settings {
  readonly cluster: Cluster;
  readonly bucket: string;
  readonly leaseMs: number;
  readonly marginMs: number;
  readonly markerGraceMs: number;
  readonly syncTimeoutMs: number;
}

/** Checks `options` (typed errors, in the order a start always made them) and fills in the defaults. */
export function readOptions(kernel: Kernel, options: GlobalOptions): Settings {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'an object with `cluster` and `connection` or `servers`', options);
  checkKeys(options, KNOWN, 'options');
  const { cluster } = options;
  if (!(cluster instanceof Cluster) || cluster.name !== kernel.name || cluster.incarnation !== kernel.creation) {
    throw new InvalidArgumentError('options.cluster', "this node's Cluster (what Cluster.join resolved with)", cluster);
  }
  const bucket = options.bucket ?? 'KEEL_global';
  if (typeof bucket !== 'string' || !BUCKET.test(bucket)) throw new InvalidArgumentError('options.bucket', 'a bucket name of 1 to 64 letters, digits, `_` or `-`', bucket);
  const leaseMs = positive(options.leaseMs, 'options.leaseMs', 5000);
  const marginMs = positive(options.marginMs, 'options.marginMs', 1000);
  const markerGraceMs = options.markerGraceMs === 0 ? 0 : positive(options.markerGraceMs, 'options.markerGraceMs', 1_800_000);
  const syncTimeoutMs = positive(options.syncTimeoutMs, 'options.syncTimeoutMs', 30_000);
  return { cluster, bucket, leaseMs, marginMs, markerGraceMs, syncTimeoutMs };
}

/** The longest lease or margin (ms): a lease plus its margin must stay within a Node timer's range (2^31 - 1 ms), past which timers fire at once. */
const MAX_MS = 2 ** 30;

/** `value` (ms), a positive number within {@link MAX_MS}, or `fallback` when undefined; else a typed error naming `argument`. */
export function positive(value: number | undefined, argument: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0) || !(value <= MAX_MS)) throw new InvalidArgumentError(argument, `a positive number of milliseconds, at most ${MAX_MS}`, value);
  return value;
}
