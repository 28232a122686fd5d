// Processes: sorted, filtered and cut to the top N on the server (100,000 processes stay fast),
// with the total; pids link to their detail; kill only when the observer is not read-only. The page
// lives on the event stream: it names its view (sort, limit, filter, status), renders the snapshot,
// then applies each `processes` frame in place: the changed rows are updated, the removed ones
// dropped, the rest moved into the server's order; the rows are DOM rows keyed by pid. A row whose
// only change is its age is not sent again: the page ages it by the node's uptime.
import { post } from '../lib/api.js';
import { badge, dec, h, int, ms, pidLink, replace, table } from '../lib/dom.js';

const LIMITS = [25, 50, 100, 250, 1000];
const SORTS = ['mailbox', 'rate', 'handled', 'age', 'busy'];
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
  const sort = SORTS.includes(p.get('sort')) ? p.get('sort') : 'mailbox';
  const limit = LIMITS.includes(Number(p.get('limit'))) ? Number(p.get('limit')) : 50;
  const state = { filter: p.get('filter') ?? '', status: p.get('status') ?? '' };
  const filter = h('input', { type: 'search', placeholder: 'filter by pid or name', value: state.filter, 'aria-label': 'filter', id: 'filter' });
  const status = h('select', { 'aria-label': 'status' }, STATUSES.map((s) => h('option', { value: s }, s === '' ? 'any status' : s)));
  status.value = state.status;
  const size = h('select', { 'aria-label': 'rows' }, LIMITS.map((n) => h('option', { value: String(n) }, `top ${n}`)));
  size.value = String(limit);
  const armed = new Set();
  const body = h('div', null, h('p', { class: 'muted' }, 'waiting for the first frame…'));
  const count = h('span', { class: 'muted', id: 'count' });
  let timer;
  const apply = () => {
    ctx.remember({ filter: state.filter, status: state.status });
    ctx.refresh(); // the stream again, with the new view: a fresh snapshot
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

  // the table as shown: its rows by pid, each with its row data and the uptime it was received at
  const rows = new Map(); // pid → { row, tr, at }
  let columns = [];
  let tbody = null;
  let empty = null;
  let foot = null;
  let ageAt = -1; // the age column's index

  const uptime = () => (ctx.overview && typeof ctx.overview.uptimeMs === 'number' ? ctx.overview.uptimeMs : null);

  function cellsOf(tr, r) {
    columns.forEach((c, i) => {
      const td = tr.children[i];
      replace(td, c.cell(r));
    });
  }

  function rowOf(r) {
    const tr = h('tr', { dataset: { pid: r.pid } }, columns.map((c) => h('td', { class: [c.num ? 'num' : '', c.cls ?? ''].join(' ').trim() || null })));
    cellsOf(tr, r);
    return tr;
  }

  /** A new table (a snapshot, a full frame, or the kill column came or went). */
  function build() {
    columns = [
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
    ageAt = columns.findIndex((c) => c.sort === 'age');
    const t = table(columns, [], { sortHref: (key) => ctx.href({ sort: key }), sorted: sort, empty: 'no process matches', cls: 'processes' });
    tbody = t.querySelector('tbody');
    empty = tbody.firstChild;
    rows.clear();
    foot = h('p', { class: 'muted foot', id: 'total' });
    replace(body, t, foot);
  }

  /** Applies `{ changed, removed, order, total, full }`; true when it rendered the whole table. */
  function applyFrame(d) {
    const whole = d.full === true || tbody === null || columns.length !== (ctx.canAct ? 10 : 9);
    if (whole) build();
    const now = uptime();
    for (const pid of Array.isArray(d.removed) ? d.removed : []) {
      const e = rows.get(pid);
      if (e === undefined) continue;
      e.tr.remove();
      rows.delete(pid);
    }
    for (const r of Array.isArray(d.changed) ? d.changed : []) {
      if (!r || typeof r.pid !== 'string') continue;
      const e = rows.get(r.pid);
      if (e === undefined) rows.set(r.pid, { row: r, tr: rowOf(r), at: now });
      else {
        e.row = r;
        e.at = now;
        cellsOf(e.tr, r);
      }
    }
    // the server's order; a row it no longer lists goes
    const order = Array.isArray(d.order) ? d.order : [...rows.keys()];
    const listed = new Set(order);
    for (const [pid, e] of rows) {
      if (!listed.has(pid)) {
        e.tr.remove();
        rows.delete(pid);
      }
    }
    let i = 0;
    for (const pid of order) {
      const e = rows.get(pid);
      if (e === undefined) continue;
      const there = tbody.children[i];
      if (there !== e.tr) tbody.insertBefore(e.tr, there ?? null);
      i++;
    }
    if (i === 0) {
      if (empty.parentNode !== tbody) tbody.appendChild(empty);
    } else if (empty.parentNode === tbody) empty.remove();
    // the rows the server did not send again are older by the uptime since they were
    if (now !== null && ageAt >= 0) {
      for (const e of rows.values()) {
        if (typeof e.row.ageMs !== 'number' || e.at === null) continue;
        const text = ms(e.row.ageMs + Math.max(0, now - e.at));
        const td = e.tr.children[ageAt];
        if (td.textContent !== text) td.textContent = text;
      }
    }
    const total = typeof d.total === 'number' ? d.total : rows.size;
    count.textContent = `showing ${int(rows.size)} of ${int(total)} · sorted by ${sort} on the server`;
    foot.textContent = `${int(rows.size)} shown of ${int(total)} matching processes`;
    return whole;
  }

  return {
    /** What the event stream is asked for: this page's view. */
    view() {
      return { view: 'processes', sort, limit, filter: state.filter, status: state.status };
    },
    unmount() {
      clearTimeout(timer);
    },
    /** The server refused this page's stream: its words instead of a table that no frame will update. */
    refused(message) {
      tbody = null;
      count.textContent = '';
      replace(body, h('p', { class: 'muted na', dataset: { unavailable: 'Processes' } }, `Processes: ${message}`));
    },
    async frame(event, data) {
      if (event === 'snapshot') {
        const page = data && data.processes;
        if (!page || !Array.isArray(page.processes)) {
          tbody = null;
          replace(body, h('p', { class: 'muted na', dataset: { unavailable: 'Processes' } }, 'Processes: unavailable (the snapshot failed)'));
          return true;
        }
        return applyFrame({ full: true, changed: page.processes, removed: [], order: page.processes.map((r) => r.pid), total: page.total });
      }
      if (event === 'processes') return applyFrame(data ?? {});
      return false;
    },
  };
}
