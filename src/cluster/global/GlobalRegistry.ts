/**
 * Global names and process groups across the nodes of a cluster, kept in a JetStream KV bucket: the
 * Keel counterpart of Erlang's `global` and `pg`.
 *
 * - `register(name, pid)` is a KV `create`: under any concurrency exactly one node wins, the others
 *   get `ERR_NAME_TAKEN`. The value records the owner's node, incarnation, pid id and a lease
 *   deadline (epoch ms on the owner's clock).
 * - `whereis(name)` answers from a local cache fed by a KV watch: no round trip.
 * - The owner's node renews each lease by compare-and-set every `leaseMs / 3`. A global-name
 *   message (`global.send`) is handed to the owner only while its lease is valid on the owner's
 *   clock; an owner whose lease runs out (a frozen or cut-off node, a failed renewal) is fenced: its
 *   process is killed with `{ shutdown: { fenced: name } }` before it could act on a name another
 *   node may take.
 * - A name is released by compare-and-set delete when its process dies or is unregistered; the names
 *   of a node that went down are reaped by the survivors, by compare-and-set on the revision they
 *   read, only once `lease + marginMs` has passed on their own clock (no TTLs: nats-server 2.9 does
 *   not report expiry). A `register` of a name whose lease expired `marginMs` ago takes it over the
 *   same way.
 * - A node that learns it lost a name it held (the watch shows another owner, a renewal's
 *   compare-and-set fails) sends the process an exit signal `{ shutdown: { name_conflict: name } }`
 *   (trapped as an `Exit`, or it dies).
 *
 * Clock assumption: leases compare one machine's wall clock with another's; the drift between them
 * must stay well under `marginMs`.
 */
import type { KV, KvWatchEntry } from '@nats-io/kv';
import { checkKeys, InvalidArgumentError, NameTakenError, NodeStoppedError, NoProcError } from '../../errors.js';
import { Delivery, isDead, type Kernel, kernelOf, type Proc } from '../../runtime/kernel.js';
import { isPid, type Pid, PidImpl } from '../../runtime/Pid.js';
import type { Node } from '../../runtime/types.js';
import { Cluster } from '../Cluster.js';
import { Groups } from './Groups.js';
import { checkName, type ConnectionChoice, decodeRecord, encodeRecord, isCasFailure, nameKey, type NameRecord, openBucket, parseKey, syncKey } from './store.js';

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
}

/** The exit reason of a process that lost its global name: fenced (its lease ran out) or a conflict (another node owns the name). */
export type GlobalExitReason = { shutdown: { fenced: string } } | { shutdown: { name_conflict: string } };

/** The name a process was fenced from, when `reason` is a fencing exit. */
export function fencedName(reason: unknown): string | undefined {
  return shutdownField(reason, 'fenced');
}

/** The name a process lost to another owner, when `reason` is a `name_conflict` exit. */
export function conflictName(reason: unknown): string | undefined {
  return shutdownField(reason, 'name_conflict');
}

function shutdownField(reason: unknown, field: string): string | undefined {
  if (typeof reason !== 'object' || reason === null) return undefined;
  const inner = (reason as { shutdown?: unknown }).shutdown;
  if (typeof inner !== 'object' || inner === null) return undefined;
  const value = (inner as Record<string, unknown>)[field];
  return typeof value === 'string' ? value : undefined;
}

interface Entry {
  readonly record: NameRecord;
  readonly revision: number;
}

/** A name this node's process holds. */
interface Owned {
  readonly name: string;
  readonly key: string;
  readonly proc: Proc;
  readonly pid: Pid;
  revision: number;
  /** Epoch ms on this node's wall clock: the lease deadline written to the bucket (what other nodes compare with). */
  deadline: number;
  /**
   * The same deadline on this process's monotonic clock (`performance.now()`): global-name messages
   * are delivered before both, the process is fenced at the first. A wall clock stepped back (NTP)
   * must not stretch the owner's own lease while the other nodes read the deadline written.
   */
  until: number;
  renewing: boolean;
  /** Dropped while a renewal was in flight: that renewal's revision is deleted when it lands. */
  released: boolean;
  fence: NodeJS.Timeout | undefined;
  unhook: (() => void) | undefined;
}

