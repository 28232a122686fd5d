// How the rules tell Keel's API from look-alikes. With type information (typescript-eslint's
// parser with a program) a member is Keel's when its declaration lives in a file of the `keel`
// package (the nearest package.json is named "keel": the installed package, or Keel's own
// source). Without type information (or when the receiver's type is `any`, as in plain
// JavaScript) the rules fall back on names, documented in docs/lint/.
import fs from 'node:fs';
import path from 'node:path';
import type { TSESLint, TSESTree } from '@typescript-eslint/utils';
import type * as ts from 'typescript';
import { loadPeer } from '../peers.js';

/** What the types say about a member: Keel's own, someone else's, or nothing (no program, or `any`). */
export type Verdict = 'keel' | 'other' | 'unknown';

type Context = Readonly<TSESLint.RuleContext<string, readonly unknown[]>>;

interface Services {
  program: ts.Program;
  esTreeNodeToTSNodeMap: { get(node: TSESTree.Node): ts.Node | undefined };
}

let typescript: typeof ts | undefined;

/** The TypeScript module, loaded only once a file comes with a program (so TypeScript is there). */
export function tsModule(): typeof ts {
  typescript ??= loadPeer<typeof ts>('typescript', 'the type-aware checks of keel/eslint-plugin');
  return typescript;
}

/** True when `type` is `any` or `unknown`: the types say nothing. */
export function isOpaque(type: ts.Type): boolean {
  return (type.flags & (tsModule().TypeFlags.Any | tsModule().TypeFlags.Unknown)) !== 0;
}

/** The parser services when the file was parsed with a TypeScript program, else undefined. */
export function typeServices(context: Context): Services | undefined {
  const s = context.sourceCode.parserServices as Partial<Services> | undefined;
  return s?.program != null && s.esTreeNodeToTSNodeMap != null ? (s as Services) : undefined;
}

const keelDirs = new Map<string, boolean>();

