import path from 'node:path';
import type { TSESLint, TSESTree } from '@typescript-eslint/utils';
import { createRule } from '../internal/createRule.js';
import { walk } from '../internal/ast.js';
import { findVariable, functionNamed, isOpaque, keyName, loadedModule, propertyName, tsModule, typeServices, unwrapTs } from '../internal/keelTypes.js';

type Options = [{ testFilePatterns?: string[]; sleepFunctions?: string[] }];
type RuleContext = Readonly<TSESLint.RuleContext<string, readonly unknown[]>>;

/** Test files by default: `*.test.*`, `*.spec.*`, and anything under `test/`, `tests/` or `__tests__/`. */
export const DEFAULT_TEST_FILE_PATTERNS: readonly string[] = ['\\.(test|spec)\\.[cm]?[jt]sx?$', '(^|/)(test|tests|__tests__)/'];
/** Helpers whose awaited call with a duration is taken as a sleep. */
export const DEFAULT_SLEEP_FUNCTIONS: readonly string[] = ['sleep', 'delay', 'wait'];

const TIMER_MODULES = new Set(['timers/promises', 'node:timers/promises']);
/** node:timers, whose `promises` is timers/promises. */
const TIMERS = new Set(['timers', 'node:timers']);

/**
 * `no-sleep-in-tests`: a test that awaits a timer guesses how long the system needs; it is slow
 * when the guess is long and flaky when it is short. Neither an autofix nor a suggestion: what to
 * await instead depends on what the test waits for.
 */
export const noSleepInTests = createRule<Options, 'sleep'>({
  name: 'no-sleep-in-tests',
  meta: {
    type: 'problem',
    docs: { description: 'Disallow awaited timer delays in test files', recommended: true, typeAware: true },
    messages: {
      sleep:
        'No sleeps in tests: `{{what}}` guesses how long the system needs. Await an observable fact instead: a monitor\'s Down, a probe message (`probe.receive`), a telemetry event (`captureEvents`), `node.idle()`, or advance a TestClock.',
    },
    schema: [
      {
        type: 'object',
        properties: {
          testFilePatterns: {
            type: 'array',
            // checked when the configuration is read: a pattern that is no regular expression is a
            // configuration error naming the option, not a crash of the rule in the first file
            items: { type: 'string', format: 'regex' },
            description: 'Regular expressions over the file path relative to the working directory (forward slashes); the rule runs in matching files only.',
          },
          sleepFunctions: { type: 'array', items: { type: 'string' }, description: 'Names of sleep helpers (`await sleep(100)`).' },
        },
        additionalProperties: false,
      },
    ],
    defaultOptions: [{ testFilePatterns: [...DEFAULT_TEST_FILE_PATTERNS], sleepFunctions: [...DEFAULT_SLEEP_FUNCTIONS] }],
  },
  create(context, [{ testFilePatterns = [...DEFAULT_TEST_FILE_PATTERNS], sleepFunctions = [...DEFAULT_SLEEP_FUNCTIONS] }]) {
    const relative = path.relative(context.cwd, context.filename).split(path.sep).join('/');
    if (!testFilePatterns.some((p) => new RegExp(p).test(relative))) return {};
    return {
      AwaitExpression(node) {
        const what = sleepOf(context, node.argument, sleepFunctions);
        if (what !== undefined) context.report({ node, messageId: 'sleep', data: { what } });
      },
    };
  },
});

