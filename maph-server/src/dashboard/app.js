// The maph dashboard: plain JavaScript against this server's own API, nothing
// fetched from anywhere else. Every figure on the page comes from GET /stats,
// which renders the same counters as GET /metrics.
'use strict';

const POLL_MS = 1000;
const CHART_POINTS = 60;
const PAGE_SIZE = 20;
const IMPORT_CHUNK = 500;

const $ = (id) => document.getElementById(id);

const state = {
  stats: null,
  selected: null,
  token: sessionStorage.getItem('maph-token'),
  lastSample: null,
  rates: [],
  page: { prefix: '', cursors: [''], index: 0 },
};

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// One API call. A write carries the token when the server wants one, asking
// for it first if the page has none; a 401 asks again once.
async function call(method, path, body, { write = false } = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = {};
    const needsToken = write && (attempt > 0 || (state.stats && state.stats.writes_need_token));
    if (needsToken) {
      if (!state.token && !(await askToken())) throw new HttpError(401, 'no token given: nothing was written');
      headers.Authorization = 'Bearer ' + state.token;
    }
    let payload = body;
    if (body !== undefined && typeof body !== 'string') {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    const response = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (response.status === 401 && write && attempt === 0) {
      forgetToken();
      continue;
    }
    if (!response.ok) throw new HttpError(response.status, (data && data.error) || text || response.statusText);
    return data;
  }
}

function storePath(name, rest = '') {
  return '/stores/' + encodeURIComponent(name) + rest;
}

function keyPath(name, key) {
  return storePath(name, '/keys/' + encodeURIComponent(key));
}

// ---- token ----------------------------------------------------------------

function askToken() {
  const dialog = $('token-dialog');
  $('token-input').value = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      const token = $('token-input').value.trim();
      if (dialog.returnValue === 'save' && token) {
        state.token = token;
        sessionStorage.setItem('maph-token', token);
        renderTokenState();
        resolve(true);
      } else {
        resolve(false);
      }
    }, { once: true });
    dialog.showModal();
    $('token-input').focus();
  });
}

function forgetToken() {
  state.token = null;
  sessionStorage.removeItem('maph-token');
  renderTokenState();
}

function renderTokenState() {
  const button = $('token-button');
  const needed = state.stats && state.stats.writes_need_token;
  button.classList.toggle('hidden', !needed);
  button.textContent = state.token ? 'token set' : 'set token';
}

// ---- live figures ---------------------------------------------------------

