// A process's detail: its figures, links, monitors and monitored-by (pids link on), timers, names,
// pending calls, restart history, and its state when the process opted in with a redactor.
import { get } from '../lib/api.js';
import { ago, badge, clock, facts, h, int, ms, pidLink, pidList, replace, section, table, text } from '../lib/dom.js';
import { killButton } from './processes.js';

function list(values) {
  if (!Array.isArray(values) || values.length === 0) return h('span', { class: 'muted' }, 'none');
  return h('span', { class: 'chips' }, values.map((v) => h('code', null, text(v))));
}

export function mount(root, ctx) {
  const pid = ctx.arg;
  const armed = new Set();
  const title = h('div', { class: 'titlebar' }, h('h1', null, 'Process ', h('span', { class: 'mono' }, pid)));
  const body = h('div');
  root.append(h('p', { class: 'crumbs' }, h('a', { href: '#/processes' }, '← processes')), title, body);
  return {
    async refresh() {
      const a = await get(`/api/process/${encodeURIComponent(pid)}`);
      if (!a.ok) {
        replace(body, h('p', { class: 'muted na', id: 'gone' }, a.status === 404 ? `${pid} is not alive (it has exited, or never was on this node).` : `${pid}: ${a.error.message}`));
        return;
      }
      const p = a.data;
      const pending = Array.isArray(p.pendingCalls) ? p.pendingCalls.length : p.pendingCalls;
      replace(
        title,
        h('h1', null, 'Process ', h('span', { class: 'mono' }, p.pid), p.name ? [' ', h('span', { class: 'muted pname', title: p.name }, p.name)] : null),
        badge(p.status, p.status === 'busy' ? 'warn' : ''),
        p.kind ? badge(p.kind) : null,
        h('span', { class: 'spacer' }),
        ctx.canAct ? killButton(ctx, p.pid, armed, () => ctx.refresh()) : null,
      );
      const restarts = Array.isArray(p.restarts) ? [...p.restarts].reverse() : []; // newest first
      const intensity = p.intensity ? `max ${int(p.intensity.maxRestarts)} restarts in ${ms(p.intensity.periodMs ?? p.intensity.withinMs)}` : null;
      replace(
        body,
        h(
          'div',
          { class: 'cols' },
          section(
            'Figures',
            facts([
              ['kind', p.kind ?? '–'],
              ['status', p.status],
              ['mailbox', h('span', { class: p.longMailbox ? 'hot num' : 'num' }, int(p.mailbox))],
              ['handled', h('span', { class: 'num' }, int(p.handled))],
              ['age', p.ageMs === undefined ? '–' : ms(p.ageMs)],
              ['timers', h('span', { class: 'num' }, int(p.timers))],
              ['pending calls', pending === undefined ? '–' : h('span', { class: 'num' }, int(pending))],
              ['traps exits', p.trapExits ? 'yes' : 'no'],
              ['names', list(p.names ?? (p.name ? [p.name] : []))],
              p.groups === undefined ? null : ['groups', list(p.groups)],
              p.strategy === undefined ? null : ['strategy', `${p.strategy}${intensity ? ` · ${intensity}` : ''}`],
              p.restartsInWindow === undefined || p.restartsInWindow === null ? null : ['restarts in window', h('span', { class: 'num' }, int(p.restartsInWindow))],
            ]),
          ),
          section(
            'Relations',
            facts([
              p.parent === undefined ? null : ['parent', p.parent === null ? '–' : p.parent === 'node' ? 'the node' : pidLink(p.parent)],
              ['links', more(pidList(p.links), p.links, p.linksTotal)],
              ['monitors', more(list(p.monitors), p.monitors, p.monitorsTotal)],
              ['monitored by', more(pidList(p.monitoredBy), p.monitoredBy, p.monitoredByTotal)],
              p.waitingOn === undefined ? null : ['waiting on (calls)', pidList(p.waitingOn)],
            ]),
          ),
        ),
        p.restarts === undefined || p.restarts === null
          ? null
          : section(
              'Restart history',
              table(
                [
                  { label: 'at', cell: (r) => `${clock(r.at)} (${ago(r.at)})`, cls: 'w-time' },
                  { label: 'child', cell: (r) => text(r.child), cls: 'w-kind' },
                  { label: 'reason', cell: (r) => text(r.reason), cls: 'ellipsis' },
                ],
                restarts,
                { empty: 'no restarts' },
              ),
            ),
        section(
          'State',
          p.stateError
            ? h('p', { class: 'muted na' }, `not read: ${text(p.stateError)}`)
            : p.state === null || p.state === undefined
            ? h('p', { class: 'muted' }, 'not shown: a process shows its state only when it opts in with a redactor')
            : h('pre', { class: 'state' }, JSON.stringify(p.state, null, 2)),
        ),
      );
    },
  };
}

/** A list the server cut (it lists the first 1000 of each), followed by how many more there are. */
function more(shown, items, total) {
  if (!Array.isArray(items) || typeof total !== 'number' || total <= items.length) return shown;
  return h('span', null, shown, h('span', { class: 'muted' }, ` … and ${int(total - items.length)} more`));
}
