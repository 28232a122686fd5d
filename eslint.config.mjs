// Lint: typescript-eslint's recommended rules, Keel's own plugin (its recommended config, on the
// source and the tests alike), plus the layering of DESIGN.md: each src/ folder may import only the
// layers below it (cli, observer > agents > cluster > services > delivery > monitors > otp > runtime >
// telemetry), only the CLI imports the test kit (`keel soak`'s leak audit) and the lint plugin, and
// nothing outside src/runtime imports the runtime's internals or the node class (src/runtime/kernel.ts
// is the kernel's one door).
import { defineConfig } from 'eslint/config';
import { createJiti } from 'jiti';
import tseslint from 'typescript-eslint';

// The plugin is linted code too, so it is loaded from its TypeScript source (npm test lints
// before it builds, and a clean clone has no dist/).
const keel = await createJiti(import.meta.url).import('./src/lint/index.ts', { default: true });

// what the observer page's modules may use: the browser's own objects
const BROWSER_GLOBALS = ['window', 'document', 'location', 'history', 'console', 'fetch', 'EventSource', 'AbortController', 'URLSearchParams', 'Intl', 'setTimeout', 'clearTimeout'];

const layers = ['cli', 'observer', 'agents', 'cluster', 'services', 'delivery', 'monitors', 'otp', 'runtime', 'telemetry'];
const sideEntries = ['testing', 'lint'];

// The kernel's one door: outside src/runtime nothing imports the runtime's internals or the node
// class; the layers above (and src/index.ts) reach the kernel through src/runtime/kernel.ts.
const KERNEL_DOOR_MESSAGE = "only src/runtime imports its internals and the node class; the layers above use src/runtime/kernel.ts, the kernel's one door";
const kernelDoor = {
  group: ['**/', './', '../', '../../', '../../../'].flatMap((up) => [`${up}runtime/internal/**`, `${up}runtime/Node.js`, `${up}runtime/Node`]),
  message: KERNEL_DOOR_MESSAGE,
};

function restrictedFor(folder, { door = folder !== 'runtime' } = {}) {
  const i = layers.indexOf(folder);
  // src/lint stands beside the runtime, not on it: of Keel it imports src/errors.ts only
  const above = folder === 'lint' ? layers : i < 0 ? [] : layers.slice(0, i);
  // the CLI is the one layer that runs the lint plugin (`keel audit`, imported dynamically, so
  // that the core never loads the plugin's optional peers) and the test kit's leak audit (`keel
  // soak` ends with expectNoLeaks, imported from its own file: the kit's probes and clocks stay out)
  const side = sideEntries.filter((s) => s !== folder && !(folder === 'cli' && (s === 'lint' || s === 'testing')));
  const forbidden = [...above, ...side];
  const layering = forbidden.map((f) => ({
    group: [`**/${f}/*`, `../${f}/*`, `../../${f}/*`, `./${f}/*`],
    message: `src/${folder} must not import src/${f}: imports point down the layers (DESIGN.md "Layers").`,
  }));
  return door ? [...layering, kernelDoor] : layering;
}

export default defineConfig(
  // the audit fixture is a tree of deliberate findings, linted by the tests through `keel audit`;
  // .doctest/ holds the doc examples the doc tests extract, dist.build-* a build being made
  { ignores: ['dist/**', 'dist-check/**', 'coverage/**', 'node_modules/**', 'test/fixtures/audit-tree/**', '.doctest/**', 'dist.build-*/**'] },
  ...tseslint.configs.recommended,
  // Keel's rules read the types (is this `send` Keel's Context.send?), so the TypeScript files are
  // linted with the project's program
  { files: ['**/*.ts'], ...keel.configs.recommended, languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } } },
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  ...[...layers, 'testing', 'lint'].map((folder) => ({
    files: [`src/${folder}/**/*.ts`],
    rules: { 'no-restricted-imports': ['error', { patterns: restrictedFor(folder) }] },
  })),
  // the files at the top of src/ (the public index, the shared errors and backoff) use the door too
  { files: ['src/*.ts'], rules: { 'no-restricted-imports': ['error', { patterns: [kernelDoor] }] } },
  // no sleeps in tests: keel/no-sleep-in-tests (in the recommended config above) covers test/
  // a test's process handles what that test sends it, and a message it drops is often the point
  // (a flood, a probe's peer): its handlers need no report of unexpected messages
  { files: ['test/**/*.ts'], rules: { 'keel/handle-unexpected-messages': 'off' } },
  // the observer's page: plain browser modules (no build step), every value set as text, never as
  // markup (innerHTML and its kin are refused here, whatever they would be given)
  {
    files: ['src/observer/assets/**/*.js'],
    languageOptions: { sourceType: 'module', ecmaVersion: 2023, globals: Object.fromEntries(BROWSER_GLOBALS.map((g) => [g, 'readonly'])) },
    rules: {
      'no-undef': 'error',
      'no-restricted-properties': ['error', ...['innerHTML', 'outerHTML'].map((property) => ({ property, message: 'the observer page sets text only (textContent): data never becomes markup' }))],
      'no-restricted-syntax': [
        'error',
        { selector: "CallExpression[callee.property.name=/^(insertAdjacentHTML|write|writeln|createContextualFragment|parseFromString)$/]", message: 'the observer page builds nodes, it never parses markup' },
        { selector: "CallExpression[callee.property.name='setAttribute'][arguments.0.value=/^(on|style$|srcdoc$)/]", message: 'no inline handlers or styles (the page runs under a strict CSP)' },
        { selector: "CallExpression[callee.name='eval'], NewExpression[callee.name='Function']", message: 'no code from strings' },
      ],
    },
  },
);
