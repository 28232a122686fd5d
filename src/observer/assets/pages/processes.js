// Processes: sorted, filtered and cut to the top N on the server (100,000 processes stay fast),
// with the total; pids link to their detail; kill only when the observer is not read-only.
import { get, post, query } from '../lib/api.js';
import { badge, dec, h, int, ms, pidLink, replace, table, unavailable } from '../lib/dom.js';

const LIMITS = [25, 50, 100, 250, 1000];
const STATUSES = ['', 'initializing', 'running', 'runnable', 'busy', 'waiting'];

/**
 * A two-step kill button: the first click arms it ("confirm kill"), the second kills. `armed` (a
 * Set of pids) keeps the armed state across the page's re-renders.
 */
export function killButton(ctx, pid, armed, onDone) {
  const on = armed.has(pid);
  const btn = h('button', { class: `danger small${on ? ' armed' : ''}`, type: 'button', dataset: { kill: pid }, title: `send exit signal 'kill' to ${pid}` }, on ? 'confirm kill' : 'kill');
  btn.addEventListener('click', async () => {
    if (!armed.has(pid)) {
      armed.add(pid);
      btn.textContent = 'confirm kill';
      btn.classList.add('armed');
      return;
    }
    armed.delete(pid);
    btn.disabled = true;
    const a = await post('/api/kill', { pid });
    if (a.ok) ctx.notify(`killed ${pid}`, 'ok');
    else ctx.notify(`kill ${pid}: ${a.error.message}`, 'bad');
    if (onDone) await onDone();
  });
  return btn;
}

export function mount(root, ctx) {
  const p = ctx.params;
  const sort = p.get('sort') ?? 'mailbox';
  const limit = LIMITS.includes(Number(p.get('limit'))) ? Number(p.get('limit')) : 50;
  const state = { filter: p.get('filter') ?? '', status: p.get('status') ?? '' };
  const filter = h('input', { type: 'search', placeholder: 'filter by pid or name', value: state.filter, 'aria-label': 'filter', id: 'filter' });
  const status = h('select', { 'aria-label': 'status' }, STATUSES.map((s) => h('option', { value: s }, s === '' ? 'any status' : s)));
  status.value = state.status;
  const size = h('select', { 'aria-label': 'rows' }, LIMITS.map((n) => h('option', { value: String(n) }, `top ${n}`)));
  size.value = String(limit);
  const armed = new Set();
  const body = h('div');
  const count = h('span', { class: 'muted', id: 'count' });
  let timer;
  const apply = () => {
    ctx.remember({ filter: state.filter, status: state.status });
    ctx.refresh();
  };
  filter.addEventListener('input', () => {
    state.filter = filter.value;
    clearTimeout(timer);
    timer = setTimeout(apply, 250);
  });
  status.addEventListener('change', () => {
    state.status = status.value;
    apply();
  });
  size.addEventListener('change', () => {
    location.hash = ctx.href({ limit: size.value }).slice(1);
  });
  root.append(h('div', { class: 'titlebar' }, h('h1', null, 'Processes'), count), h('div', { class: 'toolbar' }, filter, status, size), body);

  return {
    unmount() {
      clearTimeout(timer);
    },
    async refresh() {
      const a = await get(`/api/processes${query({ sort, limit, filter: state.filter, status: state.status })}`);
      if (!a.ok) {
        replace(body, a.status === 400 ? h('p', { class: 'muted na' }, `sorting by ${sort} is not available from this observer`) : unavailable('Processes', a));
        return;
      }
      const rows = a.data.processes ?? [];
      count.textContent = `showing ${int(rows.length)} of ${int(a.data.total)} · sorted by ${a.data.sort ?? sort} on the server`;
      const columns = [
        { label: 'pid', cell: (r) => pidLink(r.pid), cls: 'w-pid' },
        { label: 'name', cell: (r) => r.name ?? '', cls: 'ellipsis' },
        { label: 'kind', cell: (r) => r.kind ?? '', cls: 'w-kind' },
        { label: 'status', cell: (r) => badge(r.status, r.status === 'busy' ? 'warn' : r.status === 'running' ? 'ok' : ''), cls: 'w-status' },
        { label: 'mailbox', num: true, sort: 'mailbox', cell: (r) => h('span', { class: r.longMailbox ? 'hot' : null }, int(r.mailbox)), cls: 'w-num' },
        { label: 'msg/s', num: true, sort: 'rate', cell: (r) => (r.rate === null || r.rate === undefined ? '–' : dec(r.rate)), cls: 'w-num' },
        { label: 'handled', num: true, sort: 'handled', cell: (r) => int(r.handled), cls: 'w-num' },
        { label: 'age', num: true, sort: 'age', cell: (r) => ms(r.ageMs), cls: 'w-age' },
        { label: 'busy %', num: true, sort: 'busy', cell: (r) => (r.busyPercent === null || r.busyPercent === undefined ? '–' : dec(r.busyPercent)), cls: 'w-num' },
      ];
      if (ctx.canAct) columns.push({ label: '', cell: (r) => killButton(ctx, r.pid, armed, () => ctx.refresh()), cls: 'w-act' });
      replace(
        body,
        table(columns, rows, { sortHref: (key) => ctx.href({ sort: key }), sorted: sort, empty: 'no process matches', cls: 'processes', rowAttrs: (r) => ({ dataset: { pid: r.pid } }) }),
        h('p', { class: 'muted foot', id: 'total' }, `${int(rows.length)} shown of ${int(a.data.total)} matching processes`),
      );
    },
  };
}
