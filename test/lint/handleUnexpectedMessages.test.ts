import { handleUnexpectedMessages } from '../../src/lint/rules/handleUnexpectedMessages.js';
import { untyped } from './ruleTester.js';

untyped.run('handle-unexpected-messages', handleUnexpectedMessages, {
  valid: [
    `node.spawn((ctx) => (msg) => { switch (msg.type) { case 'a': break; default: ctx.node.logger.warn('?', msg); } });`,
    // a switch on something else than the message
    `node.spawn((ctx) => (msg) => { switch (mode) { case 'a': break; } });`,
    // not a handler
    `function f(msg) { switch (msg.type) { case 'a': break; } }`,
    // a switch in a nested function is that function's business
    `node.spawn((ctx) => (msg) => { const g = (x) => { switch (msg.type) { case 'a': break; } }; });`,
    // methods named as Object.prototype's are no callbacks of a GenServer spec
    `const widget = { init() { return 0; }, toString(style) { switch (style) { case 'short': return 'w'; } }, valueOf(m) { if (m === 1) return 1; } };`,
    `const o = { init: () => 0, constructor(msg) { switch (msg.type) { case 'a': break; } }, hasOwnProperty(key) { if (key === 'x') return true; } };`,
    // an object with handleInfo but no init is not a GenServer spec
    `const x = { handleInfo(msg) { switch (msg.type) { case 'a': return 1; } } };`,
    // an if chain with a final else
    `node.spawn((ctx) => (msg) => { if (msg.type === 'a') { a(); } else if (msg.type === 'b') { b(); } else { ctx.node.logger.warn('?', msg); } });`,
    // an if chain that is not the last statement: what follows handles the rest
    `GenServer.start(node, { init: () => 0, handleInfo(info, state) { if (info.type === 'tick') return state + 1; return state; } });`,
    // a test that does not compare the message with a literal: a guard, or another value
    `node.spawn((ctx) => (msg) => { if (isDown(msg)) return; });`,
    `node.spawn((ctx) => (msg) => { if (mode === 'a') work(msg); });`,
    `node.spawn((ctx) => (msg) => { if (msg.type === other) work(msg); });`,
    // an if chain in a nested function
    `node.spawn((ctx) => (msg) => { const g = () => { if (msg.type === 'a') work(); }; g(); });`,
    // a named init is resolved only to a const or a function declaration never reassigned: a \`let\`, a reassigned
    // function, a parameter shadowing it, or a function never given to spawn is not an init
    `let init = (ctx) => (msg) => { switch (msg.type) { case 'a': break; } };\nnode.spawn(init);`,
    `function init(ctx) { return (msg) => { switch (msg.type) { case 'a': break; } }; }\ninit = other;\nnode.spawn(init);`,
    `const init = (ctx) => (msg) => { switch (msg.type) { case 'a': break; } };\nfunction start(init) { node.spawn(init); }`,
    `const handler = (ctx) => (msg) => { switch (msg.type) { case 'a': break; } };\nregister(handler);`,
    // a handler returned by name is resolved as a named init is: a \`let\` or a reassigned function is not, nor a
    // function returned by name from something that is no init
    `node.spawn((ctx) => { let h = (m) => { switch (m.type) { case 'a': break; } }; return h; });`,
    `node.spawn((ctx) => { function h(m) { switch (m.type) { case 'a': break; } } h = other; return h; });`,
    `function make() { const h = (m) => { switch (m.type) { case 'a': break; } }; return h; }`,
  ],
  invalid: [
    {
      // an init passed to spawn / spawnLink by name: a const holding it, or a function declaration (used before it too)
      code: `const init = (ctx) => (msg) => { switch (msg.type) { case 'a': break; } };
node.spawn(init);
ctx.spawnLink(worker);
function worker(c) { return (m) => { if (m.type === 'a') work(); }; }`,
      errors: [
        { messageId: 'noDefault', line: 1 },
        { messageId: 'noElse', line: 4 },
      ],
      output: `const init = (ctx) => (msg) => { switch (msg.type) { case 'a': break;
default:
  ctx.node.logger.warn('unexpected message', msg);
  break; } };
node.spawn(init);
ctx.spawnLink(worker);
function worker(c) { return (m) => { if (m.type === 'a') work();
else c.node.logger.warn('unexpected message', m); }; }`,
    },
    {
      // a handler returned by name: a const holding it or a function declaration of the init's scope (or the module's),
      // resolved by the scope manager; one finding for a handler returned twice
      code: `node.spawn((ctx) => { const h = (m) => { switch (m.type) { case 'a': break; } }; return h; });
ctx.spawnLink(function (c) { if (c.ready) return handler; return handler; function handler(m) { if (m.type === 'a') work(); } });
node.spawn((c) => shared);
function shared(m) { switch (m.kind) { case 'x': break; } }`,
      errors: [
        { messageId: 'noDefault', line: 1 },
        { messageId: 'noElse', line: 2 },
        { messageId: 'noDefault', line: 4 },
      ],
      output: `node.spawn((ctx) => { const h = (m) => { switch (m.type) { case 'a': break;
default:
  ctx.node.logger.warn('unexpected message', m);
  break; } }; return h; });
ctx.spawnLink(function (c) { if (c.ready) return handler; return handler; function handler(m) { if (m.type === 'a') work();
else c.node.logger.warn('unexpected message', m); } });
node.spawn((c) => shared);
function shared(m) { switch (m.kind) { case 'x': break; } }`,
    },
    {
      // the spec's keys written as strings (or computed from one): the same callbacks
      code: `GenServer.start(node, { 'init': () => 0, 'handleCast': (msg, s, ctx) => { switch (msg.type) { case 'a': break; } return s; } });
GenServer.start(node, { ['init']: () => 0, ['handleInfo'](msg, s, ctx) { switch (msg.type) { case 'a': break; } return s; } });`,
      errors: [
        { messageId: 'noDefault', line: 1 },
        { messageId: 'noDefault', line: 2 },
      ],
      output: `GenServer.start(node, { 'init': () => 0, 'handleCast': (msg, s, ctx) => { switch (msg.type) { case 'a': break;
default:
  ctx.node.logger.warn('unexpected message', msg);
  break; } return s; } });
GenServer.start(node, { ['init']: () => 0, ['handleInfo'](msg, s, ctx) { switch (msg.type) { case 'a': break;
default:
  ctx.node.logger.warn('unexpected message', msg);
  break; } return s; } });`,
    },
    {
      code: `node.spawn((ctx) => (msg) => {
  switch (msg.type) {
    case 'ping':
      ctx.send(msg.from, 'pong');
      break;
  }
});`,
      errors: [{ messageId: 'noDefault', data: { message: 'msg' }, line: 2 }],
      output: `node.spawn((ctx) => (msg) => {
  switch (msg.type) {
    case 'ping':
      ctx.send(msg.from, 'pong');
      break;
    default:
      ctx.node.logger.warn('unexpected message', msg);
      break;
  }
});`,
    },
    {
      // an init with a body: each returned handler
      code: `ctx.spawnLink(async (c) => {
  const state = new Map();
  return async (m) => {
    switch (m.kind) { case 'put': state.set(m.k, m.v); return; }
  };
});`,
      errors: [{ messageId: 'noDefault' }],
      output: `ctx.spawnLink(async (c) => {
  const state = new Map();
  return async (m) => {
    switch (m.kind) { case 'put': state.set(m.k, m.v); return;
    default:
      c.node.logger.warn('unexpected message', m);
      break; }
  };
});`,
    },
    {
      // GenServer callbacks: the ctx parameter is the last one
      code: `GenServer.start(node, {
  init: () => 0,
  handleCast(req, state, ctx) {
    switch (req.op) {
      case 'inc':
        return state + 1;
    }
    return state;
  },
  handleInfo(info, state) {
    switch (info.type) {
      case 'tick': return state;
    }
    return state;
  },
});`,
      errors: [
        { messageId: 'noDefault', line: 4 },
        { messageId: 'noDefault', line: 11 },
      ],
      // handleInfo has no ctx parameter: reported, not fixed
      output: `GenServer.start(node, {
  init: () => 0,
  handleCast(req, state, ctx) {
    switch (req.op) {
      case 'inc':
        return state + 1;
      default:
        ctx.node.logger.warn('unexpected message', req);
        break;
    }
    return state;
  },
  handleInfo(info, state) {
    switch (info.type) {
      case 'tick': return state;
    }
    return state;
  },
});`,
    },
    {
      // the last branch falls through the end: a default after it would change what it does
      code: `node.spawn((ctx) => (msg) => { switch (msg.type) { case 'a': work(); } });`,
      errors: [{ messageId: 'noDefault' }],
      output: null,
    },
    {
      // an if / else-if chain comparing the message with literals, last in the handler
      code: `node.spawn((ctx) => (msg) => {
  if (msg.type === 'ping') {
    ctx.send(msg.from, 'pong');
  } else if ('stop' === msg.type || msg.type === \`halt\`) {
    ctx.exit('normal');
  }
});`,
      errors: [{ messageId: 'noElse', data: { message: 'msg' }, line: 2 }],
      output: `node.spawn((ctx) => (msg) => {
  if (msg.type === 'ping') {
    ctx.send(msg.from, 'pong');
  } else if ('stop' === msg.type || msg.type === \`halt\`) {
    ctx.exit('normal');
  } else {
    ctx.node.logger.warn('unexpected message', msg);
  }
});`,
    },
    {
      // a branch without braces gets an else without braces
      code: `node.spawn((ctx) => (m) => {
  if (m === 'go') ctx.send(p, 'went');
});`,
      errors: [{ messageId: 'noElse', data: { message: 'm' } }],
      output: `node.spawn((ctx) => (m) => {
  if (m === 'go') ctx.send(p, 'went');
  else ctx.node.logger.warn('unexpected message', m);
});`,
    },
    {
      // a branch without braces that ends in an if of its own: an added else would bind to that inner if (reported, not fixed)
      code: `node.spawn((ctx) => (m) => {
  if (m.type === 'ping') if (m.from) ctx.send(m.from, 'pong');
});`,
      errors: [{ messageId: 'noElse', line: 2 }],
      output: null,
    },
    {
      code: `node.spawn((ctx) => (m) => {
  if (m.type === 'a') a();
  else if (m.type === 'each') for (const x of m.xs) if (x) each(x);
});`,
      errors: [{ messageId: 'noElse', line: 2 }],
      output: null,
    },
    {
      // sequential ifs: an else on the last would also run for what an earlier one took (reported, not fixed)
      code: `node.spawn((ctx) => (msg) => {
  if (msg.type === 'a') count++;
  if (msg.type === 'b') { reset(); }
});`,
      errors: [{ messageId: 'noElse', line: 3 }],
      output: null,
    },
    {
      // the message with TypeScript's wrappers: \`as\`, \`satisfies\`, \`<T>\`, \`!\` (reported; the switch's default is added)
      code: `node.spawn((ctx) => (msg) => { switch ((msg satisfies Msg).type) { case 'a': a(); break; } });
node.spawn((ctx) => (msg) => { switch ((<Msg>msg).type) { case 'a': a(); break; } });
node.spawn((ctx) => (msg) => { if ((msg as Msg)!.type === 'a') a(); });`,
      errors: [
        { messageId: 'noDefault', line: 1 },
        { messageId: 'noDefault', line: 2 },
        { messageId: 'noElse', line: 3 },
      ],
      output: `node.spawn((ctx) => (msg) => { switch ((msg satisfies Msg).type) { case 'a': a(); break;
default:
  ctx.node.logger.warn('unexpected message', msg);
  break; } });
node.spawn((ctx) => (msg) => { switch ((<Msg>msg).type) { case 'a': a(); break;
default:
  ctx.node.logger.warn('unexpected message', msg);
  break; } });
node.spawn((ctx) => (msg) => { if ((msg as Msg)!.type === 'a') a();
else ctx.node.logger.warn('unexpected message', msg); });`,
    },
    {
      // a callback with a TypeScript \`this\` parameter: it is no parameter at run time, the message and ctx come after it
      code: `GenServer.start(node, { init: () => 0, handleCast(this: void, msg: M, state: number, ctx: Context) { switch (msg.type) { case 'a': return state; } } });`,
      errors: [{ messageId: 'noDefault' }],
      output: `GenServer.start(node, { init: () => 0, handleCast(this: void, msg: M, state: number, ctx: Context) { switch (msg.type) { case 'a': return state;
default:
  ctx.node.logger.warn('unexpected message', msg);
  break; } } });`,
    },
    {
      // an earlier statement that tests the message (a switch on it, a guard, an if nested in a block): an else
      // on the chain would also run for the messages it took, logging them as unexpected (reported, not fixed)
      code: `node.spawn((ctx) => (msg) => {
  switch (msg.type) { case 'a': a(); break; default: break; }
  if (msg.type === 'b') { b(); }
});
node.spawn((ctx) => (msg) => {
  if (isDown(msg)) { forget(msg.pid); }
  if (msg.type === 'b') { b(); }
});
node.spawn((ctx) => (msg) => {
  if (ready) { if (msg.type === 'a') a(); }
  if (msg.type === 'b') { b(); }
});`,
      errors: [3, 7, 11].map((line) => ({ messageId: 'noElse' as const, line })),
      output: null,
    },
    {
      // a GenServer callback without its ctx parameter: reported, not fixed
      code: `GenServer.start(node, { init: () => 0, handleInfo(info, state) { if (info.kind == 'tick') { tick(state); } } });`,
      errors: [{ messageId: 'noElse' }],
      output: null,
    },
    {
      code: `node.spawn((ctx) => function (msg) { switch (typeof msg) { } });`,
      errors: [{ messageId: 'noDefault' }],
      output: `node.spawn((ctx) => function (msg) { switch (typeof msg) {
  default:
    ctx.node.logger.warn('unexpected message', msg);
    break; } });`,
    },
    {
      // \`ctx\` where the fix would write its line is another variable (a loop's, a case's own const): the
      // added \`ctx.node.logger.warn\` would read that one and throw on every unexpected message (reported, not fixed)
      code: `node.spawn((ctx) => (msg) => { for (const ctx of peers) { switch (msg.type) { case 'a': ctx.send(1); break; } } });`,
      errors: [{ messageId: 'noDefault' }],
      output: null,
    },
    {
      code: `node.spawn((ctx) => (msg) => { switch (msg.type) { case 'a': const ctx = open(); ctx.run(); break; } });`,
      errors: [{ messageId: 'noDefault' }],
      output: null,
    },
    {
      code: `node.spawn((ctx) => (msg) => { const ctx = sessions.get(msg.id); if (msg.type === 'a') ctx.run(); });`,
      errors: [{ messageId: 'noElse' }],
      output: null,
    },
  ],
});
