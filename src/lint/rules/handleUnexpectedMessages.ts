import type { TSESLint, TSESTree } from '@typescript-eslint/utils';
import { createRule } from '../internal/createRule.js';
import { walk } from '../internal/ast.js';
import { findVariable, functionNamed, isSpawnInit, keyName, unwrapTs } from '../internal/keelTypes.js';

type RuleContext = Readonly<TSESLint.RuleContext<string, readonly unknown[]>>;
type Fn = TSESTree.ArrowFunctionExpression | TSESTree.FunctionExpression;
/** An `init`: written in the spawn call, or passed there by name (a `const` holding it, a function declaration). */
type Init = Fn | TSESTree.FunctionDeclaration;

/** A message handler: the function, its message parameter and the context parameter in scope (if any). */
interface Handler {
  fn: Init;
  message: TSESTree.Identifier;
  ctx: TSESTree.Identifier | undefined;
}

/** GenServer callbacks that get messages, with the index of their `ctx` parameter. */
const CALLBACK_CTX_INDEX: ReadonlyMap<string, number> = new Map([
  ['handleCall', 3],
  ['handleCast', 2],
  ['handleInfo', 2],
]);

/**
 * `handle-unexpected-messages`: a handler that switches on its message with no `default` branch,
 * or ends with an `if` chain comparing its message with literals and no final `else`, drops
 * unknown messages silently. Autofix, when a context is in scope and it cannot change what a known
 * message does: a `default:` branch (or a final `else`) that reports the message on the node's
 * logger, so every known message takes exactly the path it took before.
 */
export const handleUnexpectedMessages = createRule<[], 'noDefault' | 'noElse'>({
  name: 'handle-unexpected-messages',
  meta: {
    type: 'suggestion',
    fixable: 'code',
    docs: {
      description: 'Require a `default` branch in a message handler\'s switch (or a final `else` in its `if` chain), so that unexpected messages are reported, not silently dropped',
      recommended: true,
      typeAware: false,
    },
    messages: {
      noDefault:
        'This handler switches on `{{message}}` with no `default` branch: an unexpected message is dropped silently. Add `default:` that reports it (e.g. `ctx.node.logger.warn(\'unexpected message\', {{message}})`).',
      noElse:
        'This handler ends by comparing `{{message}}` in an `if` chain with no final `else`: an unexpected message is dropped silently. Add `else` that reports it (e.g. `ctx.node.logger.warn(\'unexpected message\', {{message}})`).',
    },
    schema: [],
    defaultOptions: [],
  },
  create(context) {
    // a handler returned by name from several inits, or by several returns, is checked once
    const checked = new Set<Init>();
    const check = (h: Handler): void => {
      if (checked.has(h.fn)) return;
      checked.add(h.fn);
      checkIfChain(context, h);
      for (const sw of switchesIn(context, h.fn.body)) {
        if (sw.cases.some((c) => c.test === null) || !rootedAt(context, sw.discriminant, h.message)) continue;
        // the default is written inside the switch: its own scope (a case's `const`) counts
        const canFix = h.ctx !== undefined && !fallsThroughAtEnd(sw) && reportable(context, sw, h);
        context.report({
          node: sw,
          loc: context.sourceCode.getFirstToken(sw)!.loc,
          messageId: 'noDefault',
          data: { message: h.message.name },
          ...(canFix ? { fix: (fixer: TSESLint.RuleFixer) => addDefault(fixer, context, sw, h) } : {}),
        });
      }
    };
    return {
      // node.spawn((ctx) => (msg) => …) and ctx.spawn / spawnLink, the init written there or passed by name
      'ArrowFunctionExpression, FunctionExpression, FunctionDeclaration'(fn: Init) {
        if (!isSpawnInit(context, fn)) return;
        const first = runtimeParams(fn)[0];
        const ctxParam = first?.type === 'Identifier' ? first : undefined;
        for (const handler of returnedFunctions(context, fn)) {
          const message = runtimeParams(handler)[0];
          if (message?.type === 'Identifier') check({ fn: handler, message, ctx: ctxParam });
        }
      },
      // GenServer specs: an object literal with `init` and handleCall / handleCast / handleInfo
      ObjectExpression(obj) {
        // keys by name: `handleCast`, `'handleCast'`, `['handleCast']`
        const props = obj.properties.filter((p): p is TSESTree.Property => p.type === 'Property' && keyName(p) !== undefined);
        if (!props.some((p) => keyName(p) === 'init')) return;
        for (const p of props) {
          // a Map: a method named as one of Object.prototype's (`toString`, `constructor`) is no callback
          const index = CALLBACK_CTX_INDEX.get(keyName(p)!);
          const fn = p.value;
          if (index === undefined || (fn.type !== 'FunctionExpression' && fn.type !== 'ArrowFunctionExpression')) continue;
          const params = runtimeParams(fn);
          const message = params[0];
          const ctxParam = params[index];
          if (message?.type === 'Identifier') check({ fn, message, ctx: ctxParam?.type === 'Identifier' ? ctxParam : undefined });
        }
      },
    };
  },
});

