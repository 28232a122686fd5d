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
 * - A name is released by compare-and-set delete when its process dies, is fenced or is unregistered; the names
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
 *
 * This file keeps the public face; the watch that feeds the cache is in `Watch.ts`, the syncs waiting
 * on it in `SyncWaiters.ts`, the leases of the names held here in `Leases.ts`, the reaping of dead
 * owners' names in `Reaper.ts`, groups in `Groups.ts`, the start's options in `options.ts`.
 */
import type { KV } from '@nats-io/kv';
import { InvalidArgumentError, NameTakenError, NodeStoppedError, NoProcError } from '../../errors.js';
import { Delivery, isDead, type Kernel, kernelOf, type Proc } from '../../runtime/kernel.js';
import { isPid, type Pid, PidImpl } from '../../runtime/Pid.js';
import type { Node } from '../../runtime/types.js';
import type { Cluster } from '../Cluster.js';
import { Groups } from './Groups.js';
import { Leases, leaseOver, type Owned } from './Leases.js';
import { sweepMarkers } from './Markers.js';
import { type GlobalOptions, positive, readOptions, type Settings } from './options.js';
import { Reaper } from './Reaper.js';
import { type Bucket, checkName, decodeRecord, encodeRecord, type Entry, isCasFailure, nameKey, openBucket, ownerPid, syncKey } from './store.js';
import { SyncWaiters } from './SyncWaiters.js';
import { Watch } from './Watch.js';
import { within } from '../internal/within.js';

/** How long a node's shutdown waits for its registry's stop (ms of real time). */
const STOP_WAIT_MS = 2000;

export { conflictName, fencedName, type GlobalExitReason } from './Leases.js';
export type { GlobalOptions } from './options.js';

/** Numbers each registry's telemetry handler: a second start on the same node and bucket (it fails) must not detach the first's. */
let started = 0;

export class GlobalRegistry {
  readonly #kernel: Kernel;
  readonly #cluster: Cluster;
  readonly #kv: KV;
  readonly #close: () => Promise<void>;
  readonly #purgeThrough: (key: string, revision: number) => Promise<number>;
  readonly #leaseMs: number;
  readonly #markerGraceMs: number;
  readonly #routerName: string;
  readonly #names = new Map<string, Entry>();
  readonly #leases: Leases;
  readonly #reaper: Reaper;
  readonly #inflight = new Set<Promise<unknown>>();
  /**
   * This node's `register` and `unregister` calls of each name, and the deletes of names whose
   * process died or was fenced, as the last one's settling: each runs once the one before it settled (OTP's
   * `global` serialises one node's operations on a name), so an unregister called while a register
   * is on its way releases what it got, and a register called after the holder died writes once the
   * release's delete was answered.
   */
  readonly #serial = new Map<string, Promise<void>>();
  readonly #syncs: SyncWaiters;
  readonly #watch: Watch;
  readonly #syncTimeoutMs: number;
  readonly #telemetryId: string;
  readonly #groups: Groups;
  #renewTimer: NodeJS.Timeout | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweeping: Promise<number> | undefined;
  #router: Proc | undefined;
  #stopped = false;
  #stopping: Promise<void> | undefined;
  #removeShutdown: (() => void) | undefined;

