/**
 * `keel/eslint-plugin`: ESLint rules (flat config) that find what a migration to Keel must
 * change: raw sends, unmanaged monitors, sleeps in tests, self-calls and handlers that drop
 * unexpected messages. The rules read the TypeScript types when the file is linted with a
 * program (typescript-eslint's `parserOptions.projectService` or `project`) and fall back on
 * names without them. `eslint`, `typescript-eslint` and `@typescript-eslint/utils` are optional
 * peers of Keel: a missing one throws `MissingPeerError` (`ERR_PEER_MISSING`).
 *
 * @example
 * ```js
 * // eslint.config.mjs
 * import { defineConfig } from 'eslint/config';
 * import tseslint from 'typescript-eslint';
 * import keel from 'keel/eslint-plugin';
 *
 * export default defineConfig(
 *   ...tseslint.configs.recommended,
 *   keel.configs.recommended, // rule ids keel/no-raw-send, keel/no-unmanaged-monitor, ...
 * );
 * ```
 */
import { createRequire } from 'node:module';
import { handleUnexpectedMessages } from './rules/handleUnexpectedMessages.js';
import { noRawSend } from './rules/noRawSend.js';
import { noSelfCall } from './rules/noSelfCall.js';
import { noSleepInTests } from './rules/noSleepInTests.js';
import { noUnmanagedMonitor } from './rules/noUnmanagedMonitor.js';

export { DEFAULT_SLEEP_FUNCTIONS, DEFAULT_TEST_FILE_PATTERNS } from './rules/noSleepInTests.js';

const { version } = createRequire(import.meta.url)('../../package.json') as { version: string };

/** The rules, by id without the `keel/` prefix. */
export const rules = {
  'no-raw-send': noRawSend,
  'no-unmanaged-monitor': noUnmanagedMonitor,
  'no-sleep-in-tests': noSleepInTests,
  'no-self-call': noSelfCall,
  'handle-unexpected-messages': handleUnexpectedMessages,
};

/** A rule id of the plugin, without the `keel/` prefix. */
export type KeelRuleName = keyof typeof rules;

/** The severities of `configs.recommended`: raw sends and unhandled messages warn, the rest are errors. */
export const recommendedRules: Readonly<Record<`keel/${KeelRuleName}`, 'warn' | 'error'>> = {
  'keel/no-raw-send': 'warn',
  'keel/no-unmanaged-monitor': 'error',
  'keel/no-sleep-in-tests': 'error',
  'keel/no-self-call': 'error',
  'keel/handle-unexpected-messages': 'warn',
};

/**
 * A plugin as a config entry holds it: the shape ESLint's and typescript-eslint's config types
 * both accept (typescript-eslint's `CompatiblePlugin`), so that `configs.recommended` passes where
 * ESLint's config type is asked for (`defineConfig`, an `eslint.config.ts`).
 */
interface CompatiblePlugin {
  meta: { name: string };
}

/** A flat config entry. */
interface FlatConfig {
  name: string;
  plugins: Record<string, CompatiblePlugin>;
  rules: Record<string, 'warn' | 'error'>;
}

/** The plugin object: `meta`, `rules`, and `configs.recommended` (flat config, plugin registered as `keel`). */
const plugin: {
  meta: { name: string; version: string };
  rules: typeof rules;
  configs: { recommended: FlatConfig };
} = {
  meta: { name: 'keel/eslint-plugin', version },
  rules,
  configs: { recommended: { name: 'keel/recommended', plugins: {}, rules: { ...recommendedRules } } },
};
plugin.configs.recommended.plugins.keel = plugin;

export default plugin;
