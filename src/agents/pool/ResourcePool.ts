import { type CallExitError, InvalidArgumentError, isKeelError, PoolCrashLoopError, PoolTimeoutError, ProcessExitedError, readKnownOptions } from '../../errors.js';
import { isInstance } from '../../runtime/safe.js';
import { GenServer } from '../../otp/GenServer.js';
import { isProcess, kernelOf } from '../../runtime/kernel.js';
import { type Pid } from '../../runtime/Pid.js';
import type { Context, Node } from '../../runtime/types.js';
import { componentHandle, componentNode, nameFor, startComponent, unwrapReply } from '../component.js';
import { checkObject, checkTimeout, stopComponent } from '../patterns/shared.js';
import { MAX_SIZE, poolSpec, type Calls } from './server.js';
import type { Config } from './state.js';
import type { CheckinOutcome, CheckoutOptions, CheckinOptions, ResourcePoolHandle, ResourcePoolOptions, ResourcePoolStats, WithResourceOptions } from './types.js';

const OPTIONS = ['create', 'destroy', 'size', 'maxOverflow', 'checkoutTimeoutMs', 'createRetryMs', 'createTimeoutMs', 'createIntensity', 'strategy', 'name'] as const;

function checkCount(value: unknown, argument: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > MAX_SIZE) throw new InvalidArgumentError(argument, `an integer from 0 to ${MAX_SIZE}`, value);
}

/** `createIntensity` checked as a Supervisor checks `maxRestarts` and `withinMs` (each field read once; a copy is kept). */
function intensityOf(given: unknown): Config['createIntensity'] {
  if (given === undefined) return undefined;
  checkObject(given, 'options.createIntensity', '{ maxFailures?, withinMs? }');
  const o = readKnownOptions(given, ['maxFailures', 'withinMs'], 'options.createIntensity');
  const maxFailures = o.maxFailures ?? 3;
  if (!Number.isSafeInteger(maxFailures) || (maxFailures as number) < 0) throw new InvalidArgumentError('options.createIntensity.maxFailures', 'an integer >= 0', maxFailures);
  const withinMs = o.withinMs ?? 5000;
  if (typeof withinMs !== 'number' || !Number.isFinite(withinMs) || withinMs <= 0) throw new InvalidArgumentError('options.createIntensity.withinMs', 'a positive number of ms', withinMs);
  return Object.freeze({ maxFailures: maxFailures as number, withinMs });
}

function configOf(node: Node, options: unknown): Config {
  checkObject(options, 'options', '{ create, destroy?, size, maxOverflow?, checkoutTimeoutMs?, createRetryMs?, createTimeoutMs?, createIntensity?, strategy?, name? }');
  // each option read once: what is checked is what is used
  const o = readKnownOptions(options, OPTIONS);
  const { create, destroy, size } = o;
  if (typeof create !== 'function') throw new InvalidArgumentError('options.create', 'a function (signal) => resource', create);
  if (destroy !== undefined && typeof destroy !== 'function') throw new InvalidArgumentError('options.destroy', 'a function (resource) => void', destroy);
  checkCount(size, 'options.size');
  const maxOverflow = o.maxOverflow ?? 0;
  checkCount(maxOverflow, 'options.maxOverflow');
  const checkoutTimeoutMs = o.checkoutTimeoutMs ?? 5000;
  checkTimeout(checkoutTimeoutMs, 'options.checkoutTimeoutMs');
  const createRetryMs = o.createRetryMs ?? 1000;
  if (typeof createRetryMs !== 'number' || !Number.isFinite(createRetryMs) || createRetryMs < 0) throw new InvalidArgumentError('options.createRetryMs', 'a finite number of ms >= 0', createRetryMs);
  const createTimeoutMs = o.createTimeoutMs ?? 30_000;
  if (typeof createTimeoutMs !== 'number' || Number.isNaN(createTimeoutMs) || createTimeoutMs <= 0) throw new InvalidArgumentError('options.createTimeoutMs', 'a number of ms > 0 (or Infinity)', createTimeoutMs);
  const createIntensity = intensityOf(o.createIntensity);
  const strategy = o.strategy ?? 'lifo';
  if (strategy !== 'lifo' && strategy !== 'fifo') throw new InvalidArgumentError('options.strategy', "'lifo' or 'fifo'", strategy);
  const name = nameFor(node, 'resource_pool', o.name);
  return { name, create: create as Config['create'], destroy: destroy as Config['destroy'], size, maxOverflow, checkoutTimeoutMs, createRetryMs, createTimeoutMs, createIntensity, strategy };
}

