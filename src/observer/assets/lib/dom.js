// DOM helpers of the observer page. Every value reaches the page as text (textContent, or an
// attribute set with setAttribute): nothing here parses markup, whatever a process is named.

const SVG = 'http://www.w3.org/2000/svg';

/** Appends `children` (text, numbers, nodes, arrays of them; null and undefined skipped) to `node`. */
export function append(node, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else if (typeof c === 'object' && 'nodeType' in c) node.appendChild(c);
    else node.appendChild(document.createTextNode(String(c)));
  }
  return node;
}

/**
 * An element: `h('td', { class: 'num' }, 42)`. Attributes are set with setAttribute; `on` holds
 * listeners; an `href` must be an in-page route (`#/...`).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  return append(el, children);
}

function setAttrs(el, attrs) {
  if (attrs === null || attrs === undefined) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'on') for (const [type, fn] of Object.entries(v)) el.addEventListener(type, fn);
    else if (k === 'dataset') for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
    else if (k === 'href' && !String(v).startsWith('#')) throw new Error('in-page links only');
    else if (k === 'checked' || k === 'disabled' || k === 'value' || k === 'open') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

/** An SVG element (charts). */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs ?? {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  return append(el, children);
}

/** Replaces the content of `node`. */
export function replace(node, ...children) {
  node.textContent = '';
  return append(node, children);
}

// ---- formatting ------------------------------------------------------------------------------

const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const decFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

export function int(n) {
  return typeof n === 'number' && Number.isFinite(n) ? intFmt.format(n) : '–';
}

export function dec(n) {
  return typeof n === 'number' && Number.isFinite(n) ? decFmt.format(n) : '–';
}

export function bytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

/** A duration: 850 ms, 12.5 s, 4 min 10 s, 3 h 2 min, 2 d 4 h. */
export function ms(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  if (n < 1000) return `${Math.round(n)} ms`;
  const sec = n / 1000;
  if (sec < 60) return `${sec.toFixed(1)} s`;
  const min = Math.floor(sec / 60);
  if (min < 60) return `${min} min ${Math.floor(sec % 60)} s`;
  const hr = Math.floor(min / 60);
  if (hr < 48) return `${hr} h ${min % 60} min`;
  return `${Math.floor(hr / 24)} d ${hr % 24} h`;
}

/** A time of day (hh:mm:ss) of an epoch ms. */
export function clock(t) {
  if (typeof t !== 'number' || !Number.isFinite(t)) return '–';
  return new Date(t).toLocaleTimeString('en-GB', { hour12: false });
}

/** How long ago an epoch ms was. */
export function ago(t) {
  if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0) return '–';
  const d = Date.now() - t;
  return d < 0 ? `in ${ms(-d)}` : `${ms(d)} ago`;
}

/** Any value as short text. */
export function text(v) {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'object') {
    try {
      return JSON.stringify(v);
    } catch {
      return '(unprintable)';
    }
  }
  return String(v);
}

// ---- building blocks -------------------------------------------------------------------------

/** A pid as a link to its detail page. */
export function pidLink(pid) {
  if (typeof pid !== 'string' || !pid.startsWith('<')) return h('span', { class: 'muted mono' }, text(pid));
  // (the title shows a pid whole where a longer node name still cuts it)
  return h('a', { class: 'pid', href: `#/process/${encodeURIComponent(pid)}`, title: pid }, pid);
}

/** A list of pids as links. */
export function pidList(pids) {
  if (!Array.isArray(pids) || pids.length === 0) return h('span', { class: 'muted' }, 'none');
  return h('span', { class: 'pids' }, pids.map((p) => pidLink(typeof p === 'string' ? p : text(p))));
}

/** A status badge (`ok`, `warn`, `bad`, or neutral). */
export function badge(label, tone) {
  return h('span', { class: `badge ${tone ?? ''}` }, label);
}

/** A titled section. */
export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', null, title), ...children);
}

/** A figure tile of the overview. */
export function tile(label, value, sub, tone) {
  return h('div', { class: `tile ${tone ?? ''}`, dataset: { tile: label } }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), sub ? h('div', { class: 'sub' }, sub) : null);
}

