// Named series and the disks panel of the selected client (issue 23 item 3).
// Every series the client has (GET /api/clients/{id}/series) gets a chart of
// min/avg/max buckets for the chosen window (GET .../series/{name}?window=W,
// downsampled by the hub), kept live by a stream of that client's points
// alone (/api/events?series=ID, reopened when another client is picked);
// block-device rates (disk.DEV.read and .write) and the mounts of the newest
// metric sample (the page's main stream, handed over by app.js) make the
// disks panel.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const MAX_CHARTS = 48;
  const BUCKET_MS = { '5m': 1000, '15m': 3000, '1h': 12000, '6h': 60000, '24h': 300000 };
  const SPAN_MS = { '5m': 300000, '15m': 900000, '1h': 3600000, '6h': 21600000, '24h': 86400000 };
  const view = {
    id: null, window: '5m', series: new Map(), // name -> {meta, chart, last}
    disks: new Map(), // DEV -> {read, write}
    pending: false, relist: null, es: null,
  };
  window.seriesView = view; // for the browser tests (test/browser)

  function text(el, s) { el.textContent = s; return el; }
  function fmtNum(v, unit) {
    if (v == null || !isFinite(v)) return '–';
    if (unit === 'B/s') {
      const u = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s']; let i = 0;
      while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
      return `${v.toFixed(i ? 1 : 0)} ${u[i]}`;
    }
    const s = Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(3);
    return unit ? `${s} ${unit}` : s;
  }
  function fmtBytes(n) {
    if (n == null) return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
  }
  async function api(path) {
    const r = await fetch(path);
    const body = await r.json().catch(() => ({ error: r.statusText }));
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }
  const enc = encodeURIComponent;

  function makeChart(canvas, unit) {
    const line = (label, color, fill) => ({ label, data: [], borderColor: color, backgroundColor: color + '22',
      fill, pointRadius: 0, borderWidth: label === 'avg' ? 1.6 : 0.6, tension: 0.15 });
    return new Chart(canvas, {
      type: 'line',
      data: { datasets: [line('max', '#9fb3d1', '+2'), line('avg', '#2f6fed', false), line('min', '#9fb3d1', false)] },
      options: { animation: false, responsive: true, maintainAspectRatio: false, parsing: false,
        scales: { x: { type: 'linear', ticks: { maxTicksLimit: 5, callback: (v) => new Date(v).toLocaleTimeString() } },
                  y: { ticks: { maxTicksLimit: 5, callback: (v) => fmtNum(v, unit) } } },
        plugins: { legend: { display: false },
                   tooltip: { callbacks: { title: (it) => new Date(it[0].parsed.x).toLocaleString() } } } },
    });
  }

  // Buckets as the hub sends them: {t, min, avg, max, n}.
  function setBuckets(s, buckets) {
    const [mx, av, mn] = s.chart.data.datasets;
    mx.data = buckets.map((b) => ({ x: b.t, y: b.max }));
    av.data = buckets.map((b) => ({ x: b.t, y: b.avg }));
    mn.data = buckets.map((b) => ({ x: b.t, y: b.min }));
    s.n = buckets.map((b) => b.n);
    s.points = buckets.reduce((a, b) => a + b.n, 0);
    if (buckets.length) s.last = buckets[buckets.length - 1].avg;
    s.loading = false;
  }

  // One live point into its bucket (the same arithmetic as the hub's).
  function addPoint(s, t, v) {
    // While the window's buckets are fetched: they hold the point (one that
    // came after the hub read them is missed until the next reload, as one
    // older than the newest bucket is).
    if (s.loading) return;
    const bucket = BUCKET_MS[view.window];
    const bt = Math.floor(t / bucket) * bucket;
    const [mx, av, mn] = s.chart.data.datasets;
    const i = av.data.length - 1;
    if (i >= 0 && av.data[i].x === bt) {
      const n = s.n[i];
      av.data[i].y = (av.data[i].y * n + v) / (n + 1);
      mx.data[i].y = Math.max(mx.data[i].y, v);
      mn.data[i].y = Math.min(mn.data[i].y, v);
      s.n[i] = n + 1;
    } else if (i < 0 || av.data[i].x < bt) {
      mx.data.push({ x: bt, y: v }); av.data.push({ x: bt, y: v }); mn.data.push({ x: bt, y: v }); s.n.push(1);
      const cut = bt - SPAN_MS[view.window];
      while (av.data.length && av.data[0].x < cut) { mx.data.shift(); av.data.shift(); mn.data.shift(); s.n.shift(); }
    } else {
      return; // older than the newest bucket: the next reload has it
    }
    s.points++;
    s.last = v;
  }

  function redrawSoon() {
    if (view.pending) return;
    view.pending = true;
    requestAnimationFrame(() => {
      view.pending = false;
      for (const s of view.series.values()) {
        if (!s.dirty) continue;
        s.dirty = false;
        s.chart.update('none');
        text(s.now, fmtNum(s.last, s.meta.unit));
      }
      renderDiskRates();
    });
  }

  function isDiskRate(name) { return /^disk\.[^.]+\.(read|write)$/.test(name); }

  async function load(id) {
    const list = await api(`/api/clients/${enc(id)}/series`);
    if (view.id !== id) return;
    const box = $('series-charts');
    for (const s of view.series.values()) if (s.chart) s.chart.destroy();
    view.series.clear();
    box.replaceChildren();
    // Per-core series (cpu.N) give way first: a 64-core machine must not
    // push a client's sensors off the page.
    const isCore = (n) => /^cpu\.\d+$/.test(n);
    const charted = list.filter((m) => !isDiskRate(m.name));
    const shown = [...charted.filter((m) => !isCore(m.name)), ...charted.filter((m) => isCore(m.name))]
      .slice(0, MAX_CHARTS);
    text($('series-count'), list.length);
    $('no-series').hidden = list.length > 0;
    for (const m of list) {
      if (isDiskRate(m.name)) { view.series.set(m.name, { meta: m, disk: true }); continue; }
      if (!shown.includes(m)) continue;
      const div = document.createElement('div'); div.className = 'chart-box series-box'; div.dataset.series = m.name;
      const h = document.createElement('h3');
      const every = m.interval_ms ? ` · every ${m.interval_ms >= 1000 ? m.interval_ms / 1000 + ' s' : m.interval_ms + ' ms'}` : '';
      h.append(text(document.createElement('span'), `${m.name}${m.unit ? ' (' + m.unit + ')' : ''}${every} `));
      const now = document.createElement('span'); now.className = 'now'; h.append(now);
      const canvas = document.createElement('canvas');
      div.append(h, canvas); box.append(div);
      // loading: until the hub's buckets arrive, live points wait for them
      // (a point drawn first would stand alone on an empty chart).
      view.series.set(m.name, { meta: m, chart: makeChart(canvas, m.unit), now, n: [], points: 0, last: null,
        loading: true });
    }
    await Promise.all([...view.series.entries()].filter(([, s]) => !s.disk).map(async ([name, s]) => {
      const b = await api(`/api/clients/${enc(id)}/series/${enc(name)}?window=${view.window}`);
      if (view.id !== id || view.series.get(name) !== s) return;
      setBuckets(s, b);
      s.dirty = true;
    }));
    redrawSoon();
  }

  function relistSoon(id) { // a series we do not know yet appeared
    if (view.relist) return;
    view.relist = setTimeout(() => { view.relist = null; if (view.id === id) load(id).catch(() => {}); }, 1000);
  }

  function renderDisks(sample) {
    const tb = $('disks').querySelector('tbody');
    tb.replaceChildren();
    for (const d of sample.disks || []) {
      const tr = document.createElement('tr');
      tr.dataset.mount = d.mount;
      const bar = document.createElement('div'); bar.className = 'bar';
      const fill = document.createElement('span'); fill.style.width = `${Math.min(100, d.pct || 0).toFixed(1)}%`;
      bar.append(fill);
      const cells = [d.mount, d.error ? d.error : fmtBytes(d.used), d.error ? '' : fmtBytes(d.avail),
        d.error ? '' : fmtBytes(d.total)];
      for (const c of cells) tr.append(text(document.createElement('td'), c));
      const td = document.createElement('td'); td.append(bar, text(document.createElement('span'), d.error ? '' : ` ${(d.pct || 0).toFixed(1)}%`));
      tr.append(td);
      tb.append(tr);
    }
  }

  function renderDiskRates() {
    const tb = $('disk-io').querySelector('tbody');
    const devs = [...view.disks.keys()].sort();
    tb.replaceChildren();
    for (const dev of devs) {
      const r = view.disks.get(dev);
      const tr = document.createElement('tr'); tr.dataset.dev = dev;
      for (const c of [dev, fmtNum(r.read, 'B/s'), fmtNum(r.write, 'B/s')]) tr.append(text(document.createElement('td'), c));
      tb.append(tr);
    }
    $('disk-io').hidden = devs.length === 0;
  }

  function onSeries(e) {
    const d = JSON.parse(e.data);
    if (d.id !== view.id) return;
    const m = /^disk\.([^.]+)\.(read|write)$/.exec(d.series);
    if (m) {
      const r = view.disks.get(m[1]) || {}; r[m[2]] = d.v; view.disks.set(m[1], r);
      redrawSoon();
      return;
    }
    const s = view.series.get(d.series);
    if (!s) { relistSoon(view.id); return; }
    if (!s.chart) return;
    addPoint(s, d.t, d.v);
    s.dirty = true;
    redrawSoon();
  }

  function stream(id) {
    if (view.es) view.es.close();
    const es = new EventSource(`/api/events?series=${enc(id)}`);
    let opened = false;
    es.addEventListener('series', onSeries);
    // After a reconnect, reload what the stream missed meanwhile.
    es.onopen = () => { if (opened && view.id === id) load(id).catch(() => {}); opened = true; };
    view.es = es;
  }

  view.select = async (id) => {
    view.id = id;
    stream(id);
    view.disks.clear();
    renderDiskRates();
    $('disks').querySelector('tbody').replaceChildren();
    try {
      const pts = await api(`/api/clients/${enc(id)}/metrics?since=${Date.now() - 120000}`);
      if (view.id === id && pts.length) renderDisks(pts[pts.length - 1]);
    } catch (e) { /* the panel fills from the next sample */ }
    await load(id).catch((e) => { text($('no-series'), `Series: ${e.message}`); $('no-series').hidden = false; });
  };

  view.attach = (es) => {
    es.addEventListener('metric', (e) => {
      const d = JSON.parse(e.data);
      if (d.id === view.id && d.kind === 'put' && d.value) renderDisks(d.value);
    });
  };

  $('series-window').addEventListener('change', (e) => {
    view.window = e.target.value;
    if (view.id) load(view.id).catch(() => {});
  });
})();
