/**
 * @internal The global registry's bucket: how names and group members become KV keys, what a
 * name's value records (owner node, incarnation, pid id, lease deadline), the strict parse of what
 * the bucket holds (anyone with write rights on it could write anything), and the dynamic loading
 * of the NATS client packages (optional peers: loaded here only, when a registry starts).
 */
import type { KV } from '@nats-io/kv';
import type { ConnectionOptions, NatsConnection } from '@nats-io/transport-node';
import { InvalidArgumentError, MissingPeerError, isError } from '../../errors.js';
import type { Kernel } from '../../runtime/kernel.js';
import { type Pid, PidImpl } from '../../runtime/Pid.js';

/** What a name's KV value records. */
export interface NameRecord {
  readonly node: string;
  readonly inc: number;
  readonly id: number;
  /** The owner's lease deadline, epoch ms on the owner's clock. */
  readonly lease: number;
}

/** A name as this node's cache holds it: its record and the revision that wrote it. */
export interface Entry {
  readonly record: NameRecord;
  readonly revision: number;
}

/** The pid a name's record stands for: this node's live process itself when it is one of ours. */
export function ownerPid(kernel: Kernel, node: string, inc: number, id: number): Pid {
  const pid = new PidImpl(node, inc, id);
  return node === kernel.name ? (kernel.resolve(pid)?.self ?? pid) : pid;
}

/** What the watch told of one key. */
export type Parsed =
  | { readonly kind: 'name'; readonly name: string; readonly record: NameRecord | undefined }
  | { readonly kind: 'member'; readonly group: string; readonly node: string; readonly inc: number; readonly id: number }
  | { readonly kind: 'sync'; readonly node: string | undefined; readonly inc: number | undefined }
  | { readonly kind: 'unknown' };

const NODE = /^[A-Za-z0-9_-]{1,64}$/;
/**
 * The longest global name or group name, in bytes of UTF-8: its key (base64url, 4/3 as long) must
 * fit, with the bucket's subject and a reply inbox, in a NATS control line (4096 bytes by default).
 */
export const MAX_NAME_LENGTH = 1024;

/** Checks a user's global name or group name: a non-empty well-formed string of at most {@link MAX_NAME_LENGTH} bytes of UTF-8. */
export function checkName(argument: string, value: unknown): string {
  // a lone surrogate has no UTF-8 form: its key would not read back as the name
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NAME_LENGTH || Buffer.byteLength(value, 'utf8') > MAX_NAME_LENGTH || /\p{Cs}/u.test(value)) {
    throw new InvalidArgumentError(argument, `a non-empty string of at most ${MAX_NAME_LENGTH} bytes of UTF-8, without lone surrogates`, value);
  }
  return value;
}

/** A name as one KV key token: base64url of its UTF-8 (KV keys allow `[-/_=.a-zA-Z0-9]`). */
function token(name: string): string {
  return Buffer.from(name, 'utf8').toString('base64url');
}

function untoken(text: string): string | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return undefined;
  const name = Buffer.from(text, 'base64url').toString('utf8');
  return token(name) === text ? name : undefined; // a lone surrogate or junk does not round-trip
}

export const nameKey = (name: string): string => `n.${token(name)}`;
export const memberKey = (group: string, node: string, inc: number, id: number): string => `g.${token(group)}.${node}.${inc}.${id}`;
export const syncKey = (node: string, inc: number): string => `s.${node}.${inc}`;

export function encodeRecord(record: NameRecord): string {
  return JSON.stringify({ v: 1, node: record.node, inc: record.inc, id: record.id, lease: record.lease });
}

function positiveInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0;
}

/** A name's value, or undefined when it is not one this registry wrote (then it is ignored). */
export function decodeRecord(bytes: Uint8Array): NameRecord | undefined {
  if (bytes.length > 4096) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(Buffer.from(bytes).toString('utf8'), (k, v: unknown) => {
      if (k === '__proto__' || k === 'constructor') throw new TypeError('a polluting key');
      return v;
    });
  } catch {
    return undefined;
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return undefined;
  const r = data as Record<string, unknown>;
  if (r.v !== 1 || typeof r.node !== 'string' || !NODE.test(r.node) || !positiveInt(r.inc) || !positiveInt(r.id) || !positiveInt(r.lease)) return undefined;
  return { node: r.node, inc: r.inc, id: r.id, lease: r.lease };
}