/** What kind of sleep `awaited` is, or undefined when it is none. `seen`: the functions of the file being looked into. */
function sleepOf(context: RuleContext, written: TSESTree.Node, sleepFunctions: readonly string[], seen: Set<TSESTree.Node> = new Set()): string | undefined {
  // `sleep?.(5)`, `(sleep(5) as Promise<void>)`, `sleep(5)!`: the same call
  let awaited: TSESTree.Node = unwrapTs(written);
  while (awaited.type === 'ChainExpression') awaited = unwrapTs(awaited.expression);
  // `Promise.all([…, sleep(5)])`, `Promise.allSettled(…)`: settled when every element is, a sleep among them is awaited in full
  if (awaited.type === 'CallExpression' && awaited.callee.type === 'MemberExpression' && ['all', 'allSettled'].includes(propertyName(awaited.callee) ?? '')) {
    const object = unwrapTs(awaited.callee.object);
    const list = awaited.arguments[0] === undefined ? undefined : unwrapTs(awaited.arguments[0]);
    if (object.type === 'Identifier' && object.name === 'Promise' && (findVariable(context, object)?.defs.length ?? 0) === 0 && list?.type === 'ArrayExpression') {
      for (const element of list.elements) {
        const inner = element === null || element.type === 'SpreadElement' ? undefined : sleepOf(context, element, sleepFunctions, seen);
        if (inner !== undefined) return `${inner} in Promise.${propertyName(awaited.callee)}([…])`;
      }
    }
    return undefined;
  }
  // await new Promise((resolve) => setTimeout(resolve, ms))
  if (awaited.type === 'NewExpression' && awaited.callee.type === 'Identifier' && awaited.callee.name === 'Promise') {
    const executor = awaited.arguments[0];
    if (executor !== undefined && (executor.type === 'ArrowFunctionExpression' || executor.type === 'FunctionExpression') && timerMaySettle(context, executor)) {
      return 'await new Promise(… setTimeout …)';
    }
    return undefined;
  }
  if (awaited.type !== 'CallExpression' || awaited.arguments.length === 0) return undefined;
  const callee = awaited.callee;
  // await setTimeout(ms) / await scheduler.wait(ms) from timers/promises, named or through a namespace
  if (callee.type === 'Identifier' && importedFromTimers(context, callee) !== undefined) {
    const imported = importedFromTimers(context, callee);
    if (imported === 'setTimeout' || imported === 'scheduler') return `await ${callee.name}(…) from timers/promises`;
  }
  const name = callee.type === 'MemberExpression' ? propertyName(callee) : undefined;
  if (callee.type === 'MemberExpression' && name !== undefined) {
    const object = callee.object;
    const text = context.sourceCode.getText(object);
    if (name === 'setTimeout' && isTimersPromises(context, object)) return `await ${text}.setTimeout(…)`;
    if (object.type === 'Identifier' && importedFromTimers(context, object) === 'scheduler' && name === 'wait') return `await ${object.name}.wait(…)`;
    // `<namespace>.scheduler.wait(…)`
    if (name === 'wait' && object.type === 'MemberExpression' && propertyName(object) === 'scheduler' && isTimersPromises(context, object.object)) {
      return `await ${text}.wait(…)`;
    }
  }
  // `const pause = promisify(setTimeout)` (util's): the promise form of setTimeout, a sleep whatever its name
  if (callee.type === 'Identifier' && promisifiesSetTimeout(context, callee)) return `await ${callee.name}(…), setTimeout promisified`;
  // await sleep(ms): a helper by name, when its first argument is a duration and its code is not in this file (a
  // function of this file is judged by its code below: `const sleep = (ms) => clock.advance(ms)` is no sleep)
  if (callee.type === 'Identifier' && sleepFunctions.includes(callee.name) && isDuration(context, awaited.arguments[0]!) && functionNamed(context, callee) === undefined) {
    return `await ${callee.name}(…)`;
  }
  // a function of this file that returns a sleep, whatever its name: `nap(5)`, `this.sleep(5)`, `utils.sleep(5)`
  const helper = helperOf(context, callee);
  if (helper !== undefined && !seen.has(helper)) {
    seen.add(helper);
    if (returnsSleep(context, helper, sleepFunctions, seen)) return `await ${context.sourceCode.getText(callee)}(…), a sleep of this file`;
  }
  return undefined;
}

type Fn = TSESTree.ArrowFunctionExpression | TSESTree.FunctionExpression | TSESTree.FunctionDeclaration;

/** True when every value `fn` returns (its expression body, or its top-level `return`s, at least one) is a sleep. */
function returnsSleep(context: RuleContext, fn: Fn, sleepFunctions: readonly string[], seen: Set<TSESTree.Node>): boolean {
  if (fn.generator) return false; // its call gives a generator object at once, whatever its body returns
  if (fn.body.type !== 'BlockStatement') return sleepOf(context, fn.body, sleepFunctions, seen) !== undefined;
  const returned: (TSESTree.Expression | null)[] = [];
  walk(context, fn.body, (n) => {
    if (n.type === 'ReturnStatement') returned.push(n.argument);
  });
  return returned.length > 0 && returned.every((e) => e !== null && sleepOf(context, e, sleepFunctions, seen) !== undefined);
}

/**
 * The function of this file a call's callee names: a `const` holding a function or a function declaration never
 * assigned to (`nap`); a method of the class or object literal `this` is in (`this.sleep`, the method's `this`:
 * not through an arrow function's own); a function of an object literal held in a `const` (`utils.sleep`).
 */
