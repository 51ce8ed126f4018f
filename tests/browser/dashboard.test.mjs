// Browser tests of the operator dashboard (issue 18) in a real headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core; no downloaded browser, no internet).
//
// Runs against the test stack (scripts/test-all exports TEST_BASE_URL, TEST_RUN_DIR,
// TEST_REDIS_PORT, TEST_PORT_BASE). Prints one line per test and, last,
// "browser: N passed, M failed". Screenshots go to $TEST_RUN_DIR/artifacts/.
import { chromium } from 'playwright-core';
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const BASE = (process.env.TEST_BASE_URL || 'http://127.0.0.1:28080').replace(/\/$/, '');
const RUN_DIR = process.env.TEST_RUN_DIR || path.resolve('.run/test');
const REDIS_PORT = process.env.TEST_REDIS_PORT || '28020';
const PORT_BASE = Number(process.env.TEST_PORT_BASE || '28000');
const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const ARTIFACTS = path.join(RUN_DIR, 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TEST_QUEUE = 'dashboard-test';

const read = f => fs.readFileSync(path.join(RUN_DIR, 'secrets', f), 'utf8').trim();
const OPERATOR = { username: 'operator', password: read('dashboard.password') };
const basic = 'Basic ' + Buffer.from(`${OPERATOR.username}:${OPERATOR.password}`).toString('base64');

function redis(...args) {
  const pw = fs.existsSync(path.join(RUN_DIR, 'secrets', 'redis.password')) ? read('redis.password') : null;
  const a = ['-p', REDIS_PORT, '--no-auth-warning'];
  if (pw) a.push('-a', pw);
  return execFileSync('redis-cli', [...a, ...args], { encoding: 'utf8' }).trim();
}

function assert(cond, msg) { if (!cond) throw new Error(msg); }

async function adminToken() {
  const env = fs.readFileSync(path.join(RUN_DIR, 'env', 'customers-1.env'), 'utf8');
  const name = (env.match(/^ADMIN_USER_NAME=(.*)$/m) || [])[1] || 'admin';
  const res = await fetch(BASE + '/api/auth/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ login: name, password: read('admin_password') }),
  });
  assert(res.status === 200, 'admin login: ' + res.status);
  return (await res.json()).access_token;
}

// A dead job in the test queue (a queue whose workers run elsewhere: nothing consumes it here).
function makeDead(id, error) {
  const now = String(Date.now());
  redis('SADD', 'q:known', TEST_QUEUE);
  return redis('XADD', `q:{${TEST_QUEUE}}:dead`, '*', 'j', id, 'a', '3', 'm', '3', 't', now, 'f', now, 'e', error, 'p', 'x');
}

const tests = [];
const test = (name, fn) => tests.push({ name, fn });
let browser;

async function newPage(opts = {}) {
  const context = await browser.newContext({ httpCredentials: OPERATOR, viewport: { width: 1280, height: 800 }, ...opts });
  const page = await context.newPage();
  const errors = [];
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', e => errors.push(String(e)));
  return { context, page, errors };
}

test('off: the page and its files are 404 on an instance started without the dashboard', async () => {
  const env = { PATH: process.env.PATH };
  for (const line of fs.readFileSync(path.join(RUN_DIR, 'env', 'sync-1.env'), 'utf8').split('\n')) {
    const m = line.match(/^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/);
    if (m) env[m[1]] = m[2];
  }
  const port = PORT_BASE + 399;
  Object.assign(env, { ENABLE_QUEUE_DASHBOARD: 'false', HTTP_PORT: String(port), SERVICE_INSTANCE: 'sync-off', SYNC_WORKERS: '0' });
  const bin = path.join(process.env.BUILD_DIR || path.join(REPO, 'build'), 'sync-service');
  const child = spawn(bin, [], { cwd: REPO, env, stdio: 'ignore' });
  try {
    let up = false;
    for (let i = 0; i < 100 && !up; i++) {
      try { up = (await fetch(`http://127.0.0.1:${port}/health/live`)).ok; } catch { await new Promise(r => setTimeout(r, 100)); }
    }
    assert(up, 'the dashboard-less instance did not start');
    for (const p of ['/admin/dashboard', '/admin/dashboard/assets/dashboard.js', '/admin/dashboard/api/overview']) {
      const r = await fetch(`http://127.0.0.1:${port}${p}`, { headers: { Authorization: basic } });
      assert(r.status === 404, `${p}: ${r.status}, want 404`);
      assert((await r.json()).error.code === 'not_found', `${p}: not the 404 envelope`);
    }
  } finally {
    child.kill('SIGTERM');
    await new Promise(r => child.on('exit', r));
  }
});