/** True when the nearest package.json above `file` names the package `keel`. */
export function isKeelFile(file: string): boolean {
  const dir = path.dirname(file);
  const known = keelDirs.get(dir);
  if (known !== undefined) return known;
  let answer = false;
  const manifest = path.join(dir, 'package.json');
  if (fs.existsSync(manifest)) {
    try {
      answer = (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'keel';
    } catch {
      answer = false;
    }
  } else if (path.dirname(dir) !== dir) {
    answer = isKeelFile(dir);
  }
  keelDirs.set(dir, answer);
  return answer;
}

function declaredByKeel(symbol: ts.Symbol | undefined, owners: readonly string[] | undefined): boolean {
  for (const d of symbol?.declarations ?? []) {
    const owner = (d.parent as { name?: { text?: unknown } } | undefined)?.name?.text;
    if ((owners === undefined || owners.includes(String(owner))) && isKeelFile(d.getSourceFile().fileName)) return true;
  }
  return false;
}

/**
 * Whether `member` (`receiver.name`) is a member of one of Keel's `owners` (interface or class
 * names such as `Context`), by its declaration. `unknown` when there are no types or the
 * receiver is `any`.
 */
export function keelMember(context: Context, member: TSESTree.MemberExpression, owners: readonly string[]): Verdict {
  return guarded(() => keelMemberOf(context, member, owners));
}

/**
 * Runs a type query; when TypeScript itself throws (seen rarely inside its node builder while a
 * program is being updated), the verdict is `unknown` and the rule falls back on names, rather
 * than the whole lint run failing.
 */
function guarded(query: () => Verdict): Verdict {
  try {
    return query();
  } catch {
    return 'unknown';
  }
}

function keelMemberOf(context: Context, member: TSESTree.MemberExpression, owners: readonly string[]): Verdict {
  const s = typeServices(context);
  if (s === undefined) return 'unknown';
  const checker = s.program.getTypeChecker();
  const prop = s.esTreeNodeToTSNodeMap.get(member.property);
  const symbol = prop === undefined ? undefined : checker.getSymbolAtLocation(prop);
  if (symbol === undefined) {
    const receiver = s.esTreeNodeToTSNodeMap.get(member.object);
    const type = receiver === undefined ? undefined : checker.getTypeAtLocation(receiver);
    return type === undefined || isOpaque(type) ? 'unknown' : 'other';
  }
  return declaredByKeel(symbol, owners) ? 'keel' : 'other';
}

/** Whether the identifier `id` names a value exported by Keel (say `GenServer`), by the types. */
export function keelValue(context: Context, id: TSESTree.Node): Verdict {
  return guarded(() => keelValueOf(context, id));
}

function keelValueOf(context: Context, id: TSESTree.Node): Verdict {
  const s = typeServices(context);
  if (s === undefined) return 'unknown';
  const checker = s.program.getTypeChecker();
  const node = s.esTreeNodeToTSNodeMap.get(id);
  let symbol = node === undefined ? undefined : checker.getSymbolAtLocation(node);
  if (symbol === undefined) return 'unknown';
  // an import: follow it to the declaration
  if ((symbol.flags & tsModule().SymbolFlags.Alias) !== 0) symbol = checker.getAliasedSymbol(symbol);
  if (declaredByKeel(symbol, undefined)) return 'keel';
  // a local alias (`const { call } = GenServer`): the value's own type was declared by Keel
  const typeSymbol = node === undefined ? undefined : checker.getTypeAtLocation(node).getSymbol();
  if (declaredByKeel(typeSymbol, undefined)) return 'keel';
  return symbol.declarations === undefined || symbol.declarations.length === 0 ? 'unknown' : 'other';
}

/**
 * Whether the value `id` names is the function `owner.name` of Keel (say GenServer's `call`), by
 * its type: `const { call: ask } = GenServer` or `const ask = GenServer.call` is it whatever the
 * local name, and `const { cast: call } = GenServer` is not. `unknown` without types.
 */
export function keelFunction(context: Context, id: TSESTree.Node, owner: string, name: string): Verdict {
  return guarded(() => {
    const s = typeServices(context);
    const node = s?.esTreeNodeToTSNodeMap.get(id);
    if (s === undefined || node === undefined) return 'unknown';
    const type = s.program.getTypeChecker().getTypeAtLocation(node);
    if (isOpaque(type)) return 'unknown';
    const symbol = type.getSymbol();
    if (symbol?.getName() !== name) return 'other';
    for (const d of symbol.declarations ?? []) {
      // a method of an object literal held in a const (`export const GenServer = { call() {} }`), or of the type
      // literal its declaration file gives it (`export declare const GenServer: { call(…): … }`); or of a class or interface
      const parent = d.parent as ts.Node & { name?: { text?: unknown } };
      const literal = tsModule().isObjectLiteralExpression(parent) || tsModule().isTypeLiteralNode(parent);
      const holder = (literal ? parent.parent : parent) as { name?: { text?: unknown } };
      if (holder.name?.text === owner && isKeelFile(d.getSourceFile().fileName)) return 'keel';
    }
    return 'other';
  });
}

/** The receiver names the rules accept as a process context when the types cannot tell. */
export const CONTEXT_NAMES: readonly string[] = ['ctx', 'context'];

/**
 * The name heuristic: `ctx`, `context`, `<anything>.ctx` (a private field too: `this.#ctx`), or the
 * first parameter of an `init` passed to `spawn` / `spawnLink` (written there or by name: {@link isSpawnInit}).
 */
export function looksLikeContext(context: Context, written: TSESTree.Node): boolean {
  const receiver = unwrapTs(written);
  if (receiver.type === 'MemberExpression') {
    const p = receiver.property;
    return !receiver.computed && (p.type === 'Identifier' || p.type === 'PrivateIdentifier') && CONTEXT_NAMES.includes(p.name);
  }
  if (receiver.type !== 'Identifier') return false;
  if (CONTEXT_NAMES.includes(receiver.name)) return true;
  const variable = findVariable(context, receiver);
  const def = variable?.defs[0];
  if (def?.type !== 'Parameter') return false;
  const fn = def.node as TSESTree.Node;
  if (!isSpawnInit(context, fn)) return false;
  // the first parameter at run time: a TypeScript `this: T` parameter is none
  const [first, second] = (fn as TSESTree.FunctionLike).params;
  return (first?.type === 'Identifier' && first.name === 'this' ? second : first) === def.name;
}

/**
 * True when `fn` is the `init` given to `x.spawn(init)` or `x.spawnLink(init)`: written there, or passed
 * there by name. A name is resolved by the scope manager to the variable the argument refers to (a shadowing
 * parameter is another variable): a `const` initialised with the function (`const init = (ctx) => …`), or a
 * function declaration (`function init(ctx) { … }`) never assigned to. A `let` or a `var` (it may hold
 * another function when spawned), a reassigned function, or an import (its code is in another module) is
 * not resolved.
 */
export function isSpawnInit(context: Context, fn: TSESTree.Node): boolean {
  if (fn.type === 'ArrowFunctionExpression' || fn.type === 'FunctionExpression') {
    // TypeScript's wrappers aside: `node.spawn(((ctx) => …) as Init<M>)`, `const init = ((ctx) => …) satisfies Init<M>`
    const held = wrapped(fn);
    if (isSpawnArgument(held)) return true;
    const declarator = held.parent;
    if (declarator?.type !== 'VariableDeclarator' || declarator.init !== held || declarator.id.type !== 'Identifier' || declarator.parent.kind !== 'const') return false;
    return passedToSpawn(context.sourceCode.getDeclaredVariables(declarator).find((v) => v.defs.some((d) => d.name === declarator.id)));
  }
  if (fn.type !== 'FunctionDeclaration' || fn.id === null) return false;
  const variable = context.sourceCode.getDeclaredVariables(fn).find((v) => v.defs.some((d) => d.type === 'FunctionName' && d.node === fn));
  // one declaration, never assigned to (`init = other` makes the name another function)
  if (variable === undefined || variable.defs.length !== 1 || variable.references.some((r) => r.isWrite())) return false;
  return passedToSpawn(variable);
}

/** True when a read of `variable` is the first argument of a `spawn` / `spawnLink` call (TypeScript's wrappers aside). */
function passedToSpawn(variable: TSESLint.Scope.Variable | undefined): boolean {
  return variable?.references.some((r) => r.isRead() && isSpawnArgument(wrapped(r.identifier))) ?? false;
}

/** True when `arg` is the first argument of `x.spawn(…)` or `x.spawnLink(…)`. */
function isSpawnArgument(arg: TSESTree.Node): boolean {
  const call = arg.parent;
  return (
    call?.type === 'CallExpression' &&
    call.arguments[0] === arg &&
    call.callee.type === 'MemberExpression' &&
    !call.callee.computed &&
    call.callee.property.type === 'Identifier' &&
    (call.callee.property.name === 'spawn' || call.callee.property.name === 'spawnLink')
  );
}

/** `e` with the TypeScript wrappers written around it (`e as T`, `e satisfies T`, `e!`, `<T>e`): the node that stands in its place. */
export function wrapped(e: TSESTree.Node): TSESTree.Node {
  let n = e;
  while (
    (n.parent?.type === 'TSAsExpression' || n.parent?.type === 'TSSatisfiesExpression' || n.parent?.type === 'TSNonNullExpression' || n.parent?.type === 'TSTypeAssertion') &&
    n.parent.expression === n
  ) n = n.parent;
  return n;
}

/** The variable an identifier refers to, looked up from its scope outwards. */
export function findVariable(context: Context, id: TSESTree.Identifier): TSESLint.Scope.Variable | undefined {
  let scope: TSESLint.Scope.Scope | null = context.sourceCode.getScope(id);
  while (scope !== null) {
    const v = scope.set.get(id.name);
    if (v !== undefined) return v;
    scope = scope.upper;
  }
  return undefined;
}

/**
 * The function an identifier names, resolved by the scope manager: a `const` initialised with an arrow
 * function or a function expression (TypeScript's wrappers aside), or a function declaration never
 * assigned to; not a `let`, a `var`, a parameter or an import (it may hold another function, or its
 * code is elsewhere).
 */
export function functionNamed(
  context: Context,
  id: TSESTree.Identifier,
): TSESTree.ArrowFunctionExpression | TSESTree.FunctionExpression | TSESTree.FunctionDeclaration | undefined {
  const variable = findVariable(context, id);
  const def = variable?.defs[0];
  if (def?.type === 'Variable' && def.parent.kind === 'const' && def.node.id === def.name && def.node.init != null) {
    const init = unwrapTs(def.node.init);
    return init.type === 'ArrowFunctionExpression' || init.type === 'FunctionExpression' ? init : undefined;
  }
  const fn = def?.type === 'FunctionName' ? def.node : undefined;
  return fn?.type === 'FunctionDeclaration' && variable!.defs.length === 1 && !variable!.references.some((r) => r.isWrite()) ? fn : undefined;
}

/** `e` without the TypeScript-only wrappers that do not change its value: `x as T`, `<T>x`, `x!`, `x satisfies T`. */
export function unwrapTs(e: TSESTree.Node): TSESTree.Node {
  let n = e;
  while (n.type === 'TSAsExpression' || n.type === 'TSTypeAssertion' || n.type === 'TSNonNullExpression' || n.type === 'TSSatisfiesExpression') n = n.expression;
  return n;
}

/** `e` without TypeScript's wrappers (see {@link unwrapTs}) nor an optional chain's: `ctx?.self` as `ctx.self`. */
function unwrapChain(e: TSESTree.Node): TSESTree.Node {
  let n = unwrapTs(e);
  while (n.type === 'ChainExpression') n = unwrapTs(n.expression);
  return n;
}

/**
 * True when `target` is `<from>.self` (the same receiver, compared as written; `<from>['self']` too), or a `const`
 * initialised with it (`const me = ctx.self`, `const { self } = ctx`, `const { 'self': me } = ctx`).
 */
export function isSelfOf(context: Context, target: TSESTree.Node, from: TSESTree.Node, seen: Set<TSESLint.Scope.Variable> = new Set()): boolean {
  // optional chaining reads the same value when there is one: `ctx?.self` is `ctx.self`
  const text = (n: TSESTree.Node): string =>
    context.sourceCode
      .getText(unwrapChain(n))
      .replace(/\s+/g, '')
      .replace(/\?\.(?=[[(])/g, '')
      .replace(/\?\./g, '.');
  target = unwrapChain(target);
  // `from.self`, or `from['self']` (a string key, as `ctx['send']` is a send)
  if (target.type === 'MemberExpression' && propertyName(target) === 'self') {
    return text(target.object) === text(from);
  }
  if (target.type === 'Identifier') {
    const variable = findVariable(context, target);
    const def = variable?.defs[0];
    // consts that refer to each other (`const a = b, b = a`: a TDZ error, but it parses) are followed once
    if (variable === undefined || seen.has(variable)) return false;
    seen.add(variable);
    if (def?.type === 'Variable' && def.parent.kind === 'const' && def.node.init != null) {
      // `const { self } = ctx` (or `{ self: me }`): the pattern's own `self` property
      const prop = def.name.parent;
      if (def.node.id.type === 'ObjectPattern' && prop?.type === 'Property' && prop.parent === def.node.id && prop.value === def.name) {
        return keyName(prop) === 'self' && text(def.node.init) === text(from);
      }
      if (def.node.id !== def.name) return false;
      return isSelfOf(context, def.node.init, from, seen);
    }
  }
  return false;
}

/**
 * True when the value of `call` is thrown away: an expression statement, `void call`, or a non-last
 * comma operand; through an optional chain, TypeScript's wrappers (`as T`, `satisfies T`, `!`, `<T>`),
 * an `await`, a branch of `?:`, the right of `&&`, `||` or `??`, or the last comma operand, which hand
 * the value on to what holds them.
 */
export function isDiscarded(call: TSESTree.Node): boolean {
  const parent = call.parent;
  if (parent === undefined) return false;
  if (parent.type === 'ExpressionStatement') return true;
  if (parent.type === 'UnaryExpression' && parent.operator === 'void') return true;
  if (
    parent.type === 'ChainExpression' ||
    parent.type === 'AwaitExpression' ||
    parent.type === 'TSAsExpression' ||
    parent.type === 'TSSatisfiesExpression' ||
    parent.type === 'TSNonNullExpression' ||
    parent.type === 'TSTypeAssertion' ||
    (parent.type === 'ConditionalExpression' && parent.test !== call) ||
    (parent.type === 'LogicalExpression' && parent.right === call)
  ) {
    return isDiscarded(parent);
  }
  return parent.type === 'SequenceExpression' && (parent.expressions.at(-1) !== call || isDiscarded(parent));
}

/** `receiver.name(...)`, or `receiver['name'](...)` with the name a string literal, else undefined. */
export function methodCall(node: TSESTree.CallExpression, name: string): TSESTree.MemberExpression | undefined {
  const callee = node.callee;
  return callee.type === 'MemberExpression' && propertyName(callee) === name ? callee : undefined;
}

/** The name of `receiver.name`, or of `receiver['name']` (a string literal, or a template without expressions); else undefined. */
export function propertyName(member: TSESTree.MemberExpression): string | undefined {
  const p = member.property;
  if (!member.computed) return p.type === 'Identifier' ? p.name : undefined;
  if (p.type === 'Literal') return typeof p.value === 'string' ? p.value : undefined;
  return p.type === 'TemplateLiteral' && p.expressions.length === 0 ? (p.quasis[0]?.value.cooked ?? undefined) : undefined;
}

/** The key of a property written `{ name }`, `{ 'name': … }` or `{ ['name']: … }` (a string); else undefined. */
export function keyName(prop: TSESTree.Property): string | undefined {
  const k = prop.key;
  if (!prop.computed && k.type === 'Identifier') return k.name;
  if (k.type === 'Literal') return typeof k.value === 'string' ? k.value : undefined;
  return prop.computed && k.type === 'TemplateLiteral' && k.expressions.length === 0 ? (k.quasis[0]?.value.cooked ?? undefined) : undefined;
}

/**
 * True when `id` is the local name of a namespace import of a module `isSource` accepts (`import * as id from source`,
 * `const id = require(source)`, `const id = await import(source)`).
 */
export function isNamespaceOf(context: Context, isSource: (source: string) => boolean, id: TSESTree.Identifier): boolean {
  const def = findVariable(context, id)?.defs[0];
  if (def?.type === 'Variable') {
    const source = def.node.id === def.name && def.parent.kind === 'const' && def.node.init != null ? loadedModule(def.node.init) : undefined;
    return source !== undefined && isSource(source);
  }
  if (def?.type !== 'ImportBinding' || def.node.type !== 'ImportNamespaceSpecifier') return false;
  const declaration = def.node.parent;
  return isSource(declaration.source.value) && declaration.importKind !== 'type';
}

/**
 * True when the module specifier `source` is Keel: `importSource` or one of its subpaths (`keel/testing`),
 * or a relative import that resolves into the `src/` or `dist/` folder of Keel itself (the nearest
 * package.json above it is named `keel`): Keel's own code and tests.
 */
export function isKeelModule(context: Context, source: string, importSource: string): boolean {
  if (source === importSource || source.startsWith(`${importSource}/`)) return true;
  if (!source.startsWith('./') && !source.startsWith('../')) return false;
  const resolved = path.resolve(context.cwd, path.dirname(context.filename), source);
  for (let dir = path.dirname(resolved); ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'package.json'))) {
      const [top] = path.relative(dir, resolved).split(path.sep);
      return isKeelFile(resolved) && (top === 'src' || top === 'dist');
    }
    if (path.dirname(dir) === dir) return false;
  }
}

