// RuleTester under vitest, with and without type information. Typed cases are linted as
// test/lint/fixture/file.ts, in a program where `keel` resolves to Keel's own source.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RuleTester } from '@typescript-eslint/rule-tester';
import tseslint from 'typescript-eslint';
import { afterAll, beforeAll, describe, it } from 'vitest';

RuleTester.afterAll = afterAll;
RuleTester.describe = describe;
RuleTester.it = it;
RuleTester.itOnly = it.only;

export const fixtureDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixture');

/** The file typed cases are linted as (RuleTester's default name, inside the fixture program). */
export const typedFile = path.join(fixtureDir, 'file.ts');

const typedParserOptions = { project: './tsconfig.json', tsconfigRootDir: fixtureDir };

/**
 * Builds the fixture's TypeScript program once, before a file's typed cases, in a hook with a time
 * limit of its own: the program takes Keel's whole source, 5 s on an idle machine and several times
 * that on a loaded one, which the first typed case would otherwise pay within a case's 20 s.
 * typescript-eslint keeps the program per tsconfig, so each case then only updates it.
 */
function buildTypedProgram(): void {
  // typescript-eslint types its parser for ESLint's config (the text alone); it is @typescript-eslint/parser
  const parser = tseslint.parser as unknown as { parseForESLint(code: string, options: object): unknown };
  parser.parseForESLint('export {};\n', { ...typedParserOptions, filePath: typedFile });
}

class TypedRuleTester extends RuleTester {
  override run(...args: Parameters<RuleTester['run']>): void {
    beforeAll(buildTypedProgram, 180_000);
    super.run(...args);
  }
}

/** Cases parsed with a TypeScript program: the rules decide by the types. */
export const typed = new TypedRuleTester({
  languageOptions: {
    parser: tseslint.parser,
    parserOptions: typedParserOptions,
  },
});

/** Cases parsed without a program: the rules fall back on names. */
export const untyped = new RuleTester({ languageOptions: { parser: tseslint.parser } });