test('on: 401 with WWW-Authenticate without credentials, wrong ones too', async () => {
  for (const auth of [null, 'Basic ' + Buffer.from('operator:wrong-password').toString('base64')]) {
    const r = await fetch(BASE + '/admin/dashboard', { headers: auth ? { Authorization: auth } : {} });
    assert(r.status === 401, 'status ' + r.status);
    assert(/^Basic realm=/.test(r.headers.get('www-authenticate') || ''), 'no WWW-Authenticate');
  }
  const ip = createHash('sha256').update('127.0.0.1').digest('hex').slice(0, 32);
  redis('DEL', `dash:fail:${ip}`);
});

test('a browser asking /admin/queues for HTML is sent to the page; API clients keep JSON', async () => {
  const r = await fetch(BASE + '/admin/queues', { headers: { Accept: 'text/html' }, redirect: 'manual' });
  assert(r.status === 303 && r.headers.get('location') === '/admin/dashboard', `status ${r.status} ${r.headers.get('location')}`);
  const j = await fetch(BASE + '/admin/queues', { headers: { Authorization: 'Bearer ' + await adminToken() } });
  assert(j.status === 200 && (await j.json()).queues, 'JSON for API clients');
});

test('the page loads without console errors, its counts equal the JSON API, the chart shows completions', async () => {
  // real completions in the last minutes: a legacy import
  const token = await adminToken();
  const trig = await fetch(BASE + '/api/sync', { method: 'POST', headers: { Authorization: 'Bearer ' + token } });
  assert(trig.status === 202 || trig.status === 200, 'trigger ' + trig.status);
  for (let i = 0; i < 120; i++) {
    const s = await (await fetch(BASE + '/api/sync/status', { headers: { Authorization: 'Bearer ' + token } })).json();
    if (s.status === 'COMPLETED') break;
    assert(s.status !== 'FAILED', 'the import failed');
    await new Promise(r => setTimeout(r, 500));
  }
  makeDead('chart-seed-' + Date.now(), 'seed');
  const { context, page, errors } = await newPage();
  const resp = await page.goto(BASE + '/admin/dashboard');
  assert(resp.status() === 200, 'page status ' + resp.status());
  const csp = resp.headers()['content-security-policy'] || '';
  assert(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline') && csp.includes("frame-ancestors 'none'"), 'CSP: ' + csp);
  await page.waitForSelector('#queues tbody tr[data-queue="user-sync-batch"]');
  const api = (await (await fetch(BASE + '/admin/queues', { headers: { Authorization: 'Bearer ' + token } })).json()).queues;
  for (const name of ['user-sync', 'user-sync-batch', TEST_QUEUE]) {
    for (const k of ['waiting', 'active', 'delayed', 'completed', 'failed', 'dead']) {
      const cell = await page.textContent(`#queues tr[data-queue="${name}"] td[data-count="${k}"]`);
      assert(Number(cell) === api[name][k], `${name}.${k}: page ${cell}, API ${api[name][k]}`);
    }
  }
  const done = await page.$$eval('#queues tr[data-queue="user-sync-batch"] svg rect.ok',
    rs => rs.reduce((a, r) => a + Number(r.getAttribute('data-completed')), 0));
  assert(done > 0, 'the chart shows no completed batch in the last hour');
  assert(errors.length === 0, 'console errors: ' + errors.join(' | '));
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard.png'), fullPage: true });
  await context.close();
});

test('a dead job is retried from the page and reaches waiting; another is removed', async () => {
  const retryId = 'dead-retry-' + Date.now(), removeId = 'dead-remove-' + Date.now();
  redis('DEL', `q:{${TEST_QUEUE}}:stream`);
  makeDead(retryId, 'boom <b>not html</b>');
  makeDead(removeId, 'bad');
  const { context, page, errors } = await newPage();
  page.on('dialog', d => d.accept());
  await page.goto(BASE + '/admin/dashboard');
  await page.click(`#queues tr[data-queue="${TEST_QUEUE}"] button`);
  const row = `#dead tr[data-job="${retryId}"]`;
  await page.waitForSelector(row);
  // job data is text, never HTML
  assert((await page.textContent(row)).includes('<b>not html</b>'), 'the error text was not shown literally');
  assert(await page.$(`${row} b`) === null, 'job data was rendered as HTML');
  await page.click(`${row} button:has-text("Retry")`);
  await page.waitForSelector(row, { state: 'detached' });
  await page.waitForSelector(`#recent tr[data-job="${retryId}"]`);
  assert((await page.textContent(`#recent tr[data-job="${retryId}"]`)).includes('waiting'), 'retried job not waiting');
  assert(redis('XLEN', `q:{${TEST_QUEUE}}:stream`) === '1', 'the retried job is not in the stream');
  const rrow = `#dead tr[data-job="${removeId}"]`;
  await page.click(`${rrow} button:has-text("Remove")`);
  await page.waitForSelector(rrow, { state: 'detached' });
  const dead = redis('XRANGE', `q:{${TEST_QUEUE}}:dead`, '-', '+');
  assert(!dead.includes(removeId) && !dead.includes(retryId), 'dead stream still holds them: ' + dead);
  // buttons are real buttons: reachable with the keyboard
  const focusable = await page.$$eval('button', bs => bs.every(b => b.tabIndex >= 0));
  assert(focusable, 'a button is not keyboard reachable');
  assert(errors.length === 0, 'console errors: ' + errors.join(' | '));
  await context.close();
});

test('a cross-site or token-less POST is refused', async () => {
  const entry = makeDead('csrf-' + Date.now(), 'x');
  const { context, page } = await newPage();
  await page.goto(BASE + '/admin/dashboard');
  const token = await page.getAttribute('meta[name="csrf-token"]', 'content');
  const url = `${BASE}/admin/dashboard/api/queues/${TEST_QUEUE}/dead/${entry}/retry`;
  const cases = [
    { 'X-CSRF-Token': token, Origin: 'http://evil.example', 'Sec-Fetch-Site': 'cross-site' },
    { 'X-CSRF-Token': token, 'Sec-Fetch-Site': 'cross-site' },
    { Origin: BASE },
    { 'X-CSRF-Token': '0'.repeat(64), Origin: BASE },
  ];
  for (const headers of cases) {
    const r = await page.request.post(url, { headers });
    assert(r.status() === 403, `${JSON.stringify(headers)}: ${r.status()}`);
    assert((await r.json()).error.code === 'csrf_refused', 'not csrf_refused');
  }
  // from a page of another origin, the browser itself (no credentials reach us)
  const ok = await page.request.post(url, { headers: { 'X-CSRF-Token': token, Origin: BASE, 'Sec-Fetch-Site': 'same-origin' } });
  assert(ok.status() === 200, 'same-origin with the token: ' + ok.status());
  await context.close();
});

test('readable at a 390 px phone width: no page-wide horizontal scroll', async () => {
  const { context, page, errors } = await newPage({ viewport: { width: 390, height: 844 } });
  await page.goto(BASE + '/admin/dashboard');
  await page.waitForSelector('#queues tbody tr');
  const [sw, w] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert(sw <= w, `page is ${sw}px wide in a ${w}px viewport`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true });
  assert(errors.length === 0, 'console errors: ' + errors.join(' | '));
  await context.close();
});

