import { createRule, importSourceSchema } from '../internal/createRule.js';
import type { TSESTree } from '@typescript-eslint/utils';
import { findVariable, importedAs, isKeelModule, isNamespaceOf, isSelfOf, isSpawnInit, keelBinding, keelFunction, keelValue, keyName, propertyName, unwrapTs, wrapped } from '../internal/keelTypes.js';

type Options = [{ importSource?: string }];

/**
 * `no-self-call`: `GenServer.call(ctx, ctx.self, …)`, or a call to the pid (`GenServer.call(node, ctx.self, …)`) or the name its server is started under
 * from one of its callbacks: a server that calls itself waits for a reply
 * only it could give. Keel fails it at once with `ERR_DEADLOCK`; the rule finds it before it runs.
 * Neither an autofix nor a suggestion: the cure (handle the request inline, or cast to oneself and
 * continue later) depends on the code.
 */
export const noSelfCall = createRule<Options, 'selfCall'>({
  name: 'no-self-call',
  meta: {
    type: 'problem',
    docs: { description: 'Disallow a process calling itself with `GenServer.call` (a deadlock)', recommended: true, typeAware: true },
    messages: {
      selfCall:
        'A process calling itself deadlocks: it waits for a reply that only it could give (Keel fails it with ERR_DEADLOCK). Call the handler\'s logic directly, or `GenServer.cast` to yourself and use `handleContinue`.',
    },
    schema: [importSourceSchema('GenServer')],
    defaultOptions: [{ importSource: 'keel' }],
  },
  create(context, [{ importSource = 'keel' }]) {
    return {
      CallExpression(node) {
        const [from, target] = node.arguments;
        if (from === undefined || target === undefined) return;
        // a call to oneself by syntax first (the target is the caller's own pid, or, from one of a server's
        // own callbacks, the name the server is started under); the types are asked only then
        if (!isSelfOf(context, target, from) && !isOwnPid(context, node, target, importSource)) {
          const name = stringValue(context, target, importSource);
          if (name === undefined || !ownNames(context, node, importSource).includes(name)) return;
        }
        const callee = node.callee;
        // `GenServer.call(…)`, or GenServer's `call` under a local name (`const { call: ask } = GenServer`):
        // there is no import to go by, so only the types can tell, by the function the name holds
        const isCall = callee.type === 'Identifier' ? keelFunction(context, callee, 'GenServer', 'call') === 'keel' : isGenServerMethod(context, node, ['call'], importSource);
        if (isCall) context.report({ node, messageId: 'selfCall' });
      },
    };
  },
});

type Context = Parameters<(typeof noSelfCall)['create']>[0];

/**
 * A string literal (a template without expressions too), Keel's typed name of one (`Name.of('x')`,
 * `GenServer.name<P>('x')`: a name is its text), or a `const` initialised with one of those.
 */
function stringValue(context: Context, written: TSESTree.Node, importSource: string, seen: Set<unknown> = new Set()): string | undefined {
  // `'billing' as const`, `'billing' satisfies string`: the same string
  const e = unwrapTs(written);
  if (e.type === 'Literal' && typeof e.value === 'string') return e.value;
  if (e.type === 'TemplateLiteral' && e.expressions.length === 0) return e.quasis[0]?.value.cooked ?? undefined;
  // `Name.of('x')`, or GenServer's typed name `GenServer.name<P>('x')` (a `Name.of` too)
  if (e.type === 'CallExpression' && e.arguments.length === 1 && (isNameOf(context, e.callee, importSource) || isGenServerMethod(context, e, ['name'], importSource))) {
    return stringValue(context, e.arguments[0]!, importSource, seen);
  }
  if (e.type === 'Identifier') {
    const variable = findVariable(context, e);
    const def = variable?.defs[0];
    // consts that refer to each other (`const a = b, b = a`: a TDZ error, but it parses) are followed once
    if (variable === undefined || seen.has(variable)) return undefined;
    seen.add(variable);
    if (def?.type === 'Variable' && def.parent.kind === 'const' && def.node.init != null && def.node.id === def.name) return stringValue(context, def.node.init, importSource, seen);
  }
  return undefined;
}

