import { noUnmanagedMonitor } from '../../src/lint/rules/noUnmanagedMonitor.js';
import { typed, untyped } from './ruleTester.js';

const header = `import { createNode, withMonitor, type Context, type Pid } from 'keel';
const node = createNode();
declare const worker: Pid;
`;

typed.run('no-unmanaged-monitor (with types)', noUnmanagedMonitor, {
  valid: [
    `${header}node.spawn((ctx) => async () => { await withMonitor(ctx, worker, async () => 1, { tag: 'job' }); });`,
    `${header}node.spawn((ctx) => () => { const ref = ctx.node.monitors.monitor(ctx, worker, { tag: 't' }); void ref; });`,
    // a monitor method of something else
    `declare const ctx: { monitor(target: string): void };
     ctx.monitor('disk');`,
    `declare const perf: { monitors: { monitor(x: number): number } };
     perf.monitors.monitor(1);`,
  ],
  invalid: [
    {
      code: `${header}node.spawn((c: Context) => () => { const ref = c.monitor(worker); void ref; });`,
      errors: [{ messageId: 'unmanaged', line: 4 }],
    },
    {
      code: `${header}node.spawn((ctx) => () => { ctx.monitor(worker); });`,
      errors: [{ messageId: 'unmanagedDropped', line: 4 }],
    },
    {
      code: `${header}node.spawn((ctx) => () => { node.monitors.monitor(ctx, worker); });`,
      errors: [{ messageId: 'droppedRef', line: 4 }],
    },
  ],
});

untyped.run('no-unmanaged-monitor (without types: by name)', noUnmanagedMonitor, {
  valid: [
    `const ref = ctx.node.monitors.monitor(ctx, pid, { tag: 'x' });`,
    `observer.monitor(el);`,
    `ctx.monitor();`,
    // a private field by another name is not a context
    `class Watch { #observer; start(el) { this.#observer.monitor(el); } }`,
  ],
  invalid: [
    { code: `const ref = ctx.monitor(pid);`, errors: [{ messageId: 'unmanaged' }] },
    { code: `p.ctx.monitor(pid);`, errors: [{ messageId: 'unmanagedDropped' }] },
    // a context held in a private field
    { code: `class W { #ctx; watch(pid) { this.#ctx.monitor(pid); } }`, errors: [{ messageId: 'unmanagedDropped' }] },
    { code: `class W { #context; watch(pid) { return this.#context.monitor(pid); } }`, errors: [{ messageId: 'unmanaged' }] },
    { code: `const ref = ctx['monitor'](pid);`, errors: [{ messageId: 'unmanaged' }] },
    { code: 'ctx[`monitor`](pid);', errors: [{ messageId: 'unmanagedDropped' }] },
    { code: `void context.monitor(pid);`, errors: [{ messageId: 'unmanagedDropped' }] },
    { code: `node.spawn((self) => () => { self.monitor(pid); });`, errors: [{ messageId: 'unmanagedDropped' }] },
    { code: `ctx.node.monitors.monitor(ctx, pid);`, errors: [{ messageId: 'droppedRef' }] },
    { code: `ctx.node['monitors'].monitor(ctx, pid);`, errors: [{ messageId: 'droppedRef' }] },
    // dropped all the same behind TypeScript's wrappers or an await
    {
      code: `ctx.node.monitors.monitor(ctx, pid) as unknown;\nvoid (ctx.node.monitors.monitor(ctx, pid)!);\nawait ctx.node.monitors.monitor(ctx, pid);\nctx.monitor(pid) satisfies unknown;`,
      errors: [
        { messageId: 'droppedRef', line: 1 },
        { messageId: 'droppedRef', line: 2 },
        { messageId: 'droppedRef', line: 3 },
        { messageId: 'unmanagedDropped', line: 4 },
      ],
    },
  ],
});