/**
 * What the identifier `id` is bound to, read from the file when there are no types: Keel's export `exported`
 * (imported from Keel, see {@link isKeelModule}, under any local name; taken from a namespace of Keel, or from
 * `require` / `await import` of Keel), `other` (any other binding: another module's, a local, a parameter),
 * or `global` (no declaration in the file: a global, or code written without its imports).
 */
export function keelBinding(context: Context, id: TSESTree.Identifier, exported: string, importSource: string): 'keel' | 'other' | 'global' {
  const variable = findVariable(context, id);
  const def = variable?.defs[0];
  if (def === undefined) return 'global';
  const fromKeel = (source: string): boolean => isKeelModule(context, source, importSource);
  if (def.type === 'ImportBinding') {
    const spec = def.node;
    const declaration = spec.parent as TSESTree.ImportDeclaration;
    if (spec.type !== 'ImportSpecifier' || declaration.importKind === 'type' || spec.importKind === 'type') return 'other';
    const imported = spec.imported.type === 'Identifier' ? spec.imported.name : spec.imported.value;
    return imported === exported && fromKeel(declaration.source.value) ? 'keel' : 'other';
  }
  if (def.type !== 'Variable' || def.parent.kind !== 'const' || def.node.init == null) return 'other';
  const init = unwrapTs(def.node.init);
  // `const G = keel.GenServer` (a namespace of Keel)
  if (def.node.id === def.name) {
    const object = init.type === 'MemberExpression' ? unwrapTs(init.object) : undefined;
    return init.type === 'MemberExpression' && propertyName(init) === exported && object?.type === 'Identifier' && isNamespaceOf(context, fromKeel, object) ? 'keel' : 'other';
  }
  // `const { GenServer: G } = require('keel')` (or `await import('keel')`, or a namespace of Keel)
  const prop = def.name.parent;
  if (def.node.id.type !== 'ObjectPattern' || prop?.type !== 'Property' || prop.parent !== def.node.id || prop.value !== def.name || keyName(prop) !== exported) return 'other';
  const source = loadedModule(init);
  if (source !== undefined) return fromKeel(source) ? 'keel' : 'other';
  return init.type === 'Identifier' && isNamespaceOf(context, fromKeel, init) ? 'keel' : 'other';
}