/** `Name.of`: Keel's `Name` by type, else by name (`Name`, or the local name it is imported under from the import source). */
function isNameOf(context: Context, callee: TSESTree.Node, importSource: string): boolean {
  if (callee.type !== 'MemberExpression' || propertyName(callee) !== 'of' || callee.object.type !== 'Identifier') return false;
  const verdict = keelValue(context, callee.object);
  return verdict === 'keel' || (verdict === 'unknown' && (callee.object.name === 'Name' || callee.object.name === importedAs(context, importSource, 'Name')));
}

/** The position of the context among a GenServer callback's parameters. */
const CALLBACK_CTX_INDEX: ReadonlyMap<string, number> = new Map([
  ['init', 1],
  ['handleCall', 3],
  ['handleCast', 2],
  ['handleInfo', 2],
  ['handleContinue', 2],
]);

/** The server whose callbacks `node` is in: its spec, the property of the callback, and the names it is started under. */
interface OwnServer {
  spec: TSESTree.ObjectExpression;
  /** The spec's property whose value holds `node`. */
  property: TSESTree.Property | undefined;
  names: string[];
}

/**
 * The server whose callback `node` is in: the innermost object literal around `node` that is a GenServer spec
 * (written as the spec of `GenServer.start(from, spec, arg, { name })` or `startLink`, or held in a `const`
 * passed there, or an object with `init`), with the names it is started under. The specs further out are
 * other processes (the servers that started this one), and so is the code of an `init` given to
 * `spawn` / `spawnLink` on the way: undefined then.
 */
function ownServer(context: Context, node: TSESTree.Node, importSource: string): OwnServer | undefined {
  let child: TSESTree.Node = node;
  for (let n: TSESTree.Node | null | undefined = node.parent; n != null; child = n, n = n.parent) {
    if (isSpawnInit(context, n)) return undefined;
    if (n.type !== 'ObjectExpression') continue;
    // the spec with TypeScript's wrappers around it (`{ … } satisfies Spec`, `spec as Spec`): the same object
    const literal = wrapped(n);
    const uses: TSESTree.Node[] = [literal];
    const holder = literal.parent;
    if (holder?.type === 'VariableDeclarator' && holder.init === literal && holder.id.type === 'Identifier' && holder.parent.kind === 'const') {
      for (const ref of findVariable(context, holder.id)?.references ?? []) uses.push(wrapped(ref.identifier));
    }
    const names: string[] = [];
    let started = false;
    for (const spec of uses) {
      const start = spec.parent;
      if (start?.type !== 'CallExpression' || start.arguments[1] !== spec || !isGenServerMethod(context, start, ['start', 'startLink'], importSource)) continue;
      started = true;
      const options = start.arguments[3] === undefined ? undefined : objectOf(context, start.arguments[3]);
      for (const p of options?.properties ?? []) {
        // `{ name }`, `{ 'name': … }`
        if (p.type === 'Property' && keyName(p) === 'name') {
          const name = stringValue(context, p.value, importSource);
          if (name !== undefined) names.push(name);
        }
      }
    }
    if (started || n.properties.some((p) => p.type === 'Property' && keyName(p) === 'init')) {
      return { spec: n, property: child.type === 'Property' && child.parent === n ? child : undefined, names };
    }
  }
  return undefined;
}

/** The names under which the server whose callback `node` is in is started (see {@link ownServer}). */
function ownNames(context: Context, node: TSESTree.Node, importSource: string): string[] {
  return ownServer(context, node, importSource)?.names ?? [];
}

/**
 * True when `target` is the pid of the server whose callback `call` is in: `<ctx>.self` (`<ctx>['self']`), or a
 * `const` holding it (`const me = ctx.self`, `const { self } = ctx`), where `<ctx>` is the context parameter of
 * that very callback (by its position; a TypeScript `this` parameter is none), whatever object the call goes
 * through: `GenServer.call(node, ctx.self, …)` waits for the server's reply while the server waits for it.
 */
