import { LeaksFoundError } from '../errors.js';
import { ManagedMonitors } from '../monitors/MonitorManager.js';
import { registriesOf } from '../otp/Registry.js';
import { kernelOf } from '../runtime/kernel.js';
import type { Node } from '../runtime/types.js';

/**
 * Fails (throws `ERR_LEAKS_FOUND` with a readable report) when the node holds suspected monitor
 * leaks (older than the leak age, or duplicates), managed monitors of dead processes, timers owned
 * by dead processes, names, group memberships or registry entries of dead processes, or pending
 * calls of callers that have exited. Given a process's context, it audits that process's node.
 *
 * @example
 * ```ts
 * afterEach(() => expectNoLeaks(node));
 * ```
 */
export function expectNoLeaks(from: Node): void {
  const keel = kernelOf(from, 'node');
  // a process's context stands for its node (as probe takes one): every check reads the node, never
  // the context, which has no monitors nor registries (and passed with their leaks unreported)
  const node = keel as unknown as Node;
  const leaks: string[] = [...keel.leftovers()];
  const monitors = node.monitors;
  if (monitors instanceof ManagedMonitors && !keel.stopped) {
    for (const e of monitors.ledger.entries()) {
      const owner = e.owner.pid;
      const target = e.target.pid;
      // a target of another node stays in the ledger until its Down comes: alive as far as this node knows
      if (!keel.isAlive(owner) || (e.target.proc !== undefined && !keel.isAlive(target))) {
        leaks.push(`a managed monitor ${String(e.ref)} of the dead process ${String(keel.isAlive(owner) ? target : owner)}`);
      }
    }
    const found = monitors.findLeaks();
    if (Array.isArray(found)) {
      for (const e of found) {
        const where = e.stack?.split('\n')[0]?.trim();
        leaks.push(
          `a suspected monitor leak (${e.leak === 'duplicate' ? 'one of too many on one target' : `${e.ageMs} ms old`}): ${String(e.ref)} by ${String(e.owner)} on ${String(e.target)}` +
            `${e.tag === undefined ? '' : ` tagged '${e.tag}'`}${where === undefined ? '' : `, created ${where}`}`,
        );
      }
    }
  }
  for (const registry of registriesOf(node)) leaks.push(...registry.leftovers());
  if (leaks.length > 0) throw new LeaksFoundError(node.name, leaks);
}
