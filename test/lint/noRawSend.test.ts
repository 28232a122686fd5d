import type { TSESTree } from '@typescript-eslint/utils';
import { Linter } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';
import { noRawSend } from '../../src/lint/rules/noRawSend.js';
import { typed, untyped } from './ruleTester.js';

const spawnHeader = `import { createNode, type Context, type Pid } from 'keel';
const node = createNode();
declare const other: Pid<string>;
`;

/**
 * A send to another process from a context named `receiver` in a spawned init (`send` as written,
 * `ctx.send` or `ctx['send']`), flagged on line 4 with its suggestion: `sendSupervised` added to the import.
 */
function spawnedSend(receiver: string, send: string) {
  return {
    code: `${spawnHeader}node.spawn((${receiver}: Context<string>) => () => { ${send}(other, 'hi'); });`,
    errors: [
      {
        messageId: 'rawSend' as const,
        line: 4,
        suggestions: [
          {
            messageId: 'useSendSupervised' as const,
            data: { from: receiver },
            output: `import { createNode, type Context, type Pid, sendSupervised } from 'keel';
const node = createNode();
declare const other: Pid<string>;
node.spawn((${receiver}: Context<string>) => () => { void sendSupervised(${receiver}, other, 'hi'); });`,
          },
        ],
      },
    ],
  };
}

typed.run('no-raw-send (with types)', noRawSend, {
  valid: [
    // a send to oneself is how a behaviour drives itself
    `${spawnHeader}node.spawn((ctx) => () => { ctx.send(ctx.self, 'tick'); });`,
    `${spawnHeader}node.spawn((ctx) => { const me = ctx.self; return () => { ctx.send(me, 'tick'); }; });`,
    // a cast or a non-null assertion does not change who the receiver is
    `${spawnHeader}node.spawn((ctx) => () => { (ctx as Context<string>).send(ctx.self, 'tick'); });`,
    `${spawnHeader}declare const maybe: Context<string> | undefined;
maybe!.send(maybe.self as Pid<string>, 'tick');`,
    // `self` destructured from the context is oneself too
    `${spawnHeader}node.spawn((ctx) => { const { self } = ctx; return () => { ctx.send(self, 'tick'); }; });`,
    `${spawnHeader}node.spawn((ctx) => { const { self: me } = ctx; return () => { ctx.send(me, 'tick'); }; });`,
    // node.send is from outside any process
    `${spawnHeader}node.send(other, 'hello');`,
    `${spawnHeader}node.send.call(node, other, 'hello');`,
    `declare const ctx: { send(to: string, data: string): void };
     ctx.send.call(ctx, 'peer', 'data');`,
    // a send on an unrelated object with a context-like name is not Keel's
    `declare const ctx: { send(to: string, data: string): void };
     ctx.send('peer', 'data');`,
    `declare const socket: { send(data: string, cb: () => void): void };
     socket.send('x', () => {});`,
    `class Channel { send(_to: string, _m: string) {} }
     const context = new Channel();
     context.send('a', 'b');`,
    // the send of something else than a context, bound
    `declare const ctx: { send(to: string, data: string): void };
     export const post = ctx.send.bind(ctx); post('peer', 'data');`,
    // a send destructured from something else than a context, or a destructured send to oneself
    `${spawnHeader}declare const socket: { send(to: Pid<string>, m: string): void };
const { send } = socket; send(other, 'x');`,
    `${spawnHeader}node.spawn((c: Context<string>) => { const { send } = c; return () => { send(c.self, 'tick'); }; });`,
  ],
  invalid: [
    // the method named in brackets is found by its type as the dotted one is
    {
      code: `${spawnHeader}node.spawn((ctx: Context<string>) => () => { ctx.send.call(ctx, other, 'hi'); });`,
      errors: [{ messageId: 'rawSend', line: 4, suggestions: [] }],
    },
    {
      // a send destructured from a context (or held in a const): the same send, found by its type; no suggestion
      code: `${spawnHeader}node.spawn((c: Context<string>) => { const { send } = c; const post = c.send; return () => { send(other, 'hi'); post(other, 'hi'); }; });`,
      errors: [
        { messageId: 'rawSend', line: 4, column: 94, suggestions: [] },
        { messageId: 'rawSend', line: 4, column: 113, suggestions: [] },
      ],
    },
    {
      // a send bound to a context (its type tells), called to another process, or handed on
      code: `${spawnHeader}export function relay(k: Context<string>, out: (f: unknown) => void) { const post = k.send.bind(k); post(other, 'hi'); out(k.send.bind(k)); }`,
      errors: [
        { messageId: 'rawSend', line: 4, column: 101, suggestions: [] },
        { messageId: 'boundSend', line: 4, column: 124 },
      ],
    },
    {
      // a bound send (its type tells) called through Function.prototype.call
      code: `${spawnHeader}export function relay(k: Context<string>) { const post = k.send.bind(k); post.call(null, other, 'hi'); }`,
      errors: [{ messageId: 'rawSend', line: 4, suggestions: [] }],
    },
    {
      // a context whose name says nothing (no init around it): its type tells
      code: `${spawnHeader}export function relay(k: Context<unknown>) { const { send: post } = k; post(other, 'hi'); }`,
      errors: [{ messageId: 'rawSend', line: 4, suggestions: [] }],
    },
    spawnedSend('c', `c['send']`),
    spawnedSend('ctx', 'ctx.send'),
    {
      // a context under another name is found by its type; an existing import is reused
      code: `import { sendSupervised as supervised, type Context, type Pid } from 'keel';
declare const peer: Pid<number>;
export function relay(c: Context<unknown>, n: number) { return c.send(peer, n); }`,
      errors: [
        {
          messageId: 'rawSend',
          suggestions: [
            {
              messageId: 'useSendSupervised',
              data: { from: 'c' },
              output: `import { sendSupervised as supervised, type Context, type Pid } from 'keel';
declare const peer: Pid<number>;
export function relay(c: Context<unknown>, n: number) { return void supervised(c, peer, n); }`,
            },
          ],
        },
      ],
    },
    {
      // a private field typed any: the types say nothing, its name makes it a context
      code: `${spawnHeader}export class Relay { #ctx: any; forward(m: string) { this.#ctx.send(other, m); } }`,
      errors: [
        {
          messageId: 'rawSend',
          line: 4,
          suggestions: [
            {
              messageId: 'useSendSupervised',
              data: { from: 'this.#ctx' },
              output: `import { createNode, type Context, type Pid, sendSupervised } from 'keel';
const node = createNode();
declare const other: Pid<string>;
export class Relay { #ctx: any; forward(m: string) { void sendSupervised(this.#ctx, other, m); } }`,
            },
          ],
        },
      ],
    },
    {
      // only a type import from keel: a new import line
      code: `import type { Context, Pid } from 'keel';
declare const peer: Pid<string>;
export const f = (ctx: Context) => ctx.send<string>(peer, 'x');`,
      errors: [
        {
          messageId: 'rawSend',
          suggestions: [
            {
              messageId: 'useSendSupervised',
              data: { from: 'ctx' },
              output: `import type { Context, Pid } from 'keel';
import { sendSupervised } from 'keel';
declare const peer: Pid<string>;
export const f = (ctx: Context) => void sendSupervised<string>(ctx, peer, 'x');`,
            },
          ],
        },
      ],
    },
  ],
});