function checkCaller(caller: unknown, argument: string): Context<any> | undefined {
  if (caller === undefined) return undefined;
  // a brand check (no code of the value runs: a revoked proxy or a getter standing for `self` is
  // refused, not read): the pool monitors the holder, and only a process's own context names it
  if (!isProcess(caller)) throw new InvalidArgumentError(argument, 'a process Context (the ctx a process is given)', caller);
  return caller as unknown as Context<any>;
}

/**
 * A pool of reusable resources with poolboy's semantics: `size` resources created up front, up to
 * `maxOverflow` more created while callers wait (destroyed when checked in with nobody waiting),
 * callers served first come first served and timed out with `ERR_POOL_TIMEOUT`, a holder process
 * that dies returns its resource (monitored), a `Pid` resource that dies is replaced, a failed
 * creation counted and retried on the node's clock (for ever, or, with `createIntensity`, until
 * failures come too fast: the pool then exits with `ERR_POOL_CRASH_LOOP` for its supervisor to
 * decide). Events `keel.resource_pool.*` (docs/events.md).
 *
 * Started as every agent-layer component (`startComponent`); resolves once the first `size`
 * creations have settled. Throws `ERR_INVALID_ARGUMENT` for bad options.
 *
 * @example
 * ```ts
 * const pool = await ResourcePool.start(node, { create: () => openConnection(), destroy: (c) => c.close(), size: 2, maxOverflow: 2 });
 * const rows = await pool.withResource((conn) => conn.query('select 1'));
 * ```
 */
