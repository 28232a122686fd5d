/**
 * The supervision trees of a node: every top-level supervisor (a process whose behaviour is a
 * supervisor or a dynamic supervisor and whose parent is not one), besides those the operator named,
 * each walked down through its children with `Supervisor.status` (strategy, intensity, restarts) or
 * `DynamicSupervisor.whichChildren`, every call bounded by {@link TREE_CALL_TIMEOUT_MS}.
 */
import { isKeelError } from '../errors.js';
import { DynamicSupervisor } from '../otp/DynamicSupervisor.js';
import { Supervisor, type ChildInfo } from '../otp/Supervisor.js';
import { exitReportOf, type Kernel } from '../runtime/kernel.js';
import { Pid, type Target } from '../runtime/Pid.js';
import type { Node } from '../runtime/types.js';
import { kindOf } from './processes.js';
import { SharedCalls, withTimeout } from './calls.js';
import { nameText } from './http.js';

/** How long the walk waits for one supervisor's answer (a busy supervisor shows `error: 'timeout'`). */
export const TREE_CALL_TIMEOUT_MS = 1000;
const SUPERVISORS = new Set(['supervisor', 'dynamic_supervisor']);

/** A child row of a tree node. */
export interface TreeChild {
  readonly id: string | null;
  /** The child's pid text, `'restarting'`, or null (stopped). */
  readonly pid: string | null;
  readonly type: 'worker' | 'supervisor';
  readonly restart: string;
  readonly restarts: number | null;
  readonly modules: readonly string[] | 'dynamic';
  readonly significant: boolean;
  /** The child process's status, or `'restarting'` / `'stopped'`. */
  readonly status: string;
  /** Its mailbox length while alive, else null. */
  readonly mailbox: number | null;
  /** What the child process runs (as a process row's `kind`) while alive, else null. */
  readonly kind: string | null;
  /** The child process's registered name, if any (what tells a dynamic supervisor's children apart). */
  readonly name: string | null;
  tree?: TreeNode | { error: string };
}

/** A supervisor and its children, recursively. */
export interface TreeNode {
  readonly supervisor: string;
  readonly name: string | null;
  readonly kind: 'supervisor' | 'dynamic_supervisor';
  readonly strategy: string;
  readonly intensity: { readonly maxRestarts: number; readonly periodMs: number } | null;
  readonly restartsInWindow: number | null;
  readonly restarts: readonly { readonly at: number; readonly child: string; readonly reason: string }[];
  /** The first {@link MAX_TREE_CHILDREN} children. */
  readonly children: readonly TreeChild[];
  /** How many children the supervisor has (a dynamic one may have 100,000). */
  readonly childrenTotal: number;
}

/** The most children listed per supervisor (an answer lists at most 1000 rows per list). */
export const MAX_TREE_CHILDREN = 1000;

export type TreeRoot = TreeNode | { root: string; error: string };

/** The top-level supervisors of the node, oldest first: supervisors whose parent is not a supervisor. */
export function topSupervisors(node: Node, kernel: Kernel): Pid[] {
  const out: Pid[] = [];
  for (const pid of node.processes()) {
    const p = kernel.resolve(pid);
    const report = p === undefined ? undefined : exitReportOf(p);
    if (report?.behaviour === undefined || !SUPERVISORS.has(report.behaviour)) continue;
    const parent = report.parent === undefined || report.parent === 'node' ? undefined : kernel.resolve(report.parent);
    const parentKind = parent === undefined ? undefined : exitReportOf(parent)?.behaviour;
    if (parentKind === undefined || !SUPERVISORS.has(parentKind)) out.push(pid);
  }
  return out.sort((a, b) => a.id - b.id);
}

