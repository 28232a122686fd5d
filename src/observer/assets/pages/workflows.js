// Workflows: each coordinator's active and recent workflows, each with a timeline of its tasks
// (worker, attempts, reassignments), a stuck workflow highlighted. Circuits are on their own page.
import { get } from '../lib/api.js';
import { ago, badge, h, int, ms, pidLink, replace, s, section, text, unavailable } from '../lib/dom.js';

const TONE = { completed: 'ok', done: 'ok', succeeded: 'ok', running: 'info', active: 'info', failed: 'bad', error: 'bad', cancelled: '', pending: '' };

/** A task timeline: a row per task, a bar from its start to its end (or now), over the workflow's span. */
function timeline(w) {
  const tasks = Array.isArray(w.tasks) ? w.tasks : [];
  const now = Date.now();
  const starts = tasks.map((t) => t.startedAt).filter((t) => typeof t === 'number');
  const t0 = Math.min(typeof w.startedAt === 'number' ? w.startedAt : Infinity, ...starts);
  const t1 = Math.max(...tasks.map((t) => (typeof t.endedAt === 'number' ? t.endedAt : typeof t.startedAt === 'number' ? now : -Infinity)), t0 + 1);
  const span = Number.isFinite(t0) ? t1 - t0 : 1;
  const rows = tasks.map((t) => {
    const W = 1000;
    const svg = s('svg', { viewBox: `0 0 ${W} 10`, preserveAspectRatio: 'none', class: 'lane' });
    if (typeof t.startedAt === 'number' && Number.isFinite(t0)) {
      const x = ((t.startedAt - t0) / span) * W;
      const end = typeof t.endedAt === 'number' ? t.endedAt : now;
      const w2 = Math.max(4, ((end - t.startedAt) / span) * W);
      svg.appendChild(s('rect', { x: x.toFixed(1), y: 1, width: w2.toFixed(1), height: 8, rx: 2, class: `bar ${TONE[t.status] ?? ''}` }));
    }
    return h(
      'div',
      { class: `task ${t.status ?? ''}`, dataset: { task: text(t.id) } },
      h('span', { class: 'tid ellipsis' }, text(t.id)),
      badge(text(t.status), TONE[t.status]),
      h('span', { class: 'w-pid' }, t.worker ? pidLink(t.worker) : h('span', { class: 'muted' }, 'no worker')),
      h('span', { class: 'num muted' }, `${int(t.attempts ?? 0)} att${t.reassignments === null || t.reassignments === undefined ? '' : ` · ${int(t.reassignments)} reassigned`}`),
      svg,
      h('span', { class: 'num muted' }, typeof t.startedAt === 'number' ? ms((typeof t.endedAt === 'number' ? t.endedAt : now) - t.startedAt) : '–'),
      t.error ? h('span', { class: 'err ellipsis', title: text(t.error) }, text(t.error)) : null,
    );
  });
  // a snapshot carries the first 1000 tasks of a workflow (10,000 of a coordinator): say how many it has
  const more = typeof w.taskCount === 'number' && w.taskCount > tasks.length
    ? h('p', { class: 'muted foot more-tasks' }, `the first ${int(tasks.length)} of ${int(w.taskCount)} tasks`)
    : null;
  return h('div', { class: 'timeline' }, rows.length ? rows : more === null ? h('p', { class: 'muted' }, 'no task yet') : null, more);
}

function workflow(w) {
  return h(
    'div',
    { class: `wf${w.stuck ? ' stuck' : ''}`, dataset: { workflow: text(w.id) } },
    h(
      'div',
      { class: 'wfhead' },
      h('strong', null, text(w.name ?? 'workflow')),
      h('code', { class: 'muted' }, text(w.id)),
      badge(text(w.status), TONE[w.status]),
      w.stuck ? badge('stuck', 'bad') : null,
      h('span', { class: 'spacer' }),
      w.stuck && w.progressAt ? h('span', { class: 'hot' }, `no progress for ${ms(Date.now() - w.progressAt)}`) : null,
      h('span', { class: 'muted' }, w.finishedAt ? `finished ${ago(w.finishedAt)} · took ${ms(w.finishedAt - w.startedAt)}` : `started ${ago(w.startedAt)}`),
    ),
    timeline(w),
  );
}

export function mount(root) {
  const body = h('div');
  root.append(h('h1', null, 'Workflows'), body);
  return {
    async refresh() {
      const a = await get('/api/workflows');
      if (!a.ok) return replace(body, unavailable('Workflows', a));
      const list = a.data.coordinators ?? [];
      if (list.length === 0) return replace(body, h('p', { class: 'muted' }, 'no coordinator running'));
      replace(
        body,
        list.map((c) => {
          const active = c.active ?? [];
          const recent = c.recent ?? [];
          const stuck = active.filter((w) => w.stuck).length;
          const workers = Array.isArray(c.workers) ? c.workers : [];
          return section(
            `${text(c.name ?? c.pid)} · ${int(active.length)} active${stuck ? ` · ${stuck} stuck` : ''}${c.error ? ` · unreadable: ${text(c.error)}` : ''}`,
            workers.length ? h('p', { class: 'muted foot workers' }, 'workers: ', workers.map((w) => h('span', { class: 'worker' }, pidLink(w.pid), ` load ${int(w.load)}${w.capabilities && w.capabilities.length ? ` [${w.capabilities.join(', ')}]` : ''} `))) : null,
            active.length ? active.map(workflow) : h('p', { class: 'muted' }, 'no active workflow'),
            recent.length ? [h('h3', null, 'Recent'), recent.map(workflow)] : null,
          );
        }),
      );
    },
  };
}
