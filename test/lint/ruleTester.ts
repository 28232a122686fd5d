// RuleTester under vitest, with and without type information. Typed cases are linted as
// test/lint/fixture/file.ts, in a program where `keel` resolves to Keel's own source.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RuleTester } from '@typescript-eslint/rule-tester';
import tseslint from 'typescript-eslint';
import { afterAll, describe, it } from 'vitest';

RuleTester.afterAll = afterAll;
RuleTester.describe = describe;
RuleTester.it = it;
RuleTester.itOnly = it.only;

export const fixtureDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixture');

/** Cases parsed with a TypeScript program: the rules decide by the types. */
export const typed = new RuleTester({
  languageOptions: {
    parser: tseslint.parser,
    parserOptions: { project: './tsconfig.json', tsconfigRootDir: fixtureDir },
  },
});

/** Cases parsed without a program: the rules fall back on names. */
export const untyped = new RuleTester({ languageOptions: { parser: tseslint.parser } });

/** The file typed cases are linted as (RuleTester's default name, inside the fixture program). */
export const typedFile = path.join(fixtureDir, 'file.ts');
