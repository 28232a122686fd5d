// Lint: typescript-eslint's recommended rules, plus the layering of DESIGN.md: each src/ folder may
// import only the layers below it (cli, observer > agents > services > delivery > monitors > otp >
// runtime > telemetry), and nothing imports the test kit or the lint plugin.
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

const layers = ['cli', 'observer', 'agents', 'services', 'delivery', 'monitors', 'otp', 'runtime', 'telemetry'];
const sideEntries = ['testing', 'lint', 'cluster'];

function restrictedFor(folder) {
  const i = layers.indexOf(folder);
  const above = i < 0 ? [] : layers.slice(0, i);
  const forbidden = [...above, ...sideEntries.filter((s) => s !== folder)];
  return forbidden.map((f) => ({
    group: [`**/${f}/*`, `../${f}/*`, `../../${f}/*`, `./${f}/*`],
    message: `src/${folder} must not import src/${f}: imports point down the layers (DESIGN.md "Layers").`,
  }));
}

export default defineConfig(
  { ignores: ['dist/**', 'dist-check/**', 'coverage/**', 'node_modules/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  ...[...layers, 'testing'].map((folder) => ({
    files: [`src/${folder}/**/*.ts`],
    rules: { 'no-restricted-imports': ['error', { patterns: restrictedFor(folder) }] },
  })),
  {
    files: ['test/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.name='setTimeout']",
          message: 'No sleeps in tests: await a Down, a probe message, an event, node.idle() or a TestClock advance.',
        },
      ],
    },
  },
);
