// The observer page: hash routes (#/overview, #/processes?sort=mailbox, #/process/<pid>, ...), one
// event stream for live data, and a page module per route that fetches only what it shows. A page
// that lives on the stream (the processes page: its `view()` names what it shows) gets the stream
// opened again with its view whenever that changes, and renders the snapshot then applies the
// deltas itself; the other pages read their data again on every overview frame. Every frame of the
// current stream is handled in order, then counted in document.body.dataset.frames and in a count
// per event (dataset.framesProcesses, ...): tests await those counts instead of sleeping. Every
// finished page render (for a live page: its snapshot) is counted in dataset.renders.
import { get, query } from './lib/api.js';
import { badge, bytes, dec, h, int, ms, replace } from './lib/dom.js';
import * as circuits from './pages/circuits.js';
import * as deadLetters from './pages/deadLetters.js';
import * as monitors from './pages/monitors.js';
import * as overview from './pages/overview.js';
import * as processDetail from './pages/process.js';
import * as processes from './pages/processes.js';
import * as registry from './pages/registry.js';
import * as telemetry from './pages/telemetry.js';
import * as tree from './pages/tree.js';
import * as workflows from './pages/workflows.js';

const PAGES = {
  overview,
  tree,
  processes,
  process: processDetail,
  monitors,
  'dead-letters': deadLetters,
  telemetry,
  registry,
  workflows,
  circuits,
};
const SERIES_MAX = 900;

const main = document.getElementById('main');
const conn = document.getElementById('conn');
let frames = 0;
const framesBy = new Map(); // event → frames of it handled
let renders = 0;
let received = 0; // frames received, before they are handled (dataset.received: what a test awaits to know a frame is queued)
let overviews = 0; // snapshot and overview frames received: only the latest one queued renders a page that reads its data
let source = null; // the open EventSource
let sourceUrl = null; // its URL (with the view of a live page)
let chain = Promise.resolve();
let current = null; // { name, instance }
let latest = null; // the latest overview
const series = []; // overview samples since the page opened: the charts' fallback history
const stores = new Map(); // a page's memory across visits (its own history, selections)

function counted(key, n) {
  document.body.dataset[key] = String(n);
}

/** Runs `fn` after every render and frame scheduled before it: one thing at a time, in order. */
function schedule(fn) {
  const run = chain.then(fn);
  chain = run.catch((e) => {
    console.error('observer page:', e);
  });
  return chain;
}

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  const slash = path.indexOf('/');
  const name = slash < 0 ? path : path.slice(0, slash);
  let arg = '';
  try {
    arg = slash < 0 ? '' : decodeURIComponent(path.slice(slash + 1));
  } catch {
    arg = '';
  }
  return { name: Object.hasOwn(PAGES, name) ? name : 'overview', arg, params };
}

function context(route) {
  return {
    arg: route.arg,
    params: route.params,
    get overview() {
      return latest;
    },
    series,
    /** Kill, retry, purge and redrive are offered only when the server says it is not read-only. */
    get canAct() {
      return latest !== null && latest.readOnly === false;
    },
    get payloads() {
      return latest !== null && latest.allowPayloads === true;
    },
    store() {
      if (!stores.has(route.name)) stores.set(route.name, {});
      return stores.get(route.name);
    },
    /** The href of this page with `params` changed (null or '' removes one). */
    href(params) {
      const q = new URLSearchParams(route.params);
      for (const [k, v] of Object.entries(params)) {
        if (v === null || v === undefined || v === '') q.delete(k);
        else q.set(k, String(v));
      }
      const text = q.toString();
      return `#/${route.name}${route.arg ? `/${encodeURIComponent(route.arg)}` : ''}${text ? `?${text}` : ''}`;
    },
    /** Changes this page's params in the address bar without mounting the page again. */
    remember(params) {
      const href = this.href(params);
      route.params = new URLSearchParams(href.includes('?') ? href.slice(href.indexOf('?') + 1) : '');
      history.replaceState(null, '', href);
    },
    /** Renders this page again now (after an action; a live page: opens its stream again for a fresh snapshot). */
    refresh() {
      if (current !== null && current.instance.view) {
        stream(true);
        return Promise.resolve();
      }
      return schedule(() => render());
    },
    notify,
  };
}

/** A short message over the page (an action's outcome). */
function notify(message, tone) {
  const box = document.getElementById('notice') ?? document.body.appendChild(h('div', { id: 'notice', role: 'status' }));
  replace(box, h('span', { class: `badge ${tone ?? ''}` }, tone === 'bad' ? 'failed' : 'done'), ' ', message);
  box.className = 'show';
}

async function render() {
  if (current === null) return;
  const { instance } = current;
  await instance.refresh();
  if (current === null || current.instance !== instance) return;
  current.rendered = true;
  counted('renders', ++renders);
}

function mount() {
  const route = parseRoute();
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === route.name || (route.name === 'process' && a.dataset.page === 'processes'));
  if (current !== null && current.instance.unmount) current.instance.unmount();
  replace(main);
  const ctx = context(route);
  current = { name: route.name, instance: PAGES[route.name].mount(main, ctx) };
  document.body.dataset.view = route.name;
  // a live page renders from its stream's snapshot; so does any page when the stream changes view
  const reopened = stream(current.instance.view !== undefined);
  if (!reopened) schedule(() => render());
}

// ---- the header --------------------------------------------------------------------------------

