import type { TSESLint, TSESTree } from '@typescript-eslint/utils';
import { createRule, importSourceSchema } from '../internal/createRule.js';
import { findVariable, importedAs, isSelfOf, keelFunction, keelMember, keyName, looksLikeContext, methodCall, propertyName, unwrapTs, wrapped } from '../internal/keelTypes.js';

type Options = [{ importSource?: string }];

/**
 * `no-raw-send`: `ctx.send(target, msg)` from a process to another process. A raw send is fire
 * and forget with no acknowledgement, retry or dead letter; `sendSupervised` has all three.
 * Suggestion (not an autofix, it changes delivery semantics): `void sendSupervised(ctx, target, msg)`.
 */
export const noRawSend = createRule<Options, 'rawSend' | 'boundSend' | 'useSendSupervised'>({
  name: 'no-raw-send',
  meta: {
    type: 'suggestion',
    hasSuggestions: true,
    docs: {
      description: 'Disallow raw `ctx.send` to another process; use `sendSupervised` (acknowledged, retried, dead-lettered)',
      recommended: true,
      typeAware: true,
    },
    messages: {
      rawSend:
        'Raw send to another process: it is fire and forget, with no acknowledgement, retry or dead letter. Use `sendSupervised(ctx, to, message, options)`, or disable this line with a reason when it is a behaviour\'s own machinery.',
      boundSend:
        'A context\'s `send` bound here leaves the rule\'s sight: whatever calls it sends raw to another process (fire and forget, no acknowledgement, retry or dead letter). Hand on a function that calls `sendSupervised(ctx, to, message)` instead, or disable this line with a reason.',
      useSendSupervised: 'Replace with `void sendSupervised({{from}}, …)` (delivery is then acknowledged; failures are logged by default).',
    },
    schema: [importSourceSchema('sendSupervised')],
    defaultOptions: [{ importSource: 'keel' }],
  },
  create(context, [{ importSource = 'keel' }]) {
    /**
     * `ctx.send.call(ctx, to, m)` and `ctx.send.apply(ctx, [to, m])`: the same send, its context
     * the first argument. Reported without a suggestion (the rewrite would drop the this-argument).
     */
    const viaCallOrApply = (node: TSESTree.CallExpression): void => {
      const how = node.callee.type === 'MemberExpression' ? propertyName(node.callee) : undefined;
      if (how !== 'call' && how !== 'apply') return;
      const send = unwrapTs((node.callee as TSESTree.MemberExpression).object);
      const [thisArg, ...rest] = node.arguments;
      let args: readonly (TSESTree.CallExpressionArgument | TSESTree.Expression | null)[] = rest;
      if (how === 'apply') {
        const list = rest[0] === undefined ? undefined : unwrapTs(rest[0]);
        if (list?.type !== 'ArrayExpression') return;
        args = list.elements;
      }
      // `post.call(null, to, m)`, `post.apply(null, [to, m])`: a const holding the context's send (bound, or taken
      // out of it), its this-argument aside
      if (send.type === 'Identifier') {
        viaConst(node, send, args);
        return;
      }
      if (send.type !== 'MemberExpression' || propertyName(send) !== 'send') return;
      if (thisArg === undefined || thisArg.type === 'SpreadElement') return;
      if (args.length < 2 && !args.some((a) => a?.type === 'SpreadElement')) return;
      const target = args[0];
      if (target == null || target.type === 'SpreadElement' || isSelfOf(context, target, thisArg)) return;
      const verdict = keelMember(context, send, ['Context', 'Proc']);
      if (verdict === 'other' || (verdict === 'unknown' && !looksLikeContext(context, send.object))) return;
      context.report({ node, messageId: 'rawSend', suggest: [] });
    };
    /**
     * `const { send } = ctx; send(to, m)` (`{ send: post }`, `{ 'send': post }`), or `const post = ctx.send;
     * post(to, m)`: the context's send taken out of it, its context the object it was read from. Reported
     * without a suggestion (the rewrite would need that object's text where the call is, and the name may
     * be another binding there).
     */
    const viaConst = (
      node: TSESTree.CallExpression,
      callee: TSESTree.Identifier,
      args: readonly (TSESTree.CallExpressionArgument | TSESTree.Expression | null)[] = node.arguments,
    ): void => {
      if (args.length < 2 && !args.some((a) => a?.type === 'SpreadElement')) return;
      const from = sendHolder(context, callee);
      const [target] = args;
      if (from === undefined || target == null || (target.type !== 'SpreadElement' && isSelfOf(context, target, from))) return;
      // by the type of the function the name holds (Keel's Context's send), else by the receiver's name
      const verdict = keelFunction(context, callee, 'Context', 'send');
      if (verdict === 'other' && keelFunction(context, callee, 'Proc', 'send') !== 'keel') return;
      if (verdict === 'unknown' && !looksLikeContext(context, from)) return;
      context.report({ node, messageId: 'rawSend', suggest: [] });
    };
    /**
     * `ctx.send.bind(ctx)`: the context's send as a function of its own. Held in a `const` that is only
     * called, its calls are checked as sends (`viaConst`); called at once, that call is; otherwise (handed
     * on, stored, returned, or a `const` read otherwise than called) what it will send to is out of sight
     * and the bind is reported, unless its target is bound too and is oneself (`ctx.send.bind(ctx, ctx.self)`).
     */
    const viaBind = (node: TSESTree.CallExpression): boolean => {
      if (node.callee.type !== 'MemberExpression' || propertyName(node.callee) !== 'bind') return false;
      const send = unwrapTs(node.callee.object);
      const [thisArg, ...bound] = node.arguments;
      if (send.type !== 'MemberExpression' || propertyName(send) !== 'send' || thisArg === undefined || thisArg.type === 'SpreadElement') return true;
      const verdict = keelMember(context, send, ['Context', 'Proc']);
      if (verdict === 'other' || (verdict === 'unknown' && !looksLikeContext(context, send.object))) return true;
      const report = (): void => context.report({ node, messageId: 'boundSend' });
      // the target bound too: a send to it, whoever calls
      const [target] = bound;
      if (target !== undefined) {
        if (target.type === 'SpreadElement' || !isSelfOf(context, target, thisArg)) report();
        return true;
      }
      // `ctx.send?.bind(ctx)`: the optional chain holds the same bound send
      let place = wrapped(node);
      if (place.parent?.type === 'ChainExpression') place = wrapped(place.parent);
      const parent = place.parent;
      // called at once: `ctx.send.bind(ctx)(to, m)`
      if (parent?.type === 'CallExpression' && parent.callee === place) {
        const [to] = parent.arguments;
        if (to === undefined || (parent.arguments.length < 2 && to.type !== 'SpreadElement')) return true;
        if (to.type === 'SpreadElement' || !isSelfOf(context, to, thisArg)) context.report({ node: parent, messageId: 'rawSend', suggest: [] });
        return true;
      }
      // held in a const that is only ever called: its calls are the sends (viaConst)
      if (parent?.type === 'VariableDeclarator' && parent.init === place && parent.id.type === 'Identifier' && parent.parent.kind === 'const') {
        const variable = context.sourceCode.getDeclaredVariables(parent).find((v) => v.defs.some((d) => d.name === parent.id));
        const calledOnly = variable?.references.every((r) => !r.isRead() || isCallee(wrapped(r.identifier))) ?? false;
        if (calledOnly) return true;
      }
      report();
      return true;
    };
    return {
      CallExpression(node) {
        const callee = methodCall(node, 'send');
        if (callee === undefined) {
          if (node.callee.type === 'Identifier') viaConst(node, node.callee);
          else if (!viaBind(node)) viaCallOrApply(node);
          return;
        }
        if (node.arguments.length < 2 && !node.arguments.some((a) => a.type === 'SpreadElement')) return;
        // a send to oneself is fine whatever the receiver: checked first, by syntax, before any type work
        const [target] = node.arguments;
        if (target === undefined || isSelfOf(context, target, callee.object)) return;
        const verdict = keelMember(context, callee, ['Context', 'Proc']);
        if (verdict === 'other' || (verdict === 'unknown' && !looksLikeContext(context, callee.object))) return;
        const fixable =
          node.arguments.length === 2 && node.arguments.every((a) => a.type !== 'SpreadElement') && !node.optional && !callee.optional && reachesImport(context, node, importSource);
        // an import can be added to an ES module only
        const sourceType = context.languageOptions.sourceType;
        const module = sourceType !== 'script' && sourceType !== 'commonjs' && !/\.c[jt]s$/.test(context.filename);
        context.report({
          node,
          messageId: 'rawSend',
          suggest:
            fixable && module
              ? [
                  {
                    messageId: 'useSendSupervised',
                    data: { from: context.sourceCode.getText(callee.object) },
                    fix: (fixer) => suggestion(fixer, context, node, callee, importSource),
                  },
                ]
              : [],
        });
      },
    };
  },
});

