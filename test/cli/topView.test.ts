import { describe, expect, it } from 'vitest';
import { clean, cutToWidth, displayWidth, renderFrame, renderProcesses, show } from '../../src/cli/topView.js';

describe('renderFrame', () => {
  const overview = {
    node: 'app',
    at: Date.UTC(2026, 0, 2, 3, 4, 5),
    uptimeMs: 3_725_000,
    processes: 3,
    runQueue: 1,
    timers: 2,
    eventLoopLagMs: { mean: 0.5, max: 3.25, p99: 1.5 },
    heap: { used: 10 * 1_048_576, total: 20 * 1_048_576, rss: 50.5 * 1_048_576 },
    messageRate: 1234,
    deadLetters: { pending: 2, parked: 1 },
    suspectedLeaks: 0,
  };

  it('renders the header and the table exactly, with the server\'s other fields as columns and a long mailbox flagged', () => {
    const processes = {
      total: 3,
      sort: 'rate',
      limit: 2,
      processes: [
        { pid: '<app.7.1>', id: 7, name: 'worker-7', status: 'busy', mailbox: 1200, handled: 5, longMailbox: true, rate: 12.5 },
        { pid: '<app.12.1>', id: 12, name: null, status: 'waiting', mailbox: 0, handled: 123456, longMailbox: false, rate: 0 },
      ],
    };
    expect(renderFrame({ overview, processes })).toBe(
      [
        'node app   uptime 1h 02m   at 03:04:05 UTC',
        'processes 3   run queue 1   timers 2   event-loop lag 0.5 ms (p99 1.5, max 3.25)',
        'heap 10.0 MB of 20.0 MB (rss 50.5 MB)   messages 1234/s   dead letters 2 pending, 1 parked   suspected leaks 0',
        '',
        'top 2 of 3 processes by rate',
        '',
        'PID         NAME      STATUS   MAILBOX  HANDLED  RATE/S',
        '<app.7.1>   worker-7  busy       1200!        5    12.5',
        '<app.12.1>  -         waiting        0   123456       0',
        '',
        "! a long mailbox (past the node's long-mailbox threshold)",
      ].join('\n'),
    );
  });

  it("places the columns an observer adds (kind, rate, busy share, age) and shows any other field after them", () => {
    const processes = {
      total: 2,
      sort: 'busy',
      limit: 2,
      measuring: true,
      processes: [
        { pid: '<app.3.1>', id: 3, name: 'cache', status: 'busy', mailbox: 2, handled: 40, longMailbox: false, rate: 3.5, ageMs: 65_000, ageExact: true, busyPercent: 12.5, kind: 'gen_server', queue: 'x' },
        { pid: '<app.4.1>', id: 4, name: null, status: 'waiting', mailbox: 0, handled: 7, longMailbox: false, rate: null, ageMs: 3_700_000, ageExact: false, busyPercent: null, kind: 'process' },
      ],
    };
    expect(renderFrame({ overview: { ...overview, busyPercent: 41.2 }, processes }).split('\n').slice(1, 2).concat(renderFrame({ overview, processes }).split('\n').slice(4))).toEqual([
      'processes 3   run queue 1   timers 2   event-loop lag 0.5 ms (p99 1.5, max 3.25)   event loop busy 41.2%',
      'top 2 of 2 processes by busy',
      '',
      'PID        NAME   KIND        STATUS   MAILBOX  HANDLED  RATE/S  BUSY%      AGE  QUEUE',
      '<app.3.1>  cache  gen_server  busy           2       40     3.5   12.5   1m 05s  x',
      // an age the observer knows only a lower bound of: '>'
      '<app.4.1>  -      process     waiting        0        7       -      -  >1h 01m  -',
    ]);
  });

  it('renders a detail field by field, and what the observer does not know as -', () => {
    const detail = { pid: '<app.7.1>', name: 'worker-7', status: 'waiting', mailbox: 0, handled: 3, links: ['<app.1.1>', '<app.2.1>'], monitors: [], monitoredBy: [], trapExits: true, timers: 1, longMailbox: false, state: null, restarts: { count: 2 } };
    expect(renderFrame({ overview: { node: 'app', eventLoopLagMs: null, deadLetters: null, suspectedLeaks: null, messageRate: null }, process: detail })).toBe(
      [
        'node app   uptime -   at -',
        'processes -   run queue -   timers -   event-loop lag -',
        'heap - of - (rss -)   messages -   dead letters -   suspected leaks -',
        '',
        'process <app.7.1>',
        '',
        'pid          <app.7.1>',
        'name         worker-7',
        'status       waiting',
        'mailbox      0',
        'handled      3',
        'longMailbox  false',
        'trapExits    true',
        'timers       1',
        'links        <app.1.1>, <app.2.1>',
        'monitors     (none)',
        'monitoredBy  (none)',
        'state        -',
        'restarts     {"count":2}',
      ].join('\n'),
    );
  });

  it('shows a hostile name as text: escape sequences, bidi overrides and line breaks are escaped, long names cut', () => {
    const processes = {
      total: 2,
      sort: 'mailbox',
      processes: [
        { pid: '<app.1.1>', name: '\u001b]0;owned\u0007\u202e', status: 'waiting', mailbox: 0, handled: 0 },
        { pid: '<app.2.1>', name: '\u001b[2J\n' + 'n'.repeat(100), status: 'waiting', mailbox: 0, handled: 0 },
      ],
    };
    const frame = renderFrame({ overview, processes });
    expect(frame).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
    expect(frame.split('\n').slice(7, 9).map((row) => row.split('  ')[1])).toEqual(['\\x1b]0;owned\\x07\\u202e', `\\x1b[2J\\x0a${'n'.repeat(20)}…`]);
    expect(clean('ok\u0085\u2028')).toBe('ok\\x85\\u2028');
    // what is not an object or a number renders as '-', and a total that is text stays text
    expect(renderFrame({ overview: 'nope', processes: { total: '<b>', processes: 'nope' } }).split('\n').slice(4)).toEqual(['top 0 of <b> processes by -', '', 'PID  NAME  STATUS  MAILBOX  HANDLED']);
  });

  it('renders a value nested too deeply to print (any server may send one: JSON.parse takes it) as (unprintable), with no stack overflow', () => {
    const deep: unknown = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    expect(show(deep)).toBe('(unprintable)');
    expect(show([1, [2, [3]]])).toBe('1, 2, 3');
    expect(renderFrame({ overview: { node: deep }, processes: { total: 1, processes: [{ pid: '<a.1.2>', name: deep }] } }).split('\n')).toEqual([
      'node (unprintable)   uptime -   at -',
      'processes -   run queue -   timers -   event-loop lag -',
      'heap - of - (rss -)   messages -   dead letters -   suspected leaks -',
      '',
      'top 1 of 1 processes by -',
      '',
      'PID      NAME           STATUS  MAILBOX  HANDLED',
      '<a.1.2>  (unprintable)       -        -        -',
    ]);
    expect(renderFrame({ overview: {}, process: { pid: '<a.1.2>', links: deep } }).split('\n').slice(4)).toEqual(['process <a.1.2>', '', 'pid    <a.1.2>', 'links  (unprintable)']);
  });
});

