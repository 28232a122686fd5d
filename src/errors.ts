/**
 * Every error Keel throws, with its stable code.
 *
 * Programmer errors (bad arguments, misuse) throw one of these; expected failures are returned as
 * outcomes instead. Check an error with {@link isKeelError} and its `code`, not with `instanceof`,
 * so that the check survives bundling and duplicated copies of the package.
 *
 * @example
 * ```ts
 * try { node.spawn(42 as never); }
 * catch (e) { if (isKeelError(e, 'ERR_INVALID_ARGUMENT')) console.log(e.message); }
 * ```
 */
// The public door of Keel's errors: each area's errors live in a file of src/errors/, which imports
// only src/errors/base.ts (never another area, never this file); every import of errors.js finds
// them all here.
export * from './errors/base.js';
export * from './errors/arguments.js';
export * from './errors/runtime.js';
export * from './errors/calls.js';
export * from './errors/delivery.js';
export * from './errors/cluster.js';
export * from './errors/agents.js';
