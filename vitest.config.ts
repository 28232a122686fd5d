import { configDefaults, defineConfig } from 'vitest/config';

const report = process.env.KEEL_TEST_REPORT;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // the lint fixtures are code to be linted, not tests
    exclude: [...configDefaults.exclude, 'test/fixtures/**', 'test/lint/fixture/**'],
    testTimeout: 20_000,
    pool: 'forks',
    // CI asks for a JSON report too, to print the plain "N passed, N failed" line it reads
    ...(report === undefined ? {} : { reporters: ['default', 'json'], outputFile: { json: report } }),
  },
});