  private constructor(kernel: Kernel, cluster: Cluster, bucket: Bucket, name: string, times: Omit<Settings, 'cluster' | 'bucket'>) {
    const { leaseMs, marginMs } = times;
    const kv = bucket.kv;
    this.#kernel = kernel;
    this.#cluster = cluster;
    this.#kv = kv;
    this.#close = bucket.close;
    this.#purgeThrough = bucket.purgeThrough;
    this.#leaseMs = leaseMs;
    this.#markerGraceMs = times.markerGraceMs;
    this.#syncTimeoutMs = times.syncTimeoutMs;
    this.#routerName = `keel.global.${name}`;
    this.#telemetryId = `keel.global.${name}.${kernel.name}.${kernel.creation}.${++started}`;
    const track = <T>(work: Promise<T>): Promise<T> => this.#track(work);
    // a holder that died or was fenced is dropped at once (nothing renews it), and its name deleted in
    // the name's turn: a register called after the death or the fence waits for the delete (OTP's
    // global frees the name as it handles the exit), it does not find it taken
    const freed = (own: Owned): void => void this.#inOrder(own.name, () => this.#deleted(own));
    this.#leases = new Leases({ kernel, kv, leaseMs, track, freed });
    this.#reaper = new Reaper({ kernel, kv, marginMs, names: this.#names, owns: (name) => this.#leases.has(name), stopped: () => this.#stopped, track });
    this.#groups = new Groups({
      kernel,
      kv,
      visible: (node, inc) => this.#reaper.alive(node, inc),
      connected: (node, inc) => this.#cluster.incarnationOf(node) === inc,
      stopped: () => this.#stopped,
      track: (work) => this.#track(work),
    });
    const stopped = (): boolean => this.#stopped;
    this.#syncs = new SyncWaiters({ kernel, seen: () => this.#watch.seen, stopped, waiting: () => this.#watch.stalls() });
    this.#watch = new Watch({
      kernel,
      kv,
      names: this.#names,
      leases: this.#leases,
      reaper: this.#reaper,
      groups: this.#groups,
      stopped,
      waiting: () => this.#syncs.size > 0,
      reached: (seen) => this.#syncs.reached(seen),
      track,
    });
  }

  /**
   * Starts `node`'s global registry: opens (or creates) the bucket, loads every name and group
   * member into the local cache, and resolves once the cache holds what the bucket held. One
   * registry per node and bucket; it stops when the node shuts down (during the start too: the
   * start then rejects with `ERR_NODE_STOPPED`, what it began stopped).
   */
  static async start(node: Node, options: GlobalOptions): Promise<GlobalRegistry> {
    const kernel = kernelOf(node, 'node');
    if (kernel.stopping) throw new NodeStoppedError(kernel.name, 'GlobalRegistry.start');
    const { cluster, bucket, ...times } = readOptions(kernel, options);
    const opened = await kernel.trackIo(openBucket(options, bucket));
    const registry = new GlobalRegistry(kernel, cluster, opened, bucket, times);
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
      else {
        this.#reaper.nodeUp(node, inc);
        // a peer (back) up may have reaped this node's member keys while it took this node for down
        if (!this.#stopped) this.#groups.reassert();
      }
    });
    // a node shut down while the start syncs stops the registry, and the start fails with ERR_NODE_STOPPED
    // the node's shutdown waits for the stop (its names and memberships released in the bucket, so
    // its peers see them go at once), for STOP_WAIT_MS at most: NATS gone answers nothing until the
    // client's request timeouts, and the stop goes on in the background past that
    this.#removeShutdown = kernel.onShutdown(() => within(this.stop(), STOP_WAIT_MS));
    await this.#watch.open(undefined);
    await this.sync();
    // stopped in the turns since the sync checked (the node's shutdown): nothing is armed after the stop
    if (this.#stopped) throw new NodeStoppedError(kernel.name, 'GlobalRegistry.start');
    // what an earlier incarnation of this node left behind is dead for sure
    this.#reaper.reapEarlierIncarnations();
    this.#groups.reapNode(kernel.name, (inc) => inc !== kernel.creation);
    this.#renewTimer = setInterval(() => {
      this.#reaper.reapExpired();
      this.#leases.renewAll();
      this.#groups.retry();
    }, Math.max(1, Math.floor(this.#leaseMs / 3)));
    // every node sweeps, at its own moments (a restart does not sweep at once; two sweeps at once are harmless)
    const every = Math.max(1000, this.#markerGraceMs / 2);
    this.#sweepTimer = setTimeout(() => {
      this.#sweepTimer = setInterval(() => void this.sweepMarkers().catch(() => undefined), every);
      void this.sweepMarkers().catch(() => undefined);
    }, every * (0.5 + Math.random() / 2));
  }

  // ---- names ----------------------------------------------------------------------------------

  /**
   * Registers `name` for `pid`, a live process of this node, cluster-wide: rejects with
   * `ERR_NAME_TAKEN` when another process holds it (or won a concurrent registration), `ERR_NOPROC`
   * when the process is not alive (or died meanwhile). A name whose owner's lease ran out more than
   * `marginMs` ago is taken over. Registering the name its process already holds again is a no-op
   * (registered once); a name the bucket holds for this very process though this node does not (a
   * register whose answer was lost) is taken back.
   * This node's `register` and `unregister` calls of one name run one after the other, in call order,
   * and after the release of the name by a holder that died or was fenced before the call.
   */
  async register(name: string, pid: Pid): Promise<void> {
    checkName('name', name);
    this.#checkRunning('register');
    const proc = this.#localProc(pid);
    return this.#inOrder(name, async () => {
      // checked when its turn comes: a register or unregister called before it has settled
      const held = this.#leases.get(name);
      if (held !== undefined) {
        if (held.proc === proc) return;
        throw new NameTakenError(name, String(held.pid));
      }
      this.#checkRunning('register');
      if (isDead(proc)) throw new NoProcError(String(proc.self), 'cannot register a global name for a process that is not alive');
      return this.#register(name, proc);
    });
  }

  /** Runs `operation` on `name` once this node's register, unregister or release of it begun before has settled (at once when none is on its way). */
  #inOrder<T>(name: string, operation: () => Promise<T>): Promise<T> {
    const before = this.#serial.get(name);
    const run = before === undefined ? operation() : before.then(operation);
    const settled: Promise<void> = run.then(
      () => undefined,
      () => undefined,
    );
    this.#serial.set(name, settled);
    void settled.then(() => {
      if (this.#serial.get(name) === settled) this.#serial.delete(name);
    });
    return run;
  }

  async #register(name: string, proc: Proc): Promise<void> {
    const key = nameKey(name);
    const until = performance.now() + this.#leaseMs;
    const deadline = Date.now() + this.#leaseMs;
    const value = encodeRecord({ node: this.#kernel.name, inc: this.#kernel.creation, id: proc.self.id, lease: deadline });
    let revision: number;
    try {
      revision = await this.#track(this.#kv.create(key, value));
    } catch (e) {
      if (!isCasFailure(e)) throw e;
      revision = await this.#takeOver(name, key, value, proc);
    }
    if (this.#stopped || isDead(proc) || this.#leases.has(name)) {
      // undone before this register settles: the next operation on the name in this node's order (a
      // register called after the process died) must not find the write of a dead process
      await this.#track(this.#kv.delete(key, { previousSeq: revision })).catch(() => undefined);
      if (this.#stopped) throw new NodeStoppedError(this.#kernel.name, 'GlobalRegistry.register');
      throw new NoProcError(String(proc.self), 'cannot register a global name for a process that is not alive');
    }
    this.#leases.hold(name, key, proc, revision, deadline, until);
    // read your own write, as after erlang's global:register_name: this node's cache knows the name
    // now, not when the watch brings it back (and the watch's older entries of it are ignored)
    this.#watch.wrote(name, { node: this.#kernel.name, inc: this.#kernel.creation, id: proc.self.id, lease: deadline }, revision);
  }

  /**
   * A name the bucket holds: taken back when its record is `proc`'s own (CAS on the revision read),
   * taken over when its lease ran out `marginMs` ago (the same way), else `ERR_NAME_TAKEN`.
   */
  async #takeOver(name: string, key: string, value: string, proc: Proc): Promise<number> {
    const entry = await this.#track(this.#kv.get(key));
    try {
      if (entry === null || entry.operation !== 'PUT') return await this.#track(this.#kv.create(key, value));
      const record = decodeRecord(entry.value);
      // this very process's record, which this node does not hold (a register whose write landed and
      // whose answer was lost, an unregister whose delete did not): the name is its own already
      const kernel = this.#kernel;
      if (record !== undefined && record.node === kernel.name && record.inc === kernel.creation && record.id === proc.self.id) return await this.#track(this.#kv.update(key, value, entry.revision));
      if (record !== undefined && !this.#reaper.expired(record)) throw new NameTakenError(name, String(new PidImpl(record.node, record.inc, record.id)));
      const revision = await this.#track(this.#kv.update(key, value, entry.revision));
      this.#kernel.telemetry.execute('keel.global.taken_over', {}, { name, previous: record === undefined ? undefined : new PidImpl(record.node, record.inc, record.id) });
      return revision;
    } catch (e) {
      if (isCasFailure(e)) throw new NameTakenError(name, 'a process of another node (it registered first)');
      throw e;
    }
  }

  /**
   * Releases `name` if a process of this node holds it; false otherwise. Called while a `register`
   * of the name by this node is on its way, it waits for it (and releases what it got).
   */
  async unregister(name: string): Promise<boolean> {
    checkName('name', name);
    return this.#inOrder(name, () => this.#unregister(name));
  }

  async #unregister(name: string): Promise<boolean> {
    const own = this.#leases.get(name);
    if (own === undefined) return false;
    await this.#release(own, 'unregistered');
    return true;
  }

  /** Releases `own` (unregistered) if it is still held, then reads its own delete. */
  async #release(own: Owned, reason: 'unregistered'): Promise<void> {
    // dropped meanwhile (its process died, fenced, lost to another owner): nothing of ours left to delete
    if (this.#leases.get(own.name) !== own) return;
    await this.#leases.release(own, reason);
    this.#forget(own);
  }

  /** Deletes the name of `own`, dropped when its process died or was fenced, then reads its own delete. */
  async #deleted(own: Owned): Promise<void> {
    await this.#leases.deleteKey(own);
    this.#forget(own);
  }

  /** `own`'s delete was answered (or failed): this node's cache forgets it unless it shows a later holder. */
  #forget(own: Owned): void {
    const name = own.name;
    // read your own delete, as after erlang's global:unregister_name: this node's cache forgets the
    // name now, not when the watch brings the delete back, unless it already shows a later holder
    // (another node's, or this process's again after a new register); the watch's older entries of
    // the name, the registration among them, are ignored
    const cached = this.#names.get(name);
    if (cached !== undefined && !this.#leases.has(name) && cached.record.node === this.#kernel.name && cached.record.inc === this.#kernel.creation && cached.record.id === own.pid.id) {
      this.#watch.wrote(name, undefined, Math.max(own.revision, cached.revision));
    }
  }

  /** The pid holding `name` as this node's cache knows it (no round trip); undefined when nobody does or its node is down. */
  whereis(name: string): Pid | undefined {
    checkName('name', name);
    const entry = this.#reaper.visible(name);
    return entry === undefined ? undefined : ownerPid(this.#kernel, entry.record.node, entry.record.inc, entry.record.id);
  }

  /** Every name this node's cache knows a live owner of, sorted. */
  names(): string[] {
    return [...this.#names.keys()].filter((n) => this.#reaper.visible(n) !== undefined).sort();
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
    const entry = this.#reaper.visible(name);
    if (entry === undefined) return this.#undeliverable(name, 'no_name', message);
    const { node } = entry.record;
    if (node === this.#kernel.name) return this.#deliverLocal(name, message);
    if (!this.#cluster.isConnected(node)) return this.#undeliverable(name, 'noconnection', message);
    this.#cluster.send(node, this.#routerName, ['gs', name, message]);
    return true;
  }

  /**
   * Resolves once this node's cache holds everything written to the bucket before the call; rejects
   * with `SyncTimeoutError` (`ERR_SYNC_TIMEOUT`) when the watch has not brought that far within
   * `timeoutMs` (default the registry's `syncTimeoutMs`, 30,000) of the call, its own write included;
   * with `NodeStoppedError` (`ERR_NODE_STOPPED`) at once when the registry stops meanwhile, its own
   * write still unanswered included. The waiting is `SyncWaiters.ts`'s.
   */
  async sync(options?: { readonly timeoutMs?: number }): Promise<void> {
    this.#checkRunning('sync');
    if (options !== undefined && (typeof options !== 'object' || options === null)) throw new InvalidArgumentError('options', 'an object such as { timeoutMs }', options);
    const timeoutMs = positive(options?.timeoutMs, 'options.timeoutMs', this.#syncTimeoutMs);
    const kernel = this.#kernel;
    return this.#syncs.sync(() => this.#track(this.#kv.put(syncKey(kernel.name, kernel.creation), String(Date.now()))), timeoutMs);
  }

  // ---- process groups -------------------------------------------------------------------------

  /** Adds `pid` (a live process of this node) to `group` cluster-wide; it leaves when it dies. Joining twice is a no-op. `ERR_NODE_STOPPED` when the registry stops before the write landed. */
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

  /** Counts for leak checks: names held here, renewals and reaps pending, group memberships held here, syncs waiting. */
  internals(): { owned: number; reaps: number; joined: number; inflight: number; syncWaiters: number } {
    return { owned: this.#leases.size, reaps: this.#reaper.pending, joined: this.#groups.joinedCount, inflight: this.#inflight.size, syncWaiters: this.#syncs.size };
  }

  /**
   * Removes the bucket's delete markers older than `markerGraceMs` now (each node also does it every
   * `markerGraceMs / 2`): a delete leaves a marker on its key, and without a sweep the bucket, and the
   * time a node takes to read it at start, would grow with every name and group member that ever
   * left. A key written again after its marker keeps that write. Resolves with how many markers
   * went (those another node's sweep removed first are not counted); a sweep already running is
   * joined. Emits `keel.global.swept`, or `keel.global.sweep_failed` and rejects.
   */
  sweepMarkers(): Promise<number> {
    if (this.#stopped) return Promise.reject(new NodeStoppedError(this.#kernel.name, 'GlobalRegistry.sweepMarkers'));
    if (this.#sweeping !== undefined) return this.#sweeping;
    const telemetry = this.#kernel.telemetry;
    const sweep = this.#track(sweepMarkers(this.#kv, this.#purgeThrough, this.#markerGraceMs)).then(
      (count) => {
        telemetry.execute('keel.global.swept', { count }, {});
        return count;
      },
      (error: unknown) => {
        telemetry.execute('keel.global.sweep_failed', { count: 1 }, { error });
        throw error;
      },
    );
    const done = (): void => {
      this.#sweeping = undefined;
    };
    sweep.then(done, done);
    this.#sweeping = sweep;
    return sweep;
  }

  /** Stops the registry: releases this node's names and memberships, stops the watch, closes a connection it opened. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    this.#stopped = true;
    // a sync waiting fails at once, as a call to a server that stops: the cache is kept in sync no more
    this.#syncs.stop();
    this.#removeShutdown?.();
    this.#kernel.telemetry.detach(this.#telemetryId);
    clearInterval(this.#renewTimer);
    clearTimeout(this.#sweepTimer); // a timeout, then an interval: clearTimeout clears either
    this.#reaper.stop();
    this.#leases.releaseAll();
    this.#groups.leaveAll();
    // no router: a start that failed before it began (another registry of this node runs on the
    // bucket, and the sync key is that one's)
    if (this.#router !== undefined) {
      if (!isDead(this.#router)) this.#kernel.die(this.#router, 'shutdown');
      void this.#track(this.#kv.delete(syncKey(this.#kernel.name, this.#kernel.creation))).catch(() => undefined);
    }
    // the writes on their way, and those still queued behind another of their name's (a dead holder's
    // delete): a stopped registry leaves no name of its dead processes behind
    while (this.#inflight.size > 0 || this.#serial.size > 0) await Promise.allSettled([...this.#inflight, ...this.#serial.values()]);
    this.#watch.stop();
    await this.#close();
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
    const own = this.#leases.get(name);
    if (own === undefined) return this.#undeliverable(name, 'not_owner', message);
    if (leaseOver(own)) {
      this.#leases.fence(own);
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
    this.#reaper.nodeDown(node, inc);
    this.#groups.reapNode(node, (i) => i === inc);
    if (!this.#stopped) void this.#track(this.#kv.delete(syncKey(node, inc))).catch(() => undefined);
  }

  // ---- helpers --------------------------------------------------------------------------------

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