test('the page says when the backend is unreachable', async () => {
  const { context, page } = await newPage();
  await page.goto(BASE + '/admin/dashboard');
  await page.waitForSelector('#freshness[data-state="fresh"]');
  await page.route('**/admin/dashboard/api/**', r => r.abort());
  await page.waitForSelector('#freshness[data-state="unreachable"]', { timeout: 15000 });
  await context.close();
});

test('more than 10 failed logins from one address in a minute: 429 with Retry-After', async () => {
  const ip = createHash('sha256').update('127.0.0.1').digest('hex').slice(0, 32);
  redis('DEL', `dash:fail:${ip}`);
  const bad = 'Basic ' + Buffer.from('operator:nope-nope-nope').toString('base64');
  const seen = [];
  for (let i = 0; i < 12; i++) seen.push((await fetch(BASE + '/admin/dashboard', { headers: { Authorization: bad } })).status);
  assert(seen.slice(0, 10).every(s => s === 401), 'first ten: ' + seen);
  const r = await fetch(BASE + '/admin/dashboard', { headers: { Authorization: basic } });
  assert(r.status === 429 && Number(r.headers.get('retry-after')) >= 1, `locked out: ${r.status} ${r.headers.get('retry-after')}`);
  redis('DEL', `dash:fail:${ip}`);
});

// ---- runner ---------------------------------------------------------------------------------
let passed = 0, failed = 0;
try {
  browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
} catch (e) {
  console.log('FAIL launch chromium: ' + e.message);
  console.log(`browser: 0 passed, ${tests.length} failed`);
  process.exit(1);
}
for (const t of tests) {
  const t0 = Date.now();
  try {
    await Promise.race([t.fn(), new Promise((_, rej) => setTimeout(() => rej(new Error('timeout')), 120000))]);
    passed++;
    console.log(`ok   ${t.name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${t.name}: ${e.message}`);
  }
}
await browser.close();
redis('SREM', 'q:known', TEST_QUEUE);
redis('DEL', `q:{${TEST_QUEUE}}:stream`, `q:{${TEST_QUEUE}}:dead`);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
