// Job management on the dashboard (issue 23): priority and algorithm at
// upload, and on a job's page: cancel, delete, delete the result, the
// readings charted over time (downsampled by the worker; buckets outside a
// column's plausible range marked), vital-sign windows and band crossings,
// and the result as JSON or CSV. Everything from the job is set as text.
(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, txt, cls) => { const e = document.createElement(tag); if (txt != null) e.textContent = String(txt); if (cls) e.className = cls; return e; };
  async function call(path, method) {
    const r = await fetch(path, { method });
    const body = await r.json().catch(() => ({ error: r.statusText }));
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }

  async function loadAlgorithms() {
    const sel = $('algorithm'); if (!sel) return;
    try {
      const list = await call('/api/algorithms', 'GET');
      sel.replaceChildren(...list.map((a) => { const o = el('option', a.title); o.value = a.name; o.title = a.description; return o; }));
    } catch (e) { /* the default stays */ }
  }

  function uploadParams() {
    const p = $('priority'), a = $('algorithm');
    return `&priority=${encodeURIComponent(p ? p.value : 'normal')}&algorithm=${encodeURIComponent(a ? a.value : 'stats')}`;
  }

  function progressText(j) {
    if (!j.progress) return '';
    return `${j.progress.percent}% (${j.progress.rows} rows)`;
  }

  let chart = null;
  function drawChart(box, r) {
    const ch = r.chart;
    if (!ch || !ch.t || !ch.t.length || !window.Chart) return;
    const wrap = el('div', null, 'job-chart'); const canvas = el('canvas'); canvas.id = 'job-chart';
    wrap.append(canvas); box.append(wrap);
    const colors = ['#2563eb', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#be185d', '#4d7c0f', '#7c2d12'];
    const datasets = []; let outside = 0;
    ch.columns.forEach((c, i) => {
      datasets.push({ label: c.name, data: c.avg, borderColor: colors[i % colors.length], pointRadius: 0, borderWidth: 1.5, spanGaps: true });
      if (c.range) {
        const marks = c.avg.map((_, k) => (c.max[k] != null && (c.max[k] > c.range[1] || c.min[k] < c.range[0])) ? (c.max[k] > c.range[1] ? c.max[k] : c.min[k]) : null);
        outside += marks.filter((m) => m != null).length;
        datasets.push({ label: `${c.name} out of range`, data: marks, showLine: false, pointRadius: 4, pointStyle: 'crossRot', borderColor: '#dc2626', backgroundColor: '#dc2626' });
      }
    });
    const labels = ch.t.map((t) => (ch.axis === 'unix_ms' ? new Date(t).toISOString().slice(11, 19) : String(t)));
    if (chart) chart.destroy();
    chart = new Chart(canvas, { type: 'line', data: { labels, datasets }, options: { animation: false, responsive: true, maintainAspectRatio: false, plugins: { legend: { position: 'bottom' } } } });
    box.append(el('p', `${ch.t.length} points of ${ch.bucket} ${ch.axis === 'unix_ms' ? 'ms' : 'rows'} each; ${outside} outside a column's range (marked ✕)`, 'msg chart-note'));
    window.dashboard.jobChart = chart;
  }

  function drawVitals(box, v) {
    if (!v) return;
    box.append(el('h4', 'Vital signs'));
    const t = el('table', null, 'grid vitals');
    const hr = el('tr'); for (const h of ['Series', 'Window start', 'n', 'Min', 'Mean', 'Max', 'Trend /min']) hr.append(el('th', h)); t.append(hr);
    for (const [name, s] of Object.entries(v.series || {})) {
      if (!s) continue;
      for (const w of s.windows) {
        const tr = el('tr');
        const when = v.window_unit === 'ms' ? new Date(w.t).toISOString().slice(11, 19) : w.t;
        for (const c of [name, when, w.n, w.min, w.mean != null ? w.mean.toFixed(1) : '–', w.max, w.trend_per_min != null ? w.trend_per_min.toFixed(2) : '–']) tr.append(el('td', c));
        t.append(tr);
      }
    }
    const ev = el('ul', null, 'events');
    for (const e of v.events || []) ev.append(el('li', `${v.window_unit === 'ms' ? new Date(e.t).toISOString() : `row ${e.t}`}: ${e.series} ${e.band === 'normal' ? 'back to normal' : e.band} (${e.value})`));
    box.append(el('p', `${v.events_total} band crossings`), ev);
    const more = el('details'); more.append(el('summary', `Windows of ${v.window_unit === 'ms' ? `${v.window / 1000} s` : `${v.window} rows`} (${t.rows.length - 1} rows)`), t);
    box.append(more);
  }

  function actions(box, j, reload) {
    const bar = el('div', null, 'job-actions');
    const msg = el('span', '', 'msg');
    const button = (label, id, fn, again = true) => {
      const b = el('button', label); b.id = id; b.type = 'button';
      b.addEventListener('click', async () => { try { await fn(); if (again) await reload(); } catch (e) { msg.textContent = e.message; } });
      bar.append(b);
    };
    const base = `/api/jobs/${encodeURIComponent(j.id)}`;
    if (j.state === 'queued' || j.state === 'claimed') button('Cancel', 'job-cancel', () => call(`${base}/cancel`, 'POST'));
    if (j.state === 'done' && j.result_value) {
      const json = el('a', 'Download JSON'); json.id = 'job-json'; json.href = `${base}/result.json`; json.download = `${j.id}.json`;
      const csv = el('a', 'Download CSV'); csv.id = 'job-csv'; csv.href = `${base}/result.csv`; csv.download = `${j.id}.csv`;
      bar.append(json, csv);
      button('Delete result', 'job-delete-result', () => call(`${base}/result`, 'DELETE'));
    }
    button('Delete job', 'job-delete', async () => { await call(base, 'DELETE'); box.replaceChildren(el('p', `Job ${j.id} deleted with its data and result.`)); }, false);
    bar.append(msg);
    box.append(bar);
  }

  // Called by app.js's showJob after the table.
  function extend(box, j, reload) {
    if (j.priority || j.progress) box.append(el('p', `Priority ${j.priority || 'normal'}${j.progress ? `; progress ${progressText(j)}` : ''}`, 'msg'));
    actions(box, j, reload);
    const r = j.result_value;
    if (r) { drawChart(box, r); drawVitals(box, r.vitals); }
  }

  window.jobsUI = { uploadParams, progressText, extend };
  loadAlgorithms();
})();
