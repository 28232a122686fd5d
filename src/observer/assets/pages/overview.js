// Overview: the node's figures as tiles, their history as charts (the server's telemetry history
// when it keeps one, else what this page saw since it opened), and the longest mailboxes.
import { get } from '../lib/api.js';
import { bytes, chart, dec, h, int, ms, pidLink, replace, section, table, tile } from '../lib/dom.js';
import { historyOf } from './telemetry.js';

export function mount(root, ctx) {
  const tiles = h('div', { class: 'tiles' });
  const charts = h('div', { class: 'charts' });
  const top = h('div');
  root.append(h('h1', null, 'Overview'), tiles, section('History', charts), section('Longest mailboxes', top));
  return {
    async refresh() {
      const o = ctx.overview;
      if (o === null) {
        replace(tiles, h('p', { class: 'muted' }, 'waiting for the first sample…'));
      } else {
        const lag = o.eventLoopLagMs;
        const dl = o.deadLetters;
        replace(
          tiles,
          tile('Uptime', ms(o.uptimeMs), `node ${o.node}`),
          tile('Processes', int(o.processes), `${int(o.timers)} timers`),
          tile('Run queue', int(o.runQueue), 'processes ready to run', o.runQueue > 1000 ? 'warn' : ''),
          tile('Event-loop lag', lag ? `${dec(lag.mean)} ms` : '–', lag ? `p99 ${dec(lag.p99)} · max ${dec(lag.max)} ms` : 'measured while watched', lag && lag.p99 > 100 ? 'warn' : ''),
          tile('Busy', o.busyPercent === null || o.busyPercent === undefined ? '–' : `${dec(o.busyPercent)} %`, 'event-loop utilization', o.busyPercent > 90 ? 'warn' : ''),
          tile('Heap', bytes(o.heap && o.heap.used), `of ${bytes(o.heap && o.heap.total)}`),
          tile('RSS', bytes(o.heap && o.heap.rss), 'resident set size'),
          tile('Message rate', o.messageRate === null || o.messageRate === undefined ? '–' : `${int(o.messageRate)}/s`, 'handled, all processes'),
          h(
            'a',
            { href: '#/dead-letters', class: 'tilelink' },
            tile('Dead letters', dl ? int(dl.pending) : '–', dl ? `pending · ${int(dl.parked)} parked` : 'queue not running', dl && dl.parked > 0 ? 'warn' : ''),
          ),
          h('a', { href: '#/monitors', class: 'tilelink' }, tile('Suspected leaks', o.suspectedLeaks === null ? '–' : int(o.suspectedLeaks), 'managed monitors', o.suspectedLeaks > 0 ? 'bad' : '')),
        );
      }
      const [history, page] = await Promise.all([historyOf(ctx, 300), get('/api/processes?sort=mailbox&limit=8')]);
      replace(
        charts,
        chart('processes', history.series('processes'), { format: int }),
        chart('messages/s', history.series('messageRate'), { format: int }),
        chart('run queue', history.series('runQueue'), { format: int }),
        chart('heap used', history.series('heapUsed'), { format: bytes }),
        chart('event-loop lag (ms)', history.series('lag'), { format: dec }),
      );
      if (!page.ok) {
        replace(top, h('p', { class: 'muted' }, 'processes unavailable'));
        return;
      }
      replace(
        top,
        table(
          [
            { label: 'pid', cell: (p) => pidLink(p.pid), cls: 'w-pid' },
            { label: 'name', cell: (p) => p.name ?? '', cls: 'ellipsis' },
            { label: 'status', cell: (p) => p.status, cls: 'w-status' },
            { label: 'mailbox', num: true, cell: (p) => int(p.mailbox), cls: 'w-num' },
            { label: 'handled', num: true, cell: (p) => int(p.handled), cls: 'w-num' },
          ],
          page.data.processes ?? [],
        ),
        h('p', { class: 'muted foot' }, `top ${int((page.data.processes ?? []).length)} of ${int(page.data.total)} · `, h('a', { href: '#/processes?sort=mailbox' }, 'all processes')),
      );
    },
  };
}
