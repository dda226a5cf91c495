// Issue 23's "Done when", end to end in a real browser: the hub over HTTPS
// in front of a 3-node cluster with auth on (test/cli/test_hub_product.sh
// starts it all: an agent "sensors" with the built-in sources and two command
// sources, temp every 1 s and hum every 3 s; a job worker; users made by
// root). An operator signs in, sees CPU, memory, disks and both sensors
// change live, uploads a vital-signs file at high priority with the vitals
// algorithm and watches its progress while the cluster's leader is killed,
// sees the result chart, deletes the job (checked in the cluster with the
// CLI as root), and signs out (the old session is refused). A viewer sees the
// dashboards without the upload; its forged POSTs are refused. Screenshots of
// every step in $SHOTS.
import { run, ok, until, sleep, visible, signIn, signOut, newPage } from './lib.mjs';
import { spawnSync } from 'node:child_process';

const hub = process.env.HUB_URL;                        // https://127.0.0.1:PORT/
const own = hub.replace(/\/$/, '');                     // its Origin
const evil = process.env.EVIL_ORIGIN;                   // another site (answered by the test itself, never reached)
const shots = process.env.SHOTS;
const csv = process.env.CSV_FILE;
const nodePids = JSON.parse(process.env.NODE_PIDS);    // {"n1": pid, ...}
const pw = JSON.parse(process.env.PASSWORDS);          // {"root", "olga" (operator), "vic" (viewer)}
const spki = process.env.HUB_SPKI;                     // the hub certificate's key: the one Chromium accepts

// The CLI as root (password in the environment, not on a command line).
function ddkv(...args) {
  const r = spawnSync(process.env.DDKV_BIN, args, {
    env: { ...process.env, DDKV_ENDPOINTS: process.env.DDKV_ENDPOINTS, DDKV_USER: 'root', DDKV_PASSWORD: pw.root },
    encoding: 'utf8', timeout: 20000,
  });
  return { code: r.status, out: r.stdout || '', err: r.stderr || '' };
}
const jobKeys = () => ddkv('list', 'jobs/').out.split('\n').filter((l) => l).length;

// A request made outside the browser (Node's fetch; the CA from NODE_EXTRA_CA_CERTS),
// with whatever cookie, token and Origin a forger would send.
async function forge(path, { cookie, csrf, origin, method = 'POST', body } = {}) {
  const headers = {};
  if (cookie) headers.Cookie = `ddkv_session=${cookie}`;
  if (csrf) headers['X-CSRF-Token'] = csrf;
  if (origin) headers.Origin = origin;
  const r = await fetch(`${own}${path}`, { method, headers, body });
  const text = await r.text();
  return { status: r.status, text };
}

// What the page shows of the selected client, read from the page itself.
const look = (page) => page.evaluate(() => {
  const ch = window.dashboard.charts;
  const pts = (c) => (c ? c.data.datasets[0].data.map((p) => [p.x, p.y]) : []);
  const s = (n) => { const x = window.seriesView.series.get(n); return x && x.chart ? { points: x.points, now: x.now.textContent } : { points: -1, now: '' }; };
  const tx = (id) => { const e = document.getElementById(id); return e ? e.textContent : ''; };
  return {
    cpu: pts(ch && ch.cpu), mem: pts(ch && ch.mem), cpuNow: tx('cpu-now'), memNow: tx('mem-now'),
    temp: s('temp'), hum: s('hum'),
    disks: [...document.querySelectorAll('#disks tbody tr')].map((tr) => tr.textContent),
    diskIo: document.getElementById('disk-io').hidden ? '' : document.querySelector('#disk-io tbody').textContent,
    diskRenders: window.__diskRenders || 0,
  };
});
// Counts re-renders of the disks panel (each live sample redraws it).
const watchDisks = (page) => page.evaluate(() => {
  window.__diskRenders = 0;
  new MutationObserver(() => { window.__diskRenders++; }).observe(document.querySelector('#disks tbody'), { childList: true });
});