untyped.run('no-raw-send (without types: by name)', noRawSend, {
  valid: [
    `ctx.send(ctx.self, 'tick');`,
    `this.ctx.send(this.ctx.self, 'tick');`,
    `class Server { #ctx; tick() { this.#ctx.send(this.#ctx.self, 'tick'); } }`,
    // a private field by another name is not a context: the name decides, as for a public one
    `class Link { #socket; #other; push(d) { this.#socket.send(peer, d); this.#other.send(peer, d); } }`,
    `socket.send(data, cb);`,
    `node.send(pid, 'x');`,
    // a single argument is not a process send
    `ctx.send('x');`,
    // oneself, written with optional chaining
    `ctx?.send(ctx?.self, 'tick');`,
    `ctx.send(ctx?.self, 'tick');`,
    `this.ctx?.send(this?.ctx.self, 'tick');`,
    // oneself, written with a string key (as \`ctx['send']\` is a send), also destructured
    `ctx.send(ctx['self'], 'tick'); ctx['send'](ctx[\`self\`], 'tick');`,
    `const { 'self': me } = ctx; ctx.send(me, 'tick');`,
    // oneself through Function.prototype.call / apply: the context is the first argument
    `ctx.send.call(ctx, ctx.self, 'tick'); ctx.send.apply(ctx, [ctx.self, 'tick']);`,
    // not a send's call: an array of one, or a call of something else
    `ctx.send.apply(ctx, ['x']); ctx.reply.call(ctx, peer, 'x'); fn.call(ctx, peer, 'x');`,
    // an init held in a \`let\` (it may be another function when spawned) is not resolved: its parameter is no context by name
    `let init = (self) => (m) => { self.send(m.replyTo, 'pong'); };\nnode.spawn(init);`,
    // destructured from something that is no context by name, or a send to oneself
    `const { send } = socket; send(peer, 'x');`,
    `const { send, self } = ctx; send(self, 'tick'); send(ctx.self, 'tick');`,
    `const { send: post } = ctx; const { self: me } = ctx; post(me, 'tick');`,
    // a send bound to its context, used to send to oneself only; a bind of something that is no context's send
    `const post = ctx.send.bind(ctx); post(ctx.self, 'tick'); post.call(null, ctx.self, 'tock');`,
    `const tick = ctx.send.bind(ctx, ctx.self); tick('t'); setInterval(ctx.send.bind(ctx, ctx.self, 'tick'), 10);`,
    `ctx.send.bind(ctx)(ctx.self, 'tick');`,
    // the same behind an optional chain: the const holds the bound send, only called, to oneself
    `const post = ctx.send?.bind(ctx); post(ctx.self, 'tick');`,
    `relay(socket.send.bind(socket)); const f = node.send.bind(node); f(peer, 'x'); relay(handler.bind(ctx)); relay(ctx.reply.bind(ctx));`,
  ],
  invalid: [
    {
      // an init passed to spawn / spawnLink by name (a const, a function declaration): its first parameter is a context
      code: `const init = (self) => (m) => { self.send(m.replyTo, 'pong'); };
node.spawn(init);
function worker(c) { return (m) => { c.send(m.replyTo, 'pong'); }; }
ctx.spawnLink(worker);`,
      errors: [
        {
          messageId: 'rawSend',
          line: 1,
          suggestions: [
            {
              messageId: 'useSendSupervised',
              data: { from: 'self' },
              output: `import { sendSupervised } from 'keel';
const init = (self) => (m) => { void sendSupervised(self, m.replyTo, 'pong'); };
node.spawn(init);
function worker(c) { return (m) => { c.send(m.replyTo, 'pong'); }; }
ctx.spawnLink(worker);`,
            },
          ],
        },
        {
          messageId: 'rawSend',
          line: 3,
          suggestions: [
            {
              messageId: 'useSendSupervised',
              data: { from: 'c' },
              output: `import { sendSupervised } from 'keel';
const init = (self) => (m) => { self.send(m.replyTo, 'pong'); };
node.spawn(init);
function worker(c) { return (m) => { void sendSupervised(c, m.replyTo, 'pong'); }; }
ctx.spawnLink(worker);`,
            },
          ],
        },
      ],
    },
    {
      // a handler returned by name from an init: its sends are through the init's context, a context by name
      code: `node.spawn((self) => { const h = (m) => { self.send(m.to, 'x'); }; return h; });\nnode.spawn((c) => { function h(m) { c.send(m.to, 'x'); } return h; });`,
      filename: 'relay.cjs',
      errors: [{ messageId: 'rawSend', line: 1, suggestions: [] }, { messageId: 'rawSend', line: 2, suggestions: [] }],
    },
    {
      // a send destructured from a context (renamed, or a string key), or held in a const: no suggestion
      code: `const { send } = ctx;
send(peer, 'hi');
const { 'send': post } = this.ctx;
post(peer, 'hi');
node.spawn((self) => { const relay = self.send; return (m) => relay(m.to, m.body); });`,
      errors: [
        { messageId: 'rawSend', line: 2, suggestions: [] },
        { messageId: 'rawSend', line: 4, suggestions: [] },
        { messageId: 'rawSend', line: 5, suggestions: [] },
      ],
    },
    {
      // a send bound to its context (Function.prototype.bind): called through the const that holds it, or
      // handed on (an argument, a property, a return value, a const read otherwise than called), or with its
      // target bound: no suggestion
      code: `const post = ctx.send.bind(ctx);
post(peer, 'hi');
relay(ctx.send.bind(ctx));
const toPeer = ctx['send'].bind(ctx, peer);
ctx.send.bind(ctx)(peer, 'x');
const handed = this.ctx.send.bind(this.ctx); emitter.on('m', handed);
node.spawn((self) => { const out = { send: self.send.bind(self) }; return () => out; });
export const forward = (context) => context.send.bind(context);`,
      errors: [
        { messageId: 'rawSend', line: 2, suggestions: [] },
        { messageId: 'boundSend', line: 3 },
        { messageId: 'boundSend', line: 4 },
        { messageId: 'rawSend', line: 5, suggestions: [] },
        { messageId: 'boundSend', line: 6 },
        { messageId: 'boundSend', line: 7 },
        { messageId: 'boundSend', line: 8 },
      ],
    },
    {
      // a const holding a bound send (or a send taken out of the context) called through Function.prototype.call /
      // apply: the this-argument aside, each call is a send from that context; to oneself it is not flagged
      code: `const post = ctx.send.bind(ctx);
post.call(null, peer, 'hi');
post.apply(undefined, [peer, 'hi']);
const { send } = ctx; send.call(ctx, peer, 'hi');
post.call(null, ctx.self, 'tick'); send.apply(ctx, [ctx.self, 'tick']); post.apply(null, ['x']);`,
      errors: [
        { messageId: 'rawSend', line: 2, suggestions: [] },
        { messageId: 'rawSend', line: 3, suggestions: [] },
        { messageId: 'rawSend', line: 4, suggestions: [] },
      ],
    },
    {
      // a send bound behind an optional chain (ctx.send?.bind(ctx)) held in a const: each call is the send
      code: `const post = ctx.send?.bind(ctx);
post(peer, 'hi');`,
      errors: [{ messageId: 'rawSend', line: 2, suggestions: [] }],
    },
    {
      // the same send through Function.prototype.call, apply, or behind the optional chain: no suggestion
      code: `ctx.send.call(ctx, peer, 'hi');
ctx.send.apply(ctx, [peer, 'hi']);
ctx['send'].call(this, peer, 'hi');
ctx.send?.call(ctx, peer, 'hi');
ctx.send.apply(ctx, [peer, ...rest]);`,
      errors: [
        { messageId: 'rawSend', line: 1, suggestions: [] },
        { messageId: 'rawSend', line: 2, suggestions: [] },
        { messageId: 'rawSend', line: 3, suggestions: [] },
        { messageId: 'rawSend', line: 4, suggestions: [] },
        { messageId: 'rawSend', line: 5, suggestions: [] },
      ],
    },
    {
      // a comma expression (an argument, or the receiver) keeps its parentheses: unwrapped, it would be two arguments
      code: `ctx.send(peer, (log(), 'hi'));`,
      errors: [
        {
          messageId: 'rawSend',
          suggestions: [{ messageId: 'useSendSupervised', data: { from: 'ctx' }, output: `import { sendSupervised } from 'keel';\nvoid sendSupervised(ctx, peer, (log(), 'hi'));` }],
        },
      ],
    },
    {
      // an init written with a TypeScript \`this\` parameter: its context is the first parameter after it
      code: `node.spawn(function (this: void, c: Context<string>) { return () => c.send(peer, 'hi'); });`,
      errors: [
        {
          messageId: 'rawSend',
          suggestions: [
            {
              messageId: 'useSendSupervised',
              data: { from: 'c' },
              output: `import { sendSupervised } from 'keel';\nnode.spawn(function (this: void, c: Context<string>) { return () => void sendSupervised(c, peer, 'hi'); });`,
            },
          ],
        },
      ],
    },
    {
      // the name the suggestion would call is another binding where the call is (a function of the file, a
      // parameter shadowing the import): the added import would clash, or the call reach the wrong function (no suggestion)
      code: `function sendSupervised(x) { return x; }\nctx.send(peer, 'hi');`,
      errors: [{ messageId: 'rawSend', line: 2, suggestions: [] }],
    },
    {
      code: `import { sendSupervised as s2 } from 'keel';\nfunction f(ctx, s2) { ctx.send(peer, 'hi'); }`,
      errors: [{ messageId: 'rawSend', line: 2, suggestions: [] }],
    },
    {
      // sendSupervised imported as a type only (an inline \`type\`): the suggestion makes that import a value one, not a second one
      code: `import { type sendSupervised, createNode } from 'keel';\nctx.send(peer, 'hi');`,
      errors: [
        {
          messageId: 'rawSend',
          suggestions: [{ messageId: 'useSendSupervised', data: { from: 'ctx' }, output: `import { sendSupervised, createNode } from 'keel';\nvoid sendSupervised(ctx, peer, 'hi');` }],
        },
      ],
    },
    {
      // in a type-only import declaration, under an alias: the declaration keeps its other names as types, and the alias is used
      code: `import type { Pid, sendSupervised as supervised } from 'keel';\nctx.send(peer, 'hi');`,
      errors: [
        {
          messageId: 'rawSend',
          suggestions: [{ messageId: 'useSendSupervised', data: { from: 'ctx' }, output: `import { type Pid, sendSupervised as supervised } from 'keel';\nvoid supervised(ctx, peer, 'hi');` }],
        },
      ],
    },
    {
      // a file that starts with a hashbang keeps it first: the import goes after it
      code: `#!/usr/bin/env node\nctx.send(peer, 'hi');`,
      errors: [
        {
          messageId: 'rawSend',
          suggestions: [{ messageId: 'useSendSupervised', data: { from: 'ctx' }, output: `#!/usr/bin/env node\nimport { sendSupervised } from 'keel';\nvoid sendSupervised(ctx, peer, 'hi');` }],
        },
      ],
    },
    {
      // a value read further (a member of it) is read of the \`void\`, as it was of \`send\`'s: the \`void\` in parentheses
      code: `ctx.send(peer, 'hi')?.toString();`,
      errors: [
        {
          messageId: 'rawSend',
          suggestions: [{ messageId: 'useSendSupervised', data: { from: 'ctx' }, output: `import { sendSupervised } from 'keel';\n(void sendSupervised(ctx, peer, 'hi'))?.toString();` }],
        },
      ],
    },
    {
      // a non-null assertion and a member of it: the assertion stays on the \`void\`, in parentheses, as it was on \`send\`'s value
      code: `ctx.send(peer, 'hi')!.toString();`,
      errors: [
        {
          messageId: 'rawSend',
          suggestions: [{ messageId: 'useSendSupervised', data: { from: 'ctx' }, output: `import { sendSupervised } from 'keel';\n(void sendSupervised(ctx, peer, 'hi'))!.toString();` }],
        },
      ],
    },
    {
      // only the `self` of the pattern itself, of the same receiver, is oneself
      code: `const { self } = other; const { node: { self: s } } = ctx; ctx.send(self, 1); ctx.send(s, 2);`,
      filename: 'relay.cjs',
      errors: [{ messageId: 'rawSend', column: 60, suggestions: [] }, { messageId: 'rawSend', column: 79, suggestions: [] }],
    },
    {
      // the method named in brackets is the same method
      code: `ctx['send'](peer, 'hi');`,
      errors: [
        {
          messageId: 'rawSend',
          suggestions: [{ messageId: 'useSendSupervised', data: { from: 'ctx' }, output: `import { sendSupervised } from 'keel';\nvoid sendSupervised(ctx, peer, 'hi');` }],
        },
      ],
    },
    {
      // a non-null assertion on a context by name is still that context
      code: `ctx!.send(peer, 'hi');`,
      errors: [
        {
          messageId: 'rawSend',
          suggestions: [{ messageId: 'useSendSupervised', data: { from: 'ctx!' }, output: `import { sendSupervised } from 'keel';\nvoid sendSupervised(ctx!, peer, 'hi');` }],
        },
      ],
    },
    {
      // a const that refers to itself (a TDZ error at run time, but it parses) is not followed for ever
      code: `const a = a;\nctx.send(a, 'hi');`,
      errors: [
        {
          messageId: 'rawSend',
          line: 2,
          suggestions: [{ messageId: 'useSendSupervised', data: { from: 'ctx' }, output: `import { sendSupervised } from 'keel';\nconst a = a;\nvoid sendSupervised(ctx, a, 'hi');` }],
        },
      ],
    },
    {
      code: `const p = node.spawn((c) => (m) => { c.send(m.replyTo, 'pong'); });`,
      errors: [
        {
          messageId: 'rawSend',
          suggestions: [
            {
              messageId: 'useSendSupervised',
              data: { from: 'c' },
              output: `import { sendSupervised } from 'keel';\nconst p = node.spawn((c) => (m) => { void sendSupervised(c, m.replyTo, 'pong'); });`,
            },
          ],
        },
      ],
    },
    {
      code: `import { createNode } from 'keel';\nthis.ctx.send(peer, msg);`,
      errors: [
        {
          messageId: 'rawSend',
          suggestions: [
            {
              messageId: 'useSendSupervised',
              data: { from: 'this.ctx' },
              output: `import { createNode, sendSupervised } from 'keel';\nvoid sendSupervised(this.ctx, peer, msg);`,
            },
          ],
        },
      ],
    },
    {
      // a context held in a private field
      code: `import { createNode } from 'keel';\nclass Relay { #ctx; forward(m) { this.#ctx.send(peer, m); } }`,
      errors: [
        {
          messageId: 'rawSend',
          line: 2,
          suggestions: [
            {
              messageId: 'useSendSupervised',
              data: { from: 'this.#ctx' },
              output: `import { createNode, sendSupervised } from 'keel';\nclass Relay { #ctx; forward(m) { void sendSupervised(this.#ctx, peer, m); } }`,
            },
          ],
        },
      ],
    },
    {
      code: `class Relay { #context; forward(m) { this.#context['send'](peer, m); } }`,
      filename: 'relay.cjs',
      errors: [{ messageId: 'rawSend', suggestions: [] }],
    },
    {
      // no suggestion for a spread or a script
      code: `context.send(...args);`,
      errors: [{ messageId: 'rawSend', suggestions: [] }],
    },
    {
      code: `ctx.send(peer, msg);`,
      filename: 'relay.cjs',
      errors: [{ messageId: 'rawSend', suggestions: [] }],
    },
  ],
});