/** A function's parameters as it is called with them: without TypeScript's `this` parameter (`handleCast(this: void, msg, …)`). */
function runtimeParams(fn: Init): TSESTree.Parameter[] {
  const [first, ...rest] = fn.params;
  return first?.type === 'Identifier' && first.name === 'this' ? rest : fn.params;
}

/**
 * The functions an init returns: its expression body, or its top-level `return` statements; written there, or
 * returned by name (see {@link byName}).
 */
function returnedFunctions(context: RuleContext, init: Init): Init[] {
  const isFn = (n: TSESTree.Node | null | undefined): n is Fn => n?.type === 'ArrowFunctionExpression' || n?.type === 'FunctionExpression';
  const handler = (n: TSESTree.Node | null | undefined): Init | undefined => (isFn(n) ? n : n?.type === 'Identifier' ? functionNamed(context, n) : undefined);
  if (init.body.type !== 'BlockStatement') {
    const h = handler(unwrapTs(init.body));
    return h === undefined ? [] : [h];
  }
  const out: Init[] = [];
  walk(context, init.body, (n) => {
    const h = n.type === 'ReturnStatement' && n.argument !== null ? handler(unwrapTs(n.argument)) : undefined;
    if (h !== undefined && !out.includes(h)) out.push(h);
  });
  return out;
}

/**
 * The handler's body ends with an `if` chain (`if … else if …`, no final `else`) whose every test
 * compares a member of the message with a literal: a message that matches none of them falls off
 * the end. Fixed with a final `else` that logs it, when a context is in scope and that chain is the
 * only statement of the body testing the message (after an earlier `if` or `switch` on it, an `else`
 * on the chain would also run for messages the earlier one took).
 */
function checkIfChain(context: RuleContext, h: Handler): void {
  const body = h.fn.body;
  if (body.type !== 'BlockStatement') return;
  const last = body.body.at(-1);
  if (last?.type !== 'IfStatement') return;
  let tail: TSESTree.IfStatement = last;
  for (;;) {
    if (!isDispatchTest(context, tail.test, h.message)) return;
    if (tail.alternate === null) break;
    if (tail.alternate.type !== 'IfStatement') return; // a final else: handled
    tail = tail.alternate;
  }
  // any earlier statement that tests the message (a dispatch `if`, a guard `if (isDown(msg))`, a switch on it, at any depth)
  const earlier = body.body.slice(0, -1).some((st) => testsMessage(context, st, h.message));
  // a last branch without braces that ends in an `if` of its own: an added `else` would bind to that inner `if`
  const canFix = h.ctx !== undefined && !earlier && !endsInOpenIf(tail.consequent) && reportable(context, last, h);
  const final = tail;
  context.report({
    node: last,
    loc: context.sourceCode.getFirstToken(last)!.loc,
    messageId: 'noElse',
    data: { message: h.message.name },
    ...(canFix ? { fix: (fixer: TSESLint.RuleFixer) => addElse(fixer, context, last, final, h) } : {}),
  });
}

/**
 * True when `statement` tests the message somewhere in its own code (not in a nested function): the
 * test of an `if`, a loop or a `?:`, or a switch's discriminant, that mentions the message parameter.
 */
function testsMessage(context: RuleContext, statement: TSESTree.Node, message: TSESTree.Identifier): boolean {
  const mentions = (e: TSESTree.Node | null): boolean => {
    let found = false;
    if (e !== null) {
      walk(context, e, (n) => {
        if (n.type === 'Identifier' && n.name === message.name && findVariable(context, n)?.defs[0]?.name === message) found = true;
      });
    }
    return found;
  };
  let found = false;
  walk(context, statement, (n) => {
    if (found) return;
    if (n.type === 'IfStatement' || n.type === 'ConditionalExpression' || n.type === 'WhileStatement' || n.type === 'DoWhileStatement' || n.type === 'ForStatement') found = mentions(n.test);
    else if (n.type === 'SwitchStatement') found = mentions(n.discriminant);
  });
  return found;
}

/** True when `s` ends, outside braces, with an `if` that has no `else` (`if (a) x();`, `for (…) if (a) x();`): an `else` written after it is that `if`'s. */
function endsInOpenIf(s: TSESTree.Statement): boolean {
  switch (s.type) {
    case 'IfStatement':
      return s.alternate === null || endsInOpenIf(s.alternate);
    case 'ForStatement':
    case 'ForInStatement':
    case 'ForOfStatement':
    case 'WhileStatement':
    case 'WithStatement':
    case 'LabeledStatement':
      return endsInOpenIf(s.body);
    default:
      return false;
  }
}