/**
 * The object a `const` named `id` took its `send` from: `ctx` of `const { send } = ctx` (its own
 * property of the pattern, keyed `send` or `'send'`, under any local name) or of `const post = ctx.send`
 * (`ctx['send']` too); else undefined.
 */
function sendHolder(context: Readonly<TSESLint.RuleContext<string, readonly unknown[]>>, id: TSESTree.Identifier): TSESTree.Node | undefined {
  const def = findVariable(context, id)?.defs[0];
  if (def?.type !== 'Variable' || def.parent.kind !== 'const' || def.node.init == null) return undefined;
  const init = def.node.init;
  const prop = def.name.parent;
  if (def.node.id.type === 'ObjectPattern') {
    return prop?.type === 'Property' && prop.parent === def.node.id && prop.value === def.name && keyName(prop) === 'send' ? init : undefined;
  }
  if (def.node.id !== def.name) return undefined;
  let member = unwrapTs(init);
  if (member.type === 'ChainExpression') member = unwrapTs(member.expression); // `ctx.send?.bind(ctx)`
  // `const post = ctx.send.bind(ctx)`: the same send, its context bound (a bound target too is reported at the bind)
  if (member.type === 'CallExpression' && member.callee.type === 'MemberExpression' && propertyName(member.callee) === 'bind' && member.arguments.length === 1) {
    member = unwrapTs(member.callee.object);
  }
  return member.type === 'MemberExpression' && propertyName(member) === 'send' ? member.object : undefined;
}