// Watches the selected client for `ms` and asserts every live view changed.
async function liveFor(page, ms, what) {
  const a = await look(page);
  const seen = { temp: new Set([a.temp.now]), hum: new Set([a.hum.now]), io: new Set([a.diskIo]) };
  const end = Date.now() + ms;
  while (Date.now() < end) {
    await sleep(500);
    const x = await look(page);
    seen.temp.add(x.temp.now); seen.hum.add(x.hum.now); seen.io.add(x.diskIo);
  }
  const b = await look(page);
  const fresh = (arr, t) => arr.filter(([x]) => x > t);
  const lastX = (arr) => (arr.length ? arr[arr.length - 1][0] : 0);
  const cpuNew = fresh(b.cpu, lastX(a.cpu)), memNew = fresh(b.mem, lastX(a.mem));
  const distinct = (arr) => new Set(arr.map(([, y]) => y)).size;
  const f = {
    cpu: `${cpuNew.length} new points, ${distinct(cpuNew)} values`, mem: `${memNew.length} new points, ${distinct(memNew)} values`,
    temp: `+${b.temp.points - a.temp.points} points, ${seen.temp.size} values shown`, hum: `+${b.hum.points - a.hum.points} points, ${seen.hum.size} values shown`,
    disks: `${b.diskRenders - a.diskRenders} redraws, ${seen.io.size} device-rate readings`,
  };
  const bad = [];
  // CPU: new points live; its values can sit at 100% for seconds on a busy
  // 2-core machine, so they must differ over the whole chart (the run so far).
  if (cpuNew.length < 3 || distinct(b.cpu) < 2) bad.push(`cpu ${f.cpu} (${distinct(b.cpu)} over the chart: ${b.cpu.slice(-12).map(([, y]) => y)})`);
  if (memNew.length < 3 || distinct(memNew) < 2) bad.push(`mem ${f.mem}`);
  const dt = b.temp.points - a.temp.points, dh = b.hum.points - a.hum.points;
  if (dt < 3 || seen.temp.size < 3) bad.push(`temp ${f.temp}`);
  if (dh < 1 || seen.hum.size < 2) bad.push(`hum ${f.hum}`);
  if (dt < 2 * dh) bad.push(`temp (every 1 s) not faster than hum (every 3 s): ${f.temp} / ${f.hum}`);
  if (b.diskRenders - a.diskRenders < 3 || !b.disks.some((r) => r.startsWith('/')) || seen.io.size < 2) bad.push(`disks ${f.disks}`);
  if (bad.length) throw new Error(`${what}: not live: ${bad.join('; ')}`);
  return f;
}