/** The quiet note for an endpoint this server does not have (404) or a service that is not running (503). */
export function unavailable(what, answer, more) {
  const status = answer && answer.status ? answer.status : 0;
  // any other refusal says the server's own words (a 400's, a 500's): a bare status tells nobody why
  const message = status !== 0 && answer.error && typeof answer.error.message === 'string' && answer.error.message !== '' ? `: ${answer.error.message}` : '';
  const why = status === 503 ? 'not running on this node' : status === 404 ? 'not available from this observer' : `unavailable (${status !== 0 ? `${status}${message}` : 'offline'})`;
  return h('p', { class: 'muted na', dataset: { unavailable: what } }, `${what}: ${why}${more ? `; ${more}` : ''}`);
}

/**
 * A table: `columns` of `{ label, num?, cls?, cell(row) }` and the rows. `empty` is the text of an
 * empty table. Header cells of sortable columns are links given by `sortHref(column)`.
 */
export function table(columns, rows, options = {}) {
  const head = h(
    'tr',
    null,
    columns.map((c) => {
      const label = c.sort && options.sortHref ? h('a', { href: options.sortHref(c.sort), class: options.sorted === c.sort ? 'sorted' : null, title: `sort by ${c.sort} on the server` }, c.label, options.sorted === c.sort ? ' ▾' : '') : c.label;
      return h('th', { class: [c.num ? 'num' : '', c.cls ?? ''].join(' ').trim() || null }, label);
    }),
  );
  const body = h('tbody');
  for (const row of rows) {
    const tr = h('tr', options.rowAttrs ? options.rowAttrs(row) : null);
    for (const c of columns) tr.appendChild(h('td', { class: [c.num ? 'num' : '', c.cls ?? ''].join(' ').trim() || null }, c.cell(row)));
    body.appendChild(tr);
  }
  if (rows.length === 0) body.appendChild(h('tr', { class: 'empty' }, h('td', { colspan: columns.length }, options.empty ?? 'nothing')));
  return h('table', { class: `grid ${options.cls ?? ''}` }, h('thead', null, head), body);
}

/**
 * A line chart as inline SVG: `points` of `[t, v]`, drawn over the chart's width; the last value
 * and the maximum are labelled. Scales to its box (CSS sets the size).
 */
export function chart(title, points, options = {}) {
  const W = 300;
  const H = 80;
  const fmt = options.format ?? dec;
  const vals = points.map((p) => p[1]).filter((v) => typeof v === 'number' && Number.isFinite(v));
  const last = vals.length > 0 ? vals[vals.length - 1] : null;
  const max = Math.max(1e-9, ...vals);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', class: 'chart', role: 'img' });
  for (const y of [0.25, 0.5, 0.75]) svg.appendChild(s('line', { x1: 0, x2: W, y1: H * y, y2: H * y, class: 'gridline' }));
  if (points.length >= 2) {
    const t0 = points[0][0];
    const span = Math.max(1, points[points.length - 1][0] - t0);
    const xy = points
      .filter((p) => typeof p[1] === 'number' && Number.isFinite(p[1]))
      .map((p) => [((p[0] - t0) / span) * W, H - 2 - (p[1] / max) * (H - 6)]);
    if (xy.length >= 2) {
      const line = xy.map((p, i) => `${i === 0 ? 'M' : 'L'}${p[0].toFixed(1)},${p[1].toFixed(1)}`).join('');
      svg.appendChild(s('path', { d: `${line}L${xy[xy.length - 1][0].toFixed(1)},${H}L${xy[0][0].toFixed(1)},${H}Z`, class: 'area' }));
      svg.appendChild(s('path', { d: line, class: 'line', 'vector-effect': 'non-scaling-stroke' }));
    }
  }
  return h(
    'figure',
    { class: 'chartbox', dataset: { chart: title } },
    h('figcaption', null, h('span', { class: 'title' }, title), h('span', { class: 'num' }, last === null ? '–' : fmt(last)), h('span', { class: 'muted num' }, `max ${vals.length ? fmt(max) : '–'}`)),
    points.length < 2 ? h('div', { class: 'chart empty muted' }, 'collecting…') : svg,
  );
}

/** A key–value list. */
export function facts(pairs) {
  return h(
    'dl',
    { class: 'facts' },
    pairs.filter((p) => p !== null).map(([k, v]) => [h('dt', null, k), h('dd', null, v === null || v === undefined ? '–' : v)]),
  );
}
