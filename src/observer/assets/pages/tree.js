// Supervision tree: every root the server reports, each supervisor with its strategy, intensity and
// restarts in the current window, its children with status, mailbox and restart count. A child
// whose pid changed since the last render (a restart) is marked until the next change.
import { get } from '../lib/api.js';
import { badge, h, int, ms, pidLink, replace, text, unavailable } from '../lib/dom.js';

function childPid(c) {
  if (c.pid === null || c.pid === undefined) return h('span', { class: 'muted' }, 'stopped');
  if (c.pid === 'restarting') return badge('restarting', 'warn');
  return pidLink(c.pid);
}

function supervisor(node, seen, path) {
  if (node.error !== undefined) return h('div', { class: 'sup error' }, h('div', { class: 'suphead' }, h('span', { class: 'mono' }, text(node.root ?? 'subtree')), badge(`error: ${text(node.error)}`, 'bad')));
  const intensity = node.intensity ? `max ${int(node.intensity.maxRestarts)} restarts in ${ms(node.intensity.periodMs ?? node.intensity.withinMs)}` : null;
  const inWindow = node.restartsInWindow;
  const head = h(
    'div',
    { class: 'suphead' },
    h('span', { class: 'supname', title: node.name ?? null }, node.name ?? 'supervisor'),
    pidLink(node.supervisor),
    node.strategy ? badge(node.strategy) : null,
    intensity ? h('span', { class: 'muted' }, intensity) : null,
    inWindow === undefined || inWindow === null ? null : badge(`${int(inWindow)} ${inWindow === 1 ? 'restart' : 'restarts'} in window`, inWindow > 0 ? 'warn' : ''),
  );
  const rows = h('div', { class: 'children' });
  for (const c of node.children ?? []) {
    // a child with an id keeps it across restarts: a new pid under the same id is a restart (a
    // dynamic supervisor's children have no id: a new pid there is a new child)
    const key = c.id === null || c.id === undefined ? null : `${path}/${c.id}`;
    const before = key === null ? undefined : seen.get(key);
    const changed = before !== undefined && before !== c.pid;
    const restarted = changed || c.restarts > 0;
    if (key !== null && before !== c.pid) seen.set(key, c.pid);
    const row = h(
      'div',
      { class: `child${restarted ? ' restarted' : ''}${changed ? ' changed' : ''}`, dataset: { child: c.id ?? c.pid } },
      h('span', { class: 'cid' }, c.id !== null && c.id !== undefined ? text(c.id) : c.name ? text(c.name) : h('span', { class: 'muted' }, c.kind ?? 'child')),
      childPid(c),
      h('span', { class: 'muted w-type' }, c.type),
      h('span', { class: 'muted w-type' }, c.restart),
      c.status ? badge(c.status, c.status === 'running' ? 'ok' : c.status === 'busy' ? 'warn' : '') : h('span'),
      h('span', { class: 'num', title: 'mailbox' }, c.mailbox === undefined || c.mailbox === null ? '' : `✉ ${int(c.mailbox)}`),
      h('span', { class: 'num restarts', title: 'restarts' }, c.restarts > 0 ? badge(`restarted ${int(c.restarts)}×`, 'warn') : h('span', { class: 'muted' }, '0 restarts')),
    );
    rows.appendChild(row);
    if (c.tree) rows.appendChild(h('div', { class: 'nested' }, supervisor(c.tree, seen, key)));
  }
  if ((node.children ?? []).length === 0) rows.appendChild(h('div', { class: 'muted child note' }, 'no children'));
  // (the server lists the first 1000 children of a supervisor)
  else if (typeof node.childrenTotal === 'number' && node.childrenTotal > node.children.length) {
    rows.appendChild(h('div', { class: 'muted child note' }, `… and ${int(node.childrenTotal - node.children.length)} more children (the first ${int(node.children.length)} are listed)`));
  }
  return h('div', { class: 'sup', dataset: { supervisor: node.name ?? node.supervisor } }, head, rows);
}

export function mount(root, ctx) {
  const seen = ctx.store().pids ?? (ctx.store().pids = new Map());
  const body = h('div');
  root.append(h('h1', null, 'Supervision tree'), body);
  return {
    async refresh() {
      const a = await get('/api/tree');
      if (!a.ok) {
        replace(body, unavailable('Supervision tree', a));
        return;
      }
      const trees = a.data.trees ?? [];
      if (trees.length === 0) {
        replace(body, h('p', { class: 'muted' }, 'no supervision tree to show (start the observer with `supervisors: [...]`, or start Keel’s services)'));
        return;
      }
      replace(body, trees.map((t, i) => h('section', { class: 'card tree' }, supervisor(t, seen, String(t.name ?? t.supervisor ?? i)))));
    },
  };
}
