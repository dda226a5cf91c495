// The ddkv dashboard: everything comes from the hub's API, and live updates
// from /api/events (server-sent events fed by watches on the cluster), so the
// page never polls for metrics.
'use strict';

const WINDOW_MS = 40 * 60 * 1000;  // the charts show the last 40 minutes
const state = { clients: new Map(), selected: null, jobs: new Map(), charts: null, lastTs: 0, pending: null };
const $ = (id) => document.getElementById(id);
window.dashboard = state; // for the browser tests (test/browser)

function text(el, s) { el.textContent = s; return el; }
function fmtBytes(n) {
  if (n == null) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}
function fmtPct(v) { return v == null ? '–' : `${v.toFixed(1)}%`; }
function fmtTime(ms) { return new Date(ms).toLocaleTimeString(); }
async function api(path, opts) {
  const r = await fetch(path, opts);
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

// --- clients ---

function renderClients() {
  const ul = $('clients'); ul.replaceChildren();
  const ids = [...state.clients.keys()].sort();
  text($('client-count'), ids.length);
  $('no-clients').hidden = ids.length > 0;
  for (const id of ids) {
    const c = state.clients.get(id);
    const li = document.createElement('li');
    li.dataset.id = id;
    if (id === state.selected) li.classList.add('sel');
    const cpu = document.createElement('span'); cpu.className = 'cpu';
    text(cpu, c.lastCpu == null ? '' : fmtPct(c.lastCpu));
    const name = text(document.createElement('div'), id); name.className = 'name';
    const sub = text(document.createElement('div'), c.device ? 'device · pushed series only'
      : `${c.os || c.sysname || ''} · ${c.cpus || '?'} CPU · ${fmtBytes(c.mem_total)}`);
    sub.className = 'sub';
    li.append(cpu, name, sub);
    li.addEventListener('click', () => select(id));
    ul.append(li);
  }
  if (state.selected && !state.clients.has(state.selected)) {
    state.selected = null; showDetail(false);
  }
}

async function loadClients() {
  const list = await api('/api/clients');
  state.clients = new Map(list.map((c) => [c.id, c]));
  renderClients();
}

function showDetail(on) { $('client-view').hidden = !on; $('pick').hidden = on; }

function makeChart(canvas, label, color) {
  return new Chart(canvas, {
    type: 'line',
    data: { labels: [], datasets: [{ label, data: [], borderColor: color, backgroundColor: color + '22', fill: true,
      pointRadius: 0, borderWidth: 1.5, tension: 0.2 }] },
    options: { animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
      scales: { x: { type: 'linear', ticks: { maxTicksLimit: 6, callback: (v) => fmtTime(v) } },
                y: { min: 0, max: 100, ticks: { callback: (v) => v + '%' } } },
      plugins: { legend: { display: false }, tooltip: { callbacks: { title: (it) => fmtTime(it[0].parsed.x) } } } },
  });
}

function addPoint(s) {
  if (!state.charts || s.ts <= state.lastTs) return;
  state.lastTs = s.ts;
  const cut = s.ts - WINDOW_MS;
  for (const [chart, v] of [[state.charts.cpu, s.cpu], [state.charts.mem, s.mem_pct]]) {
    const d = chart.data.datasets[0].data;
    d.push({ x: s.ts, y: v });
    while (d.length && d[0].x < cut) d.shift();
  }
  text($('cpu-now'), fmtPct(s.cpu));
  text($('mem-now'), `${fmtPct(s.mem_pct)} of ${fmtBytes(s.mem_total)}`);
}

function redraw() { if (state.charts) { state.charts.cpu.update('none'); state.charts.mem.update('none'); } }

async function select(id) {
  state.selected = id;
  renderClients();
  showDetail(true);
  $('fresh').hidden = true;
  if (window.seriesView) window.seriesView.select(id).catch(() => {});
  const c = state.clients.get(id) || {};
  text($('client-name'), id);
  const rows = [['Host', c.host], ['OS', c.os], ['Kernel', `${c.sysname || ''} ${c.release || ''} ${c.machine || ''}`],
    ['CPUs', `${c.cpus || '?'} × ${c.cpu_model || ''}`], ['Memory', fmtBytes(c.mem_total)],
    ['Addresses', (c.addrs || []).map((a) => a.addr).join(', ')],
    ['Booted', c.boot_time_s ? new Date(c.boot_time_s * 1000).toLocaleString() : '–']];
  const t = $('static'); t.replaceChildren();
  for (const [k, v] of rows) {
    const tr = document.createElement('tr');
    tr.append(text(document.createElement('td'), k), text(document.createElement('td'), v || '–'));
    t.append(tr);
  }
  if (state.charts) { state.charts.cpu.destroy(); state.charts.mem.destroy(); }
  state.charts = { cpu: makeChart($('cpu-chart'), 'CPU', '#2f6fed'), mem: makeChart($('mem-chart'), 'Memory', '#8e44ad') };
  state.lastTs = 0;
  // Live points that arrive while the history loads wait for it: drawn
  // first, they would make addPoint drop the whole (older) history.
  const pending = state.pending = [];
  let points = [], failed = null;
  try {
    points = await api(`/api/clients/${encodeURIComponent(id)}/metrics?since=${Date.now() - WINDOW_MS}`);
  } catch (e) { failed = e; }
  if (state.pending === pending) state.pending = null;
  if (state.selected !== id) return;
  for (const s of [...points, ...pending]) addPoint(s);
  redraw();
  if (failed) throw failed;
}

$('fetch-now').addEventListener('click', async () => {
  const id = state.selected; if (!id) return;
  const b = $('fetch-now'); b.disabled = true;
  const box = $('fresh'); box.hidden = false; text(box, 'Asking the agent…');
  try {
    const r = await api(`/api/proxy/${encodeURIComponent(id)}?kind=now`);
    const s = r.sample;
    text(box, `Fresh from ${id} at ${fmtTime(s.ts)}: CPU ${fmtPct(s.cpu)} (cores ${(s.cpu_cores || []).map(fmtPct).join(', ')}), ` +
      `memory ${fmtPct(s.mem_pct)}, load ${s.load1} / ${s.load5} / ${s.load15}, ` +
      (s.disks || []).filter((d) => d.pct != null).map((d) => `${d.mount} ${fmtPct(d.pct)} used`).join(', '));
    box.dataset.ts = s.ts;
  } catch (e) { text(box, `The agent did not answer: ${e.message}`); }
  b.disabled = false;
});

// --- cluster ---

function renderCluster(nodes) {
  const tb = $('cluster').querySelector('tbody'); tb.replaceChildren();
  let healthy = 0;
  for (const n of nodes) {
    const tr = document.createElement('tr');
    const role = n.healthy === false && !n.role ? 'down' : n.role || '?';
    const lag = n.lag_entries === undefined ? '–' : `${n.lag_entries} (${(n.lag_ms / 1000).toFixed(1)} s)`;
    const health = n.healthy ? 'healthy' : n.role ? 'unhealthy' : 'down';
    const cells = [n.name || n.endpoint, role, n.term ?? '–', n.commit ?? '–', n.applied ?? '–', n.match ?? '–', lag, health];
    cells.forEach((v, i) => {
      const td = text(document.createElement('td'), v);
      if (i === 1 || i === 7) td.className = `state ${v}`;
      tr.append(td);
    });
    tb.append(tr);
    if (n.healthy) healthy++;
  }
  const pill = $('cluster-pill');
  const quorum = healthy * 2 > nodes.length;
  pill.className = `pill ${healthy === nodes.length ? 'ok' : quorum ? 'warn' : 'bad'}`;
  text(pill, `cluster ${healthy}/${nodes.length} healthy`);
}

// --- jobs ---

function renderJobs() {
  const tb = $('jobs').querySelector('tbody'); tb.replaceChildren();
  const jobs = [...state.jobs.values()].sort((a, b) => (b.created_ms || 0) - (a.created_ms || 0));
  for (const j of jobs) {
    const tr = document.createElement('tr'); tr.className = 'click'; tr.dataset.id = j.id;
    const cells = [j.id.slice(-10), j.name || j.data, j.state, `${j.attempts}/${j.max_attempts}`, j.worker || '–',
      window.jobsUI ? window.jobsUI.progressText(j) : ''];
    cells.forEach((v, i) => {
      const td = text(document.createElement('td'), v);
      if (i === 2) td.className = `state ${v}`;
      tr.append(td);
    });
    tr.addEventListener('click', () => showJob(j.id));
    tb.append(tr);
  }
}

async function loadJobs() {
  const list = await api('/api/jobs');
  state.jobs = new Map(list.filter((j) => j && j.id).map((j) => [j.id, j]));
  renderJobs();
}

function fmtNum(v) { return v == null ? '–' : Number.isInteger(v) ? String(v) : v.toFixed(2); }

async function showJob(id) {
  const box = $('job-result'); box.hidden = false;
  let j;
  try { j = await api(`/api/jobs/${encodeURIComponent(id)}`); } catch (e) { text(box, e.message); return; }
  box.replaceChildren();
  const h = text(document.createElement('h3'), `Job ${id}: ${j.state}`); box.append(h);
  const r = j.result_value;
  if (!r || !r.columns) {
    box.append(text(document.createElement('p'), j.error || 'No result yet.'));
    if (window.jobsUI) window.jobsUI.extend(box, j, () => showJob(id));
    return;
  }
  const rows = r.rows || {};
  box.append(text(document.createElement('p'),
    `${rows.used ?? '?'} rows used of ${rows.total ?? '?'}; ${rows.duplicates ?? 0} duplicates removed; ` +
    `${(rows.malformed || {}).count ?? 0} malformed rows` +
    (r.timestamps ? `; ${r.timestamps.first} → ${r.timestamps.last}` : '')));
  const t = document.createElement('table'); t.className = 'grid';
  const head = ['Column', 'Count', 'Min', 'Max', 'Mean', 'SD', 'p50', 'p95', 'Out of range'];
  const thr = document.createElement('tr');
  for (const c of head) thr.append(text(document.createElement('th'), c));
  t.append(thr);
  for (const c of r.columns) {
    const tr = document.createElement('tr');
    const p = c.percentiles || {}; const o = c.out_of_range || {};
    for (const v of [c.name, c.count, fmtNum(c.min), fmtNum(c.max), fmtNum(c.mean), fmtNum(c.sd), fmtNum(p.p50),
      fmtNum(p.p95), (o.below || 0) + (o.above || 0)]) tr.append(text(document.createElement('td'), v));
    t.append(tr);
  }
  box.append(t);
  if (window.jobsUI) window.jobsUI.extend(box, j, () => showJob(id));
}

$('upload').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = $('file').files[0];
  if (!f) { text($('upload-msg'), 'Choose a CSV file first.'); return; }
  text($('upload-msg'), `Uploading ${f.name}…`);
  try {
    const extra = window.jobsUI ? window.jobsUI.uploadParams() : '';
    const r = await api(`/api/jobs?name=${encodeURIComponent(f.name)}${extra}`, { method: 'POST', body: f });
    text($('upload-msg'), `Queued as job ${r.id}.`);
  } catch (e) { text($('upload-msg'), `Upload failed: ${e.message}`); }
});

