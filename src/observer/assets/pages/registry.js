// Registry and routing: registered names, process groups, the routers' subscriptions (buffered,
// capacity, overflow, dropped) and the schedulers' jobs. Each part says so quietly when this
// observer or node does not have it.
import { get, query } from '../lib/api.js';
import { ago, badge, clock, h, int, ms, pidLink, pidList, replace, section, table, text, unavailable } from '../lib/dom.js';

/** A component's totals as one quiet line (`published 12 · delivered 12 · …`). */
export function totals(t, keys) {
  if (!t || typeof t !== 'object') return null;
  const parts = keys.filter((k) => typeof t[k] === 'number').map((k) => `${k} ${int(t[k])}`);
  return parts.length ? h('p', { class: 'muted foot totals' }, parts.join(' · ')) : null;
}

const nameOf = (x) => text(x.name ?? x.pid ?? '');

/** A router's own mailbox bound, beside its name (nothing for an unbounded one). */
function mailboxBound(m) {
  if (!m || typeof m !== 'object' || typeof m.capacity !== 'number') return null;
  return h('span', { class: 'muted mailbox-bound' }, ` mailbox ${int(m.capacity)}, ${text(m.overflow)}`);
}
const NAMES = 25;

export function mount(root, ctx) {
  const store = ctx.store();
  const filter = h('input', { type: 'search', placeholder: 'filter names', value: store.filter ?? '', 'aria-label': 'filter names' });
  let timer;
  filter.addEventListener('input', () => {
    store.filter = filter.value;
    clearTimeout(timer);
    timer = setTimeout(() => ctx.refresh(), 250);
  });
  const names = h('div');
  const groups = h('div', { id: 'groups' });
  const routers = h('div');
  const schedules = h('div');
  root.append(
    h('h1', null, 'Registry & routing'),
    section('Router subscriptions', routers),
    section('Scheduled jobs', schedules),
    h('div', { class: 'cols' }, section('Registered names', h('div', { class: 'toolbar' }, filter), names), section('Process groups', groups)),
  );
  return {
    unmount() {
      clearTimeout(timer);
    },
    async refresh() {
      const [r, g, ro, sc] = await Promise.all([get(`/api/registry${query({ filter: store.filter, limit: NAMES })}`), get('/api/groups'), get('/api/router'), get('/api/schedules')]);
      if (!r.ok) replace(names, unavailable('Registry', r));
      else {
        const rows = r.data.names ?? [];
        replace(
          names,
          table([{ label: 'name', cell: (n) => text(n.name), cls: 'ellipsis' }, { label: 'pid', cell: (n) => pidLink(n.pid), cls: 'w-pid' }], rows, { empty: 'no registered name' }),
          h('p', { class: 'muted foot' }, `${int(rows.length)} shown of ${int(r.data.total ?? rows.length)}${(r.data.total ?? 0) > rows.length ? ': filter to narrow' : ''}`),
        );
      }
      if (!g.ok) replace(groups, unavailable('Process groups', g));
      else {
        // the server sends the first groups by name (100 by default): say so when there are more
        const shown = g.data.groups ?? [];
        const total = typeof g.data.total === 'number' ? g.data.total : shown.length;
        replace(
          groups,
          table([{ label: 'group', cell: (x) => text(x.group), cls: 'w-kind ellipsis' }, { label: 'members', cell: (x) => (typeof x.size === 'number' && x.size > x.members.length ? h('span', null, pidList(x.members), h('span', { class: 'muted' }, ` (the first ${x.members.length} of ${int(x.size)})`)) : pidList(x.members)) }], shown, { empty: 'no process group' }),
          h('p', { class: 'muted foot', id: 'groups-total' }, `${int(shown.length)} shown of ${int(total)} groups${total > shown.length ? ': the first by name' : ''}`),
        );
      }

      if (!ro.ok) replace(routers, unavailable('Routers', ro));
      else {
        const list = ro.data.routers ?? [];
        replace(
          routers,
          list.length === 0 ? h('p', { class: 'muted' }, 'no router running') : null,
          list.map((rt) =>
            h(
              'div',
              { class: 'sub' },
              h('h3', null, nameOf(rt), ' ', rt.pid ? pidLink(rt.pid) : null, rt.error ? [' ', badge(`unreadable: ${text(rt.error)}`, 'bad')] : null, mailboxBound(rt.totals?.mailbox)),
              totals(rt.totals, ['published', 'delivered', 'failed', 'buffered', 'inFlight', 'dropped', ...(rt.totals?.mailbox ? ['mailboxRefused', 'mailboxEvicted'] : [])]),
              table(
                [
                  { label: 'pattern', cell: (x) => h('code', null, text(x.pattern)), cls: 'ellipsis' },
                  { label: 'subscriber', cell: (x) => pidLink(x.subscriber), cls: 'w-pid' },
                  { label: 'buffered', num: true, cell: (x) => `${int(x.buffered)} / ${x.capacity === null ? '∞' : int(x.capacity)}`, cls: 'w-age' },
                  { label: 'overflow', cell: (x) => text(x.overflow), cls: 'w-kind' },
                  { label: 'in flight', num: true, cell: (x) => int(x.inFlight), cls: 'w-num' },
                  { label: 'dropped', num: true, cell: (x) => h('span', { class: x.dropped > 0 ? 'hot' : null }, int(x.dropped)), cls: 'w-num' },
                ],
                rt.subscriptions ?? [],
                { empty: 'no subscription' },
              ),
            ),
          ),
        );
      }

      if (!sc.ok) replace(schedules, unavailable('Schedulers', sc));
      else {
        const list = sc.data.schedulers ?? [];
        replace(
          schedules,
          list.length === 0 ? h('p', { class: 'muted' }, 'no scheduler running') : null,
          list.map((s) =>
            h(
              'div',
              { class: 'sub' },
              h('h3', null, nameOf(s), ' ', s.pid ? pidLink(s.pid) : null, s.error ? [' ', badge(`unreadable: ${text(s.error)}`, 'bad')] : null),
              totals(s.totals, ['delivered', 'failed', 'skipped', 'dropped']),
              table(
                [
                  { label: 'job', cell: (j) => text(j.id), cls: 'ellipsis' },
                  { label: 'schedule', cell: (j) => h('code', null, text(j.schedule ?? j.cron ?? (j.every === undefined ? null : `every ${ms(j.every)}`))), cls: 'w-kind' },
                  { label: 'target', cell: (j) => (j.targetPid ? h('a', { class: 'pid', href: `#/process/${encodeURIComponent(j.targetPid)}` }, text(j.target)) : typeof j.target === 'string' && j.target.startsWith('<') ? pidLink(j.target) : text(j.target)), cls: 'w-pid' },
                  { label: 'next run', cell: (j) => `${clock(j.nextRunAt)} (${ago(j.nextRunAt)})`, cls: 'w-time' },
                  { label: 'last run', cell: (j) => (j.lastRunAt ? ago(j.lastRunAt) : '–'), cls: 'w-age' },
                  { label: 'runs', num: true, cell: (j) => int(j.runs), cls: 'w-num' },
                  { label: 'failures', num: true, cell: (j) => h('span', { class: j.failures > 0 ? 'hot' : null }, int(j.failures)), cls: 'w-num' },
                ],
                s.jobs ?? [],
                { empty: 'no job' },
              ),
            ),
          ),
        );
      }
    },
  };
}