/** True when `n` is the function called: `n(…)`, or `n.call(…)` / `n.apply(…)` (Function.prototype's, the this-argument aside). */
function isCallee(n: TSESTree.Node): boolean {
  const parent = n.parent;
  if (parent?.type === 'CallExpression' && parent.callee === n) return true;
  if (parent?.type !== 'MemberExpression' || parent.object !== n) return false;
  const how = propertyName(parent);
  return (how === 'call' || how === 'apply') && parent.parent.type === 'CallExpression' && parent.parent.callee === parent;
}

function suggestion(
  fixer: TSESLint.RuleFixer,
  context: Readonly<TSESLint.RuleContext<string, readonly unknown[]>>,
  node: TSESTree.CallExpression,
  callee: TSESTree.MemberExpression,
  importSource: string,
): TSESLint.RuleFix[] {
  const text = (n: TSESTree.Node): string => context.sourceCode.getText(n);
  // a comma expression's parentheses are not part of its node: without them, it would be several arguments
  const argument = (n: TSESTree.Node): string => (n.type === 'SequenceExpression' ? `(${text(n)})` : text(n));
  const existing = importedAs(context, importSource, 'sendSupervised');
  // imported as a type only: that import becomes a value one (a second import would clash with it)
  const typeOnly = existing === undefined ? typeOnlyImport(context, importSource) : undefined;
  const local = existing ?? typeOnly?.specifier.local.name ?? 'sendSupervised';
  const args = [callee.object, ...node.arguments].map(argument).join(', ');
  // a call whose value was used keeps its place in the expression: `void` makes it undefined, as `send`'s void was
  const typeArgs = node.typeArguments === undefined ? '' : text(node.typeArguments);
  const replacement = `void ${local}${typeArgs}(${args})`;
  // a member, call or tagged template of the call's value would otherwise be taken into the `void`; so would a
  // non-null assertion (`void f()!.x` is `void (f()!.x)`): the `!` stays on the value, now the `void`'s
  const parent = node.parent;
  const grouped =
    parent.type === 'TSNonNullExpression' ||
    (parent.type === 'MemberExpression' && parent.object === node) ||
    (parent.type === 'CallExpression' && parent.callee === node) ||
    (parent.type === 'TaggedTemplateExpression' && parent.tag === node) ||
    (parent.type === 'BinaryExpression' && parent.operator === '**' && parent.left === node);
  const fixes = [fixer.replaceText(node, grouped ? `(${replacement})` : replacement)];
  if (typeOnly !== undefined) fixes.push(asValueImport(fixer, context, typeOnly));
  else if (existing === undefined) fixes.push(addImport(fixer, context, importSource));
  return fixes;
}