/** The types of the nodes from the program down to the first node `match` accepts (source order), by the parser's visitor keys. */
function pathTo(code: string, match: (n: TSESTree.Node) => boolean): string[] | undefined {
  // typescript-eslint's parser, as ESLint calls it (its exported type leaves the result unknown)
  const parser = tseslint.parser as unknown as { parseForESLint(code: string, options: object): { ast: TSESTree.Program; visitorKeys: Record<string, readonly string[] | undefined> } };
  const { ast, visitorKeys } = parser.parseForESLint(code, { range: true });
  const go = (n: TSESTree.Node, path: string[]): string[] | undefined => {
    const here = [...path, n.type];
    if (match(n)) return here;
    for (const key of visitorKeys[n.type] ?? []) {
      const child = (n as unknown as Record<string, unknown>)[key];
      for (const c of Array.isArray(child) ? child : [child]) {
        if (c === null || typeof c !== 'object' || typeof (c as { type?: unknown }).type !== 'string') continue;
        const found = go(c as TSESTree.Node, here);
        if (found !== undefined) return found;
      }
    }
    return undefined;
  };
  return go(ast, []);
}

/** The file a suggestion makes of `code`: the first report's first suggestion applied. */
function suggested(code: string): string {
  const linter = new Linter({ configType: 'flat' });
  const [message] = linter.verify(code, [
    { files: ['**/*.ts'], languageOptions: { parser: tseslint.parser }, plugins: { keel: { rules: { 'no-raw-send': noRawSend as never } } }, rules: { 'keel/no-raw-send': 'warn' } },
  ], 'relay.ts');
  const fix = message?.suggestions?.[0]?.fix;
  if (fix === undefined) throw new Error(`no suggestion for ${code}: ${JSON.stringify(message)}`);
  return code.slice(0, fix.range[0]) + fix.text + code.slice(fix.range[1]);
}