describe('display width', () => {
  it('displayWidth: ASCII 1, East Asian wide and fullwidth 2, emoji 2 (a ZWJ sequence, a flag, a keycap one), combining marks and zero-width 0', () => {
    const cases: [string, number][] = [
      ['abc', 3],
      ['名前', 4],
      ['ｗｏｒｋ', 8], // fullwidth Latin
      ['한국', 4],
      ['\u1100\u1161', 2], // a decomposed Hangul syllable: a wide lead, a zero-width vowel
      ['😀', 2],
      ['👩‍💻', 2],
      ['🇯🇵', 2],
      ['1\uFE0F\u20E3', 2],
      ['e\u0301', 1],
      ['a\u200Bb', 2],
      ['\u200D', 0],
      ['©', 1],
      ['…', 1],
    ];
    expect(cases.map(([t]) => displayWidth(t))).toEqual(cases.map(([, w]) => w));
  });

  it('a variation selector or an emoji modifier after a letter makes no emoji of it: the letter keeps its column, the modifier shown alone takes its two (found in review)', () => {
    const cases: [string, number][] = [
      ['a\uFE0F', 1], // VS16 after a letter: no emoji presentation, the letter stays 1 column
      ['x\uFE0Fy', 2],
      ['a\u{1F3FB}', 3], // a skin-tone modifier with no emoji before it: the letter, then a swatch of 2
      ['\u2764\uFE0F', 2], // VS16 after an emoji: still an emoji
      ['\u{1F44D}\u{1F3FB}', 2], // a modified emoji: one emoji
      ['\u231A\uFE0E', 2], // text presentation of a wide emoji: a terminal still gives it 2
    ];
    expect(cases.map(([t]) => displayWidth(t))).toEqual(cases.map(([, w]) => w));
    // a name padded by it lines up with the others
    const page = { total: 2, sort: 'mailbox', processes: [{ pid: '<a.1.1>', name: 'a\uFE0Fb', status: 'busy', mailbox: 1, handled: 2 }, { pid: '<a.2.1>', name: 'abc', status: 'busy', mailbox: 1, handled: 2 }] };
    expect(renderProcesses(page).slice(3)).toEqual(['<a.1.1>  a\uFE0Fb    busy          1        2', '<a.2.1>  abc   busy          1        2']);
  });

  it('a soft hyphen (U+00AD, a format character) takes the column a terminal gives it, 1, as wcwidth does; the other format characters none (found in review)', () => {
    expect(['co\u00ADop', '\u00AD', 'a\u200Bb', 'a\u2060b', '\uFEFF'].map(displayWidth)).toEqual([5, 1, 2, 2, 0]);
    expect(cutToWidth('co\u00ADop', 3)).toBe('co\u00AD');
  });

  it('an old Hangul syllable of a lead and a vowel or final of Hangul Jamo Extended-B (U+D7B0..U+D7FF) is as wide as its lead, 2, as one of the Jamo block is (found in review)', () => {
    expect(['\u1100\uD7B0', '\u1100\u1161\uD7CB', '\uA960\u1161', '\uD7B0'].map(displayWidth)).toEqual([2, 2, 2, 0]);
  });

  it('cutToWidth keeps whole characters that fit: never half a wide one, never a mark without its letter', () => {
    expect(cutToWidth('名前abc', 3)).toBe('名');
    expect(cutToWidth('名前abc', 5)).toBe('名前a');
    expect(cutToWidth('e\u0301e\u0301e\u0301', 2)).toBe('e\u0301e\u0301');
    expect(cutToWidth('😀😀', 3)).toBe('😀');
    expect(cutToWidth('abc', 10)).toBe('abc');
  });

  it('a long wide name is cut to NAME_WIDTH columns, and the table aligns by display width', () => {
    const processes = {
      total: 3,
      sort: 'mailbox',
      limit: 3,
      processes: [
        { pid: '<app.1.1>', name: '注文処理', status: 'busy', mailbox: 1, handled: 2 },
        { pid: '<app.2.1>', name: 'cafe\u0301-😀', status: 'waiting', mailbox: 0, handled: 3 },
        { pid: '<app.3.1>', name: '長'.repeat(40), status: 'waiting', mailbox: 0, handled: 4 },
      ],
    };
    expect(renderProcesses(processes)).toEqual([
      'top 3 of 3 processes by mailbox',
      '',
      `PID        NAME${' '.repeat(29)}STATUS   MAILBOX  HANDLED`,
      `<app.1.1>  注文処理${' '.repeat(25)}busy           1        2`,
      `<app.2.1>  cafe\u0301-😀${' '.repeat(26)}waiting        0        3`,
      `<app.3.1>  ${'長'.repeat(15)}…  waiting        0        4`,
    ]);
    expect(renderProcesses(processes).slice(2).map(displayWidth)).toEqual([69, 69, 69, 69]);
  });

  it('renderFrame cuts each line at the terminal width in display columns', () => {
    const frame = renderFrame({ overview: { node: '節点'.repeat(30) }, processes: { total: 0, sort: 'mailbox', processes: [] } }, 20);
    expect(frame.split('\n')[0]).toBe('node 節点節点節点節');
    expect(frame.split('\n').map(displayWidth).every((w) => w <= 20)).toBe(true);
  });
});