function helperOf(context: RuleContext, written: TSESTree.Node): Fn | undefined {
  const callee = unwrapTs(written);
  if (callee.type === 'Identifier') return functionNamed(context, callee);
  if (callee.type !== 'MemberExpression') return undefined;
  const name = propertyName(callee);
  const object = unwrapTs(callee.object);
  if (name === undefined) return undefined;
  if (object.type === 'ThisExpression') {
    let fn: TSESTree.Node | null | undefined = object.parent;
    while (fn != null && fn.type !== 'FunctionExpression' && fn.type !== 'FunctionDeclaration') fn = fn.parent;
    const holder = fn?.parent;
    if (holder?.type === 'MethodDefinition' && holder.value === fn) {
      for (const m of holder.parent.body) {
        if ((m.type === 'MethodDefinition' || m.type === 'PropertyDefinition') && m.static === holder.static && !m.computed && m.key.type === 'Identifier' && m.key.name === name) {
          return m.value !== null && (m.value.type === 'FunctionExpression' || m.value.type === 'ArrowFunctionExpression') ? m.value : undefined;
        }
      }
      return undefined;
    }
    return holder?.type === 'Property' && holder.value === fn && holder.parent.type === 'ObjectExpression' ? memberOf(context, holder.parent, name) : undefined;
  }
  if (object.type !== 'Identifier') return undefined;
  const def = findVariable(context, object)?.defs[0];
  if (def?.type !== 'Variable' || def.parent.kind !== 'const' || def.node.id !== def.name || def.node.init == null) return undefined;
  const init = unwrapTs(def.node.init);
  return init.type === 'ObjectExpression' ? memberOf(context, init, name) : undefined;
}

/** The function of the object literal's property `name` (`{ sleep(ms) {…} }`, `{ sleep: (ms) => … }`, `{ sleep }` naming one). */
function memberOf(context: RuleContext, object: TSESTree.ObjectExpression, name: string): Fn | undefined {
  const prop = object.properties.find((p): p is TSESTree.Property => p.type === 'Property' && keyName(p) === name);
  const value = prop === undefined ? undefined : unwrapTs(prop.value);
  if (value?.type === 'FunctionExpression' || value?.type === 'ArrowFunctionExpression') return value;
  return value?.type === 'Identifier' ? functionNamed(context, value) : undefined;
}

/** True when `e` is timers/promises as a whole: its namespace (or default import), or `promises` of node:timers (`timers.promises`, `{ promises }`). */
function isTimersPromises(context: RuleContext, e: TSESTree.Node): boolean {
  const n = unwrapTs(e);
  if (n.type === 'Identifier') return importedFromTimers(context, n) === '*';
  if (n.type !== 'MemberExpression' || propertyName(n) !== 'promises') return false;
  const timers = unwrapTs(n.object);
  return timers.type === 'Identifier' && importedFromTimers(context, timers) === 'timers';
}

/** True when `id` is a `const` holding `promisify(setTimeout)` (`util.promisify(globalThis.setTimeout)` too). */
function promisifiesSetTimeout(context: RuleContext, id: TSESTree.Identifier): boolean {
  const def = findVariable(context, id)?.defs[0];
  if (def?.type !== 'Variable' || def.parent.kind !== 'const' || def.node.id !== def.name || def.node.init == null) return false;
  const init = unwrapTs(def.node.init);
  if (init.type !== 'CallExpression' || init.arguments.length !== 1) return false;
  const fn = init.callee;
  const promisify = fn.type === 'Identifier' ? fn.name : fn.type === 'MemberExpression' ? propertyName(fn) : undefined;
  const timer = unwrapTs(init.arguments[0]!);
  const timerName = timer.type === 'Identifier' ? timer.name : timer.type === 'MemberExpression' ? propertyName(timer) : undefined;
  return promisify === 'promisify' && timerName === 'setTimeout';
}

/**
 * The name imported from timers/promises that `id` is bound to ('*' for a namespace, or the default
 * import: a builtin's default export is its namespace), if any: by an import declaration, or a
 * `const` taking `await import(…)` or `require(…)` whole or destructured. Of node:timers, its
 * `promises` is '*' too, and the module itself 'timers' (its other names are callback timers).
 */
function importedFromTimers(context: RuleContext, id: TSESTree.Identifier): string | undefined {
  const def = findVariable(context, id)?.defs[0];
  if (def?.type === 'Variable') return loadedFromTimers(def.node, def.name);
  if (def?.type !== 'ImportBinding') return undefined;
  const decl = def.parent;
  if (decl.type !== 'ImportDeclaration') return undefined;
  const spec = def.node;
  const whole = spec.type === 'ImportNamespaceSpecifier' || spec.type === 'ImportDefaultSpecifier';
  const imported = spec.type === 'ImportSpecifier' ? (spec.imported.type === 'Identifier' ? spec.imported.name : spec.imported.value) : undefined;
  return ofTimers(decl.source.value, whole, imported);
}

