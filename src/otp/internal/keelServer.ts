import { types } from 'node:util';
import { InvalidArgumentError } from '../../errors.js';
import { isSystemMessage } from '../../runtime/messages.js';
import type { Context } from '../../runtime/types.js';
import type { CallProtocol, GenServerSpec } from './spec.js';

/**
 * A request or a cast Keel's servers can read: an object (all of theirs are), not a proxy (its traps
 * would run, or throw), its fields readable (no getter that throws). Its fields' values are not
 * looked into: a message being carried (a dead letter, a coordinated message) may be anything.
 */
function readable(value: unknown): value is object {
  if (typeof value !== 'object' || value === null || types.isProxy(value)) return false;
  try {
    for (const key in value) void (value as Record<string, unknown>)[key];
    return true;
  } catch {
    return false;
  }
}

/**
 * @internal Makes `spec` one of Keel's own servers (a service, a supervisor, an agent component): a
 * call it cannot read (a proxy, a getter that throws) or takes none of gets an error reply, and such
 * a cast is reported as `keel.gen_server.unexpected_message`; neither crashes it, whoever sent it.
 * (A user's server without `handleCall` or `handleCast` crashes when called or cast to, as in
 * Elixir: docs/otp.md.) `what` names the server in the error; the reply is `{ error }`, or the error
 * itself with `errorReply: 'bare'` (the agent components answer a bad call so).
 */
export function keelServer<S, P extends CallProtocol, Cast, Arg>(
  spec: GenServerSpec<S, P, Cast, Arg>,
  what: string,
  errorReply: 'object' | 'bare' = 'object',
): GenServerSpec<S, P, Cast, Arg> {
  const refuse = (request: unknown): never => {
    const e = new InvalidArgumentError('request', `a call ${what} takes`, request);
    return (errorReply === 'bare' ? e : { error: e }) as never;
  };
  const { handleCall, handleCast } = spec;
  return {
    ...spec,
    handleCall: (request, from, state, ctx) =>
      handleCall !== undefined && readable(request) ? handleCall.call(spec, request, from, state, ctx) : { reply: refuse(request), state },
    handleCast: (request, state, ctx) => {
      if (handleCast !== undefined && readable(request)) return handleCast.call(spec, request, state, ctx);
      reportUnexpected(ctx, request);
      return state;
    },
  };
}

/** @internal Reports a message one of Keel's servers does not take: `keel.gen_server.unexpected_message`. */
export function reportUnexpected(ctx: Context<any>, message: unknown): void {
  ctx.node.telemetry.execute('keel.gen_server.unexpected_message', {}, { pid: ctx.self, message });
}

/**
 * @internal What the `handleInfo` of one of Keel's servers does with a message it does not take: a
 * plain message is reported (as OTP's supervisor logs one it did not expect), never dropped unseen;
 * an `Exit` or a `Down` nobody asked about (a stopped child's late `Exit`) is dropped quietly.
 */
export function unexpectedInfo(ctx: Context<any>, message: unknown): void {
  if (!isSystemMessage(message)) reportUnexpected(ctx, message);
}