/** The module `require('m')`, `import('m')` or `await import('m')` loads, when `e` is one of them with a string literal. */
export function loadedModule(e: TSESTree.Node): string | undefined {
  let n = unwrapTs(e);
  if (n.type === 'AwaitExpression') n = unwrapTs(n.argument);
  let source: TSESTree.Node | undefined;
  if (n.type === 'ImportExpression') source = n.source;
  else if (n.type === 'CallExpression' && n.callee.type === 'Identifier' && n.callee.name === 'require' && n.arguments.length === 1) source = n.arguments[0];
  return source?.type === 'Literal' && typeof source.value === 'string' ? source.value : undefined;
}

/** The local name under which `imported` is imported from `source` (`import { imported as local } from source`), if it is. */
export function importedAs(context: Context, source: string, imported: string): string | undefined {
  for (const statement of context.sourceCode.ast.body) {
    // `const { imported: local } = require(source)` (or `await import(source)`), at the top of the module
    if (statement.type === 'VariableDeclaration' && statement.kind === 'const') {
      for (const d of statement.declarations) {
        if (d.id.type !== 'ObjectPattern' || d.init == null || loadedModule(d.init) !== source) continue;
        for (const p of d.id.properties) {
          if (p.type === 'Property' && !p.computed && p.key.type === 'Identifier' && p.key.name === imported && p.value.type === 'Identifier') return p.value.name;
        }
      }
      continue;
    }
    if (statement.type !== 'ImportDeclaration' || statement.source.value !== source || statement.importKind === 'type') continue;
    for (const s of statement.specifiers) {
      if (s.type === 'ImportSpecifier' && s.importKind !== 'type' && (s.imported.type === 'Identifier' ? s.imported.name : s.imported.value) === imported) {
        return s.local.name;
      }
    }
  }
  return undefined;
}
