import { types } from 'node:util';

/**
 * @internal True for the value `ctx.exit` throws to end a handler. Read without running user code: a
 * proxy's traps or a getter (a thrown revoked proxy, or an object whose `keelExitSentinel` getter
 * throws, is a failing handler, not an error out of the catch).
 */
export function isExitSentinel(thrown: unknown): boolean {
  if (typeof thrown !== 'object' || thrown === null || types.isProxy(thrown)) return false;
  return Object.getOwnPropertyDescriptor(thrown, 'keelExitSentinel')?.value === true;
}
