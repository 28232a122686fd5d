import { createRule, importSourceSchema } from '../internal/createRule.js';
import { importedAs, isSelfOf, keelValue } from '../internal/keelTypes.js';

type Options = [{ importSource?: string }];

/**
 * `no-self-call`: `GenServer.call(ctx, ctx.self, …)`: a server that calls itself waits for a reply
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
        const callee = node.callee;
        let isCall = false;
        if (callee.type === 'MemberExpression' && !callee.computed && callee.property.type === 'Identifier' && callee.property.name === 'call') {
          const object = callee.object;
          if (object.type !== 'Identifier') return;
          const verdict = keelValue(context, object);
          isCall = verdict === 'keel' || (verdict === 'unknown' && (object.name === 'GenServer' || object.name === importedAs(context, importSource, 'GenServer')));
        } else if (callee.type === 'Identifier') {
          // a `call` taken from Keel: `const { call } = GenServer` has no import, so only the types can tell
          isCall = callee.name === 'call' && keelValue(context, callee) === 'keel';
        }
        const [from, target] = node.arguments;
        if (isCall && from !== undefined && target !== undefined && isSelfOf(context, target, from)) {
          context.report({ node, messageId: 'selfCall' });
        }
      },
    };
  },
});
