// Monitors and leaks: the monitor manager's counters over time (sampled while this page is open,
// kept across visits), the suspected leaks with the stack that created each monitor, and a flag on
// monitors that are one of several from one owner on one target.
import { get } from '../lib/api.js';
import { badge, chart, h, int, ms, pidLink, replace, section, table, text, tile, unavailable } from '../lib/dom.js';

const KEEP = 600;

/** The first frame of a creation stack that is not Keel's own (where the user's code made the monitor). */
function origin(stack) {
  if (typeof stack !== 'string') return null;
  const frames = stack.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('at '));
  const user = frames.find((l) => !/[/\\](src|dist)[/\\](monitors|runtime|otp|services)[/\\]/.test(l) && !l.includes('node:'));
  const line = user ?? frames[0];
  if (line === undefined) return null;
  // "at fn (/long/path/to/file.ts:12:5)" → "fn · to/file.ts:12:5": the place, short; the full stack is below
  const m = /^at (?:(.*?) \()?(?:file:\/\/)?(.*?)\)?$/.exec(line);
  if (m === null) return line;
  const place = m[2].split(/[/\\]/).pop();
  return m[1] ? `${m[1]} · ${place}` : place;
}

export function mount(root, ctx) {
  const store = ctx.store();
  store.samples ??= [];
  const tiles = h('div', { class: 'tiles' });
  const charts = h('div', { class: 'charts' });
  const leaks = h('div');
  root.append(h('h1', null, 'Monitors & leaks'), tiles, section('Managed monitors over time', charts), section('Suspected leaks', leaks));
  return {
    async refresh() {
      const a = await get('/api/leaks');
      if (!a.ok) {
        replace(tiles, unavailable('Monitor manager', a));
        replace(charts);
        replace(leaks);
        return;
      }
      const st = a.data.stats ?? {};
      const list = a.data.leaks ?? [];
      // (the answer lists the first 1000: `total` counts them all)
      const suspected = typeof a.data.total === 'number' ? a.data.total : list.length;
      store.samples.push({ at: Date.now(), active: st.active, created: st.created, cleaned: st.cleaned, leaks: suspected });
      if (store.samples.length > KEEP) store.samples.shift();
      replace(
        tiles,
        tile('Active', int(st.active), 'held now'),
        tile('Created', int(st.created), 'since the node started'),
        tile('Cleaned', int(st.cleaned), 'demonitored, or a death'),
        tile('Reported leaks', int(st.leaked), 'by the periodic check', st.leaked > 0 ? 'warn' : ''),
        tile('Suspected now', int(suspected), suspected > list.length ? `too old, or duplicates (the first ${int(list.length)} listed)` : 'too old, or duplicates', suspected > 0 ? 'bad' : ''),
      );
      const pts = (k) => store.samples.map((p) => [p.at, p[k]]);
      replace(charts, chart('active', pts('active'), { format: int }), chart('created', pts('created'), { format: int }), chart('suspected leaks', pts('leaks'), { format: int }));
      // how many of the listed monitors each owner holds on each target
      const pairs = new Map();
      for (const m of list) pairs.set(`${m.owner} ${m.target}`, (pairs.get(`${m.owner} ${m.target}`) ?? 0) + 1);
      replace(
        leaks,
        table(
          [
            { label: 'why', cell: (m) => badge(m.leak === 'duplicate' ? 'duplicate' : m.leak === 'age' ? 'too old' : text(m.leak), m.leak === 'duplicate' ? 'warn' : 'bad'), cls: 'w-status' },
            { label: 'owner', cell: (m) => pidLink(m.owner), cls: 'w-pid' },
            { label: 'target', cell: (m) => [pidLink(m.target), m.targetAlive ? null : h('span', { class: 'muted' }, ' (dead)')], cls: 'w-pid' },
            { label: 'tag', cell: (m) => m.tag ?? '', cls: 'w-kind ellipsis' },
            { label: 'age', num: true, cell: (m) => ms(m.ageMs), cls: 'w-age' },
            { label: 'same pair', num: true, cell: (m) => { const n = pairs.get(`${m.owner} ${m.target}`); return n > 1 ? badge(`×${n}`, 'warn') : '1'; }, cls: 'w-num' },
            {
              label: 'created at',
              cell: (m) =>
                m.stack
                  ? h('button', { type: 'button', class: 'linkish stack-toggle', dataset: { ref: m.ref }, title: 'show the stack that created this monitor' }, `▸ ${origin(m.stack) ?? 'stack'}`)
                  : h('span', { class: 'muted' }, 'no stack (captureStacks is off)'),
              cls: 'ellipsis',
            },
          ],
          list,
          { empty: 'no suspected leak', cls: 'leaks' },
        ),
      );
      // a stack opens in a full-width row under its monitor, and stays open across re-renders
      store.open ??= new Set();
      for (const btn of leaks.querySelectorAll('button.stack-toggle')) {
        const m = list.find((x) => x.ref === btn.dataset.ref);
        const row = h('tr', { class: 'stackrow', hidden: !store.open.has(m.ref) }, h('td', { colspan: 7 }, h('pre', { class: 'stack' }, m.stack)));
        btn.closest('tr').after(row);
        btn.addEventListener('click', () => {
          row.hidden = !row.hidden;
          if (row.hidden) store.open.delete(m.ref);
          else store.open.add(m.ref);
        });
      }
    },
  };
}
