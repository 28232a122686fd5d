import { describe, expect, it } from 'vitest';
import { type CommandSpec, parseCommand, parseNumber, runCommand, usageOf } from '../../src/cli/args.js';
import { isKeelError } from '../../src/index.js';
import { expectKeelError, thrown } from '../support.js';

const options = {
  count: { type: 'number', value: '<n>', integer: true, min: 1, max: 100, description: 'how many', default: 3 },
  rate: { type: 'number', value: '<rate>', description: 'a rate' },
  name: { type: 'string', value: '<name>', description: 'a name' },
  store: { type: 'string', value: '<file>', required: true, description: 'the file to work on' },
  format: { type: 'string', value: '<format>', choices: ['md', 'json'], description: 'the output' },
  verbose: { type: 'boolean', short: 'v', description: 'say more' },
} as const satisfies CommandSpec['options'];

const SPEC: CommandSpec<typeof options> = { name: 'thing', summary: 'a command for the tests', options, positionals: 1, footer: 'exit code: 0' };

const parsed = (argv: string[]) => {
  const p = parseCommand(SPEC, argv);
  if (p.help) throw new Error('unexpected --help');
  return p;
};

describe('parseCommand', () => {
  it('takes --name=value and --name value alike, typed by the spec', () => {
    const a = parsed(['--store=f.db', '--count=4', '--rate=0.5', '--name=x', '--format=json', '--verbose', 'pos']);
    const b = parsed(['--store', 'f.db', '--count', '4', '--rate', '0.5', '--name', 'x', '--format', 'json', '-v', 'pos']);
    expect(a).toEqual({ help: false, values: { store: 'f.db', count: 4, rate: 0.5, name: 'x', format: 'json', verbose: true }, positionals: ['pos'] });
    expect(b).toEqual(a);
    // a flag not given is absent (defaults are the command's business)
    expect(parsed(['--store', 'f', '--count', '2']).values).toEqual({ store: 'f', count: 2 });
  });

  it('refuses an option given twice, naming it, whatever the forms: the last no longer silently wins', () => {
    const cases: [string[], string][] = [
      [['--store', 'f', '--count', '2', '--count', '5'], "Option '--count' given twice: give it once"],
      [['--store', 'f', '--count=2', '--count', '5'], "Option '--count' given twice: give it once"],
      [['--store', 'f', '--count', '2', '--count=5'], "Option '--count' given twice: give it once"],
      [['--store=f', '--store=g'], "Option '--store' given twice: give it once"],
      // the same value twice too: one rule, every option at most once
      [['--store', 'f', '--name', 'x', '--name=x'], "Option '--name' given twice: give it once"],
      // a boolean, given twice, by its alias, or in a group of short options
      [['--store', 'f', '--verbose', '--verbose'], "Option '--verbose' given twice: give it once"],
      [['--store', 'f', '-v', '--verbose'], "Option '--verbose' given twice (as -v and --verbose): give it once"],
      [['--store', 'f', '-vv'], "Option '--verbose' given twice: give it once"],
    ];
    for (const [argv, message] of cases) {
      const e = thrown(() => parseCommand(SPEC, argv));
      expectKeelError(e, 'ERR_INVALID_ARGUMENT');
      expect([argv, (e as Error).message]).toEqual([argv, message]);
    }
    // after --, an argument, not the option again
    expect(parsed(['--store', 'f', '--', '--store']).positionals).toEqual(['--store']);
    // --help still wins over a repeated option
    expect(parseCommand(SPEC, ['--count', '1', '--count', '2', '--help'])).toEqual({ help: true });
  });

  it('answers help for --help or -h anywhere before --, whatever else is wrong', () => {
    expect(parseCommand(SPEC, ['--help'])).toEqual({ help: true });
    expect(parseCommand(SPEC, ['--bogus', '-h'])).toEqual({ help: true });
    expect(parseCommand(SPEC, ['--count', 'x', '--help'])).toEqual({ help: true });
    // after --, it is an argument
    expect(parsed(['--store', 'f', '--', '--help']).positionals).toEqual(['--help']);
  });

  it('names an unknown option with the list of the valid ones', () => {
    for (const flag of ['--bogus', '--bogus=1', '-x']) {
      const e = thrown(() => parseCommand(SPEC, ['--store', 'f', flag]));
      expectKeelError(e, 'ERR_INVALID_ARGUMENT');
      expect((e as Error).message).toBe(`Unknown option '${flag.split('=')[0]}'. keel thing takes --count, --rate, --name, --store, --format, --verbose and --help`);
    }
  });

  it('says which option a misspelt long one most likely meant, and nothing for a short one or a word too far', () => {
    const cases: [string, string][] = [
      ['--stor', " (did you mean --store?)"],
      ['--Verbose', " (did you mean --verbose?)"],
      ['--fromat=md', " (did you mean --format?)"],
      ['--hlep', " (did you mean --help?)"],
      ['--bogus', ''],
      ['-x', ''],
    ];
    for (const [flag, meant] of cases) {
      expectKeelError(thrown(() => parseCommand(SPEC, ['--store', 'f', flag])), 'ERR_INVALID_ARGUMENT', `Unknown option '${flag.split('=')[0]}'${meant}. keel thing takes --count, --rate, --name, --store, --format, --verbose and --help`);
    }
  });

  it("takes an object's own property names for no option: --__proto__, --constructor and --toString are unknown", () => {
    for (const flag of ['--__proto__=1', '--constructor', '--toString', '--hasOwnProperty=x']) {
      expectKeelError(thrown(() => parseCommand(SPEC, ['--store', 'f', flag])), 'ERR_INVALID_ARGUMENT', `Unknown option '${flag.split('=')[0]}'.`);
    }
  });

  it('refuses a missing value, a value given to a boolean, a forgotten value before the next flag, and a stray argument', () => {
    const cases: [string[], string][] = [
      [['--store'], "Option '--store <value>' argument missing: give it as --store <file> or --store=<file>"],
      [['--store', 'f', '--name', '--verbose'], "Option '--name <value>' argument missing: give it as --name <name> or --name=<name>"],
      [['--store', 'f', '--count', '--verbose'], "Option '--count <value>' argument missing: give it as --count <n> or --count=<n>"],
      [['--store', 'f', '--verbose=yes'], "Option '--verbose' does not take an argument"],
      [['--store', 'f', 'one', 'two'], "Unexpected argument 'two': keel thing takes at most 1"],
      [[], '--store <file> is missing: the file to work on'],
      [['--store', 'f', '--format', 'xml'], "expected `--format` to be 'md' | 'json', got \"xml\""],
    ];
    for (const [argv, message] of cases) expectKeelError(thrown(() => parseCommand(SPEC, argv)), 'ERR_INVALID_ARGUMENT', message);
    expect((thrown(() => parseCommand({ ...SPEC, positionals: 0 }, ['--store', 'f', 'x'])) as Error).message).toBe("Unexpected argument 'x': keel thing takes no arguments, only options");
  });

  it('takes a negative number as a value, inline or not, and checks it against the bounds', () => {
    expect(parsed(['--store', 'f', '--rate', '-0.5']).values.rate).toBe(-0.5);
    expect(parsed(['--store', 'f', '--rate=-2']).values.rate).toBe(-2);
    expectKeelError(thrown(() => parseCommand(SPEC, ['--store', 'f', '--count', '-1'])), 'ERR_INVALID_ARGUMENT', 'expected `--count` to be an integer from 1 to 100, got -1');
    // a string option's value never starts with '-' unless given inline
    expect(parsed(['--store', 'f', '--name=-x']).values.name).toBe('-x');
  });
});