/**
 * True when the name the suggestion would call reaches Keel's `sendSupervised` from where the call is:
 * the module's import of it (a value or a type-only one), or, with none, a name no binding holds. A
 * function of the file named `sendSupervised` would clash with the added import, and a parameter or
 * local shadowing the import would be called instead of it: no suggestion then.
 */
function reachesImport(context: Readonly<TSESLint.RuleContext<string, readonly unknown[]>>, node: TSESTree.Node, importSource: string): boolean {
  const imported = importedAs(context, importSource, 'sendSupervised') ?? typeOnlyImport(context, importSource)?.specifier.local.name;
  for (let scope: TSESLint.Scope.Scope | null = context.sourceCode.getScope(node); scope !== null; scope = scope.upper) {
    if (scope.set.has(imported ?? 'sendSupervised')) return imported !== undefined && scope.type === 'module';
  }
  return true;
}

interface TypeOnlyImport {
  readonly declaration: TSESTree.ImportDeclaration;
  readonly specifier: TSESTree.ImportSpecifier;
}

/** `sendSupervised` imported from `source` as a type only (`import { type sendSupervised }`, `import type { sendSupervised }`). */
function typeOnlyImport(context: Readonly<TSESLint.RuleContext<string, readonly unknown[]>>, source: string): TypeOnlyImport | undefined {
  for (const statement of context.sourceCode.ast.body) {
    if (statement.type !== 'ImportDeclaration' || statement.source.value !== source) continue;
    for (const specifier of statement.specifiers) {
      if (specifier.type !== 'ImportSpecifier') continue;
      const imported = specifier.imported.type === 'Identifier' ? specifier.imported.name : specifier.imported.value;
      if (imported === 'sendSupervised' && (statement.importKind === 'type' || specifier.importKind === 'type')) return { declaration: statement, specifier };
    }
  }
  return undefined;
}

/** Makes a type-only import of `sendSupervised` a value import; the declaration's other names stay types. */
function asValueImport(fixer: TSESLint.RuleFixer, context: Readonly<TSESLint.RuleContext<string, readonly unknown[]>>, { declaration, specifier }: TypeOnlyImport): TSESLint.RuleFix {
  const code = context.sourceCode;
  if (declaration.importKind !== 'type') {
    // `type sendSupervised`: the modifier goes
    const modifier = code.getFirstToken(specifier)!;
    return fixer.removeRange([modifier.range[0], code.getTokenAfter(modifier)!.range[0]]);
  }
  // `import type { A, sendSupervised }`: `import { type A, sendSupervised }`
  const names = declaration.specifiers.map((s) => (s === specifier ? code.getText(s) : `type ${code.getText(s)}`));
  return fixer.replaceText(declaration, `import { ${names.join(', ')} } from ${code.getText(declaration.source)};`);
}

/** Adds `sendSupervised` to an existing value import from `source`, or a new import after the last one. */
function addImport(fixer: TSESLint.RuleFixer, context: Readonly<TSESLint.RuleContext<string, readonly unknown[]>>, source: string): TSESLint.RuleFix {
  const body = context.sourceCode.ast.body;
  const imports = body.filter((s): s is TSESTree.ImportDeclaration => s.type === 'ImportDeclaration');
  const named = imports.find(
    (s) => s.source.value === source && s.importKind !== 'type' && s.specifiers.some((x) => x.type === 'ImportSpecifier'),
  );
  if (named !== undefined) {
    const last = named.specifiers.filter((x) => x.type === 'ImportSpecifier').at(-1)!;
    return fixer.insertTextAfter(last, ', sendSupervised');
  }
  const line = `import { sendSupervised } from '${source}';`;
  const lastImport = imports.at(-1);
  if (lastImport !== undefined) return fixer.insertTextAfter(lastImport, `\n${line}`);
  // a hashbang (`#!/usr/bin/env node`) must stay the file's first line
  const text = context.sourceCode.text;
  if (!text.startsWith('#!')) return fixer.insertTextBeforeRange([0, 0], `${line}\n`);
  const eol = text.indexOf('\n');
  return eol === -1 ? fixer.insertTextAfterRange([0, text.length], `\n${line}`) : fixer.insertTextAfterRange([0, eol + 1], `${line}\n`);
}