/** What a KV key stands for. */
export function parseKey(key: string, value: Uint8Array | undefined): Parsed {
  const parts = key.split('.');
  if (parts[0] === 'n' && parts.length === 2) {
    const name = untoken(parts[1]!);
    if (name === undefined) return { kind: 'unknown' };
    return { kind: 'name', name, record: value === undefined ? undefined : decodeRecord(value) };
  }
  if (parts[0] === 'g' && parts.length === 5) {
    const group = untoken(parts[1]!);
    const inc = Number(parts[3]);
    const id = Number(parts[4]);
    if (group === undefined || !NODE.test(parts[2]!) || !positiveInt(inc) || !positiveInt(id) || String(inc) !== parts[3] || String(id) !== parts[4]) return { kind: 'unknown' };
    return { kind: 'member', group, node: parts[2]!, inc, id };
  }
  if (parts[0] === 's') {
    const inc = Number(parts[2]);
    const valid = parts.length === 3 && NODE.test(parts[1]!) && positiveInt(inc) && String(inc) === parts[2];
    return { kind: 'sync', node: valid ? parts[1] : undefined, inc: valid ? inc : undefined };
  }
  return { kind: 'unknown' };
}

/** True when a KV write failed because the key's revision was not the one expected (someone else wrote first). */
export function isCasFailure(e: unknown): boolean {
  for (let depth = 0; depth < 4 && isError(e); depth++, e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (code === 10071 || code === 10164) return true;
    if (/wrong last sequence/i.test(e.message)) return true;
  }
  return false;
}

/**
 * The reconnect settings of a connection the registry opens, as the cluster's transport's (which
 * `connectionOptions` override): reconnect for ever, 250 ms apart. The client's defaults (10
 * attempts, 2 s apart) gave up after about 20 s of outage: the watch, the renewals and every
 * `register` failed for good when the server came back, while the cluster reconnected.
 */
const RECONNECT = { maxReconnectAttempts: -1, reconnectTimeWait: 250 } as const;

/** How a registry reaches NATS: a connection it borrows, or servers it connects to (and closes at stop). */
export interface ConnectionChoice {
  readonly connection?: NatsConnection;
  readonly servers?: string | readonly string[];
  readonly connectionOptions?: Omit<ConnectionOptions, 'servers'>;
}

/** The bucket as a registry uses it. */
export interface Bucket {
  readonly kv: KV;
  /**
   * Removes the messages of `key` up to and including the stream sequence `revision` (a delete
   * marker's): never a write made after it. Resolves with how many messages went.
   */
  readonly purgeThrough: (key: string, revision: number) => Promise<number>;
  /** Closes the connection when this registry opened it. */
  readonly close: () => Promise<void>;
}

/** Opens (or creates) the bucket; `close` closes the connection when this registry opened it. */
export async function openBucket(choice: ConnectionChoice, bucket: string): Promise<Bucket> {
  let nc = choice.connection;
  let owned = false;
  if (nc === undefined) {
    if (choice.servers === undefined) throw new InvalidArgumentError('options', 'a `connection` (an open NatsConnection) or `servers`', choice);
    const client = await load(() => import('@nats-io/transport-node'));
    nc = await client.connect({ ...RECONNECT, ...choice.connectionOptions, servers: typeof choice.servers === 'string' ? choice.servers : [...choice.servers] });
    owned = true;
  }
  const connection = nc;
  try {
    const { Kvm } = await load(() => import('@nats-io/kv'));
    const kvm = new Kvm(connection);
    let kv: KV;
    try {
      kv = await kvm.create(bucket, { history: 1 });
    } catch (e) {
      // several nodes creating the bucket at once: the losers open the winner's
      kv = await kvm.open(bucket).catch(() => Promise.reject(e));
    }
    const { jetstreamManager } = await load(() => import('@nats-io/jetstream'));
    const jsm = await jetstreamManager(connection, { checkAPI: false }); // no account check: only the purge request is sent, when a sweep runs
    // the stream and subjects of a bucket made with the KV defaults, as `kvm.create` above makes it
    const stream = `KV_${bucket}`;
    return {
      kv,
      // `seq`: up to but not including it, so a write after the marker (a higher sequence) stays
      purgeThrough: async (key, revision) => (await jsm.streams.purge(stream, { filter: `$KV.${bucket}.${key}`, seq: revision + 1 })).purged,
      close: () => (owned ? connection.close() : Promise.resolve()),
    };
  } catch (e) {
    if (owned) await connection.close().catch(() => undefined);
    throw e;
  }
}

async function load<T>(importer: () => Promise<T>): Promise<T> {
  try {
    return await importer();
  } catch (e) {
    if (isError(e) && /ERR_MODULE_NOT_FOUND|MODULE_NOT_FOUND/.test(String((e as { code?: unknown }).code)) && e.message.includes('@nats-io/')) {
      throw new MissingPeerError(['@nats-io/transport-node', '@nats-io/jetstream', '@nats-io/kv'], 'The global registry');
    }
    throw e;
  }
}
