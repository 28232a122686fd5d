import type { JSONSchema4 } from '@typescript-eslint/utils/json-schema';
import { loadPeer } from '../peers.js';

type Utils = typeof import('@typescript-eslint/utils');

/** What each rule's `meta.docs` carries besides its description. */
export interface KeelRuleDocs {
  /** The rule is on in `configs.recommended`. */
  recommended: boolean;
  /** The rule reads the TypeScript types when they are available (and falls back on names without them). */
  typeAware: boolean;
}

// @typescript-eslint/utils is an optional peer: a missing one is Keel's MissingPeerError
const { ESLintUtils } = loadPeer<Utils>('@typescript-eslint/utils', 'keel/eslint-plugin');

/**
 * @internal Keel's rule factory. There is no docs site: each rule's page is docs/lint/<rule>.md,
 * shipped in the package; `meta.docs.url` is that file's URL where Keel is installed (the same
 * depth from src/ and dist/), so an editor's link opens it, offline too.
 */
export const createRule = ESLintUtils.RuleCreator<KeelRuleDocs>((name) => new URL(`../../../docs/lint/${name}.md`, import.meta.url).href);

/** The options object of a rule whose fix or check names a Keel export: `{ importSource }`, default 'keel'. */
export function importSourceSchema(exported: string): JSONSchema4 {
  return {
    type: 'object',
    properties: { importSource: { type: 'string', description: `The module \`${exported}\` is imported from (default 'keel').` } },
    additionalProperties: false,
  };
}