await run({ shots, viewport: { width: 1400, height: 1300 }, launchArgs: [`--ignore-certificate-errors-spki-list=${spki}`] },
  async ({ browser, ctx, page, errors, shot }) => {
    let loads = 0;
    page.on('load', () => { loads++; });

    // --- the operator ---
    await page.goto(hub);
    if (!/^https:/.test(page.url())) throw new Error(`not HTTPS: ${page.url()}`);
    await until(() => visible(page, '#login-form'), 10000, 'the login form');
    await shot(page, 'login');
    await signIn(page, hub, 'olga', pw.olga);
    await until(() => visible(page, '#clients'), 15000, 'the dashboard');
    await until(() => page.evaluate(() => document.querySelectorAll('#clients li').length === 2), 20000, 'two clients (sensors, worker)');
    const who = await page.textContent('#who');
    if (!/olga/.test(who) || !/operator/.test(who)) throw new Error(`who: ${who}`);
    if (!(await visible(page, '#upload'))) throw new Error('the operator does not see the upload');
    const cookie = (await ctx.cookies()).find((c) => c.name === 'ddkv_session');
    if (!cookie || !cookie.secure || !cookie.httpOnly || cookie.sameSite !== 'Strict') throw new Error(`cookie: ${JSON.stringify(cookie)}`);
    ok('the operator signs in over HTTPS (cookie Secure, HttpOnly, SameSite=Strict) and sees the upload');

    await page.click('#clients li[data-id="sensors"]');
    await watchDisks(page);
    await until(async () => { const x = await look(page); return x.cpu.length > 0 && x.temp.points > 0 && x.hum.points > 0; }, 20000, 'CPU and both series charted');
    const live1 = await liveFor(page, 7000, 'before the leader kill');
    await shot(page, 'operator-live');
    ok(`CPU (${live1.cpu}), memory (${live1.mem}), disks (${live1.disks}), temp (${live1.temp}) and hum (${live1.hum}) change live`);

    // Upload at high priority with the vitals algorithm.
    await until(() => page.evaluate(() => [...document.querySelectorAll('#algorithm option')].some((o) => o.value === 'vitals')), 10000, 'the vitals algorithm');
    await page.selectOption('#algorithm', 'vitals');
    await page.selectOption('#priority', 'high');
    await page.setInputFiles('#file', csv);
    await page.click('#upload button');
    const msg = await until(() => page.evaluate(() => { const m = document.getElementById('upload-msg').textContent; return /Queued as job/.test(m) && m; }), 30000, 'the upload');
    const id = msg.match(/job (\S+)\./)[1];
    const rec = JSON.parse(ddkv('job', 'get', id, '-o', 'json').out);
    if (rec.priority !== 'high' || !/^jobdata\//.test(rec.data)) throw new Error(`the job in the cluster: ${JSON.stringify(rec)}`);
    ok(`uploaded at high priority with the vitals algorithm: job ${id}, data under ${rec.data}`);

    // Progress; the leader is killed as soon as the job runs.
    const cell = (i) => page.evaluate(([jid, c]) => { const tr = document.querySelector(`#jobs tbody tr[data-id="${jid}"]`); return tr ? tr.cells[c].textContent : null; }, [id, i]);
    const progress = new Set();
    await until(async () => { const p = await cell(5); if (p && /^\d+% \(\d+ rows\)$/.test(p) && !/^100%/.test(p)) progress.add(p); return progress.size > 0; }, 40000, 'the job running with progress');
    await shot(page, 'job-progress');
    const leader = JSON.parse(ddkv('-o', 'json', 'ping').out).leader;
    if (!nodePids[leader]) throw new Error(`leader ${leader} unknown`);
    const loadsBefore = loads;
    const tKill = Date.now();
    process.kill(nodePids[leader], 'SIGKILL');
    console.log(`killed the leader ${leader} (pid ${nodePids[leader]}) at ${[...progress][0]}`);
    await until(async () => {
      const p = await cell(5); if (p && /^\d+%/.test(p)) progress.add(p);
      return (await cell(2)) === 'done';
    }, 60000, `job ${id} done after the leader kill (progress seen: ${[...progress].join(', ')})`);
    const tDone = Date.now() - tKill;
    if (progress.size < 2) throw new Error(`progress did not move in the page: ${[...progress].join(', ')}`);
    await until(() => page.evaluate(() => /cluster 2\/3/.test(document.getElementById('cluster-pill').textContent)), 20000, 'the cluster panel showing 2/3');
    const live2 = await liveFor(page, 7000, 'after the leader kill');
    if (loads !== loadsBefore) throw new Error('the page reloaded after the leader kill');
    await shot(page, 'after-leader-kill');
    ok(`progress moved live (${[...progress].join(' → ')}); after kill -9 of the leader the job finished (${tDone} ms later) and every chart kept changing without a reload (cpu ${live2.cpu}, temp ${live2.temp})`);

    // The result chart.
    await page.click(`#jobs tbody tr[data-id="${id}"]`);
    await until(() => page.evaluate(() => window.dashboard.jobChart && document.querySelector('#job-result table.vitals')), 15000, 'the result chart');
    await page.locator('#job-chart').scrollIntoViewIfNeeded();
    await sleep(300);
    const c = await page.evaluate(() => {
      const ds = window.dashboard.jobChart.data.datasets;
      const line = ds.find((d) => d.label === 'heart_rate');
      const marks = ds.find((d) => d.label === 'heart_rate out of range');
      const cv = document.getElementById('job-chart');
      const px = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
      let inked = 0;
      for (let i = 3; i < px.length; i += 4) if (px[i] > 0) inked++;
      return { points: line ? line.data.filter((v) => v != null).length : 0, marked: marks ? marks.data.filter((v) => v != null).length : 0,
        inked, size: cv.width * cv.height, meta: window.dashboard.jobChart.getDatasetMeta(ds.indexOf(marks)).data.length };
    });
    if (c.points < 50) throw new Error(`heart_rate points charted: ${c.points}`);
    if (c.marked < 1 || c.meta < 1) throw new Error(`no out-of-range point marked: ${JSON.stringify(c)}`);
    if (c.inked < c.size / 100) throw new Error(`the chart's canvas is (nearly) blank: ${c.inked} of ${c.size} pixels drawn`);
    const res = await page.evaluate(async () => JSON.parse(await (await fetch(document.getElementById('job-json').href)).text()));
    if (res.algorithm !== 'vitals') throw new Error(`the result's algorithm: ${res.algorithm}`);
    await shot(page, 'job-result-chart');
    ok(`the vitals result chart is drawn: ${c.points} heart_rate points, ${c.marked} out of range marked, ${c.inked} pixels inked`);

    // Delete: gone from the page and from the cluster (the CLI as root).
    await page.click('#job-delete');
    await until(() => page.evaluate((jid) => !document.querySelector(`#jobs tbody tr[data-id="${jid}"]`), id), 15000, 'the job gone from the list');
    const g = ddkv('job', 'get', id), d = ddkv('list', rec.data), r = ddkv('read', `jobresult/${id}`);
    if (g.code !== 1 || d.code !== 0 || d.out.trim() !== '' || r.code !== 1)
      throw new Error(`after delete: job get exit ${g.code}, list ${rec.data} exit ${d.code} '${d.out.trim()}', read jobresult exit ${r.code}`);
    await shot(page, 'job-deleted');
    ok('"Delete job" removes it from the list, and from the cluster: job, data chunks and result (ddkv as root)');

    // The operator's own session, without its token or from another site.
    const csrf = await page.evaluate(() => window.ddkvAuth.csrf);
    const n0 = jobKeys();
    const bare = await forge('/api/jobs?name=bare.csv', { cookie: cookie.value, origin: own, body: 'a,b\n1,2\n' });
    const cross = await forge('/api/jobs?name=cross.csv', { cookie: cookie.value, csrf, origin: evil, body: 'a,b\n1,2\n' });
    if (bare.status !== 403 || !/X-CSRF-Token/.test(bare.text)) throw new Error(`the operator's POST without the token: ${bare.status} ${bare.text}`);
    if (cross.status !== 403 || !/another site/.test(cross.text)) throw new Error(`the operator's POST from ${evil}: ${cross.status} ${cross.text}`);
    if (jobKeys() !== n0) throw new Error('a refused POST made a job');
    ok('with the operator\'s own cookie, a POST without X-CSRF-Token is 403, and one with it but from another site is 403; no job made');

    await signOut(page);
    await shot(page, 'operator-signed-out');
    const after = await forge('/api/session', { cookie: cookie.value, method: 'GET' });
    const afterPost = await forge('/api/jobs?name=late.csv', { cookie: cookie.value, csrf, origin: own, body: 'a,b\n1,2\n' });
    if (after.status !== 401 || afterPost.status !== 401) throw new Error(`the signed-out session: GET ${after.status}, POST ${afterPost.status}`);
    ok('signed out: the old session cookie is refused (401) by the hub');

    // --- the viewer ---
    const v = await newPage(browser, { viewport: { width: 1400, height: 1300 } });
    const vp = v.page;
    // A slow network: the metric history answers 2.5 s late, after live points
    // have arrived on the event stream; the charts must still show it.
    await vp.route(/\/api\/clients\/[^/]+\/metrics/, async (rt) => { await sleep(2500); await rt.continue(); });
    await signIn(vp, hub, 'vic', pw.vic);
    await until(() => visible(vp, '#clients'), 15000, 'the viewer\'s dashboard');
    await until(() => vp.evaluate(() => document.querySelectorAll('#clients li').length === 2), 20000, 'two clients for the viewer');
    await vp.click('#clients li[data-id="sensors"]');
    await watchDisks(vp);
    await until(async () => { const x = await look(vp); return x.cpu.length > 0 && x.temp.points > 0 && x.hum.points > 0; }, 20000, 'the viewer\'s charts');
    const live3 = await liveFor(vp, 7000, 'the viewer\'s dashboards');
    // The charts hold the history too: points sampled before the leader kill.
    const hist = await vp.evaluate(() => ['cpu', 'mem'].map((k) => { const d = window.dashboard.charts[k].data.datasets[0].data; return [d.length, d.length ? d[0].x : 0]; }));
    for (const [i, [n, first]] of hist.entries())
      if (!(first && first < tKill)) throw new Error(`the viewer's ${i ? 'memory' : 'CPU'} chart (${n} points) starts at ${new Date(first).toISOString()}, after the leader kill at ${new Date(tKill).toISOString()}: its history is missing`);
    if (await visible(vp, '#upload') || await visible(vp, '#file')) throw new Error('the viewer sees the upload control');
    await shot(vp, 'viewer');
    ok(`the viewer sees the dashboards live (cpu ${live3.cpu}, temp ${live3.temp}) with their history (${hist[0][0]} CPU points, from before the leader kill), and no upload control`);

    const m0 = jobKeys();
    const forged = await vp.evaluate(() => fetch('/api/jobs?name=f.csv', { method: 'POST', body: 'a,b\n1,2\n' }).then(async (r) => [r.status, await r.text()]));
    if (forged[0] !== 403 || !/permission denied/.test(forged[1])) throw new Error(`the viewer's forged POST: ${forged}`);
    const noToken = await vp.evaluate(() => new Promise((res) => {
      const x = new XMLHttpRequest(); x.open('POST', '/api/jobs?name=g.csv'); x.onload = () => res([x.status, x.responseText]); x.send('a,b\n1,2\n');
    }));
    if (noToken[0] !== 403 || !/X-CSRF-Token/.test(noToken[1])) throw new Error(`the viewer's POST without the token: ${noToken}`);
    // A page of another site posting a form to the hub in the viewer's
    // browser (the test answers for that site itself: nothing leaves the browser).
    const ep = await v.ctx.newPage();
    await ep.route(`${evil}/**`, (rt) => rt.fulfill({ status: 200, contentType: 'text/html',
      body: `<!doctype html><title>elsewhere</title><form id="f" method="post" enctype="text/plain" action="${hub}api/jobs?name=x.csv"><input name="a" value="1"></form>` }));
    await ep.goto(`${evil}/`);
    const [resp] = await Promise.all([ep.waitForResponse((r) => r.url().startsWith(`${hub}api/jobs`), { timeout: 15000 }),
      ep.evaluate(() => document.getElementById('f').submit())]);
    const sent = `${resp.status()} ${await resp.text()}`;
    if (resp.status() !== 403 || !/another site/.test(sent)) throw new Error(`a cross-site form post: ${sent}`);
    await shot(ep, 'cross-site-refused');
    await ep.close();
    const vcookie = (await v.ctx.cookies()).find((x) => x.name === 'ddkv_session');
    const vcsrf = await vp.evaluate(() => window.ddkvAuth.csrf);
    const vcross = await forge('/api/jobs?name=y.csv', { cookie: vcookie.value, csrf: vcsrf, origin: evil, body: 'a,b\n1,2\n' });
    if (vcross.status !== 403 || !/another site/.test(vcross.text)) throw new Error(`the viewer's session from ${evil}: ${vcross.status} ${vcross.text}`);
    if (jobKeys() !== m0) throw new Error('a viewer\'s POST made a job');
    await shot(vp, 'viewer-refused');
    ok(`the viewer's forged POST (with its CSRF token) is 403 permission denied, without the token 403, a form posted from another site refused by the hub (${sent.slice(0, 60)}…); no job made`);
    if (v.errors.length) throw new Error(`the viewer's page errors: ${v.errors.join('; ')}`);
    if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  });