// --- live updates ---

function connect() {
  const es = new EventSource('/api/events');
  if (window.seriesView) window.seriesView.attach(es); // series.js: named series, disks
  const pill = $('live-pill');
  es.onopen = () => { pill.className = 'pill ok'; text(pill, 'live'); Promise.all([loadClients(), loadJobs()]).catch(() => {}); };
  es.onerror = () => { pill.className = 'pill warn'; text(pill, 'reconnecting…'); };
  es.addEventListener('client', (e) => {
    const d = JSON.parse(e.data);
    if (d.kind === 'put') state.clients.set(d.id, { ...(state.clients.get(d.id) || {}), ...d.value, id: d.id });
    else state.clients.delete(d.id);
    renderClients();
  });
  es.addEventListener('metric', (e) => {
    const d = JSON.parse(e.data);
    if (d.kind !== 'put' || !d.value) return;
    const c = state.clients.get(d.id);
    if (c) {
      c.lastCpu = d.value.cpu;
      const li = $('clients').querySelector(`li[data-id="${CSS.escape(d.id)}"] .cpu`);
      if (li) text(li, fmtPct(d.value.cpu));
    }
    if (d.id === state.selected) { if (state.pending) state.pending.push(d.value); else { addPoint(d.value); redraw(); } }
  });
  es.addEventListener('job', (e) => {
    const d = JSON.parse(e.data);
    if (d.kind === 'put' && d.value && d.value.id) state.jobs.set(d.value.id, d.value); else state.jobs.delete(d.id);
    renderJobs();
  });
  es.addEventListener('cluster', (e) => renderCluster(JSON.parse(e.data)));
  es.addEventListener('reset', () => { loadClients().catch(() => {}); loadJobs().catch(() => {}); });
}

// Started by login.js once the hub says who is signed in (or that auth is off).
window.ddkvStart = () => {
  api('/api/cluster').then(renderCluster).catch(() => {});
  connect();
};
