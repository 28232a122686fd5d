import { noSelfCall } from '../../src/lint/rules/noSelfCall.js';
import { typed, untyped } from './ruleTester.js';

const header = `import { GenServer, type Context, type Pid } from 'keel';
declare const other: Pid;
`;

typed.run('no-self-call (with types)', noSelfCall, {
  valid: [
    `${header}export async function f(ctx: Context) { await GenServer.call(ctx, other, 'get'); }`,
    `${header}export function f(ctx: Context) { GenServer.cast(ctx, ctx.self, 'again'); }`,
    // a GenServer that is not Keel's
    `const GenServer = { call: async (_a: unknown, _b: unknown, _c: unknown) => 1 };
     declare const ctx: { self: number };
     export const r = GenServer.call(ctx, ctx.self, 'x');`,
  ],
  invalid: [
    {
      code: `${header}export const spec = {
  init: () => 0,
  async handleCall(req: string, _from: unknown, state: number, ctx: Context) {
    const n = await GenServer.call<any>(ctx, ctx.self, 'count');
    return { reply: [req, n], state };
  },
};`,
      errors: [{ messageId: 'selfCall', line: 6 }],
    },
    {
      code: `${header}const { call } = GenServer;
export async function f(c: Context) { const me = c.self; await call(c, me, 'x'); }`,
      errors: [{ messageId: 'selfCall' }],
    },
    {
      code: `import { GenServer as GS, type Context } from 'keel';
export async function f(ctx: Context) { await GS.call(ctx, ctx.self, 'x'); }`,
      errors: [{ messageId: 'selfCall' }],
    },
  ],
});

untyped.run('no-self-call (without types: by name)', noSelfCall, {
  valid: [`await GenServer.call(ctx, other, 'x');`, `await GenServer.call(a, b.self, 'x');`, `await Other.call(ctx, ctx.self, 'x');`],
  invalid: [
    { code: `await GenServer.call(ctx, ctx.self, 'x');`, errors: [{ messageId: 'selfCall' }] },
    { code: `import { GenServer as G } from 'keel';\nawait G.call(this.ctx, this.ctx.self, 'x');`, errors: [{ messageId: 'selfCall', line: 2 }] },
  ],
});