describe('parseNumber', () => {
  it('takes decimal numbers as a person types them', () => {
    expect(['1', '1.5', '.5', '5.', '1e3', '2E-2', '-3', '0'].map((t) => parseNumber('--n', t))).toEqual([1, 1.5, 0.5, 5, 1000, 0.02, -3, 0]);
  });

  it('refuses NaN and what Number() would take but a person does not mean: hex, blanks, signs, Infinity, empty', () => {
    for (const text of ['NaN', 'x', '0x10', '0b1', ' 5', '5 ', '+1', 'Infinity', '', '1,5', '1_000']) {
      expectKeelError(thrown(() => parseNumber('--n', text)), 'ERR_INVALID_ARGUMENT', `--n must be a number, got ${JSON.stringify(text)}`);
    }
  });

  it('refuses a number too large to be finite, and one out of the bounds, naming the flag', () => {
    expectKeelError(thrown(() => parseNumber('--n', '1e999')), 'ERR_INVALID_ARGUMENT', 'expected `--n` to be a finite number, got "1e999"');
    expectKeelError(thrown(() => parseNumber('--n', '1e999', { max: 10 })), 'ERR_INVALID_ARGUMENT', 'expected `--n` to be a number <= 10, got "1e999"');
    expectKeelError(thrown(() => parseNumber('--n', '101', { integer: true, min: 1, max: 100 })), 'ERR_INVALID_ARGUMENT', 'expected `--n` to be an integer from 1 to 100, got 101');
    expectKeelError(thrown(() => parseNumber('--n', '1.5', { integer: true })), 'ERR_INVALID_ARGUMENT', 'expected `--n` to be an integer, got 1.5');
    expectKeelError(thrown(() => parseNumber('--n', '9007199254740993', { integer: true })), 'ERR_INVALID_ARGUMENT', '`--n`');
    expectKeelError(thrown(() => parseNumber('--n', '-1', { min: 0 })), 'ERR_INVALID_ARGUMENT', 'expected `--n` to be a number >= 0, got -1');
    expectKeelError(thrown(() => parseNumber('--n', '-1', { min: 0, expected: 'a number of ms >= 0' })), 'ERR_INVALID_ARGUMENT', 'expected `--n` to be a number of ms >= 0, got -1');
  });
});

