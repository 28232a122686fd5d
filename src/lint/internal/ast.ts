import type { TSESLint, TSESTree } from '@typescript-eslint/utils';

/**
 * @internal Visits `root` and its descendants in source order, by the parser's visitor keys, not
 * entering nested functions (other than `root` itself): what a function does later is not what
 * the code around it does now.
 */
export function walk(context: Readonly<TSESLint.RuleContext<string, readonly unknown[]>>, root: TSESTree.Node, visit: (n: TSESTree.Node) => void): void {
  const keys = context.sourceCode.visitorKeys;
  const go = (n: TSESTree.Node): void => {
    visit(n);
    if (n !== root && (n.type === 'ArrowFunctionExpression' || n.type === 'FunctionExpression' || n.type === 'FunctionDeclaration')) return;
    for (const key of keys[n.type] ?? []) {
      const child = (n as unknown as Record<string, unknown>)[key];
      for (const c of Array.isArray(child) ? child : [child]) {
        if (c !== null && typeof c === 'object' && typeof (c as { type?: unknown }).type === 'string') go(c as TSESTree.Node);
      }
    }
  };
  go(root);
}