async function poll() {
  try {
    const stats = await call('GET', '/stats');
    state.stats = stats;
    $('error-banner').classList.add('hidden');
    renderStatus(stats);
    renderStores(stats.stores);
    sampleRates(stats.stores);
    renderTokenState();
  } catch (e) {
    showError('cannot reach the server: ' + e.message);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function showError(message) {
  const banner = $('error-banner');
  banner.textContent = message;
  banner.classList.remove('hidden');
}

function renderStatus(stats) {
  const minutes = Math.floor(stats.uptime_seconds / 60);
  const auth = stats.writes_need_token ? 'writes need a token' : 'writes open';
  $('status-line').textContent =
    `${stats.stores.length} stores · ${stats.requests} requests · up ${minutes} min · ${auth}`;
}

function micros(value) {
  if (value === null || value === undefined) return '–';
  return value < 1000 ? `${value} µs` : `${(value / 1000).toFixed(1)} ms`;
}

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderStores(stores) {
  const body = $('stores-table').tBodies[0];
  body.replaceChildren();
  $('no-stores').classList.toggle('hidden', stores.length > 0);
  for (const s of stores) {
    const row = body.insertRow();
    row.dataset.store = s.name;
    row.classList.toggle('selected', s.name === state.selected);
    const name = cell(row, s.name, 'name');
    if (s.rebuilding) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = 'rebuilding';
      name.append(badge);
    }
    cell(row, s.size.toLocaleString('en'), 'keys');
    cell(row, s.slots.toLocaleString('en'), 'slots');
    const load = cell(row, '', 'load-cell');
    const bar = document.createElement('span');
    bar.className = 'load';
    const fill = document.createElement('span');
    fill.style.width = `${Math.min(100, s.load_factor * 100)}%`;
    bar.append(fill);
    load.append(bar, `${(s.load_factor * 100).toFixed(1)}%`);
    cell(row, s.strategy, 'strategy');
    cell(row, s.generation.toLocaleString('en'), 'generation');
    cell(row, s.writer.commits.toLocaleString('en'), 'commits');
    cell(row, `${s.writer.lock_acquisitions} / ${s.writer.lock_contended}`, 'lock');
    cell(row, `${micros(s.writer.lock_wait_p50_us)} / ${micros(s.writer.lock_wait_p99_us)}`, 'wait');
    cell(row, String(s.writer.growths), 'growths');
    row.addEventListener('click', () => select(s.name));
  }
  const current = stores.find((s) => s.name === state.selected);
  if (current) {
    $('store-summary').textContent =
      `${current.size} keys in ${current.slots} slots of ${current.slot_size} bytes, ` +
      `${current.writer.optimizations} optimizes, ${current.writer.growths} growths`;
  }
}

// Operations per second from the change of the read and write counters
// between two polls.
function sampleRates(stores) {
  const now = performance.now();
  const reads = stores.reduce((sum, s) => sum + s.reads, 0);
  const writes = stores.reduce((sum, s) => sum + s.writer.writes, 0);
  const last = state.lastSample;
  state.lastSample = { now, reads, writes };
  if (!last) return;
  const seconds = (now - last.now) / 1000;
  if (seconds <= 0) return;
  state.rates.push({
    reads: Math.max(0, reads - last.reads) / seconds,
    writes: Math.max(0, writes - last.writes) / seconds,
  });
  while (state.rates.length > CHART_POINTS) state.rates.shift();
  renderChart();
}

function renderChart() {
  const rates = state.rates;
  const top = Math.max(1, ...rates.map((r) => Math.max(r.reads, r.writes)));
  const line = (pick) => rates
    .map((r, i) => `${(i * 300) / (CHART_POINTS - 1)},${(60 - (pick(r) / top) * 56).toFixed(1)}`)
    .join(' ');
  $('ops-reads').setAttribute('points', line((r) => r.reads));
  $('ops-writes').setAttribute('points', line((r) => r.writes));
  const latest = rates[rates.length - 1];
  const total = latest ? Math.round(latest.reads + latest.writes) : 0;
  $('ops-now').textContent = `${total.toLocaleString('en')} ops/s`;
  $('ops-chart').dataset.peak = String(Math.round(top));
}

// ---- one store ------------------------------------------------------------

function select(name) {
  state.selected = name;
  $('store-card').classList.remove('hidden');
  $('selected-store').textContent = name;
  $('key-result').textContent = '';
  $('import-status').textContent = '';
  $('optimize-status').textContent = '';
  for (const row of $('stores-table').tBodies[0].rows) {
    row.classList.toggle('selected', row.dataset.store === name);
  }
  state.page = { prefix: $('prefix-input').value, cursors: [''], index: 0 };
  loadPage();
}

function say(id, text, isError = false) {
  const p = $(id);
  p.textContent = text;
  p.classList.toggle('error', isError);
}

async function getKey() {
  const key = $('key-input').value;
  if (!key) return say('key-result', 'type a key first', true);
  try {
    const data = await call('GET', keyPath(state.selected, key));
    if (data.value === null && data.value_base64 !== undefined) {
      $('value-input').value = '';
      say('key-result', `"${key}" holds binary data (base64): ${data.value_base64}`);
    } else {
      $('value-input').value = data.value;
      say('key-result', `"${key}": ${new TextEncoder().encode(data.value).length} bytes`);
    }
  } catch (e) {
    say('key-result', e.status === 404 ? `"${key}" is not in the store` : e.message, true);
  }
}

async function setKey() {
  const key = $('key-input').value;
  if (!key) return say('key-result', 'type a key first', true);
  try {
    const data = await call('PUT', keyPath(state.selected, key), $('value-input').value, { write: true });
    say('key-result', `"${key}": ${data.message.toLowerCase()}`);
    loadPage();
  } catch (e) {
    say('key-result', e.message, true);
  }
}

async function deleteKey() {
  const key = $('key-input').value;
  if (!key) return say('key-result', 'type a key first', true);
  try {
    await call('DELETE', keyPath(state.selected, key), undefined, { write: true });
    say('key-result', `"${key}" deleted`);
    loadPage();
  } catch (e) {
    say('key-result', e.status === 404 ? `"${key}" was not in the store` : e.message, true);
  }
}

// ---- key browser ----------------------------------------------------------

async function loadPage() {
  const { prefix, cursors, index } = state.page;
  const store = state.selected;
  const query = new URLSearchParams({ prefix, cursor: cursors[index], limit: String(PAGE_SIZE) });
  try {
    const page = await call('GET', storePath(store, '/keys?' + query));
    if (store !== state.selected) return;
    const body = $('keys-list');
    body.replaceChildren();
    for (const item of page.keys) {
      const row = body.insertRow();
      const key = item.key !== null ? item.key : `(base64) ${item.key_base64}`;
      const keyCell = cell(row, key, 'key');
      if (item.key !== null) {
        keyCell.addEventListener('click', () => {
          $('key-input').value = item.key;
          getKey();
        });
      }
      cell(row, String(item.value_bytes));
      cell(row, item.preview);
    }
    state.page.cursors[index + 1] = page.next_cursor;
    $('prev-page').disabled = index === 0;
    $('next-page').disabled = !page.next_cursor;
    const shown = page.keys.length;
    $('page-info').textContent = shown
      ? `page ${index + 1}: ${shown} keys${prefix ? ` starting with "${prefix}"` : ''}`
      : 'no keys';
  } catch (e) {
    $('page-info').textContent = e.message;
  }
}

function turnPage(step) {
  state.page.index = Math.max(0, state.page.index + step);
  loadPage();
}

// ---- batch import ---------------------------------------------------------

// JSON lines of {"key", "value"} or maph v3's {"input", "output"}; a value that
// is not a string is stored as its JSON text by the server.
function parseLines(text) {
  const pairs = [];
  const bad = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    try {
      const item = JSON.parse(line);
      const key = item.key !== undefined ? item.key : item.input;
      const value = item.value !== undefined ? item.value : item.output;
      if (typeof key !== 'string' || key === '' || value === undefined) throw new Error('no key and value');
      pairs.push({ key, value });
    } catch (e) {
      bad.push(i + 1);
    }
  });
  return { pairs, bad };
}

