// Operator console for the platform's job queues. Plain DOM, no library, nothing from the
// network but this service's own JSON calls. Job data is only ever written with textContent,
// never parsed as HTML. State-changing calls are POSTs carrying the page's CSRF token.
'use strict';

const API = '/admin/dashboard/api';
const REFRESH_MS = 5000;
const STALE_MS = 15000;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
let selected = null;          // queue whose jobs are shown
let lastOk = 0;               // time of the last successful refresh
let lastError = null;
let jobRunsQuery = null;      // current job-runs filter
let jobRunsCursor = null;     // cursor of the page shown (null: the newest)
let jobRunsNext = null;       // next_cursor of the page shown

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k.startsWith('data-')) e.setAttribute(k, v); else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)));
  return e;
}

function age(ms) {
  if (!ms) return '—';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.round(s / 60) + ' min';
  if (s < 86400) return Math.round(s / 3600) + ' h';
  return Math.round(s / 86400) + ' d';
}

async function call(method, path) {
  const opts = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin' };
  if (method === 'POST') opts.headers['X-CSRF-Token'] = csrf;
  const res = await fetch(API + path, opts);
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    const msg = body && body.error ? body.error.message + ' (' + body.error.code + ')' : 'HTTP ' + res.status;
    throw new Error(msg);
  }
  return body;
}

// One SVG chart: completed (bars up) and dead-lettered (bars down) per minute, last hour.
function chart(points) {
  const NS = 'http://www.w3.org/2000/svg';
  const w = 180, h = 40, mid = 28, n = points.length || 1, bw = w / n;
  const max = Math.max(1, ...points.map(p => p.completed), ...points.map(p => p.failed));
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  svg.setAttribute('class', 'chart');
  const total = points.reduce((a, p) => [a[0] + p.completed, a[1] + p.failed], [0, 0]);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `last hour: ${total[0]} completed, ${total[1]} failed`);
  const title = document.createElementNS(NS, 'title');
  title.textContent = svg.getAttribute('aria-label');
  svg.append(title);
  points.forEach((p, i) => {
    if (p.completed > 0) {
      const r = document.createElementNS(NS, 'rect');
      const ph = Math.max(1, (mid - 2) * p.completed / max);
      r.setAttribute('x', (i * bw).toFixed(2)); r.setAttribute('width', Math.max(1, bw - 0.5).toFixed(2));
      r.setAttribute('y', (mid - ph).toFixed(2)); r.setAttribute('height', ph.toFixed(2));
      r.setAttribute('class', 'ok'); r.setAttribute('data-minute', String(p.minute));
      r.setAttribute('data-completed', String(p.completed));
      svg.append(r);
    }
    if (p.failed > 0) {
      const r = document.createElementNS(NS, 'rect');
      const ph = Math.max(1, (h - mid - 1) * p.failed / max);
      r.setAttribute('x', (i * bw).toFixed(2)); r.setAttribute('width', Math.max(1, bw - 0.5).toFixed(2));
      r.setAttribute('y', String(mid)); r.setAttribute('height', ph.toFixed(2));
      r.setAttribute('class', 'bad'); r.setAttribute('data-failed', String(p.failed));
      svg.append(r);
    }
  });
  const axis = document.createElementNS(NS, 'line');
  axis.setAttribute('x1', '0'); axis.setAttribute('x2', String(w));
  axis.setAttribute('y1', String(mid)); axis.setAttribute('y2', String(mid));
  axis.setAttribute('class', 'axis');
  svg.append(axis);
  return svg;
}

function renderQueues(data) {
  const tbody = document.querySelector('#queues tbody');
  const rows = data.queues.map(q => {
    const btn = el('button', { type: 'button', class: 'link' }, 'Show');
    btn.addEventListener('click', () => { selected = q.name; refreshDetail(); });
    return el('tr', { 'data-queue': q.name },
      el('th', { scope: 'row' }, q.name),
      el('td', { class: 'num', 'data-count': 'waiting' }, q.waiting),
      el('td', { class: 'num', 'data-count': 'active' }, q.active),
      el('td', { class: 'num', 'data-count': 'delayed' }, q.delayed),
      el('td', { class: 'num', 'data-count': 'completed' }, q.completed),
      el('td', { class: 'num', 'data-count': 'failed' }, q.failed),
      el('td', { class: 'num', 'data-count': 'dead' }, q.dead),
      el('td', {}, chart(q.chart || [])),
      el('td', {}, btn));
  });
  tbody.replaceChildren(...rows);
  if (!rows.length) tbody.append(el('tr', {}, el('td', { colSpan: 9 }, 'No queue has run yet.')));
}

async function act(path, question) {
  if (!window.confirm(question)) return;
  try {
    const r = await call('POST', path);
    flash(`${r.queue}: ${r.moved} job(s) moved; now ${r.counts.waiting} waiting, ${r.counts.dead} dead`);
    await refresh();
  } catch (e) {
    flash('Action failed: ' + e.message, true);
  }
}

function flash(text, bad) {
  const f = document.getElementById('freshness');
  f.textContent = text;
  f.className = bad ? 'bad' : 'ok';
}

