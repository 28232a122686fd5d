import { noSleepInTests } from '../../src/lint/rules/noSleepInTests.js';
import { Linter } from 'eslint';
import { describe, expect, it } from 'vitest';
import { typed, untyped } from './ruleTester.js';

// RuleTester's cwd is the project root; test/lint/fixture/file.ts is under test/, so a test file
const testFile = 'test/some.test.ts';

typed.run('no-sleep-in-tests (with types)', noSleepInTests, {
  valid: [
    // a helper named like a sleep whose argument is not a duration
    `declare function wait(what: string): Promise<void>;
     export async function f() { await wait('ready'); }`,
    `declare function delay<T>(p: Promise<T>): Promise<T>;
     export async function f(p: Promise<number>) { await delay(p); }`,
  ],
  invalid: [
    {
      code: `declare function sleep(ms: number): Promise<void>;
     export async function f() { await sleep(50); }`,
      errors: [{ messageId: 'sleep', data: { what: 'await sleep(…)' } }],
    },
    {
      code: `import { setTimeout as pause } from 'node:timers/promises';
     export async function f() { await pause(10); }`,
      errors: [{ messageId: 'sleep', data: { what: 'await pause(…) from timers/promises' } }],
    },
  ],
});

untyped.run('no-sleep-in-tests (without types)', noSleepInTests, {
  valid: [
    // not a test file
    { code: `await new Promise((r) => setTimeout(r, 10));`, filename: 'src/app.ts' },
    // a timer that is observed, not awaited
    { code: `const ran = new Promise((r) => { setTimeout(() => r(remaining), 0); }); work(); await ran;`, filename: testFile },
    { code: `await new Promise(setImmediate);`, filename: testFile },
    { code: `await node.idle(); await probe.receive((m) => m === 'done');`, filename: testFile },
    { code: `import { setImmediate } from 'node:timers/promises'; await setImmediate();`, filename: testFile },
    { code: `await wait('ready');`, filename: testFile },
    // node:timers' own setTimeout takes a callback (it returns a Timeout); another function promisified is no timer
    { code: `import { setTimeout } from 'node:timers'; import timers from 'timers';\nawait setTimeout(() => done(), 10); await timers.setTimeout(() => done(), 10);`, filename: testFile },
    { code: `import { promisify } from 'node:util';\nconst read = promisify(readFile);\nawait read(10);`, filename: testFile },
    // a timer that guards a wait for a fact: it rejects, the fact resolves
    {
      code: `await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error('no ready event in 5 s')), 5000);
  emitter.once('ready', () => { clearTimeout(t); resolve(); });
});`,
      filename: testFile,
    },
    { code: `await new Promise((done, fail) => { setTimeout(fail, 1000, new Error('late')); ready.then(done); });`, filename: testFile },
    { code: `await new Promise(function (ok, no) { globalThis.setTimeout(function () { no('timeout'); }, 100); probe.then(ok); });`, filename: testFile },
    // a race or any with a sleep: the sleep may be a deadline on a fact (not flagged); an all of facts
    { code: `await Promise.race([probe.receive(), sleep(5000)]); await Promise.any([done, delay(100)]); await Promise.all([node.idle(), probe.receive()]);`, filename: testFile },
    // a method call whose function is not in this file, or is no sleep, is not one by its name
    { code: `await barrier.wait(3); await page.sleep(5); await this.sleep(5);`, filename: testFile },
    { code: `const utils = { sleep: (ms) => ms * 2, wait(n) { return queue.take(n); } };\nawait utils.sleep(5); await utils.wait(3);`, filename: testFile },
    { code: `class Q { wait(n) { return this.queue.take(n); } async f() { await this.wait(3); } }`, filename: testFile },
    // a function of this file named like a sleep helper is judged by its code, not its name: advancing a clock, taking from a queue
    { code: `const sleep = (ms) => clock.advance(ms);\nfunction wait(n) { return queue.take(n); }\nawait sleep(100); await wait(3); await Promise.all([sleep(5)]);`, filename: testFile },
    // a generator's call gives its generator object at once, whatever its body returns: no sleep
    { code: `async function* gen(ms) { return new Promise((r) => setTimeout(r, ms)); }\nawait gen(5);`, filename: testFile },
    // a helper of this file whose timer only rejects is a guard, not a sleep
    { code: `function deadline(ms) { return new Promise((resolve, reject) => setTimeout(() => reject(new Error('late')), ms)); }\nawait deadline(5);`, filename: testFile },
    // helpers that return each other (no timer in either) are looked into once
    { code: `function a(ms) { return b(ms); }\nfunction b(ms) { return a(ms); }\nawait a(5);`, filename: testFile },
    // a Promise of one's own is not the global's
    { code: `const Promise = { all: (xs) => xs };\nawait Promise.all([sleep(5)]);`, filename: testFile },
    // a file outside the configured patterns
    { code: `await sleep(10);`, filename: 'test/x.test.ts', options: [{ testFilePatterns: ['\\.e2e\\.ts$'] }] },
  ],
  invalid: [
    {
      code: `await new Promise((r) => setTimeout(r, 10));`,
      filename: testFile,
      errors: [{ messageId: 'sleep', data: { what: 'await new Promise(… setTimeout …)' }, line: 1, column: 1 }],
    },
    {
      code: `await new Promise(function (resolve) { globalThis.setTimeout(() => resolve(), 5); });`,
      filename: 'src/__tests__/a.ts',
      errors: [{ messageId: 'sleep' }],
    },
    {
      code: `import { setTimeout } from 'timers/promises';\nawait setTimeout(20);`,
      filename: 'tests/a.spec.mjs',
      errors: [{ messageId: 'sleep', line: 2 }],
    },
    {
      // the same sleeps through an optional call, TypeScript's wrappers or a string key
      code: `import { setTimeout as sleep, scheduler } from 'node:timers/promises';
import * as timers from 'node:timers/promises';
await sleep?.(5);
await (sleep(5) as Promise<void>);
await sleep(5)!;
await timers['setTimeout'](5);
await timers.setTimeout?.(5);
await scheduler?.wait(5);
await delay(5) satisfies unknown;
await (new Promise((r) => setTimeout(r, 5)) as Promise<void>);`,
      filename: testFile,
      errors: [3, 4, 5, 6, 7, 8, 9, 10].map((line) => ({ messageId: 'sleep' as const, line })),
    },
    {
      code: `import * as timers from 'node:timers/promises';\nawait timers.setTimeout(20);`,
      filename: testFile,
      errors: [{ messageId: 'sleep', data: { what: 'await timers.setTimeout(…)' } }],
    },
    {
      code: `import { scheduler } from 'node:timers/promises';\nawait scheduler.wait(20);`,
      filename: testFile,
      errors: [{ messageId: 'sleep', data: { what: 'await scheduler.wait(…)' } }],
    },
    {
      // the module's default import is its namespace too (a builtin's CommonJS exports), and its scheduler the same scheduler
      code: `import timers from 'node:timers/promises';\nawait timers.setTimeout(20);\nawait timers.scheduler.wait(20);`,
      filename: testFile,
      errors: [
        { messageId: 'sleep', line: 2, data: { what: 'await timers.setTimeout(…)' } },
        { messageId: 'sleep', line: 3, data: { what: 'await timers.scheduler.wait(…)' } },
      ],
    },
    {
      code: `import * as t from 'timers/promises';\nawait t.scheduler.wait(20);`,
      filename: testFile,
      errors: [{ messageId: 'sleep', line: 2, data: { what: 'await t.scheduler.wait(…)' } }],
    },
    {
      // a guard beside a timer that resolves, a timer whose callback resolves among other things,
      // and one whose callback is not the executor's own: each still a sleep
      code: `await new Promise((resolve, reject) => { setTimeout(() => reject(new Error('x')), 5000); setTimeout(resolve, 10); });
await new Promise((resolve, reject) => { setTimeout(() => { log('waited'); resolve(); }, 10); });
await new Promise((r) => setTimeout(later, 10));
await new Promise((...args) => setTimeout(() => args[0](), 10));`,
      filename: testFile,
      errors: [{ messageId: 'sleep', line: 1 }, { messageId: 'sleep', line: 2 }, { messageId: 'sleep', line: 3 }, { messageId: 'sleep', line: 4 }],
    },
    {
      // timers/promises loaded with a dynamic import or require
      code: `const { setTimeout: nap, scheduler } = await import('node:timers/promises');
const timers = await import('timers/promises');
const { setTimeout: pause } = require('node:timers/promises');
await nap(10);
await scheduler.wait(10);
await timers.setTimeout(10);
await timers.scheduler.wait(10);
await pause(10);`,
      filename: testFile,
      errors: [
        { messageId: 'sleep', line: 4, data: { what: 'await nap(…) from timers/promises' } },
        { messageId: 'sleep', line: 5, data: { what: 'await scheduler.wait(…)' } },
        { messageId: 'sleep', line: 6, data: { what: 'await timers.setTimeout(…)' } },
        { messageId: 'sleep', line: 7, data: { what: 'await timers.scheduler.wait(…)' } },
        { messageId: 'sleep', line: 8, data: { what: 'await pause(…) from timers/promises' } },
      ],
    },
    {
      // the promise API of node:timers (\`timers.promises\`, \`{ promises }\`), setTimeout promisified by util, and a string key in an executor
      code: `import timers from 'node:timers';
import { promises as tp } from 'timers';
import * as t from 'node:timers';
import { promisify } from 'node:util';
const pause = promisify(setTimeout);
const nap = util.promisify(globalThis.setTimeout);
await timers.promises.setTimeout(10);
await tp.setTimeout(10);
await t.promises.scheduler.wait(10);
await pause(10);
await nap(10);
await new Promise((r) => globalThis['setTimeout'](r, 10));`,
      filename: testFile,
      errors: [
        { messageId: 'sleep', line: 7, data: { what: 'await timers.promises.setTimeout(…)' } },
        { messageId: 'sleep', line: 8, data: { what: 'await tp.setTimeout(…)' } },
        { messageId: 'sleep', line: 9, data: { what: 'await t.promises.scheduler.wait(…)' } },
        { messageId: 'sleep', line: 10, data: { what: 'await pause(…), setTimeout promisified' } },
        { messageId: 'sleep', line: 11, data: { what: 'await nap(…), setTimeout promisified' } },
        { messageId: 'sleep', line: 12, data: { what: 'await new Promise(… setTimeout …)' } },
      ],
    },
    { code: `await delay(100); await wait(ms * 2);`, filename: 'a.test.js', errors: [{ messageId: 'sleep' }, { messageId: 'sleep' }] },
    {
      // a sleep of this file called through a method (of the class or object literal of \`this\`, of an object literal held in a
      // const), or under another name; and a sleep among what Promise.all / allSettled awaits
      code: `class Helpers { sleep(ms) { return new Promise((r) => setTimeout(r, ms)); } async run() { await this.sleep(5); } }
const utils = { sleep: (ms) => new Promise((r) => setTimeout(r, ms)), pause(ms) { return utils.sleep(ms); }, async go() { await this.pause(1); } };
await utils.sleep(5);
await utils.pause(5);
function nap(ms) { return new Promise((r) => setTimeout(r, ms)); }
await nap(5);
await Promise.all([probe.receive(), sleep(5)]);
await Promise.allSettled([nap(5)]);`,
      filename: testFile,
      errors: [
        { messageId: 'sleep', line: 1, data: { what: 'await this.sleep(…), a sleep of this file' } },
        { messageId: 'sleep', line: 2, data: { what: 'await this.pause(…), a sleep of this file' } },
        { messageId: 'sleep', line: 3, data: { what: 'await utils.sleep(…), a sleep of this file' } },
        { messageId: 'sleep', line: 4, data: { what: 'await utils.pause(…), a sleep of this file' } },
        { messageId: 'sleep', line: 6, data: { what: 'await nap(…), a sleep of this file' } },
        { messageId: 'sleep', line: 7, data: { what: 'await sleep(…) in Promise.all([…])' } },
        { messageId: 'sleep', line: 8, data: { what: 'await nap(…), a sleep of this file in Promise.allSettled([…])' } },
      ],
    },

    {
      // a function of this file named like a sleep helper that returns a sleep is one (found by its code); an async one
      // that awaits a timer is flagged where it awaits it
      code: `const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
await sleep(5);
async function delay(ms) { await new Promise((r) => setTimeout(r, ms)); }
await delay(5);`,
      filename: testFile,
      errors: [
        { messageId: 'sleep', line: 2, data: { what: 'await sleep(…), a sleep of this file' } },
        { messageId: 'sleep', line: 3, data: { what: 'await new Promise(… setTimeout …)' } },
      ],
    },
    {
      code: `await nap(5);`,
      filename: 'e2e/flow.e2e.ts',
      options: [{ testFilePatterns: ['\\.e2e\\.ts$'], sleepFunctions: ['nap'] }],
      errors: [{ messageId: 'sleep', data: { what: 'await nap(…)' } }],
    },
  ],
});

describe('no-sleep-in-tests options', () => {
  it('refuses a testFilePatterns entry that is not a regular expression when the configuration is read', () => {
    const linter = new Linter({ configType: 'flat' });
    const config = { plugins: { keel: { rules: { 'no-sleep-in-tests': noSleepInTests } } }, rules: { 'keel/no-sleep-in-tests': ['error', { testFilePatterns: ['(unclosed'] }] } };
    expect(() => linter.verify('await sleep(1);', config as never, 'test/a.test.js')).toThrow('Key "keel/no-sleep-in-tests":\n\tValue "(unclosed" should match format "regex".');
  });
});
