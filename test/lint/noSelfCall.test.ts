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
    // through a namespace import, a call to another process
    `import * as keel from 'keel';
     declare const other: keel.Pid;
     export async function f(ctx: keel.Context) { await keel.GenServer.call(ctx, other, 'get'); }`,
    // a local named \`call\` that holds another of Keel's functions: a cast to oneself is no deadlock
    `${header}const { cast: call } = GenServer;
export function f(ctx: Context) { call(ctx, ctx.self, 'again'); }`,
    `import { sendSupervised as call, type Context } from 'keel';
export async function f(ctx: Context) { await call(ctx, ctx.self, 'again'); }`,
  ],
  invalid: [
    {
      // GenServer's call taken under another name is found by its type, not by the local name
      code: `${header}const { call: ask } = GenServer;
const request = GenServer.call;
export async function f(ctx: Context) { await ask(ctx, ctx.self, 'x'); await request(ctx, ctx.self, 'y'); }`,
      errors: [{ messageId: 'selfCall', line: 5 }, { messageId: 'selfCall', line: 5 }],
    },
    {
      code: `${header}export async function f(ctx: Context) { await (GenServer as typeof GenServer).call(ctx, ctx.self, 'x'); }`,
      errors: [{ messageId: 'selfCall', line: 3 }],
    },
    {
      // GenServer's own typed name, by the types
      code: `import { GenServer, createNode } from 'keel';
const Me = GenServer.name<{ request: 'x'; reply: number }>('me');
await GenServer.start(createNode(), {
  init: () => 0,
  handleInfo: async (m: unknown, s: number, c) => { await GenServer.call(c, Me, 'x'); return { noreply: true, state: s }; },
}, undefined, { name: Me });`,
      errors: [{ messageId: 'selfCall', line: 5 }],
    },
    {
      // a typed name, by the types
      code: `import { GenServer, Name, createNode } from 'keel';
const Me = Name.of<string>('me');
await GenServer.start(createNode(), {
  init: () => 0,
  handleInfo: async (m: unknown, s: number, c) => { await GenServer.call(c, Me, 'x'); return { noreply: true, state: s }; },
}, undefined, { name: Me });`,
      errors: [{ messageId: 'selfCall', line: 5 }],
    },
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
    {
      // GenServer reached through a namespace import
      code: `import * as keel from 'keel';
export async function f(ctx: keel.Context) { await keel.GenServer.call(ctx, ctx.self, 'x'); }`,
      errors: [{ messageId: 'selfCall', line: 2 }],
    },
    {
      // computed members with string keys: keel['GenServer']['call'], GenServer[`call`]
      code: `import * as keel from 'keel';
import { GenServer } from 'keel';
export async function f(ctx: keel.Context) { await keel['GenServer']['call'](ctx, ctx.self, 'x'); }
export async function g(ctx: keel.Context) { await GenServer[\`call\`](ctx, ctx.self, 'x'); }`,
      errors: [{ messageId: 'selfCall', line: 3 }, { messageId: 'selfCall', line: 4 }],
    },
    {
      // a call to the server's own name, the server started through a namespace import too
      code: `import * as keel from 'keel';
declare const node: keel.Context;
export const started = keel.GenServer.start(node, {
  init: () => 0,
  async handleCall(req: string, _from: unknown, state: number, ctx: keel.Context) {
    const n = await keel.GenServer.call<any>(ctx, 'billing', 'count');
    return { reply: [req, n], state };
  },
}, undefined, { name: 'billing' });`,
      errors: [{ messageId: 'selfCall', line: 6 }],
    },
    {
      // a call to the name the server is started under, from its own callback
      code: `${header}declare const node: Context;
export const started = GenServer.start(node, {
  init: () => 0,
  async handleCall(req: string, _from: unknown, state: number, ctx: Context) {
    const n = await GenServer.call<any>(ctx, 'billing', 'count');
    return { reply: [req, n], state };
  },
}, undefined, { name: 'billing' });`,
      errors: [{ messageId: 'selfCall', line: 7 }],
    },
    {
      // the spec held in a const, the name in a const, the call from the node
      code: `${header}declare const node: Context;
const NAME = 'ledger';
const spec = {
  init: () => 0,
  async handleCast(_req: string, state: number) {
    await GenServer.call<any>(node, NAME, 'flush');
    return state;
  },
};
export const started = GenServer.start(node, spec, undefined, { name: \`ledger\` });`,
      errors: [{ messageId: 'selfCall', line: 8 }],
    },
  ],
});