async function refreshDetail() {
  if (!selected) return;
  const q = encodeURIComponent(selected);
  const data = await call('GET', `/queues/${q}/jobs`);
  const sec = document.getElementById('detail');
  sec.hidden = false;
  document.getElementById('h-detail').textContent = 'Queue ' + selected;
  const dead = data.dead.map(j => {
    const retry = el('button', { type: 'button' }, 'Retry');
    retry.addEventListener('click', () => act(`/queues/${q}/dead/${encodeURIComponent(j.entry_id)}/retry`,
      `Retry dead job ${j.id} of ${selected}?`));
    const remove = el('button', { type: 'button', class: 'danger' }, 'Remove');
    remove.addEventListener('click', () => act(`/queues/${q}/dead/${encodeURIComponent(j.entry_id)}/remove`,
      `Remove dead job ${j.id} of ${selected} for good?`));
    return el('tr', { 'data-job': j.id }, el('td', { class: 'mono' }, j.id), el('td', { class: 'num' }, j.attempts),
      el('td', {}, j.last_error), el('td', {}, age(j.failed_at)), el('td', { class: 'actions' }, retry, remove));
  });
  const tb = document.querySelector('#dead tbody');
  tb.replaceChildren(...dead);
  if (!dead.length) tb.append(el('tr', {}, el('td', { colSpan: 5 }, 'No dead job.')));
  const recent = data.recent.map(j => el('tr', { 'data-job': j.id }, el('td', { class: 'mono' }, j.id),
    el('td', {}, j.state), el('td', { class: 'num' }, `${j.attempts}/${j.max_attempts}`),
    el('td', {}, j.last_error || ''), el('td', {}, age(j.enqueued_at))));
  const rb = document.querySelector('#recent tbody');
  rb.replaceChildren(...recent);
  if (!recent.length) rb.append(el('tr', {}, el('td', { colSpan: 5 }, 'Nothing waiting or running.')));
}

async function refreshRuns() {
  const data = await call('GET', '/runs');
  const cur = data.current;
  const p = document.getElementById('current-run');
  if (!cur) p.textContent = 'No import has run yet.';
  else {
    const prog = cur.progress ? ` — ${cur.progress.batches_outstanding} batch(es) outstanding` : '';
    p.textContent = `Latest run ${cur.id}: ${cur.status}, ${cur.received} records received, ` +
      `${cur.records_per_s == null ? '—' : Math.round(cur.records_per_s)} records/s${prog}`;
  }
  const runs = (data.history && data.history.data) || [];
  document.querySelector('#runs tbody').replaceChildren(...runs.map(r => el('tr', {},
    el('td', { class: 'mono' }, r.id), el('td', {}, r.status), el('td', {}, r.trigger),
    el('td', {}, r.started_at || '—'), el('td', { class: 'num' }, r.received),
    el('td', { class: 'num' }, r.records_per_s == null ? '—' : Math.round(r.records_per_s)))));
}

async function refreshJobRuns() {
  const params = new URLSearchParams(jobRunsQuery || '');
  params.set('limit', '20');
  if (jobRunsCursor) params.set('cursor', jobRunsCursor);
  for (const k of ['from', 'to']) {
    const v = params.get(k);
    if (v) params.set(k, new Date(v).toISOString()); else params.delete(k);
  }
  for (const k of ['queue', 'status']) if (!params.get(k)) params.delete(k);
  const data = await call('GET', '/job-runs?' + params.toString());
  const rows = (data.data || []).map(j => el('tr', {}, el('td', {}, j.queue), el('td', { class: 'mono' }, j.job_id),
    el('td', {}, j.status), el('td', { class: 'num' }, j.attempt), el('td', {}, j.started_at || '—'),
    el('td', { class: 'num' }, j.duration_ms == null ? '—' : j.duration_ms + ' ms'), el('td', {}, j.error || '')));
  document.querySelector('#jobruns tbody').replaceChildren(...rows);
  jobRunsNext = data.has_more ? data.next_cursor : null;
  document.getElementById('jobruns-more').hidden = !jobRunsNext;
}

async function refresh() {
  try {
    renderQueues(await call('GET', '/overview'));
    await refreshDetail();
    await refreshRuns();
    lastOk = Date.now();
    lastError = null;
  } catch (e) {
    lastError = e.message;
  }
  showFreshness();
}

function showFreshness() {
  const f = document.getElementById('freshness');
  if (!lastOk) { f.textContent = lastError ? 'Backend unreachable: ' + lastError : 'loading…'; f.className = 'bad'; return; }
  const stale = Date.now() - lastOk > STALE_MS;
  f.textContent = (lastError ? 'Backend unreachable (' + lastError + '); ' : '') +
    (stale ? 'data is stale, last updated ' : 'updated ') + age(lastOk) + ' ago';
  f.className = lastError || stale ? 'bad' : 'ok';
  f.dataset.state = lastError ? 'unreachable' : stale ? 'stale' : 'fresh';
}

document.getElementById('retry-all').addEventListener('click', () => {
  if (selected) act(`/queues/${encodeURIComponent(selected)}/dead/retry-all`, `Retry every dead job of ${selected}?`);
});
document.getElementById('jobruns-filter').addEventListener('submit', ev => {
  ev.preventDefault();
  jobRunsQuery = new URLSearchParams(new FormData(ev.target)).toString();
  jobRunsCursor = null;
  refreshJobRuns().catch(e => flash('Job runs: ' + e.message, true));
});
document.getElementById('jobruns-more').addEventListener('click', () => {
  jobRunsCursor = jobRunsNext;
  refreshJobRuns().catch(e => flash('Job runs: ' + e.message, true));
});

refresh();
refreshJobRuns().catch(e => flash('Job runs: ' + e.message, true));
setInterval(refresh, REFRESH_MS);
setInterval(showFreshness, 1000);
