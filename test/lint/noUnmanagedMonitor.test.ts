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
    `declare const ctx: { monitor(target: string): void };
     ctx.monitor.call(ctx, 'disk');`,
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
    {
      // through Function.prototype.call / apply: the same monitor, found by its type
      code: `${header}import type { Down } from 'keel';
export function watch(ctx: Context<Down>) { ctx.monitor.call(ctx, worker); return ctx.monitor.apply(ctx, [worker]); }`,
      errors: [{ messageId: 'unmanagedDropped', line: 5 }, { messageId: 'unmanaged', line: 5 }],
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
    // a call of another function, or of monitor with no target
    `fn.call(ctx, pid); ctx.demonitor.call(ctx, ref); ctx.monitor.call(ctx);`,
    // a ref kept through ?: or ||, or used as a test
    `const r = ok ? ctx.node.monitors.monitor(ctx, pid) : undefined; const s = r || ctx.node.monitors.monitor(ctx, pid); if (ctx.node.monitors.monitor(ctx, pid) && s) {}`,
    // an init held in a \`let\`, or a function never given to spawn: its parameter is no context by name
    `let init = (self) => () => { self.monitor(pid); };\nnode.spawn(init);`,
    `function watcher(self) { return () => { self.monitor(pid); }; }\nwatcher(other);`,
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
    // an init passed to spawn / spawnLink by name: a const holding it, or a function declaration
    {
      code: `const init = (self) => () => { self.monitor(pid); };\nnode.spawn(init);\nfunction watcher(w) { return () => w.monitor(pid); }\nctx.spawnLink(watcher);`,
      errors: [{ messageId: 'unmanagedDropped', line: 1 }, { messageId: 'unmanaged', line: 3 }],
    },
    // a handler returned by name from an init: its monitors are the init's context's
    {
      code: `node.spawn((self) => { const h = () => { self.monitor(pid); }; return h; });\nnode.spawn((w) => { function h() { return w.monitor(pid); } return h; });`,
      errors: [{ messageId: 'unmanagedDropped', line: 1 }, { messageId: 'unmanaged', line: 2 }],
    },
    // TypeScript's wrappers around the init or the argument
    {
      code: `const init = ((self) => () => { self.monitor(pid); }) satisfies Init;\nnode.spawn(init as Init);`,
      errors: [{ messageId: 'unmanagedDropped', line: 1 }],
    },
    { code: `ctx.node.monitors.monitor(ctx, pid);`, errors: [{ messageId: 'droppedRef' }] },
    { code: `ctx.node['monitors'].monitor(ctx, pid);`, errors: [{ messageId: 'droppedRef' }] },
    // through Function.prototype.call / apply (behind ?. or a string key too)
    {
      code: `ctx.monitor.call(ctx, pid);\nconst ref = ctx.monitor.apply(ctx, [pid]);\nctx['monitor']?.call(ctx, pid);\nctx.node.monitors.monitor.call(ctx.node.monitors, ctx, pid);`,
      errors: [
        { messageId: 'unmanagedDropped', line: 1 },
        { messageId: 'unmanaged', line: 2 },
        { messageId: 'unmanagedDropped', line: 3 },
        { messageId: 'droppedRef', line: 4 },
      ],
    },
    // dropped by a statement that is a ?:, a && or ||, or a comma expression
    {
      code: `ok ? ctx.node.monitors.monitor(ctx, pid) : undefined;\nready && ctx.node.monitors.monitor(ctx, pid);\n(log(), ctx.monitor(pid));`,
      errors: [
        { messageId: 'droppedRef', line: 1 },
        { messageId: 'droppedRef', line: 2 },
        { messageId: 'unmanagedDropped', line: 3 },
      ],
    },
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