const KNOWN = ['cluster', 'connection', 'servers', 'connectionOptions', 'bucket', 'leaseMs', 'marginMs'];
const BUCKET = /^[A-Za-z0-9_-]{1,64}$/;
const DOWN_REMEMBERED = 1024;

export class GlobalRegistry {
  readonly #kernel: Kernel;
  readonly #cluster: Cluster;
  readonly #kv: KV;
  readonly #close: () => Promise<void>;
  readonly #leaseMs: number;
  readonly #marginMs: number;
  readonly #routerName: string;
  readonly #names = new Map<string, Entry>();
  readonly #owned = new Map<string, Owned>();
  /** `node:incarnation` of nodes this node saw go down (their names are hidden and reaped). */
  readonly #down = new Set<string>();
  readonly #reaps = new Map<string, NodeJS.Timeout>();
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #syncWaiters = new Set<{ revision: number; resolve: () => void }>();
  readonly #telemetryId: string;
  readonly #groups: Groups;
  #seen = 0;
  #watch: Awaited<ReturnType<KV['watch']>> | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #router: Proc | undefined;
  #stopped = false;
  #stopping: Promise<void> | undefined;
  #removeShutdown: (() => void) | undefined;

  private constructor(kernel: Kernel, cluster: Cluster, kv: KV, close: () => Promise<void>, bucket: string, leaseMs: number, marginMs: number) {
    this.#kernel = kernel;
    this.#cluster = cluster;
    this.#kv = kv;
    this.#close = close;
    this.#leaseMs = leaseMs;
    this.#marginMs = marginMs;
    this.#routerName = `keel.global.${bucket}`;
    this.#telemetryId = `keel.global.${bucket}.${kernel.name}.${kernel.creation}`;
    this.#groups = new Groups({
      kernel,
      kv,
      visible: (node, inc) => this.#alive(node, inc),
      connected: (node, inc) => this.#cluster.incarnationOf(node) === inc,
      track: (work) => this.#track(work),
    });
  }

  /**
   * Starts `node`'s global registry: opens (or creates) the bucket, loads every name and group
   * member into the local cache, and resolves once the cache holds what the bucket held. One
   * registry per node and bucket; it stops when the node shuts down.
   */
  static async start(node: Node, options: GlobalOptions): Promise<GlobalRegistry> {
    const kernel = kernelOf(node, 'node');
    if (kernel.stopping) throw new NodeStoppedError(kernel.name, 'GlobalRegistry.start');
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
    const { kv, close } = await kernel.trackIo(openBucket(options, bucket));
    const registry = new GlobalRegistry(kernel, cluster, kv, close, bucket, leaseMs, marginMs);
    try {
      await registry.#begin();
    } catch (e) {
      await registry.stop().catch(() => undefined);
      throw e;
    }
    return registry;
  }

  async #begin(): Promise<void> {
    const kernel = this.#kernel;
    this.#router = kernel.registry.asKeel(() => {
      const pid = kernel.spawnProc<unknown>(() => (m) => this.#routed(m), { name: this.#routerName }, undefined, false);
      return kernel.resolve(pid);
    });
    kernel.telemetry.attach(this.#telemetryId, ['keel.cluster.node_down', 'keel.cluster.node_up'], (event, _m, meta) => {
      const node = meta.node;
      const inc = meta.incarnation;
      if (typeof node !== 'string' || typeof inc !== 'number') return;
      // 'left': this node left the cluster, its peers did not go down
      if (event === 'keel.cluster.node_down') {
        if (meta.reason !== 'left') this.#nodeDown(node, inc);
      }
      else this.#nodeUp(node, inc);
    });
    const watch = await this.#kv.watch();
    this.#watch = watch;
    void (async () => {
      for await (const e of watch) {
        try {
          this.#apply(e);
        } catch (error) {
          // one bad entry (or a throwing event handler) must not end the watch that feeds the cache
          kernel.telemetry.execute('keel.global.malformed', { count: 1 }, { key: e.key, error });
        }
      }
    })().catch(() => undefined);
    await this.sync();
    // what an earlier incarnation of this node left behind is dead for sure
    for (const [name, entry] of this.#names) if (entry.record.node === kernel.name && entry.record.inc !== kernel.creation) this.#scheduleReap(name);
    this.#groups.reapNode(kernel.name, (inc) => inc !== kernel.creation);
    this.#renewTimer = setInterval(() => this.#renew(), Math.max(1, Math.floor(this.#leaseMs / 3)));
    this.#removeShutdown = kernel.onShutdown(() => void this.stop());
  }

  // ---- names ----------------------------------------------------------------------------------

  /**
   * Registers `name` for `pid`, a live process of this node, cluster-wide: rejects with
   * `ERR_NAME_TAKEN` when another process holds it (or won a concurrent registration), `ERR_NOPROC`
   * when the process is not alive (or died meanwhile). A name whose owner's lease ran out more than
   * `marginMs` ago is taken over. Registering the name its process already holds again is a no-op.
   */
  async register(name: string, pid: Pid): Promise<void> {
    checkName('name', name);
    this.#checkRunning('register');
    const proc = this.#localProc(pid);
    const held = this.#owned.get(name);
    if (held !== undefined) {
      if (held.proc === proc) return;
      throw new NameTakenError(name, String(held.pid));
    }
    const key = nameKey(name);
    const until = performance.now() + this.#leaseMs;
    const deadline = Date.now() + this.#leaseMs;
    const value = encodeRecord({ node: this.#kernel.name, inc: this.#kernel.creation, id: proc.self.id, lease: deadline });
    let revision: number;
    try {
      revision = await this.#track(this.#kv.create(key, value));
    } catch (e) {
      if (!isCasFailure(e)) throw e;
      revision = await this.#takeOver(name, key, value);
    }
    if (this.#stopped || isDead(proc) || this.#owned.has(name)) {
      void this.#track(this.#kv.delete(key, { previousSeq: revision })).catch(() => undefined);
      if (this.#stopped) throw new NodeStoppedError(this.#kernel.name, 'GlobalRegistry.register');
      throw new NoProcError(String(proc.self), 'cannot register a global name for a process that is not alive');
    }
    const own: Owned = { name, key, proc, pid: proc.self, revision, deadline, until, renewing: false, released: false, fence: undefined, unhook: undefined };
    this.#owned.set(name, own);
    own.unhook = this.#kernel.onProcExit(proc, () => this.#release(own, 'exit'));
    this.#armFence(own);
    this.#kernel.telemetry.execute('keel.global.registered', {}, { name, pid: own.pid, revision });
  }

  /** A name held by someone else: taken over when its lease ran out `marginMs` ago (CAS on the revision read), else `ERR_NAME_TAKEN`. */
  async #takeOver(name: string, key: string, value: string): Promise<number> {
    const entry = await this.#track(this.#kv.get(key));
    try {
      if (entry === null || entry.operation !== 'PUT') return await this.#track(this.#kv.create(key, value));
      const record = decodeRecord(entry.value);
      if (record !== undefined && Date.now() <= record.lease + this.#marginMs) throw new NameTakenError(name, String(new PidImpl(record.node, record.inc, record.id, undefined)));
      const revision = await this.#track(this.#kv.update(key, value, entry.revision));
      this.#kernel.telemetry.execute('keel.global.taken_over', {}, { name, previous: record === undefined ? undefined : new PidImpl(record.node, record.inc, record.id, undefined) });
      return revision;
    } catch (e) {
      if (isCasFailure(e)) throw new NameTakenError(name, 'a process of another node (it registered first)');
      throw e;
    }
  }

  /** Releases `name` if a process of this node holds it; false otherwise. */
  async unregister(name: string): Promise<boolean> {
    checkName('name', name);
    const own = this.#owned.get(name);
    if (own === undefined) return false;
    await this.#release(own, 'unregistered');
    return true;
  }

  /** The pid holding `name` as this node's cache knows it (no round trip); undefined when nobody does or its node is down. */
  whereis(name: string): Pid | undefined {
    checkName('name', name);
    const entry = this.#visible(name);
    return entry === undefined ? undefined : this.#pid(entry.record.node, entry.record.inc, entry.record.id);
  }

  /** Every name this node's cache knows a live owner of, sorted. */
  names(): string[] {
    return [...this.#names.keys()].filter((n) => this.#visible(n) !== undefined).sort();
  }

  /**
   * Sends `message` to the holder of `name` (at most once). The owner's node hands it over only
   * while the owner's lease is valid on its own clock. False (and a `keel.global.undeliverable`
   * event) when this node knows it cannot be delivered: no owner, the owner's node not connected; a
   * refusal on the owner's node (fenced, lost the name) is that node's `keel.global.undeliverable`.
   * A message that cannot be serialized is a typed error.
   */
  send(name: string, message: unknown): boolean {
    checkName('name', name);
    const entry = this.#visible(name);
    if (entry === undefined) return this.#undeliverable(name, 'no_name', message);
    const { node } = entry.record;
    if (node === this.#kernel.name) return this.#deliverLocal(name, message);
    if (!this.#cluster.isConnected(node)) return this.#undeliverable(name, 'noconnection', message);
    this.#cluster.send(node, this.#routerName, ['gs', name, message]);
    return true;
  }

  /** Resolves once this node's cache holds everything written to the bucket before the call. */
  async sync(): Promise<void> {
    this.#checkRunning('sync');
    const revision = await this.#track(this.#kv.put(syncKey(this.#kernel.name, this.#kernel.creation), String(Date.now())));
    if (this.#seen >= revision) return;
    await new Promise<void>((resolve) => this.#syncWaiters.add({ revision, resolve }));
  }

  // ---- process groups -------------------------------------------------------------------------

  /** Adds `pid` (a live process of this node) to `group` cluster-wide; it leaves when it dies. Joining twice is a no-op. */
  join(group: string, pid: Pid): Promise<void> {
    checkName('group', group);
    this.#checkRunning('join');
    return this.#groups.join(group, this.#localProc(pid));
  }

  /** Removes `pid` (a process of this node) from `group`; false when it was not a member. */
  leave(group: string, pid: Pid): Promise<boolean> {
    checkName('group', group);
    if (!isPid(pid)) throw new InvalidArgumentError('pid', 'a Pid', pid);
    return this.#groups.leave(group, pid);
  }

  /** The members of `group` on every node, as this node's cache knows them (members of down nodes are gone at once). */
  members(group: string): Pid[] {
    checkName('group', group);
    return this.#groups.members(group);
  }

  /** The groups with at least one member this node knows of, sorted. */
  groups(): string[] {
    return this.#groups.names();
  }

  /** Counts for leak checks: names held here, renewals and reaps pending, group memberships held here. */
  internals(): { owned: number; reaps: number; joined: number; inflight: number } {
    return { owned: this.#owned.size, reaps: this.#reaps.size, joined: this.#groups.joinedCount, inflight: this.#inflight.size };
  }

  /** Stops the registry: releases this node's names and memberships, stops the watch, closes a connection it opened. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    this.#stopped = true;
    this.#removeShutdown?.();
    this.#kernel.telemetry.detach(this.#telemetryId);
    clearInterval(this.#renewTimer);
    for (const t of this.#reaps.values()) clearTimeout(t);
    this.#reaps.clear();
    for (const own of [...this.#owned.values()]) void this.#release(own, 'stopped');
    this.#groups.leaveAll();
    if (this.#router !== undefined && !isDead(this.#router)) this.#kernel.die(this.#router, 'shutdown');
    void this.#track(this.#kv.delete(syncKey(this.#kernel.name, this.#kernel.creation))).catch(() => undefined);
    while (this.#inflight.size > 0) await Promise.allSettled([...this.#inflight]);
    this.#watch?.stop();
    for (const w of this.#syncWaiters) w.resolve();
    this.#syncWaiters.clear();
    await this.#close();
  }

  // ---- the watch ------------------------------------------------------------------------------

  #apply(e: KvWatchEntry): void {
    if (e.revision > this.#seen) this.#seen = e.revision;
    const parsed = parseKey(e.key, e.operation === 'PUT' ? e.value : undefined);
    if (parsed.kind === 'name') {
      if (e.operation === 'PUT' && parsed.record === undefined) this.#kernel.telemetry.execute('keel.global.malformed', { count: 1 }, { key: e.key });
      this.#nameChanged(parsed.name, parsed.record, e.revision);
    } else if (parsed.kind === 'member') this.#groups.changed(e.key, parsed, e.operation === 'PUT');
    else if (parsed.kind === 'sync') {
      // the sync key of a dead incarnation (a crash skipped its stop): it never comes back, so it goes
      if (e.operation === 'PUT' && parsed.node !== undefined && parsed.inc !== undefined && !this.#alive(parsed.node, parsed.inc) && !this.#stopped) {
        void this.#track(this.#kv.delete(e.key)).catch(() => undefined);
      }
    }
    else if (parsed.kind === 'unknown') this.#kernel.telemetry.execute('keel.global.malformed', { count: 1 }, { key: e.key });
    for (const w of [...this.#syncWaiters]) {
      if (w.revision > this.#seen) continue;
      this.#syncWaiters.delete(w);
      w.resolve();
    }
  }

  #nameChanged(name: string, record: NameRecord | undefined, revision: number): void {
    if (record === undefined) this.#names.delete(name);
    else this.#names.set(name, { record, revision });
    const own = this.#owned.get(name);
    if (own !== undefined && revision > own.revision) {
      const mine = record !== undefined && record.node === this.#kernel.name && record.inc === this.#kernel.creation && record.id === own.pid.id;
      if (mine) own.revision = revision;
      else this.#lose(own);
    }
    if (record !== undefined && (!this.#alive(record.node, record.inc) || this.#expired(record))) this.#scheduleReap(name);
  }

  // ---- leases ---------------------------------------------------------------------------------

  #renew(): void {
    // names whose owner stopped renewing without anyone seeing its node go down (it died before this
    // node started, or while nobody watched): past lease + margin the owner has fenced itself
    for (const [name, entry] of this.#names) if (!this.#owned.has(name) && this.#expired(entry.record)) this.#scheduleReap(name);
    for (const own of [...this.#owned.values()]) {
      if (own.renewing) continue;
      if (leaseOver(own)) {
        this.#fence(own);
        continue;
      }
      own.renewing = true;
      const until = performance.now() + this.#leaseMs;
      const deadline = Date.now() + this.#leaseMs;
      const value = encodeRecord({ node: this.#kernel.name, inc: this.#kernel.creation, id: own.pid.id, lease: deadline });
      this.#track(this.#kv.update(own.key, value, own.revision)).then(
        (revision) => {
          own.renewing = false;
          if (own.released || this.#owned.get(own.name) !== own) {
            // dropped (fenced, released) meanwhile: this revision is ours, so it goes
            void this.#track(this.#kv.delete(own.key, { previousSeq: revision })).catch(() => undefined);
            return;
          }
          if (revision > own.revision) own.revision = revision;
          own.deadline = deadline;
          own.until = until;
          this.#armFence(own);
          this.#kernel.telemetry.execute('keel.global.renewed', {}, { name: own.name, pid: own.pid, revision, deadline });
        },
        (e: unknown) => {
          own.renewing = false;
          if (this.#owned.get(own.name) !== own) {
            // released meanwhile: the revision it knew is still the last one written
            if (own.released) void this.#track(this.#kv.delete(own.key, { previousSeq: own.revision })).catch(() => undefined);
            return;
          }
          if (isCasFailure(e)) this.#lose(own);
          else this.#kernel.telemetry.execute('keel.global.renew_failed', { count: 1 }, { name: own.name, pid: own.pid, error: e });
        },
      );
    }
  }

  #armFence(own: Owned): void {
    if (own.fence !== undefined) clearTimeout(own.fence);
    own.fence = setTimeout(() => {
      own.fence = undefined;
      if (this.#owned.get(own.name) === own && leaseOver(own)) this.#fence(own);
      else if (this.#owned.get(own.name) === own) this.#armFence(own);
    }, Math.max(0, Math.ceil(Math.min(own.until - performance.now(), own.deadline - Date.now()))));
  }

  /** The lease ran out on this node's clock: the process stops acting (killed), and the name is freed if still ours. */
  #fence(own: Owned): void {
    this.#drop(own);
    this.#kernel.telemetry.execute('keel.global.fenced', {}, { name: own.name, pid: own.pid });
    if (!isDead(own.proc)) this.#kernel.die(own.proc, { shutdown: { fenced: own.name } });
    this.#releaseKv(own);
  }

  /** Another owner holds the name now: the process is told with a trappable exit signal. */
  #lose(own: Owned): void {
    this.#drop(own);
    this.#kernel.telemetry.execute('keel.global.name_conflict', {}, { name: own.name, pid: own.pid });
    if (!isDead(own.proc)) this.#kernel.exitSignal(own.pid, 'node', { shutdown: { name_conflict: own.name } });
  }

  async #release(own: Owned, reason: 'exit' | 'unregistered' | 'stopped'): Promise<void> {
    if (this.#owned.get(own.name) !== own) return;
    this.#drop(own);
    this.#kernel.telemetry.execute('keel.global.released', {}, { name: own.name, pid: own.pid, reason });
    await this.#releaseKv(own);
  }

  #drop(own: Owned): void {
    this.#owned.delete(own.name);
    if (own.fence !== undefined) clearTimeout(own.fence);
    own.fence = undefined;
    own.unhook?.();
    own.unhook = undefined;
  }

  /** Deletes the name by CAS on our revision (a renewal in flight deletes its own when it lands). */
  #releaseKv(own: Owned): Promise<void> {
    own.released = true;
    if (own.renewing) return Promise.resolve();
    return this.#track(this.#kv.delete(own.key, { previousSeq: own.revision })).catch(() => undefined);
  }

  // ---- delivery -------------------------------------------------------------------------------

  #routed(m: unknown): void {
    if (!Array.isArray(m) || m.length !== 3 || m[0] !== 'gs' || typeof m[1] !== 'string') return;
    try {
      this.#deliverLocal(m[1], m[2]);
    } catch (error) {
      // the router outlives whatever one message does (a throwing event handler)
      this.#kernel.telemetry.execute('keel.global.undeliverable', { count: 1 }, { name: m[1], reason: 'error', error });
    }
  }

  /** Hands a global-name message to its owner here, only while the lease is valid on this clock. */
  #deliverLocal(name: string, message: unknown): boolean {
    const own = this.#owned.get(name);
    if (own === undefined) return this.#undeliverable(name, 'not_owner', message);
    if (leaseOver(own)) {
      this.#fence(own);
      return this.#undeliverable(name, 'fenced', message);
    }
    const delivery = this.#kernel.deliver(undefined, own.pid, message);
    if (delivery === Delivery.Enqueued) return true;
    return this.#undeliverable(name, delivery === Delivery.MailboxFull ? 'mailbox_full' : 'noproc', message);
  }

  #undeliverable(name: string, reason: string, message: unknown): false {
    this.#kernel.telemetry.execute('keel.global.undeliverable', { count: 1 }, { name, reason, message });
    return false;
  }

  // ---- nodes ----------------------------------------------------------------------------------

  #nodeDown(node: string, inc: number): void {
    this.#down.add(`${node}:${inc}`);
    if (this.#down.size > DOWN_REMEMBERED) this.#down.delete(this.#down.values().next().value!);
    for (const [name, entry] of this.#names) if (entry.record.node === node && entry.record.inc === inc) this.#scheduleReap(name);
    this.#groups.reapNode(node, (i) => i === inc);
    if (!this.#stopped) void this.#track(this.#kv.delete(syncKey(node, inc))).catch(() => undefined);
  }

  #nodeUp(node: string, inc: number): void {
    if (!this.#down.delete(`${node}:${inc}`)) return;
    for (const [name, entry] of this.#names) {
      if (entry.record.node !== node || entry.record.inc !== inc) continue;
      const t = this.#reaps.get(name);
      if (t !== undefined) clearTimeout(t);
      this.#reaps.delete(name);
    }
  }

  /** Reaps `name` once its owner's lease plus the margin has passed here: CAS delete on the revision read. */
  #scheduleReap(name: string): void {
    if (this.#stopped || this.#reaps.has(name)) return;
    const entry = this.#names.get(name);
    if (entry === undefined) return;
    const wait = Math.max(0, entry.record.lease + this.#marginMs + 1 - Date.now());
    this.#reaps.set(
      name,
      setTimeout(() => {
        this.#reaps.delete(name);
        const current = this.#names.get(name);
        if (current === undefined || this.#owned.has(name)) return;
        if (!this.#expired(current.record)) {
          // not yet due: wait on for a node seen down (a node back up cleared it); a renewed lease is left alone
          if (!this.#alive(current.record.node, current.record.inc)) this.#scheduleReap(name);
          return;
        }
        this.#track(this.#kv.delete(nameKey(name), { previousSeq: current.revision })).then(
          () => this.#kernel.telemetry.execute('keel.global.reaped', {}, { name, pid: this.#pid(current.record.node, current.record.inc, current.record.id), lease: current.record.lease, revision: current.revision }),
          () => undefined, // renewed or reaped by another node: the watch brings the news (and a new reap if still due)
        );
      }, wait),
    );
  }

  // ---- helpers --------------------------------------------------------------------------------

  /** False for a node this node saw go down, and for an earlier incarnation of this node. */
  #alive(node: string, inc: number): boolean {
    if (node === this.#kernel.name) return inc === this.#kernel.creation;
    return !this.#down.has(`${node}:${inc}`);
  }

  #visible(name: string): Entry | undefined {
    const entry = this.#names.get(name);
    return entry !== undefined && this.#alive(entry.record.node, entry.record.inc) && !this.#expired(entry.record) ? entry : undefined;
  }

  /** True once `record`'s lease plus the margin has passed on this clock: its owner has fenced itself, the name may be taken. */
  #expired(record: NameRecord): boolean {
    return Date.now() > record.lease + this.#marginMs;
  }

  #pid(node: string, inc: number, id: number): Pid {
    const pid = new PidImpl(node, inc, id, undefined);
    return node === this.#kernel.name ? (this.#kernel.resolve(pid)?.self ?? pid) : pid;
  }

  #localProc(pid: Pid): Proc {
    if (!isPid(pid)) throw new InvalidArgumentError('pid', 'a Pid', pid);
    if (pid.node !== this.#kernel.name) throw new InvalidArgumentError('pid', `a pid of this node (${this.#kernel.name}): a node renews the leases of its own processes only`, pid);
    const proc = this.#kernel.resolve(pid);
    if (proc === undefined) throw new NoProcError(String(pid), 'cannot register a process that is not alive');
    return proc;
  }

  #checkRunning(operation: string): void {
    if (this.#stopped || this.#kernel.stopping) throw new NodeStoppedError(this.#kernel.name, `GlobalRegistry.${operation}`);
  }

  #track<T>(work: Promise<T>): Promise<T> {
    this.#kernel.trackIo(work).catch(() => undefined);
    this.#inflight.add(work);
    const done = (): void => void this.#inflight.delete(work);
    work.then(done, done);
    return work;
  }
}

/** The longest lease or margin (ms): a lease plus its margin must stay within a Node timer's range (2^31 - 1 ms), past which timers fire at once. */
const MAX_MS = 2 ** 30;

/**
 * Whether an owner's lease ran out on this node: on either clock. The monotonic one is immune to a
 * wall clock stepped back (NTP); the wall clock counts a machine's suspension, which a monotonic
 * clock may not. Either one past the deadline, and the owner stops acting.
 */
function leaseOver(own: Owned): boolean {
  return performance.now() >= own.until || Date.now() >= own.deadline;
}

function positive(value: number | undefined, argument: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0) || !(value <= MAX_MS)) throw new InvalidArgumentError(argument, `a positive number of milliseconds, at most ${MAX_MS}`, value);
  return value;
}