describe('usageOf', () => {
  it('prints the usage line, the options with their values, choices and defaults, --help, and the footer', () => {
    expect(usageOf(SPEC)).toBe(
      [
        'usage: keel thing [options]',
        '',
        'options:',
        '      --count <n>        how many (default 3)',
        '      --rate <rate>      a rate',
        '      --name <name>      a name',
        '      --store <file>     the file to work on',
        '      --format <format>  the output (md | json)',
        '  -v, --verbose          say more',
        '  -h, --help             print this help (keel help thing prints it too)',
        '',
        '  exit code: 0',
      ].join('\n'),
    );
  });
});

describe('runCommand', () => {
  const run = (argv: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    let ran: unknown;
    const code = runCommand(SPEC, argv, { out: (t) => out.push(t), err: (t) => err.push(t) }, (values) => values, (values) => {
      ran = values;
      return 0;
    });
    return { code, out, err, ran };
  };

  it('prints the usage on stdout for --help (exit 0) without running the command', () => {
    expect(run(['-h'])).toEqual({ code: 0, out: [usageOf(SPEC)], err: [], ran: undefined });
  });

  it('prints bad usage as one line on stderr, prefixed with the command (exit 2), without running it', () => {
    expect(run(['--store', 'f', '--bogus'])).toEqual({
      code: 2,
      out: [],
      err: ["keel thing: Unknown option '--bogus'. keel thing takes --count, --rate, --name, --store, --format, --verbose and --help"],
      ran: undefined,
    });
  });

  it('runs the command with the converted values and answers its exit code', () => {
    expect(run(['--store', 'f', '--count=2'])).toEqual({ code: 0, out: [], err: [], ran: { store: 'f', count: 2 } });
  });

  it('runs a command whose converted arguments are undefined (a command without options): only --help prints the usage', () => {
    let ran = 0;
    const out: string[] = [];
    const code = runCommand({ name: 'bare', summary: 'no options', options: {} }, [], { out: (t) => out.push(t), err: (t) => out.push(t) }, () => undefined, () => {
      ran++;
      return 3;
    });
    expect({ code, ran, out }).toEqual({ code: 3, ran: 1, out: [] });
  });

  it('lets an error that is no usage error through', () => {
    const e = thrown(() => runCommand(SPEC, ['--store', 'f'], { out: () => {}, err: () => {} }, () => {
      throw new TypeError('a bug');
    }, () => 0));
    expect(e).toBeInstanceOf(TypeError);
    expect(isKeelError(e)).toBe(false);
  });
});
