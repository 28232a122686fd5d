import { createRule } from '../internal/createRule.js';
import type { TSESTree } from '@typescript-eslint/utils';
import { isDiscarded, keelMember, looksLikeContext, methodCall, propertyName, unwrapTs } from '../internal/keelTypes.js';

/**
 * `no-unmanaged-monitor`: `ctx.monitor(target)` bypasses the monitor manager (no ledger entry, no
 * leak report, no cleanup report), and a monitor whose ref is thrown away can never be removed.
 * Neither an autofix nor a suggestion: the managed forms return other types and need a tag.
 */
export const noUnmanagedMonitor = createRule<[], 'unmanaged' | 'unmanagedDropped' | 'droppedRef'>({
  name: 'no-unmanaged-monitor',
  meta: {
    type: 'problem',
    docs: {
      description: 'Disallow raw `ctx.monitor` (use the monitor manager or `withMonitor`) and monitors whose ref is dropped',
      recommended: true,
      typeAware: true,
    },
    messages: {
      unmanaged:
        'Unmanaged monitor: `ctx.monitor` is invisible to the monitor manager (no ledger, no leak report). Use `withMonitor(ctx, target, fn, { tag })` or `ctx.node.monitors.monitor(ctx, target, { tag })`.',
      unmanagedDropped:
        'Unmanaged monitor whose ref is dropped: it can never be demonitored and the monitor manager does not see it. Use `withMonitor(ctx, target, fn, { tag })`, or keep the ref of `ctx.node.monitors.monitor(ctx, target, { tag })` and demonitor it.',
      droppedRef: 'The monitor\'s ref is dropped: it can never be demonitored. Keep the ref and demonitor it when done, or use `withMonitor`.',
    },
    schema: [],
    defaultOptions: [],
  },
  create(context) {
    return {
      CallExpression(node) {
        const callee = methodCall(node, 'monitor') ?? throughFunctionPrototype(node);
        if (callee === undefined || node.arguments.length === 0) return;
        const dropped = isDiscarded(node);
        const onContext = keelMember(context, callee, ['Context', 'Proc']);
        if (onContext === 'keel' || (onContext === 'unknown' && looksLikeContext(context, callee.object))) {
          context.report({ node, messageId: dropped ? 'unmanagedDropped' : 'unmanaged' });
          return;
        }
        if (!dropped) return;
        const onManager = keelMember(context, callee, ['MonitorManager', 'ManagedMonitors']);
        const managerByName = callee.object.type === 'MemberExpression' && propertyName(callee.object) === 'monitors';
        if (onManager === 'keel' || (onManager === 'unknown' && managerByName)) context.report({ node, messageId: 'droppedRef' });
      },
    };
  },
});

/**
 * `x.monitor.call(thisArg, target, …)` or `x.monitor.apply(thisArg, [target, …])`: the same monitor as
 * `x.monitor(target)`, whose member (`x.monitor`) is returned when it is given a target.
 */
function throughFunctionPrototype(node: TSESTree.CallExpression): TSESTree.MemberExpression | undefined {
  const how = node.callee.type === 'MemberExpression' ? propertyName(node.callee) : undefined;
  if (how !== 'call' && how !== 'apply') return undefined;
  const fn = unwrapTs((node.callee as TSESTree.MemberExpression).object);
  if (fn.type !== 'MemberExpression' || propertyName(fn) !== 'monitor') return undefined;
  return node.arguments.length >= 2 || node.arguments.some((a) => a.type === 'SpreadElement') ? fn : undefined;
}