function isOwnPid(context: Context, call: TSESTree.CallExpression, target: TSESTree.Node, importSource: string): boolean {
  const base = selfBase(context, target, new Set());
  if (base === undefined) return false;
  const server = ownServer(context, call, importSource);
  const callback = server?.property === undefined ? undefined : unwrapTs(server.property.value);
  const index = server?.property === undefined ? undefined : CALLBACK_CTX_INDEX.get(keyName(server.property) ?? '');
  if (index === undefined || (callback?.type !== 'FunctionExpression' && callback?.type !== 'ArrowFunctionExpression')) return false;
  const [first, ...rest] = callback.params;
  const params = first?.type === 'Identifier' && first.name === 'this' ? rest : callback.params;
  const ctx = params[index];
  return ctx?.type === 'Identifier' && findVariable(context, base)?.defs[0]?.name === ctx;
}

/** The identifier `x` when `target` is `x.self` (`x['self']`, behind TypeScript's wrappers), or a `const` initialised with it (`const { self } = x` too). */
function selfBase(context: Context, written: TSESTree.Node, seen: Set<unknown>): TSESTree.Identifier | undefined {
  let target = unwrapTs(written);
  while (target.type === 'ChainExpression') target = unwrapTs(target.expression);
  if (target.type === 'MemberExpression') {
    const object = unwrapTs(target.object);
    return propertyName(target) === 'self' && object.type === 'Identifier' ? object : undefined;
  }
  if (target.type !== 'Identifier') return undefined;
  const variable = findVariable(context, target);
  const def = variable?.defs[0];
  // consts that refer to each other are followed once
  if (variable === undefined || seen.has(variable) || def?.type !== 'Variable' || def.parent.kind !== 'const' || def.node.init == null) return undefined;
  seen.add(variable);
  const init = unwrapTs(def.node.init);
  const prop = def.name.parent;
  if (def.node.id.type === 'ObjectPattern') {
    const own = prop?.type === 'Property' && prop.parent === def.node.id && prop.value === def.name && keyName(prop) === 'self';
    return own && init.type === 'Identifier' ? init : undefined;
  }
  return def.node.id === def.name ? selfBase(context, init, seen) : undefined;
}

/** The object literal `e` is (TypeScript's wrappers aside), or the one a `const` it names is initialised with. */
function objectOf(context: Context, written: TSESTree.Node): TSESTree.ObjectExpression | undefined {
  const e = unwrapTs(written);
  if (e.type === 'ObjectExpression') return e;
  if (e.type !== 'Identifier') return undefined;
  const def = findVariable(context, e)?.defs[0];
  if (def?.type !== 'Variable' || def.parent.kind !== 'const' || def.node.id !== def.name || def.node.init == null) return undefined;
  const init = unwrapTs(def.node.init);
  return init.type === 'ObjectExpression' ? init : undefined;
}

/**
 * `GenServer.<one of methods>(…)`: Keel's `GenServer` by type, else by name (also imported under
 * another one, or reached through a namespace import: `keel.GenServer`).
 */
function isGenServerMethod(context: Context, call: TSESTree.CallExpression, methods: readonly string[], importSource: string): boolean {
  const callee = call.callee;
  if (callee.type !== 'MemberExpression' || !methods.includes(propertyName(callee) ?? '')) return false;
  // `(GenServer as typeof GenServer).call`, `GenServer!.call`: the same object
  const object = unwrapTs(callee.object);
  if (object.type === 'Identifier') {
    const verdict = keelValue(context, object);
    if (verdict !== 'unknown') return verdict === 'keel';
    // without types, by the binding: imported from Keel (under any name), or a global named GenServer
    const binding = keelBinding(context, object, 'GenServer', importSource);
    return binding === 'keel' || (binding === 'global' && object.name === 'GenServer');
  }
  // `<namespace>.GenServer` (or `<namespace>['GenServer']`): by the type of the member, else a namespace import of the import source
  const namespace = object.type === 'MemberExpression' ? unwrapTs(object.object) : undefined;
  if (object.type !== 'MemberExpression' || namespace?.type !== 'Identifier') return false;
  const name = propertyName(object);
  if (name === undefined) return false;
  const verdict = keelValue(context, object.property);
  return verdict === 'keel' || (verdict === 'unknown' && name === 'GenServer' && isNamespaceOf(context, (source) => isKeelModule(context, source, importSource), namespace));
}