describe('no-raw-send suggestion', () => {
  const isSend = (n: TSESTree.Node): boolean => n.type === 'CallExpression' && n.callee.type === 'MemberExpression' && n.callee.property.type === 'Identifier' && n.callee.property.name === 'send';
  const isVoid = (n: TSESTree.Node): boolean => n.type === 'UnaryExpression' && n.operator === 'void';
  it.each([
    `ctx.send(peer, 'hi')!.toString();`,
    `ctx.send(peer, 'hi')!!.toString();`,
    `ctx.send(peer, 'hi')!?.toString();`,
    `ctx.send(peer, 'hi')!();`,
    'ctx.send(peer, `hi`)!`tag`;',
    `const n = ctx.send(peer, 'hi')! ** 2;`,
    `ctx.send(peer, 'hi')!;`,
    `(ctx.send(peer, 'hi') as any).x;`,
  ])('puts the void where the send was in %s, what is around it unchanged', (code) => {
    const before = pathTo(code, isSend);
    const after = suggested(code);
    expect(before).toBeDefined();
    // the \`void\` stands where the call stood: the same nodes around it, the import aside
    expect(pathTo(after, isVoid)).toEqual([...before!.slice(0, -1), 'UnaryExpression']);
    expect(pathTo(after, (n) => n.type === 'ImportDeclaration')).toEqual(['Program', 'ImportDeclaration']);
  });
});