function header(o) {
  document.getElementById('node-name').textContent = o.node ?? '';
  const lag = o.eventLoopLagMs ? `${dec(o.eventLoopLagMs.mean)} ms lag` : null;
  const parts = [`up ${ms(o.uptimeMs)}`, `${int(o.processes)} processes`, o.messageRate === null || o.messageRate === undefined ? null : `${int(o.messageRate)} msg/s`, lag, `heap ${bytes(o.heap && o.heap.used)}`];
  document.getElementById('facts').textContent = parts.filter(Boolean).join(' · ');
  const mode = document.getElementById('mode');
  const rw = o.readOnly === false;
  replace(mode, badge(rw ? 'read-write' : 'read-only', rw ? 'warn' : ''), o.allowPayloads === true ? badge('payloads visible', 'warn') : null);
}

function sample(o) {
  if (!o || typeof o !== 'object') return;
  latest = o;
  series.push({
    at: o.at ?? Date.now(),
    processes: o.processes,
    runQueue: o.runQueue,
    messageRate: o.messageRate,
    heapUsed: o.heap ? o.heap.used : null,
    lag: o.eventLoopLagMs ? o.eventLoopLagMs.mean : null,
    busyPercent: o.busyPercent ?? null,
  });
  if (series.length > SERIES_MAX) series.shift();
  header(o);
}

// ---- the event stream --------------------------------------------------------------------------

function setConn(state) {
  conn.textContent = state;
  conn.className = `pill ${state}`;
  document.body.dataset.conn = state;
}

async function onFrame(event, raw, overview) {
  let data;
  try {
    data = JSON.parse(raw);
  } catch {
    return;
  }
  if (event === 'snapshot') sample(data.overview);
  else if (event === 'overview') sample(data);
  if (current === null) return;
  const { instance } = current;
  if (instance.view) {
    // a live page applies its own frames; a snapshot (or a full frame) is a whole render
    const whole = await instance.frame(event, data);
    if (whole === true && current !== null && current.instance === instance) counted('renders', ++renders);
    return;
  }
  if (event === 'snapshot' || event === 'overview') {
    // the page on view reads its data again: only what someone looks at is sampled. Once, for the
    // latest of the frames queued: a read slower than the frames (a busy supervisor's 1 s in the
    // tree) would otherwise queue one read per frame, the page falling further behind at each
    if (overview !== overviews) return;
    await render();
  } else if (instance.frame) {
    await instance.frame(event, data);
  }
}

/** The stream's URL: the view of the live page on view, or the overview. */
function streamUrl() {
  const view = current !== null && current.instance.view ? current.instance.view() : null;
  return `/api/events${view === null ? '' : query(view)}`;
}

/**
 * Why the server refuses the event stream at `url` (its error's message), or null when it does not
 * (an EventSource tells no status: the stream is asked again, and left at once when it opens).
 */
async function refusal(url) {
  const abort = new AbortController();
  let res;
  try {
    res = await fetch(url, { headers: { accept: 'text/event-stream' }, credentials: 'same-origin', signal: abort.signal });
  } catch {
    return null;
  }
  if (res.ok) {
    abort.abort();
    return null;
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  return data && data.error && typeof data.error.message === 'string' ? data.error.message : `${res.status} ${res.statusText}`.trim();
}

/**
 * Opens the event stream when none is open or the view changed (or `force`: a fresh snapshot),
 * closing the previous one: its frames still queued are dropped. True when a stream was opened.
 */
function stream(force) {
  const url = streamUrl();
  if (!force && source !== null && url === sourceUrl) return false;
  if (source !== null) source.close();
  const s = new EventSource(url);
  source = s;
  sourceUrl = url;
  s.onopen = () => {
    if (s === source) setConn('live');
  };
  s.onerror = () => {
    if (s !== source) return;
    // a page waiting for this stream's snapshot reads its data itself (and says it is unavailable)
    if (current !== null && !current.instance.view && !current.rendered) schedule(() => render());
    if (s.readyState !== EventSource.CLOSED) return setConn('reconnecting');
    // refused: signed out (a server started with another token), gone, or the server is up and
    // refused this stream (a view it does not accept: 400; too many streams: 503); try again now and then
    get('/api/overview').then(async (a) => {
      if (s !== source) return;
      const why = a.ok ? await refusal(url) : null;
      if (s !== source) return;
      if (a.status === 401) {
        setConn('signed out');
        notify('the observer no longer knows this session: open the link it printed', 'bad');
      } else if (why !== null) {
        setConn('refused');
        notify(`the event stream was refused: ${why}`, 'bad');
        if (current !== null && current.instance.refused) current.instance.refused(`the event stream was refused: ${why}`);
      } else setConn(a.ok ? 'reconnecting' : 'offline');
      setTimeout(() => {
        if (s === source) stream(true);
      }, 5000);
    });
  };
  for (const event of ['snapshot', 'overview', 'processes', 'telemetry', 'job']) {
    s.addEventListener(event, (e) => {
      if (s !== source) return;
      const overview = event === 'snapshot' || event === 'overview' ? ++overviews : overviews;
      counted('received', ++received);
      schedule(async () => {
        if (s !== source) return; // a frame of a stream closed since
        try {
          await onFrame(event, e.data, overview);
        } finally {
          framesBy.set(event, (framesBy.get(event) ?? 0) + 1);
          counted(`frames${event[0].toUpperCase()}${event.slice(1)}`, framesBy.get(event));
          counted('frames', ++frames);
        }
      });
    });
  }
  return true;
}

// ---- start ---------------------------------------------------------------------------------------

window.addEventListener('hashchange', mount);
counted('frames', 0);
counted('renders', 0);
counted('received', 0);
if (location.hash === '' || location.hash === '#') history.replaceState(null, '', '#/overview');
get('/api/overview').then((a) => {
  if (a.ok) sample(a.data);
  else if (a.status === 401) setConn('signed out');
  mount();
});
