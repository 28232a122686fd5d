import { checkKeys, InvalidArgumentError, ProcessExitedError, ServiceUnavailableError } from '../errors.js';
import type { GenServerSpec } from '../otp/GenServer.js';
import { keelServer, unexpectedInfo } from '../otp/internal/keelServer.js';
import { isDead, isProcess, type Kernel, kernelOf, kernelOfProcess, type Proc } from '../runtime/kernel.js';
import { type Pid, RefImpl, type Ref, type Target } from '../runtime/Pid.js';
import type { MonitorEntry, MonitorManager, MonitorStats, ServicesOptions } from '../runtime/serviceSlots.js';
import type { Context } from '../runtime/types.js';
import { type LedgerEntry, MonitorLedger } from './MonitorLedger.js';

/** Monitor manager options (`createNode({ services: { monitors } })`). */
export type MonitorManagerOptions = NonNullable<ServicesOptions['monitors']>;

interface Settings {
  readonly leakCheckIntervalMs: number;
  readonly leakAgeMs: number;
  readonly duplicateThreshold: number;
  captureStacks: boolean;
}

function settings(options: MonitorManagerOptions | undefined): Settings {
  const o = options ?? {};
  if (typeof o !== 'object' || o === null) throw new InvalidArgumentError('services.monitors', '{ leakCheckIntervalMs?, leakAgeMs?, duplicateThreshold?, captureStacks? }', o);
  checkKeys(o, ['leakCheckIntervalMs', 'leakAgeMs', 'duplicateThreshold', 'captureStacks'], 'services.monitors');
  const positive = (name: string, value: unknown, fallback: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new InvalidArgumentError(`services.monitors.${name}`, 'a positive number', value);
    return value;
  };
  // a number of monitors: 0.5 would make every single monitor a duplicate ("more than 0.5")
  const count = (name: string, value: unknown, fallback: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw new InvalidArgumentError(`services.monitors.${name}`, 'an integer >= 1', value);
    return value;
  };
  if (o.captureStacks !== undefined && typeof o.captureStacks !== 'boolean') {
    throw new InvalidArgumentError('services.monitors.captureStacks', 'a boolean', o.captureStacks);
  }
  return {
    leakCheckIntervalMs: positive('leakCheckIntervalMs', o.leakCheckIntervalMs, 60_000),
    leakAgeMs: positive('leakAgeMs', o.leakAgeMs, 300_000),
    duplicateThreshold: count('duplicateThreshold', o.duplicateThreshold, 10),
    // stacks help in development and tests; production pays nothing for them unless asked
    captureStacks: o.captureStacks ?? process.env.NODE_ENV !== 'production',
  };
}

const MONITOR_KEYS: readonly string[] = ['tag', 'expectedLifetime'];
const DEMONITOR_KEYS: readonly string[] = ['flush'];
const FIND_LEAKS_KEYS: readonly string[] = ['olderThanMs'];

/** The options of a demonitor that flushes (one object for every call). */
const FLUSH: { flush: boolean } = Object.freeze({ flush: true });

/**
 * @internal The node's monitor manager: a ledger of managed monitors (node-owned), and a process
 * under the node's services supervisor that owns only the leak-check timer.
 */
export class ManagedMonitors implements MonitorManager {
  readonly #node: Kernel;
  readonly #settings: Settings;
  readonly ledger: MonitorLedger;
  /** Starts the node's services (the leak-check process) on first use. */
  readonly #ensureStarted: () => void;
  #started = false;
  readonly #createdProbe: { readonly active: boolean };
  readonly #cleanedProbe: { readonly active: boolean };

  constructor(node: Kernel, options: MonitorManagerOptions | undefined, ensureStarted: () => void) {
    this.#node = node;
    this.#settings = settings(options);
    this.#ensureStarted = ensureStarted;
    this.ledger = new MonitorLedger(node, (entries, side) => this.#cleaned(entries, side));
    this.#createdProbe = node.telemetry.probe('keel.monitor_manager.monitor_created');
    this.#cleanedProbe = node.telemetry.probe('keel.monitor_manager.monitor_cleaned');
  }

  /** @internal The services supervisor is gone: the next use starts it again. */
  stopped(): void {
    this.#started = false;
  }

  #start(): void {
    this.#started = true;
    this.#ensureStarted();
  }

  /** Turns stack capture on or off (on by default outside production). */
  set captureStacks(on: boolean) {
    this.#settings.captureStacks = on;
  }

  get settings(): Readonly<Settings> {
    return this.#settings;
  }

  /** True until the node has shut down; then every method throws `ServiceUnavailableError`. */
  get available(): boolean {
    return !this.#node.stopped;
  }

