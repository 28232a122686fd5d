// Circuits: the coordination manager's circuit breakers (state, failures, buffered messages).
import { get } from '../lib/api.js';
import { ago, badge, h, int, pidLink, replace, section, table, text, tile, unavailable } from '../lib/dom.js';
import { totals } from './registry.js';

const TONE = { closed: 'ok', open: 'bad', half_open: 'warn' };

export function mount(root) {
  const tiles = h('div', { class: 'tiles' });
  const body = h('div');
  root.append(h('h1', null, 'Circuits'), tiles, body);
  return {
    async refresh() {
      const a = await get('/api/circuits');
      if (!a.ok) {
        replace(tiles);
        return replace(body, unavailable('Circuits', a));
      }
      const managers = a.data.managers ?? [];
      const all = managers.flatMap((m) => m.circuits ?? []);
      const count = (st) => all.filter((c) => c.state === st).length;
      replace(tiles, tile('Closed', int(count('closed')), 'passing traffic'), tile('Half-open', int(count('half_open')), 'probing', count('half_open') ? 'warn' : ''), tile('Open', int(count('open')), 'failing fast', count('open') ? 'bad' : ''), tile('Buffered', int(all.reduce((n, c) => n + (c.buffered ?? 0), 0)), 'messages held'));
      if (managers.length === 0) return replace(body, h('p', { class: 'muted' }, 'no coordination manager running'));
      replace(
        body,
        managers.map((m) =>
          section(
            `${text(m.name ?? m.pid)}${m.error ? ` (unreadable: ${text(m.error)})` : ''}`,
            totals(m.totals, ['delivered', 'failed', 'buffered', 'flushed', 'deadLettered', 'open', 'halfOpen']),
            table(
              [
                { label: 'target', cell: (c) => (typeof c.target === 'string' && c.target.startsWith('<') ? pidLink(c.target) : text(c.target ?? c.key)), cls: 'ellipsis' },
                { label: 'state', cell: (c) => badge(text(c.state).replace('_', '-'), TONE[c.state]), cls: 'w-status' },
                { label: 'failures', num: true, cell: (c) => int(c.failures), cls: 'w-num' },
                { label: 'buffered', num: true, cell: (c) => int(c.buffered), cls: 'w-num' },
                { label: 'in flight', num: true, cell: (c) => (c.inFlight === undefined ? '–' : int(c.inFlight)), cls: 'w-num' },
                { label: 'openings', num: true, cell: (c) => (c.openings === undefined ? '–' : int(c.openings)), cls: 'w-num' },
                { label: 'opened / resets', cell: (c) => (c.openedAt ? ago(c.openedAt) : c.resetAt ? `resets ${ago(c.resetAt)}` : '–'), cls: 'w-time' },
              ],
              m.circuits ?? [],
              { empty: 'no circuit', rowAttrs: (c) => ({ class: c.state === 'open' ? 'alert' : null }) },
            ),
          ),
        ),
      );
    },
  };
}