export const ResourcePool = {
  async start<R>(from: Node | Context<any>, options: ResourcePoolOptions<R>): Promise<ResourcePoolHandle<R>> {
    const node = componentNode(from);
    const config = configOf(node, options);
    const name = config.name;
    const pid = await startComponent(from, poolSpec, config, name);
    const call = <const Q extends Calls['request']>(caller: Context<any> | undefined, request: Q, timeout: number, to: Pid | string = name): Promise<unknown> =>
      GenServer.call<Calls>(caller ?? node, to, request, { timeout }).then(unwrapReply);
    // a pool that gave up on its first creations (createIntensity) before it took this call has
    // started all the same: its supervisor decides what follows, and the handle follows a restart
    await call(undefined, { type: 'ready' }, Infinity).catch((e: unknown) => {
      if (!(isKeelError(e, 'ERR_CALL_EXIT') && isInstance((e as CallExitError).reason, PoolCrashLoopError))) throw e;
    });

    const checkout = (options?: CheckoutOptions): Promise<R> => {
      let o: { timeout?: unknown; caller?: unknown } = {};
      if (options !== undefined) {
        checkObject(options as unknown, 'options', '{ timeout?, caller? }');
        o = readKnownOptions(options, ['timeout', 'caller']); // each read once
      }
      const caller = checkCaller(o.caller, 'options.caller');
      const timeout = o.timeout ?? config.checkoutTimeoutMs;
      checkTimeout(timeout, 'options.timeout');
      // the pool times the wait out itself (on the node's clock), with the typed error; the call is
      // bounded by the same wait (as poolboy's gen_server:call), so that a pool that cannot answer in
      // time (suspended, or behind) still ends it: the pool then lends it nothing (a call that ended
      // is skipped). 0 never waits in line: the pool answers it at once, bounded as a checkin is
      const bound = timeout === 0 ? 5000 : timeout;
      return call(caller, { type: 'checkout', timeout }, bound).catch((e: unknown) => {
        throw isKeelError(e, 'ERR_CALL_TIMEOUT') ? new PoolTimeoutError(name, timeout) : e;
      }) as Promise<R>;
    };
    const checkinTo = (to: Pid | string, resource: R, options?: CheckinOptions): Promise<CheckinOutcome> => {
      let o: { broken?: unknown; caller?: unknown } = {};
      if (options !== undefined) {
        checkObject(options as unknown, 'options', '{ broken?, caller? }');
        o = readKnownOptions(options, ['broken', 'caller']); // each read once
      }
      const caller = checkCaller(o.caller, 'options.caller');
      return call(caller, { type: 'checkin', resource, broken: o.broken === true }, 5000, to) as Promise<CheckinOutcome>;
    };
    const checkin = (resource: R, o?: CheckinOptions): Promise<CheckinOutcome> => checkinTo(name, resource, o);
    const withResource = async <T>(fn: (resource: R) => T | Promise<T>, options?: WithResourceOptions): Promise<T> => {
      if (typeof fn !== 'function') throw new InvalidArgumentError('fn', 'a function (resource) => result', fn);
      let read: { timeout?: unknown; caller?: unknown; discardOnError?: unknown } = {};
      if (options !== undefined) {
        checkObject(options as unknown, 'options', '{ timeout?, caller?, discardOnError? }');
        read = readKnownOptions(options, ['timeout', 'caller', 'discardOnError']); // each read once: the copy is what is used
      }
      checkCaller(read.caller, 'options.caller');
      const o = read as WithResourceOptions;
      // the pool process the checkout goes to (the name is read as the call is sent): the resource is
      // given back to that process, not to a restarted pool that never lent it (and may lend the same
      // object to someone else)
      const lender = node.registry.whereis(name);
      const resource = await checkout({ ...(o.timeout === undefined ? {} : { timeout: o.timeout }), ...(o.caller === undefined ? {} : { caller: o.caller }) });
      const back = async (broken: boolean): Promise<void> => {
        // the holder died while fn ran: its death gave the resource back already (monitored), and
        // the pool may have lent it again; a dead process makes no call either
        if (o.caller !== undefined && !node.isAlive(o.caller.self)) return;
        try {
          await checkinTo(lender ?? name, resource, { broken, ...(o.caller === undefined ? {} : { caller: o.caller }) });
        } catch (e) {
          // the pool is gone (its resources with it): nothing to give back to
          if (isKeelError(e, 'ERR_NOPROC') || isKeelError(e, 'ERR_CALL_EXIT') || isKeelError(e, 'ERR_PROCESS_EXITED')) return;
          if (isKeelError(e, 'ERR_CALL_TIMEOUT')) {
            // the checkin was delivered and waits in the pool's mailbox (a busy or suspended pool): the
            // resource goes back when the pool gets to it. fn's work is done: its outcome is the answer
            kernelOf(node).log('warn', `withResource: the pool ${name} did not confirm the checkin within 5000 ms; the checkin waits in its mailbox, and fn's outcome is given`, e);
            return;
          }
          throw e;
        }
      };
      // the holder died between the lending and now: its death gave the resource back (monitored), and
      // the pool may have lent it again; fn does not start on a resource another may hold
      if (o.caller !== undefined && !node.isAlive(o.caller.self)) throw new ProcessExitedError(String(o.caller.self), 'withResource');
      let result: T;
      try {
        result = await fn(resource);
      } catch (e) {
        await back(o.discardOnError === true);
        throw e;
      }
      await back(false);
      return result;
    };
    return componentHandle<ResourcePoolHandle<R>>(node, name, pid, {
      checkout,
      checkin,
      withResource,
      stats: () => call(undefined, { type: 'stats' }, 5000) as Promise<ResourcePoolStats>,
      stop: () => stopComponent(node, name),
    });
  },
};