async function importLines() {
  const { pairs, bad } = parseLines($('import-text').value);
  const progress = $('import-progress');
  if (bad.length) {
    return say('import-status', `lines ${bad.slice(0, 5).join(', ')}${bad.length > 5 ? '…' : ''} are not ` +
      'JSON objects with a key and a value; nothing was imported', true);
  }
  if (!pairs.length) return say('import-status', 'nothing to import', true);
  const limits = (state.stats && state.stats.limits) || {};
  const chunk = Math.max(1, Math.min(IMPORT_CHUNK, limits.max_batch || IMPORT_CHUNK));
  const maxBytes = Math.max(1024, Math.floor((limits.max_body_bytes || 1 << 20) / 2));
  const button = $('import-button');
  button.disabled = true;
  progress.max = pairs.length;
  progress.value = 0;
  let done = 0;
  let created = 0;
  try {
    while (done < pairs.length) {
      let end = Math.min(pairs.length, done + chunk);
      // Keep each request well under the server's body limit.
      while (end - done > 1 && JSON.stringify(pairs.slice(done, end)).length > maxBytes) {
        end = done + Math.ceil((end - done) / 2);
      }
      const result = await call('POST', storePath(state.selected, '/batch'),
        { operation: 'mset', pairs: pairs.slice(done, end) }, { write: true });
      done = end;
      created += result.created;
      progress.value = done;
      say('import-status', `imported ${done} of ${pairs.length}…`);
    }
    say('import-status', `imported ${done} keys (${created} new, ${done - created} updated)`);
    $('import-text').value = '';
    loadPage();
  } catch (e) {
    say('import-status', `stopped after ${done} of ${pairs.length}: ${e.message}`, true);
  } finally {
    button.disabled = false;
  }
}

// ---- optimize -------------------------------------------------------------

function confirmOptimize() {
  const store = state.selected;
  const dialog = $('confirm-dialog');
  $('confirm-text').textContent =
    `Optimize "${store}"? It is rebuilt into a new file sized for its keys and swapped in; ` +
    'writes go on meanwhile, and readers in other processes reopen the new file.';
  dialog.addEventListener('close', async () => {
    if (dialog.returnValue !== 'yes') {
      say('optimize-status', 'optimize cancelled');
      return;
    }
    say('optimize-status', 'optimizing…');
    try {
      const r = await call('POST', storePath(store, '/optimize'), undefined, { write: true });
      say('optimize-status', `optimized: ${r.keys} keys, ${r.slots_before} → ${r.slots_after} slots`);
    } catch (e) {
      say('optimize-status', e.message, true);
    }
  }, { once: true });
  dialog.showModal();
}

// ---- create ---------------------------------------------------------------

async function createStore(event) {
  event.preventDefault();
  const name = $('create-name').value.trim();
  const slots = $('create-slots').value.trim();
  const query = slots ? '?' + new URLSearchParams({ slots }) : '';
  try {
    await call('POST', storePath(name, query), undefined, { write: true });
    $('create-name').value = '';
    $('create-slots').value = '';
    $('error-banner').classList.add('hidden');
    select(name);
  } catch (e) {
    showError(e.message);
  }
}

// ---- wiring ---------------------------------------------------------------

document.addEventListener('DOMContentLoaded', () => {
  $('create-form').addEventListener('submit', createStore);
  $('get-button').addEventListener('click', getKey);
  $('set-button').addEventListener('click', setKey);
  $('delete-button').addEventListener('click', deleteKey);
  $('key-form').addEventListener('submit', (e) => { e.preventDefault(); getKey(); });
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.page = { prefix: $('prefix-input').value, cursors: [''], index: 0 };
    loadPage();
  });
  $('prev-page').addEventListener('click', () => turnPage(-1));
  $('next-page').addEventListener('click', () => turnPage(1));
  $('import-button').addEventListener('click', importLines);
  $('optimize-button').addEventListener('click', confirmOptimize);
  $('token-button').addEventListener('click', () => askToken());
  poll();
});
