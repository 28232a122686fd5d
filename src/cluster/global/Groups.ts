/**
 * @internal Process groups across nodes (Erlang's `pg`), kept as one KV key per member:
 * `g.<group>.<node>.<incarnation>.<pid id>`. A join is a put, a leave or the member's death a delete,
 * and every node's cache is fed by the registry's one watch. Members of a node that went down are
 * hidden at once and their keys deleted by every survivor (idempotent: a key names one incarnation's
 * process, which never comes back, so no compare-and-set is needed).
 *
 * `members` shows, as Erlang's `pg`, the members on this node and on the peers this node is
 * connected to (as the incarnation it knows): the key a member of a node that died unseen left
 * behind is not shown, and is deleted when its node's next incarnation is seen.
 *
 * Why KV rather than a broadcast of joins and leaves over the cluster: a node that joins late (or
 * comes back) reads the whole membership from the bucket with the same watch that feeds the names,
 * with no state exchange of its own, and two nodes never disagree for longer than the watch's lag.
 */
import type { KV } from '@nats-io/kv';
import { NodeStoppedError } from '../../errors.js';
import { isDead, type Kernel, type Proc } from '../../runtime/kernel.js';
import { type Pid, PidImpl } from '../../runtime/Pid.js';
import { memberKey } from './store.js';

interface Member {
  readonly node: string;
  readonly inc: number;
  readonly id: number;
}

interface Joined {
  readonly group: string;
  readonly proc: Proc;
  /** The put in flight (or done): a leave waits for it, so a late put never resurrects a member. */
  op: Promise<unknown>;
  /** Its key was put back once since the last node up (see `changed`). */
  putBack: boolean;
  unhook: (() => void) | undefined;
}

export interface GroupsHost {
  readonly kernel: Kernel;
  readonly kv: KV;
  /** False for a node seen down, or an earlier incarnation of this node. */
  visible(node: string, inc: number): boolean;
  /** True when `node` is up in this node's cluster as incarnation `inc` (a peer this node can reach). */
  connected(node: string, inc: number): boolean;
  /** True once the registry stopped (its memberships are left). */
  stopped(): boolean;
  track<T>(work: Promise<T>): Promise<T>;
}

export class Groups {
  readonly #host: GroupsHost;
  /** group -> key -> member, as the watch tells. */
  readonly #members = new Map<string, Map<string, Member>>();
  /** key -> a membership of a process of this node. */
  readonly #joined = new Map<string, Joined>();
  /** key -> the delete of a membership that left, while on its way (a join again waits for it). */
  readonly #leaving = new Map<string, Promise<void>>();
  /**
   * Keys of memberships that left whose delete failed (NATS did not answer): nothing else would
   * delete them while this node lives (a member key has no lease), and the other nodes would list
   * the process for good. Deleted again at each `retry` (the registry's renewal tick) and at the stop.
   */
  readonly #orphans = new Set<string>();

  constructor(host: GroupsHost) {
    this.#host = host;
  }

  get joinedCount(): number {
    return this.#joined.size;
  }

