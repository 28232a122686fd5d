// Telemetry: event rates as charts, from the history the server keeps (so a reload shows it), and
// the node's figures over the same window. Without a server history, the figures this page saw.
import { get } from '../lib/api.js';
import { bytes, chart, dec, h, int, replace, section, unavailable } from '../lib/dom.js';

const WINDOWS = [
  [60, '1 min'],
  [300, '5 min'],
  [900, '15 min'],
];
const MAX_EVENT_CHARTS = 12;

/** A point list `[[t, v]]` from what the server sent: `[[t, v]]`, `[{ at, value }]` or `[{ at, [key]: v }]`. */
function points(list, key) {
  if (!Array.isArray(list)) return [];
  return list
    .map((p) => (Array.isArray(p) ? [p[0], p[1]] : p && typeof p === 'object' ? [p.at ?? p.t, key in p ? p[key] : p.value] : null))
    .filter((p) => p !== null && typeof p[0] === 'number');
}

/**
 * The history of the node's figures and of the telemetry events over the last `windowSec`
 * seconds: the server's (`GET /api/telemetry`) when it has one, else the page's own samples.
 */
export async function historyOf(ctx, windowSec) {
  const a = await get(`/api/telemetry?window=${windowSec}`);
  const local = ctx.series;
  const d = a.ok && a.data ? a.data : null;
  const serverSeries = d && d.series ? d.series : null;
  return {
    answer: a,
    server: d !== null,
    series(key) {
      if (serverSeries !== null) {
        const list = Array.isArray(serverSeries) ? points(serverSeries, key) : points(serverSeries[key], key);
        if (list.length > 0) return list;
      }
      return local.map((p) => [p.at, p[key]]);
    },
    events() {
      if (d === null || !Array.isArray(d.buckets)) return [];
      const names = Array.isArray(d.names) ? d.names : [...new Set(d.buckets.flatMap((b) => Object.keys(b.counts ?? {})))];
      // one point per second over the history kept (a second without a bucket counted 0), at least two
      const ats = [...d.buckets.map((b) => b.at), ...(Array.isArray(serverSeries) ? serverSeries.map((p) => p.at) : [])].filter((t) => typeof t === 'number');
      const last = Math.floor(Math.max(Date.now(), ...ats) / 1000) * 1000;
      const first = Math.max(last - windowSec * 1000, Math.floor(Math.min(last - 1000, ...ats) / 1000) * 1000);
      const byAt = new Map(d.buckets.map((b) => [Math.floor(b.at / 1000) * 1000, b.counts ?? {}]));
      return names
        .map((name) => {
          const pts = [];
          for (let t = first; t <= last; t += 1000) pts.push([t, (byAt.get(t) ?? {})[name] || 0]);
          return { name: String(name), points: pts, total: pts.reduce((n, p) => n + p[1], 0) };
        })
        .sort((x, y) => y.total - x.total || (x.name < y.name ? -1 : 1));
    },
  };
}

export function mount(root, ctx) {
  const win = Number(ctx.params.get('window')) || 300;
  const picker = h(
    'div',
    { class: 'seg' },
    WINDOWS.map(([sec, label]) => h('a', { href: ctx.href({ window: sec }), class: sec === win ? 'on' : null }, label)),
  );
  const figures = h('div', { class: 'charts' });
  const events = h('div', { class: 'charts small' });
  const note = h('div');
  root.append(h('div', { class: 'titlebar' }, h('h1', null, 'Telemetry'), picker), note, section('Node', figures), section('Event rates (events per second)', events));
  return {
    async refresh() {
      const history = await historyOf(ctx, win);
      replace(note, history.server ? null : unavailable('Server-side history', history.answer, 'showing what this page has seen since it opened'));
      replace(
        figures,
        chart('processes', history.series('processes'), { format: int }),
        chart('messages/s', history.series('messageRate'), { format: int }),
        chart('run queue', history.series('runQueue'), { format: int }),
        chart('heap used', history.series('heapUsed'), { format: bytes }),
        chart('event-loop lag (ms)', history.series('lag'), { format: dec }),
        chart('event-loop busy %', history.series('busyPercent'), { format: dec }),
      );
      const list = history.events();
      if (list.length === 0) {
        replace(events, h('p', { class: 'muted' }, history.server ? 'no telemetry events in this window' : 'event rates need the server-side history'));
        return;
      }
      replace(
        events,
        list.slice(0, MAX_EVENT_CHARTS).map((e) => chart(e.name, e.points, { format: int })),
        list.length > MAX_EVENT_CHARTS ? h('p', { class: 'muted' }, `${list.length - MAX_EVENT_CHARTS} quieter events not charted: ${list.slice(MAX_EVENT_CHARTS).map((e) => e.name).join(', ')}`) : null,
      );
    },
  };
}
