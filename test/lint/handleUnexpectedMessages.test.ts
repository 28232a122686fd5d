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
    // an object with handleInfo but no init is not a GenServer spec
    `const x = { handleInfo(msg) { switch (msg.type) { case 'a': return 1; } } };`,
  ],
  invalid: [
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
      code: `node.spawn((ctx) => function (msg) { switch (typeof msg) { } });`,
      errors: [{ messageId: 'noDefault' }],
      output: `node.spawn((ctx) => function (msg) { switch (typeof msg) {
  default:
    ctx.node.logger.warn('unexpected message', msg);
    break; } });`,
    },
  ],
});