/** `msg.type === 'a'` (either side, `==` too), or several of those joined by `||`. */
function isDispatchTest(context: RuleContext, test: TSESTree.Expression, message: TSESTree.Identifier): boolean {
  if (test.type === 'LogicalExpression' && test.operator === '||') return isDispatchTest(context, test.left, message) && isDispatchTest(context, test.right, message);
  if (test.type !== 'BinaryExpression' || (test.operator !== '===' && test.operator !== '==')) return false;
  const literal = (e: TSESTree.Node): boolean => e.type === 'Literal' || (e.type === 'TemplateLiteral' && e.expressions.length === 0) || (e.type === 'Identifier' && e.name === 'undefined');
  return (literal(test.right) && rootedAt(context, test.left, message)) || (literal(test.left) && rootedAt(context, test.right, message));
}

/** Adds `else { <ctx>.node.logger.warn('unexpected message', msg); }` after the chain's last branch. */
function addElse(fixer: TSESLint.RuleFixer, context: RuleContext, chain: TSESTree.IfStatement, tail: TSESTree.IfStatement, h: Handler): TSESLint.RuleFix {
  const indent = indentOf(context, chain);
  const report = `${h.ctx!.name}.node.logger.warn('unexpected message', ${h.message.name});`;
  if (tail.consequent.type === 'BlockStatement') return fixer.insertTextAfter(tail.consequent, ` else {\n${indent}  ${report}\n${indent}}`);
  return fixer.insertTextAfter(tail.consequent, `\n${indent}else ${report}`);
}

/** The switch statements in `body`, not looking into nested functions. */
function switchesIn(context: RuleContext, body: TSESTree.Node): TSESTree.SwitchStatement[] {
  const out: TSESTree.SwitchStatement[] = [];
  walk(context, body, (n) => {
    if (n.type === 'SwitchStatement') out.push(n);
  });
  return out;
}

/** True when `expr` is the message parameter, or a member chain on it (`msg.type`, `msg.body.kind`), or `typeof msg`; TypeScript's wrappers aside (`as`, `satisfies`, `<T>`, `!`). */
function rootedAt(context: RuleContext, expr: TSESTree.Node, message: TSESTree.Identifier): boolean {
  let e: TSESTree.Node = expr;
  for (;;) {
    if (e.type === 'MemberExpression') e = e.object;
    else if (e.type === 'ChainExpression') e = e.expression;
    else if (e.type === 'TSNonNullExpression' || e.type === 'TSAsExpression' || e.type === 'TSSatisfiesExpression' || e.type === 'TSTypeAssertion') e = e.expression;
    else if (e.type === 'UnaryExpression' && e.operator === 'typeof') e = e.argument;
    else break;
  }
  if (e.type !== 'Identifier' || e.name !== message.name) return false;
  const def = findVariable(context, e)?.defs[0];
  return def?.name === message;
}

/**
 * True when, in the scope of `at` (where the fix writes its line), the context's and the message's
 * names still denote the handler's parameters: a `ctx` of a loop, a block or a case in between would
 * be the one the added `ctx.node.logger.warn(…)` reads.
 */
function reportable(context: RuleContext, at: TSESTree.Node, h: Handler): boolean {
  const sees = (param: TSESTree.Identifier): boolean => {
    for (let scope: TSESLint.Scope.Scope | null = context.sourceCode.getScope(at); scope !== null; scope = scope.upper) {
      const v = scope.set.get(param.name);
      if (v !== undefined) return v.defs[0]?.name === param;
    }
    return false;
  };
  return h.ctx !== undefined && sees(h.ctx) && sees(h.message);
}

/** True when the last case's statements can run on past the end of the switch (no break/return/throw/continue last). */
function fallsThroughAtEnd(sw: TSESTree.SwitchStatement): boolean {
  const last = sw.cases.at(-1);
  if (last === undefined) return false;
  let s: TSESTree.Statement | undefined = last.consequent.at(-1);
  while (s?.type === 'BlockStatement') s = s.body.at(-1);
  return !(s !== undefined && ['BreakStatement', 'ReturnStatement', 'ThrowStatement', 'ContinueStatement'].includes(s.type));
}

function indentOf(context: RuleContext, node: TSESTree.Node): string {
  const line = context.sourceCode.lines[node.loc.start.line - 1] ?? '';
  return /^\s*/.exec(line)![0];
}

/** Inserts `default: <ctx>.node.logger.warn('unexpected message', msg); break;` after the last case. */
function addDefault(fixer: TSESLint.RuleFixer, context: RuleContext, sw: TSESTree.SwitchStatement, h: Handler): TSESLint.RuleFix {
  const last = sw.cases.at(-1);
  const caseIndent = last === undefined ? `${indentOf(context, sw)}  ` : indentOf(context, last);
  const bodyIndent = last?.consequent[0] !== undefined && last.consequent[0].loc.start.line !== last.loc.start.line ? indentOf(context, last.consequent[0]) : `${caseIndent}  `;
  const text =
    `\n${caseIndent}default:` +
    `\n${bodyIndent}${h.ctx!.name}.node.logger.warn('unexpected message', ${h.message.name});` +
    `\n${bodyIndent}break;`;
  if (last !== undefined) return fixer.insertTextAfter(last, text);
  const open = context.sourceCode.getTokenAfter(sw.discriminant, { filter: (t) => t.value === '{' })!;
  return fixer.insertTextAfter(open, text);
}