  /** The error of a call once the node has shut down (the manager runs until then). */
  #unavailable(operation: string): ServiceUnavailableError {
    return new ServiceUnavailableError('monitors', 'node_stopped', `monitors.${operation}`);
  }

  monitor(ctx: Context<any>, target: Target, options?: { tag?: string; expectedLifetime?: 'short' | 'long' }): Ref {
    return this.monitorFrom(ManagedMonitors.prototype.monitor, ctx, target, options);
  }

  /** @internal `monitor`, with the stack cut at `caller` (so `withMonitor`'s user line comes first). */
  monitorFrom(
    caller: (...args: never[]) => unknown,
    ctx: Context<any>,
    target: Target,
    options?: { tag?: string; expectedLifetime?: 'short' | 'long' },
  ): Ref {
    if (this.#node.stopped) throw this.#unavailable('monitor');
    const owner = this.#owner(ctx, 'monitor');
    if (options !== undefined && (typeof options !== 'object' || options === null)) throw new InvalidArgumentError('options', '{ tag?, expectedLifetime? }', options);
    // a misspelt key, or options that cannot be read (a revoked proxy, a getter that throws), are
    // ERR_INVALID_ARGUMENT here, not a raw error from the reads below
    if (options !== undefined) checkKeys(options, MONITOR_KEYS, 'options');
    const tag = options?.tag;
    const expectedLifetime = options?.expectedLifetime ?? 'short';
    if (tag !== undefined && typeof tag !== 'string') throw new InvalidArgumentError('options.tag', 'a string', tag);
    if (expectedLifetime !== 'short' && expectedLifetime !== 'long') throw new InvalidArgumentError('options.expectedLifetime', "'short' | 'long'", expectedLifetime);
    const node = this.#node;
    if (node.stopped) throw this.#unavailable('monitor');
    const t = node.lookupTarget(target);
    let ref: RefImpl;
    let stack: string | undefined;
    if (t === undefined) {
      // not alive here: as ctx.monitor (and erlang:monitor/2), a ref and at once a Down with
      // 'noproc', nothing to record (the monitor is over before it began); but a process of another
      // node that the cluster now monitors is recorded, until its Down comes
      // eslint-disable-next-line keel/no-unmanaged-monitor -- the monitor manager's own monitor: recorded below when it lives on
      ref = owner.monitor(target) as RefImpl;
      if (node.remote?.monitoring?.(owner, ref) !== true) return ref;
    } else {
      // eslint-disable-next-line keel/no-unmanaged-monitor -- the monitor manager's own monitor: the ledger entry it creates is what manages it
      ref = owner.monitor(t.self) as RefImpl;
    }
    if (this.#settings.captureStacks) {
      const holder: { stack?: string } = {};
      Error.captureStackTrace(holder, caller); // the caller's line first
      stack = holder.stack?.split('\n').slice(1).join('\n');
    }
    const targetPid = t === undefined ? (target as Pid) : t.self;
    // created at on the timers' time (monotonic on the real clock): ages are not moved by a wall clock stepped
    const createdAt = node.coarseTimerNow(); // read once per slice: a monitor needs no sub-slice age
    if (t === undefined) this.ledger.addRemote(ref, owner, targetPid, tag, createdAt, stack, expectedLifetime === 'long');
    else this.ledger.add(ref, owner, t, tag, createdAt, stack, expectedLifetime === 'long');
    if (!this.#started) this.#start();
    if (this.#createdProbe.active) node.telemetry.execute('keel.monitor_manager.monitor_created', {}, { ref, owner: owner.self, target: targetPid, tag });
    return ref;
  }

  demonitor(ctx: Context<any>, ref: Ref, options?: { flush?: boolean }): 'ok' | 'not_found' | 'not_owner' {
    if (this.#node.stopped) throw this.#unavailable('demonitor');
    const owner = this.#owner(ctx, 'demonitor');
    if (!RefImpl.is(ref)) throw new InvalidArgumentError('ref', 'a Ref returned by monitor', ref);
    if (options !== undefined) {
      if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ flush? }', options);
      checkKeys(options, DEMONITOR_KEYS, 'options');
    }
    if (this.#node.stopped) throw this.#unavailable('demonitor');
    const entry = this.ledger.get(ref);
    if (entry === undefined) {
      // gone already (its target died): a Down may still wait in the mailbox, and flush removes it;
      // a ref the owner still monitors with is a plain ctx.monitor's, not ours: left alone
      if (options?.flush === true && owner.x?.monitors?.has(ref) !== true && this.#node.remote?.monitoring?.(owner, ref) !== true) owner.demonitor(ref, FLUSH);
      return 'not_found';
    }
    if (entry.owner.proc !== owner) return 'not_owner';
    // the entry first: detached from its ref, the runtime's demonitor does not tell it again
    this.ledger.remove(entry);
    // no options object unless it flushes: ctx.demonitor checks the options it is given, once per call
    owner.demonitor(ref, options?.flush === true ? FLUSH : undefined);
    this.#event(entry, false);
    return 'ok';
  }

  list(): MonitorEntry[] {
    if (this.#node.stopped) throw this.#unavailable('list');
    const now = this.#node.timerNow();
    const dates = this.#node.clock.now() - now;
    return [...this.ledger.entries()].map((e) => this.ledger.view(e, now, undefined, dates));
  }

  stats(): MonitorStats {
    if (this.#node.stopped) throw this.#unavailable('stats');
    const l = this.ledger;
    return { created: l.created, cleaned: l.cleaned, active: l.size, leaked: l.leaked };
  }

  findLeaks(options: { olderThanMs?: number } = {}): MonitorEntry[] {
    if (this.#node.stopped) throw this.#unavailable('findLeaks');
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ olderThanMs? }', options);
    checkKeys(options, FIND_LEAKS_KEYS, 'options');
    const olderThanMs = options.olderThanMs ?? this.#settings.leakAgeMs;
    if (typeof olderThanMs !== 'number' || !Number.isFinite(olderThanMs) || olderThanMs < 0) {
      throw new InvalidArgumentError('options.olderThanMs', 'a number of ms >= 0', olderThanMs);
    }
    const now = this.#node.timerNow();
    const dates = this.#node.clock.now() - now;
    const { old, duplicates } = this.ledger.findLeaks(now, olderThanMs, this.#settings.duplicateThreshold);
    const dup = new Set(duplicates);
    return [...old.filter((e) => !dup.has(e)).map((e) => this.ledger.view(e, now, 'age', dates)), ...duplicates.map((e) => this.ledger.view(e, now, 'duplicate', dates))];
  }

  /** @internal The checker process is terminating. */
  terminated(reason: unknown): void {
    this.#node.telemetry.execute('keel.monitor_manager.terminated', {}, { reason });
  }

  /** @internal The periodic check: reports each suspected leak once. */
  checkLeaks(): void {
    const now = this.#node.timerNow();
    const { old, duplicates } = this.ledger.findLeaks(now, this.#settings.leakAgeMs, this.#settings.duplicateThreshold);
    // linear in the findings (an entry both old and a duplicate counts once, as a duplicate too)
    let freshDuplicates = 0;
    for (const e of duplicates) if (!e.reported) freshDuplicates++;
    const tags = new Set<string>();
    let count = 0;
    for (const list of [old, duplicates]) {
      for (const e of list) {
        if (e.reported) continue;
        e.reported = true;
        count++;
        tags.add(e.tag ?? '(untagged)');
      }
    }
    if (count === 0) return;
    this.ledger.leaked += count;
    this.#node.telemetry.execute('keel.monitor_manager.leaks_detected', { count }, { tags: [...tags], duplicates: freshDuplicates });
  }

  #cleaned(entries: LedgerEntry[], side: 'owner' | 'target' | 'demonitor'): void {
    if (side === 'owner') {
      this.#node.telemetry.execute('keel.monitor_manager.caller_cleanup', { count: entries.length }, { owner: entries[0]!.owner.pid });
    }
    for (const e of entries) this.#event(e, side !== 'demonitor');
  }

  #event(entry: LedgerEntry, automatic: boolean): void {
    if (!this.#cleanedProbe.active) return;
    this.#node.telemetry.execute(
      'keel.monitor_manager.monitor_cleaned',
      { durationMs: this.#node.timerNow() - entry.createdAt },
      { ref: entry.ref, tag: entry.tag, automatic },
    );
  }

  #owner(ctx: Context<any>, operation: string): Proc {
    if (!isProcess(ctx) || kernelOfProcess(ctx) !== this.#node) throw new InvalidArgumentError('ctx', "the calling process's own Context, on this node", ctx);
    if (isDead(ctx)) {
      this.#node.zombieCall(ctx, `monitors.${operation}`);
      throw new ProcessExitedError(String(ctx.self), `monitors.${operation}`);
    }
    return ctx;
  }
}

/**
 * The leak checker's tick: its own value, so that a plain 'check_leaks' sent by anyone is reported as
 * unexpected, never taken for a tick (which armed one more periodic timer for good).
 */
const CHECK_LEAKS = Symbol('check_leaks');

/**
 * @internal The manager's process: it owns the leak-check timer (unref'd, on the node's clock) and
 * nothing else, so its crash and restart lose nothing: the ledger stays with the node.
 */
export function leakCheckerSpec(manager: ManagedMonitors): GenServerSpec<null, never, never, undefined> {
  const schedule = (ctx: Context<any>): void => {
    kernelOf(ctx.node).sendAfter(ctx as Proc, ctx.self, CHECK_LEAKS, manager.settings.leakCheckIntervalMs, true);
  };
  return keelServer({
    init(_arg, ctx) {
      ctx.trapExits();
      // told of every end, a kill included (when no terminate callback runs)
      kernelOf(ctx.node).onExit(ctx.self, (reason) => manager.terminated(reason));
      schedule(ctx);
      return null;
    },
    handleInfo(message, state, ctx) {
      if (message === CHECK_LEAKS) {
        manager.checkLeaks();
        schedule(ctx);
      } else {
        unexpectedInfo(ctx, message);
      }
      return state;
    },
  }, "the monitor manager's process (use node.monitors)");
}