/** What of timers/promises `name` is in `const <pattern> = await import('…')` or `= require('…')`. */
function loadedFromTimers(declarator: TSESTree.VariableDeclarator, name: TSESTree.Identifier): string | undefined {
  const source = declarator.init === null ? undefined : loadedModule(declarator.init);
  if (source === undefined) return undefined;
  if (declarator.id === name) return ofTimers(source, true, undefined);
  if (declarator.id.type !== 'ObjectPattern') return undefined;
  const prop = declarator.id.properties.find((p) => p.type === 'Property' && (p.value.type === 'AssignmentPattern' ? p.value.left : p.value) === name);
  return prop?.type === 'Property' ? ofTimers(source, false, keyName(prop)) : undefined;
}

/** What a binding of `source` (the module `whole`, or its export `imported`) is to the rule: see {@link importedFromTimers}. */
function ofTimers(source: string, whole: boolean, imported: string | undefined): string | undefined {
  if (TIMER_MODULES.has(source)) return whole ? '*' : imported;
  if (TIMERS.has(source)) return whole ? 'timers' : imported === 'promises' ? '*' : undefined;
  return undefined;
}

/** A number by the types when they are known; else anything but a string, a function or an object literal. */
function isDuration(context: RuleContext, arg: TSESTree.CallExpressionArgument): boolean {
  const s = typeServices(context);
  if (s !== undefined) {
    const tsNode = s.esTreeNodeToTSNodeMap.get(arg);
    const type = tsNode === undefined ? undefined : s.program.getTypeChecker().getTypeAtLocation(tsNode);
    const numberLike = tsModule().TypeFlags.NumberLike;
    if (type !== undefined && !isOpaque(type)) return (type.flags & numberLike) !== 0 || (type.isUnion() && type.types.every((t) => (t.flags & numberLike) !== 0));
  }
  return !['Literal', 'TemplateLiteral', 'ArrowFunctionExpression', 'FunctionExpression', 'ObjectExpression'].includes(arg.type) || (arg.type === 'Literal' && typeof arg.value === 'number');
}

/**
 * True when a `setTimeout(…)` in the executor (not inside a nested function) may be what settles
 * the promise: a timer whose callback only rejects (the executor's second parameter, or a function
 * that never names its first) is a guard on a wait for a fact, not a sleep.
 */
function timerMaySettle(context: RuleContext, executor: TSESTree.ArrowFunctionExpression | TSESTree.FunctionExpression): boolean {
  const [resolve, reject] = executor.params;
  let found = false;
  walk(context, executor.body, (n) => {
    if (n.type !== 'CallExpression') return;
    const c = n.callee;
    const name = c.type === 'Identifier' ? c.name : c.type === 'MemberExpression' ? propertyName(c) : undefined;
    if (name === 'setTimeout' && !onlyRejects(context, n.arguments[0], resolve, reject)) found = true;
  });
  return found;
}

/** True when `callback` (a timer's) is the executor's `reject`, or a function that never names its `resolve`. */
function onlyRejects(context: RuleContext, callback: TSESTree.Node | undefined, resolve: TSESTree.Parameter | undefined, reject: TSESTree.Parameter | undefined): boolean {
  if (resolve?.type !== 'Identifier' || reject?.type !== 'Identifier' || callback === undefined) return false;
  const cb = unwrapTs(callback);
  if (cb.type === 'Identifier') return cb.name === reject.name && findVariable(context, cb)?.defs[0]?.name === reject;
  if (cb.type !== 'ArrowFunctionExpression' && cb.type !== 'FunctionExpression') return false;
  let names = false;
  const scan = (n: TSESTree.Node): void => {
    if (names) return;
    if (n.type === 'Identifier' && n.name === resolve.name && findVariable(context, n)?.defs[0]?.name === resolve) names = true;
    for (const key of context.sourceCode.visitorKeys[n.type] ?? []) {
      const child = (n as unknown as Record<string, unknown>)[key];
      for (const x of Array.isArray(child) ? child : [child]) if (x !== null && typeof x === 'object' && typeof (x as { type?: unknown }).type === 'string') scan(x as TSESTree.Node);
    }
  };
  scan(cb.body);
  return !names;
}