untyped.run('no-self-call (without types: by name)', noSelfCall, {
  valid: [
    `await GenServer.call(ctx, other, 'x');`,
    `await GenServer.call(a, b.self, 'x');`,
    `await Other.call(ctx, ctx.self, 'x');`,
    // another server's name, from a server started under its own
    `GenServer.start(node, { init: () => 0, async handleCall(r, f, s, ctx) { await GenServer.call(ctx, 'other', r); return { reply: 1, state: s }; } }, undefined, { name: 'mine' });`,
    // the name of a server started elsewhere: the spec here is not started under it
    `const spec = { init: () => 0, async handleCall(r, f, s, ctx) { await GenServer.call(ctx, 'billing', r); return { reply: 1, state: s }; } };
     GenServer.start(node, spec);`,
    // a process a callback spawns is another process: its call to the server's name waits for a server that is free
    `GenServer.start(node, { init: () => 0, handleCast(m, s, ctx) { ctx.spawn((c) => async () => { await GenServer.call(c, 'billing', m); }); return s; } }, undefined, { name: 'billing' });`,
    `GenServer.start(node, { init: () => 0, handleCast(m, s, ctx) { ctx.spawnLink(function (c) { return async () => { await GenServer.call(c, 'billing', m); }; }); return s; } }, undefined, { name: 'billing' });`,
    // the same worker, its init given to spawn by name (a const, a function declaration)
    `GenServer.start(node, { init: () => 0, handleCast(m, s, ctx) { const worker = (c) => async () => { await GenServer.call(c, 'billing', m); }; ctx.spawn(worker); return s; } }, undefined, { name: 'billing' });`,
    `GenServer.start(node, { init: () => 0, handleCast(m, s, ctx) { function worker(c) { return async () => { await GenServer.call(c, 'billing', m); }; } ctx.spawnLink(worker); return s; } }, undefined, { name: 'billing' });`,
    // so is a server a callback starts: its own callbacks calling the server that started it are no self-call
    `GenServer.start(node, {
  init: () => 0,
  async handleCast(m, s, ctx) {
    await GenServer.start(ctx, { init: () => 0, async handleCall(r, f, t, c) { return { reply: await GenServer.call(c, 'billing', r), state: t }; } });
    return s;
  },
}, undefined, { name: 'billing' });`,
    // a call to the server's name from outside its callbacks
    `GenServer.start(node, { init: () => 0 }, undefined, { name: 'billing' }); await GenServer.call(node, 'billing', 'x');`,
    // consts that refer to each other (a TDZ error at run time, but it parses) are not followed for ever
    `const a = b, b = a; await GenServer.call(ctx, a, 'x');`,
    // a namespace import of Keel, a call to another process
    `import * as keel from 'keel';\nawait keel.GenServer.call(ctx, other, 'x');`,
    // a GenServer member of a namespace that is not Keel's
    `import * as mine from './mine.js';\nawait mine.GenServer.call(ctx, ctx.self, 'x');`,
    // nor of an object not imported at all: only a namespace import of Keel stands for it
    `await lib.GenServer.call(ctx, ctx.self, 'x');`,
    // a computed member that is no string key
    `await GenServer[method](ctx, ctx.self, 'x');`,
    // another typed name, or an \`of\` that is not Keel's Name.of
    `const Me = Name.of('me'), Other = Name.of('other');\nGenServer.start(node, { init: () => 0, handleInfo: async (m, s, c) => { await GenServer.call(c, Other, m); return s; } }, undefined, { name: Me });`,
    `const Me = Names.of('me');\nGenServer.start(node, { init: () => 0, handleInfo: async (m, s, c) => { await GenServer.call(c, Me, m); return s; } }, undefined, { name: 'me' });`,
    // a module loaded by require or import() that is not Keel
    `const mine = require('./mine.js');\nawait mine.GenServer.call(ctx, ctx.self, 'x');`,
    `const { GenServer: G } = await import('./mine.js');\nawait G.call(ctx, ctx.self, 'x');`,
    // a GenServer imported from another library, loaded from a module of one's own, or bound locally: not Keel's
    `import { GenServer } from 'other-lib';\nawait GenServer.call(ctx, ctx.self, 'x');`,
    `import { GenServer as G } from '@acme/keel';\nawait G.call(ctx, ctx.self, 'x');`,
    `import * as keel from 'keelhaul';\nawait keel.GenServer.call(ctx, ctx.self, 'x');`,
    `const { GenServer } = require('./mine.js');\nawait GenServer.call(ctx, ctx.self, 'x');`,
    `const GenServer = makeServer();\nawait GenServer.call(ctx, ctx.self, 'x');`,
    `function f(GenServer) { return GenServer.call(ctx, ctx.self, 'x'); }`,
    // another of Keel's exports imported under the name GenServer
    `import { Supervisor as GenServer } from 'keel';\nawait GenServer.call(ctx, ctx.self, 'x');`,
    // a relative import outside Keel's own src/ and dist/ (this file is at the root of Keel's repository)
    `import { GenServer } from './lib/mine.js';\nawait GenServer.call(ctx, ctx.self, 'x');`,
    // the pid of a context that is no callback's own: a function's parameter, another parameter of a callback, a cast
    `export async function f(node, ctx) { await GenServer.call(node, ctx.self, 'x'); }`,
    `GenServer.start(node, { init: () => 0, async handleCall(r, peer, s, ctx) { return { reply: await GenServer.call(node, peer.self, r), state: s }; } });`,
    `GenServer.start(node, { init: () => 0, handleCast(m, s, ctx) { GenServer.cast(node, ctx.self, m); return s; } });`,
    // a \`ctx\` that shadows the callback's: another context
    `GenServer.start(node, { init: () => 0, async handleCast(m, s, ctx) { for (const ctx of m.peers) await GenServer.call(node, ctx.self, m); return s; } });`,
    // a process the callback spawns, or the callbacks of a server it starts, are other processes calling this server
    `GenServer.start(node, { init: () => 0, handleCast(m, s, ctx) { ctx.spawn((c) => async () => { await GenServer.call(node, ctx.self, m); }); return s; } });`,
    `GenServer.start(node, { init: () => 0, async handleCast(m, s, ctx) { await GenServer.start(node, { init: () => 0, async handleInfo(i, t, c) { await GenServer.call(node, ctx.self, i); return t; } }); return s; } });`,
    // another library's server started under a name, calling that name: its start is not Keel's
    `import { GenServer } from 'other-lib';\nGenServer.start(node, { init: () => 0, handleInfo: async (m, s, c) => { await GenServer.call(c, 'me', m); return s; } }, undefined, { name: 'me' });`,
  ],
  invalid: [
    { code: `await GenServer.call(ctx, ctx.self, 'x');`, errors: [{ messageId: 'selfCall' }] },
    // TypeScript's wrappers on the name, on the spec, or where the spec is passed: \`as const\`, \`satisfies\`, \`as\`, \`!\`
    {
      code: `const NAME = 'billing' as const;
GenServer.start(node, { init: () => 0, handleInfo: async (m, s, c) => { await GenServer.call(c, NAME, m); return s; } }, undefined, { name: NAME });
const spec = { init: () => 0, handleInfo: async (m, s, c) => { await GenServer.call(c, 'audit' satisfies string, m); return s; } } satisfies Spec;
GenServer.start(node, spec, undefined, { name: 'audit' });
const other = { init: () => 0, handleInfo: async (m, s, c) => { await GenServer.call(c, 'log', m); return s; } };
GenServer.startLink(ctx, other as Spec, undefined, { name: 'log' as const });
GenServer.start(node, { init: () => 0, handleInfo: async (m, s, c) => { await GenServer.call(c, <string>'cache', m); return s; } }!, undefined, { name: 'cache' });`,
      errors: [2, 3, 5, 7].map((line) => ({ messageId: 'selfCall' as const, line })),
    },
    // GenServer (or the namespace) behind TypeScript's wrappers
    {
      code: `await (GenServer as typeof GenServer).call(ctx, ctx.self, 'x');\nawait GenServer!.call(ctx, ctx.self, 'x');\nimport * as keel from 'keel';\nawait (keel!.GenServer satisfies object).call(ctx, ctx.self, 'x');`,
      errors: [1, 2, 4].map((line) => ({ messageId: 'selfCall' as const, line })),
    },
    // GenServer's own typed name, \`GenServer.name<P>(text)\`, is its text as Name.of's is
    {
      code: `const Counter = GenServer.name<{ request: 'get'; reply: number }>('counter');
GenServer.start(node, { init: () => 0, handleInfo: async (m, s, c) => { await GenServer.call(c, Counter, 'get'); return s; } }, undefined, { name: Counter });
GenServer.start(node, { init: () => 0, handleInfo: async (m, s, c) => { await GenServer.call(c, 'audit', 'get'); return s; } }, undefined, { name: GenServer.name('audit') });`,
      errors: [{ messageId: 'selfCall', line: 2 }, { messageId: 'selfCall', line: 3 }],
    },
    // oneself written with a string key, also destructured
    { code: `await GenServer.call(ctx, ctx['self'], 'x');\nconst { 'self': me } = ctx;\nawait GenServer.call(ctx, me, 'y');`, errors: [{ messageId: 'selfCall', line: 1 }, { messageId: 'selfCall', line: 3 }] },
    { code: `const { self } = ctx;\nawait GenServer.call(ctx, self, 'x');`, errors: [{ messageId: 'selfCall', line: 2 }] },
    { code: `import { GenServer as G } from 'keel';\nawait G.call(this.ctx, this.ctx.self, 'x');`, errors: [{ messageId: 'selfCall', line: 2 }] },
    // GenServer reached through a namespace import of Keel
    { code: `import * as keel from 'keel';\nawait keel.GenServer.call(ctx, ctx.self, 'x');`, errors: [{ messageId: 'selfCall', line: 2 }] },
    // Keel loaded by require or import()
    { code: `const keel = require('keel');\nawait keel.GenServer.call(ctx, ctx.self, 'x');`, errors: [{ messageId: 'selfCall', line: 2 }] },
    { code: `const k = await import('keel');\nawait k.GenServer.call(ctx, ctx.self, 'x');`, errors: [{ messageId: 'selfCall', line: 2 }] },
    { code: `const { GenServer: G } = require('keel');\nawait G.call(ctx, ctx.self, 'x');`, errors: [{ messageId: 'selfCall', line: 2 }] },
    { code: `const { GenServer: S } = await import('keel');\nawait S.call(ctx, ctx.self, 'x');`, errors: [{ messageId: 'selfCall', line: 2 }] },
    {
      // the server's own pid called through another object (the node) from its callbacks: the callback's context by its
      // position (init 2nd, handleCall 4th, handleCast / handleInfo / handleContinue 3rd), its self held in a const too
      code: `GenServer.start(node, {
  async init(arg, ctx) { await GenServer.call(node, ctx.self, 'warm'); return 0; },
  async handleCall(r, f, s, ctx) { return { reply: await GenServer.call(node, ctx.self, r), state: s }; },
  async handleCast(m, s, c) { const me = c.self; await GenServer.call(node, me, m); return s; },
  handleInfo: async (m, s, c) => { const { self } = c; await Promise.all(m.items.map((i) => GenServer.call(node, self, i))); return s; },
  async handleContinue(i, s, ctx) { await GenServer.call(ctx.node, ctx['self'], i); return s; },
});
const spec = { init: () => 0, async handleInfo(this: void, m, s, ctx) { await GenServer.call(node, ctx.self, m); return s; } };`,
      errors: [2, 3, 4, 5, 6, 8].map((line) => ({ messageId: 'selfCall' as const, line })),
    },
    // Keel's subpaths, and relative imports of Keel's own source (this file is at the root of Keel's repository; a test two levels down)
    {
      code: `import { GenServer } from 'keel/testing';\nimport * as k from 'keel/cluster';\nimport { GenServer as G } from './src/index.js';\nawait GenServer.call(ctx, ctx.self, 'x');\nawait k.GenServer.call(ctx, ctx.self, 'x');\nawait G.call(ctx, ctx.self, 'x');`,
      errors: [4, 5, 6].map((line) => ({ messageId: 'selfCall' as const, line })),
    },
    {
      code: `import { GenServer } from '../../src/otp/GenServer.js';\nawait GenServer.call(ctx, ctx.self, 'x');`,
      filename: 'test/otp/server.test.ts',
      errors: [{ messageId: 'selfCall', line: 2 }],
    },
    { code: `import * as keel from 'keel';\nawait keel['GenServer'].call(ctx, ctx.self, 'x');\nawait GenServer['call'](ctx, ctx.self, 'y');`, errors: [{ messageId: 'selfCall', line: 2 }, { messageId: 'selfCall', line: 3 }] },
    {
      code: `import * as k from 'keel';\nk.GenServer.startLink(ctx, {\n  init: () => 0,\n  handleInfo: async (m, s, c) => { await k.GenServer.call(c, 'me', m); return s; },\n}, undefined, { name: 'me' });`,
      errors: [{ messageId: 'selfCall', line: 4 }],
    },
    {
      code: `GenServer.startLink(ctx, {\n  init: () => 0,\n  handleInfo: async (m, s, c) => { await GenServer.call(c, 'me', m); return s; },\n}, undefined, { name: 'me' });`,
      errors: [{ messageId: 'selfCall', line: 3 }],
    },
    {
      // a typed name (Name.of) is its text: the server started under it calling it, or its text
      code: `import { GenServer, Name as N } from 'keel';\nconst Me = N.of<string>('me');\nGenServer.start(node, {\n  init: () => 0,\n  handleInfo: async (m, s, c) => { await GenServer.call(c, Me, m); await GenServer.call(c, 'me', m); return s; },\n}, undefined, { name: Me });`,
      errors: [{ messageId: 'selfCall', line: 5 }, { messageId: 'selfCall', line: 5 }],
    },
    {
      code: `GenServer.start(node, {\n  init: () => 0,\n  handleInfo: async (m, s, c) => { await GenServer.call(c, Name.of('me'), m); return s; },\n}, undefined, { name: Name.of('me') });`,
      errors: [{ messageId: 'selfCall', line: 3 }],
    },
    {
      // the name option written with a string key, or the options held in a const
      code: `GenServer.start(node, { init: () => 0, handleInfo: async (m, s, c) => { await GenServer.call(c, 'a', m); return s; } }, undefined, { 'name': 'a' });
const options = { name: 'b' } as const;
GenServer.start(node, { init: () => 0, handleInfo: async (m, s, c) => { await GenServer.call(c, 'b', m); return s; } }, undefined, options);`,
      errors: [{ messageId: 'selfCall', line: 1 }, { messageId: 'selfCall', line: 3 }],
    },
    {
      // a server started from another's callback, calling its own name: flagged; the outer server's name is not its own
      code: `GenServer.start(node, {
  init: () => 0,
  async handleCast(m, s, ctx) {
    await GenServer.start(ctx, { init: () => 0, async handleCall(r, f, t, c) { await GenServer.call(c, 'outer', r); return { reply: await GenServer.call(c, 'inner', r), state: t }; } }, undefined, { name: 'inner' });
    await GenServer.call(ctx, 'outer', m);
    return s;
  },
}, undefined, { name: 'outer' });`,
      errors: [{ messageId: 'selfCall', line: 4, column: 139 }, { messageId: 'selfCall', line: 5 }],
    },
  ],
});
