// Dead letters: filters, the entries (selectable), an entry's detail, and the actions when the
// observer is not read-only: retry the selected, retry all matching at a rate with progress, redrive
// the selected to another recipient, purge all matching after a confirm that shows the count.
import { get, post, query } from '../lib/api.js';
import { ago, badge, clock, facts, h, int, replace, section, table, text, tile, unavailable } from '../lib/dom.js';

const FIELDS = ['status', 'reason', 'recipient', 'olderThanMs'];

export function mount(root, ctx) {
  const filter = {};
  for (const k of FIELDS) if (ctx.params.get(k)) filter[k] = ctx.params.get(k);
  const selected = new Set();
  let detailId = ctx.params.get('id');
  let job = null; // a retry at a rate: { jobId?, filter?, ratePerSecond?, total, leftOut?, cursor?, done, succeeded, failed }
  let rateValue = '100';
  let entries = [];

  const input = (k, placeholder) => h('input', { type: 'text', placeholder, value: filter[k] ?? '', 'aria-label': k, dataset: { filter: k } });
  const status = h('select', { 'aria-label': 'status', dataset: { filter: 'status' } }, ['', 'pending', 'parked'].map((s) => h('option', { value: s }, s === '' ? 'any status' : s)));
  status.value = filter.status ?? '';
  const reason = input('reason', 'reason');
  const recipient = input('recipient', 'recipient');
  const older = input('olderThanMs', 'older than (ms)');
  const apply = h('button', { type: 'button' }, 'apply');
  apply.addEventListener('click', () => {
    for (const [k, el] of [['status', status], ['reason', reason], ['recipient', recipient], ['olderThanMs', older]]) {
      if (el.value.trim() === '') delete filter[k];
      else filter[k] = el.value.trim();
    }
    selected.clear();
    ctx.remember({ ...Object.fromEntries(FIELDS.map((k) => [k, filter[k] ?? null])) });
    ctx.refresh();
  });

  const tiles = h('div', { class: 'tiles' });
  const actions = h('div', { class: 'toolbar actions' });
  const confirmBar = h('div', { class: 'confirm', hidden: true, id: 'confirm' });
  const progress = h('div', { id: 'progress' });
  const list = h('div');
  const detail = h('div');
  root.append(h('h1', null, 'Dead letters'), tiles, h('div', { class: 'toolbar' }, status, reason, recipient, older, apply), actions, confirmBar, progress, h('div', { class: 'cols wide-left' }, list, detail));

  const bodyFilter = () => {
    const f = { ...filter };
    if (f.olderThanMs !== undefined) f.olderThanMs = Number(f.olderThanMs);
    return f;
  };
  const done = (label, a) => {
    if (a.ok) ctx.notify(label(a.data), 'ok');
    else ctx.notify(`${a.error.message}`, 'bad');
    return ctx.refresh();
  };

  function renderProgress() {
    if (job === null) return replace(progress);
    const bar = h('progress', { max: String(Math.max(1, job.total)), value: String(job.total > 0 ? job.done : 1) });
    const finished = job.finished === true || job.done >= job.total;
    // entries left out: a job started here can be followed by one that takes the next ones (after its cursor, same filter and rate)
    const next = job.leftOut > 0 && job.cursor && job.filter !== undefined && ctx.canAct ? h('button', { type: 'button', id: 'retry-next' }, `retry the next ${int(Math.min(job.leftOut, 100_000))}`) : null;
    next?.addEventListener('click', () => startRetry(job.filter, job.ratePerSecond, job.cursor));
    replace(progress, h('div', { class: 'progress' }, h('span', null, `retry ${finished ? 'done' : 'running'}: ${int(job.done)} of ${int(job.total)}`), bar, h('span', { class: 'muted' }, `${int(job.succeeded)} ok · ${int(job.failed)} failed${job.leftOut > 0 ? ` · ${int(job.leftOut)} more matching left out (a job takes at most 100,000)` : ''}${job.error ? ` · ${job.error}` : ''}`), next));
  }

  /** Retries all matching `f` (at `ratePerSecond`: a job; after `cursor`: the entries an earlier job left out). */
  async function startRetry(f, ratePerSecond, cursor) {
    job = { total: 0, done: 0, succeeded: 0, failed: 0 };
    renderProgress();
    const a = await post('/api/dead-letters/retry', { filter: f, ...(ratePerSecond ? { ratePerSecond } : {}), ...(cursor ? { cursor } : {}) });
    if (a.ok && a.data.jobId !== undefined) {
      // a job at the rate asked: its progress comes as `job` frames (and is read again at each render)
      job = { jobId: a.data.jobId, filter: f, ratePerSecond, total: a.data.total ?? 0, leftOut: a.data.leftOut ?? 0, cursor: a.data.cursor ?? null, done: 0, succeeded: 0, failed: 0, finished: a.data.total === 0 };
      renderProgress();
      ctx.notify(`retrying ${int(job.total)} matching at ${int(ratePerSecond)}/s${job.leftOut > 0 ? `; ${int(job.leftOut)} more left out` : ''}`, 'ok');
      return ctx.refresh();
    }
    if (a.ok) job = { total: a.data.retried, done: a.data.retried, succeeded: a.data.succeeded, failed: a.data.retried - a.data.succeeded, finished: true };
    else job = null;
    renderProgress();
    await done((d) => `retried ${int(d.retried)} matching, ${int(d.succeeded)} delivered`, a);
  }

  function buildActions() {
    if (!ctx.canAct) {
      replace(actions, h('span', { class: 'muted' }, 'read-only: retry, redrive and purge need an observer started with readOnly: false'));
      return;
    }
    const retrySel = h('button', { type: 'button', id: 'retry-selected' }, `retry selected (${selected.size})`);
    retrySel.disabled = selected.size === 0;
    retrySel.addEventListener('click', async () => {
      const ids = [...selected];
      selected.clear();
      await done((d) => `retried ${int(d.retried ?? ids.length)}, ${int(d.succeeded)} delivered`, await post('/api/dead-letters/retry', { ids }));
    });
    const rate = h('input', { type: 'number', min: '1', value: rateValue, class: 'short', 'aria-label': 'rate per second', id: 'rate' });
    // the actions are built again at each render: the rate typed stays
    rate.addEventListener('input', () => (rateValue = rate.value));
    const retryAll = h('button', { type: 'button', id: 'retry-all' }, 'retry all matching');
    retryAll.addEventListener('click', () => startRetry(bodyFilter(), Number(rate.value) > 0 ? Number(rate.value) : undefined, undefined));
    const to = h('input', { type: 'text', placeholder: 'pid or name', class: 'short', 'aria-label': 'redrive to', id: 'redrive-to' });
    const redrive = h('button', { type: 'button', id: 'redrive' }, 'redrive selected to');
    redrive.disabled = selected.size === 0;
    redrive.addEventListener('click', async () => {
      if (to.value.trim() === '') return ctx.notify('give the recipient to redrive to', 'bad');
      const ids = [...selected];
      selected.clear();
      const a = await post('/api/dead-letters/redrive', { ids, to: to.value.trim() });
      if (a.ok && a.data.jobId !== undefined) {
        job = { jobId: a.data.jobId, total: a.data.total ?? ids.length, done: 0, succeeded: 0, failed: 0 };
        renderProgress();
        return ctx.refresh();
      }
      await done((d) => `redrove ${int(d.redriven ?? d.succeeded ?? ids.length)} to ${to.value.trim()}`, a.status === 404 ? { ok: false, error: { message: 'redrive is not available from this observer' } } : a);
    });
    const purge = h('button', { type: 'button', class: 'danger', id: 'purge' }, 'purge matching…');
    purge.addEventListener('click', async () => {
      // the server answers 409 with the count the filter matches now: that count is what the person confirms
      const a = await post('/api/dead-letters/purge', { filter: bodyFilter(), confirm: -1 });
      if (a.ok || a.status !== 409) return done((d) => `purged ${int(d.purged)}`, a);
      const count = a.error.count;
      const yes = h('button', { type: 'button', class: 'danger', id: 'purge-confirm' }, `purge ${int(count)}`);
      const no = h('button', { type: 'button', id: 'purge-cancel' }, 'cancel');
      replace(confirmBar, h('span', null, `Purge ${int(count)} ${count === 1 ? 'entry' : 'entries'} matching ${Object.keys(filter).length ? JSON.stringify(filter) : 'no filter (all)'}? This cannot be undone.`), yes, no);
      confirmBar.hidden = false;
      no.addEventListener('click', () => (confirmBar.hidden = true));
      yes.addEventListener('click', async () => {
        confirmBar.hidden = true;
        await done((d) => `purged ${int(d.purged)}`, await post('/api/dead-letters/purge', { filter: bodyFilter(), confirm: count }));
      });
    });
    replace(actions, retrySel, h('span', { class: 'sep' }), rate, h('span', { class: 'muted' }, '/s'), retryAll, h('span', { class: 'sep' }), to, redrive, h('span', { class: 'spacer' }), purge);
  }

  function renderDetail() {
    const d = entries.find((e) => e.id === detailId);
    if (d === undefined) return replace(detail, section('Entry', h('p', { class: 'muted' }, 'select an entry to see its detail')));
    replace(
      detail,
      section(
        'Entry',
        facts([
          ['id', h('code', null, d.id)],
          ['recipient', d.recipient],
          ['reason', d.reason],
          ['status', d.status],
          ['attempts', int(d.attempts)],
          ['first failed', `${clock(d.firstFailedAt)} (${ago(d.firstFailedAt)})`],
          ['last attempt', `${clock(d.lastAttemptAt)} (${ago(d.lastAttemptAt)})`],
          ['next retry', d.status === 'parked' ? 'parked' : `${clock(d.nextRetryAt)} (${ago(d.nextRetryAt)})`],
          ['last error', 'lastError' in d ? text(d.lastError) : h('span', { class: 'muted' }, 'hidden')],
          d.undecodable ? ['undecodable', text(d.undecodable)] : null,
        ]),
        'message' in d ? h('pre', { class: 'state' }, JSON.stringify({ message: d.message, metadata: d.metadata }, null, 2) ?? 'undefined') : h('p', { class: 'muted' }, 'payloads hidden: start the observer with allowPayloads: true to see them'),
      ),
    );
  }

  return {
    async frame(event, data) {
      if (event !== 'job' || job === null || (job.jobId !== undefined && data.id !== job.jobId && data.jobId !== job.jobId)) return;
      job = { ...job, total: data.total ?? job.total, done: data.done ?? job.done, succeeded: data.succeeded ?? job.succeeded, failed: data.failed ?? job.failed, finished: data.finished ?? job.finished, error: data.error ?? null };
      renderProgress();
    },
    async refresh() {
      const a = await get(`/api/dead-letters${query({ ...filter, limit: 200 })}`);
      buildActions();
      if (!a.ok) {
        replace(tiles, unavailable('Dead letter queue', a));
        replace(list);
        replace(detail);
        return;
      }
      if (job !== null && job.jobId !== undefined && !job.finished) {
        const j = await get(`/api/dead-letters/jobs/${encodeURIComponent(job.jobId)}`);
        if (j.ok) job = { ...job, ...j.data, jobId: job.jobId };
      }
      renderProgress();
      entries = a.data.entries ?? [];
      replace(tiles, tile('Pending', int(a.data.pending), 'waiting for a retry'), tile('Parked', int(a.data.parked), 'out of attempts', a.data.parked > 0 ? 'warn' : ''), tile('Listed', int(entries.length), a.data.cursor ? 'more match: narrow the filter' : 'all that match'));
      const columns = [
        { label: 'id', cell: (d) => h('a', { href: ctx.href({ id: d.id }), class: 'mono', dataset: { entry: d.id } }, d.id.length > 14 ? `${d.id.slice(0, 12)}…` : d.id), cls: 'w-id' },
        { label: 'recipient', cell: (d) => d.recipient, cls: 'ellipsis' },
        { label: 'reason', cell: (d) => d.reason, cls: 'w-kind ellipsis' },
        { label: 'status', cell: (d) => badge(d.status, d.status === 'parked' ? 'warn' : ''), cls: 'w-status' },
        { label: 'attempts', num: true, cell: (d) => int(d.attempts), cls: 'w-num' },
        { label: 'last try', cell: (d) => ago(d.lastAttemptAt), cls: 'w-age' },
      ];
      if (ctx.canAct) {
        columns.unshift({
          label: '',
          cell: (d) => {
            const box = h('input', { type: 'checkbox', checked: selected.has(d.id), 'aria-label': `select ${d.id}`, dataset: { select: d.id } });
            box.addEventListener('change', () => {
              if (box.checked) selected.add(d.id);
              else selected.delete(d.id);
              buildActions();
            });
            return box;
          },
          cls: 'w-check',
        });
      }
      replace(list, table(columns, entries, { empty: 'no dead letter matches', rowAttrs: (d) => ({ class: d.id === detailId ? 'selected' : null }) }));
      detailId = ctx.params.get('id');
      renderDetail();
    },
  };
}