/** The tree under each of `named` and of every top-level supervisor, each root once. */
export async function supervisionTrees(node: Node, kernel: Kernel, named: readonly Target[], depth = 8, calls: SharedCalls = new SharedCalls(kernel)): Promise<TreeRoot[]> {
  const roots: Target[] = [...named, ...topSupervisors(node, kernel)];
  const seen = new Set<number>();
  const walks: Promise<TreeRoot>[] = [];
  for (const root of roots) {
    const p = kernel.lookupTarget(root);
    if (p !== undefined) {
      if (seen.has(p.self.id)) continue;
      seen.add(p.self.id);
    }
    // the roots are walked side by side: n busy supervisors cost one call timeout, not n
    walks.push(
      (async (): Promise<TreeRoot> => {
        try {
          if (p === undefined) throw Object.assign(new Error('no such supervisor'), { code: 'not_found' });
          return await walk(node, kernel, p.self, depth, calls);
        } catch (e) {
          return { root: typeof root === 'string' ? root : Pid.is(root) ? Pid.format(root) : String(root), error: errorCode(e) };
        }
      })(),
    );
  }
  return Promise.all(walks);
}

function errorCode(e: unknown): string {
  if (isKeelError(e, 'ERR_CALL_TIMEOUT')) return 'timeout';
  if (isKeelError(e)) return e.code;
  return typeof (e as { code?: unknown }).code === 'string' ? (e as { code: string }).code : 'failed';
}

async function walk(node: Node, kernel: Kernel, sup: Pid, depth: number, calls: SharedCalls): Promise<TreeNode> {
  const p = kernel.resolve(sup);
  const kind = p === undefined ? undefined : exitReportOf(p)?.behaviour;
  const name = nameText(node.info(sup)?.name);
  let tree: TreeNode;
  if (kind === 'dynamic_supervisor') {
    const rows = await calls.call(`children ${Pid.format(sup)}`, (limitMs) => withTimeout(kernel, DynamicSupervisor.whichChildren(node, sup), limitMs), TREE_CALL_TIMEOUT_MS);
    tree = {
      supervisor: Pid.format(sup),
      name,
      kind,
      strategy: 'one_for_one',
      intensity: null,
      restartsInWindow: null,
      restarts: [],
      childrenTotal: rows.length,
      children: rows.slice(0, MAX_TREE_CHILDREN).map((c) => childRow(node, kernel, { id: null, pid: c.pid, type: c.type, restart: c.restart, restarts: null, modules: c.modules, significant: false })),
    };
  } else {
    const s = await calls.call(`status ${Pid.format(sup)}`, (limitMs) => Supervisor.status(node, sup, limitMs), TREE_CALL_TIMEOUT_MS);
    tree = {
      supervisor: Pid.format(sup),
      name,
      kind: 'supervisor',
      strategy: s.strategy,
      intensity: s.intensity,
      restartsInWindow: s.restartsInWindow,
      restarts: s.restarts,
      childrenTotal: s.children.length,
      children: s.children.slice(0, MAX_TREE_CHILDREN).map((c: ChildInfo) => childRow(node, kernel, c)),
    };
  }
  // (the child supervisors side by side too)
  await Promise.all(
    tree.children.map(async (c) => {
      if (c.type !== 'supervisor' || depth <= 0 || c.pid === null || c.pid === 'restarting') return;
      try {
        c.tree = await walk(node, kernel, Pid.parse(c.pid), depth - 1, calls);
      } catch (e) {
        c.tree = { error: errorCode(e) };
      }
    }),
  );
  return tree;
}

function childRow(
  node: Node,
  kernel: Kernel,
  c: { id: string | null; pid: Pid | 'restarting' | undefined; type: 'worker' | 'supervisor'; restart: string; restarts: number | null; modules: readonly string[] | 'dynamic'; significant: boolean },
): TreeChild {
  const info = c.pid === undefined || c.pid === 'restarting' ? undefined : node.info(c.pid);
  return {
    id: c.id,
    pid: c.pid === undefined ? null : c.pid === 'restarting' ? 'restarting' : Pid.format(c.pid),
    type: c.type,
    restart: c.restart,
    restarts: c.restarts,
    modules: c.modules,
    significant: c.significant,
    status: c.pid === 'restarting' ? 'restarting' : info === undefined ? 'stopped' : info.status,
    mailbox: info === undefined ? null : info.mailboxLength,
    kind: info === undefined ? null : kindOfPid(kernel, info.pid),
    name: nameText(info?.name),
  };
}

function kindOfPid(kernel: Kernel, pid: Pid): string | null {
  const p = kernel.resolve(pid);
  return p === undefined ? null : kindOf(p);
}