  async join(group: string, proc: Proc): Promise<void> {
    const kernel = this.#host.kernel;
    const key = memberKey(group, kernel.name, kernel.creation, proc.self.id);
    const existing = this.#joined.get(key);
    if (existing !== undefined) {
      await existing.op;
      this.#checkKept(key, existing);
      return;
    }
    this.#orphans.delete(key); // joined again: its key is wanted
    // a leave of the same membership still on its way: its delete goes first, so it cannot undo this put
    const leaving = this.#leaving.get(key);
    const put = leaving === undefined ? this.#host.kv.put(key, '1') : leaving.then(() => this.#host.kv.put(key, '1'));
    const joined: Joined = { group, proc, op: this.#host.track(put), putBack: false, unhook: undefined };
    this.#joined.set(key, joined);
    joined.unhook = kernel.onProcExit(proc, () => void this.#drop(key, joined));
    if (joined.unhook === undefined) void this.#drop(key, joined); // died before the hook
    try {
      await joined.op;
    } catch (e) {
      // the write failed (it may have landed all the same): no membership is left, its key goes, and a join again starts afresh
      void this.#drop(key, joined);
      throw e;
    }
    this.#checkKept(key, joined);
  }

  /** A join whose membership the registry's stop left while its write was on its way fails as a call to a stopped server does. */
  #checkKept(key: string, joined: Joined): void {
    if (this.#host.stopped() && this.#joined.get(key) !== joined) throw new NodeStoppedError(this.#host.kernel.name, 'GlobalRegistry.join');
  }

  async leave(group: string, pid: Pid): Promise<boolean> {
    const kernel = this.#host.kernel;
    if (pid.node !== kernel.name || pid.creation !== kernel.creation) return false;
    const key = memberKey(group, kernel.name, kernel.creation, pid.id);
    const joined = this.#joined.get(key);
    if (joined === undefined) return false;
    await this.#drop(key, joined);
    return true;
  }

  /** Leaves every group, and tries once more the deletes that failed (the registry stops). */
  leaveAll(): void {
    for (const [key, joined] of [...this.#joined]) void this.#drop(key, joined);
    const orphans = [...this.#orphans];
    this.#orphans.clear();
    for (const key of orphans) void this.#host.track(this.#host.kv.delete(key)).catch(() => undefined);
  }

  async #drop(key: string, joined: Joined): Promise<void> {
    if (this.#joined.get(key) !== joined) return;
    this.#joined.delete(key);
    joined.unhook?.();
    joined.unhook = undefined;
    await this.#delete(key, joined.op.catch(() => undefined));
  }

  /** Deletes a key whose membership left, once `after` settled; a failed delete is an orphan, tried again at the next `retry`. */
  async #delete(key: string, after: Promise<unknown>): Promise<void> {
    const gone = this.#host.track(after.then(() => this.#host.kv.delete(key))).then(
      () => undefined,
      () => {
        if (!this.#joined.has(key)) this.#orphans.add(key);
      },
    );
    this.#leaving.set(key, gone);
    await gone;
    if (this.#leaving.get(key) === gone) this.#leaving.delete(key);
  }

  /** Deletes again the keys whose delete failed (see {@link Groups.#orphans}). */
  retry(): void {
    for (const key of [...this.#orphans]) {
      this.#orphans.delete(key);
      if (this.#joined.has(key)) continue;
      void this.#delete(key, this.#leaving.get(key) ?? Promise.resolve());
    }
  }

  members(group: string): Pid[] {
    const kernel = this.#host.kernel;
    const out: Pid[] = [];
    for (const m of this.#members.get(group)?.values() ?? []) {
      // as Erlang's pg: the members of the nodes this node is connected to (a member of a node
      // nobody saw go down, which left its key behind, is not shown)
      if (m.node === kernel.name || !this.#host.visible(m.node, m.inc)) continue;
      if (this.#host.connected(m.node, m.inc)) out.push(new PidImpl(m.node, m.inc, m.id));
    }
    // this node's own members are what it joined, whatever the bucket says now (a node on the
    // other side of a partition may have deleted their keys: see `changed`)
    for (const joined of this.#joined.values()) {
      if (joined.group === group && !isDead(joined.proc)) out.push(joined.proc.self);
    }
    return out;
  }

  names(): string[] {
    const groups = new Set(this.#members.keys());
    for (const joined of this.#joined.values()) groups.add(joined.group);
    return [...groups].filter((g) => this.members(g).length > 0).sort();
  }

  /** The watch told of a member key. */
  changed(key: string, member: Member & { group: string }, present: boolean): void {
    let byKey = this.#members.get(member.group);
    if (present) {
      if (byKey === undefined) this.#members.set(member.group, (byKey = new Map()));
      byKey.set(key, { node: member.node, inc: member.inc, id: member.id });
      if (!this.#host.visible(member.node, member.inc)) void this.#host.track(this.#host.kv.delete(key)).catch(() => undefined);
      return;
    }
    // a key of a live member of this node was deleted by someone else: a node that took this one
    // for down (across a partition, or while this node was cut off) reaped it. The owner's word
    // wins: the key is put back, once; a peer that still takes this node for down deletes it again,
    // and it is put back for good at the next node up (`reassert`), as Erlang's pg syncs on nodeup.
    const own = this.#joined.get(key);
    if (own !== undefined && !own.putBack) {
      own.putBack = true;
      this.#put(key, own);
    }
    if (byKey === undefined) return;
    byKey.delete(key);
    if (byKey.size === 0) this.#members.delete(member.group);
  }

  /** A peer came (back) up: this node's live members whose keys are gone from the bucket are put back. */
  reassert(): void {
    for (const [key, joined] of this.#joined) {
      joined.putBack = false;
      if (this.#members.get(joined.group)?.has(key) !== true) this.#put(key, joined);
    }
  }

  #put(key: string, joined: Joined): void {
    if (isDead(joined.proc)) return; // its exit hook deletes the key
    const previous = joined.op;
    joined.op = this.#host.track(previous.catch(() => undefined).then(() => this.#host.kv.put(key, '1')));
    joined.op.catch(() => undefined);
  }

  /** Deletes the keys of the members on `node` whose incarnation `dead` accepts. */
  reapNode(node: string, dead: (inc: number) => boolean): void {
    for (const byKey of this.#members.values()) {
      for (const [key, m] of byKey) {
        if (m.node === node && dead(m.inc)) void this.#host.track(this.#host.kv.delete(key)).catch(() => undefined);
      }
    }
  }
}
