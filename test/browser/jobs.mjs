// Job management in a real browser (issue 23 item 4): upload a vital-signs
// CSV at high priority with the vitals algorithm, watch its progress in the
// job list, open the result (the readings chart with out-of-range buckets
// marked, the vital-sign windows and band crossings, the CSV download), and
// delete the job. The wrapper is test/cli/test_dashboard_jobs.sh.
import { run, ok, until as poll } from './lib.mjs';

const hub = process.env.HUB_URL;
const shots = process.env.SHOTS;
const csv = process.env.CSV_FILE;

const until = (fn, ms, what) => poll(fn, ms, what, 100);

await run({ shots, viewport: { width: 1400, height: 1000 } }, async ({ page, shot }) => {
  await page.goto(hub);
  await until(() => page.evaluate(() => [...document.querySelectorAll('#algorithm option')].some((o) => o.value === 'vitals')), 10000, 'the algorithm list');
  await page.selectOption('#algorithm', 'vitals');
  await page.selectOption('#priority', 'high');
  await page.setInputFiles('#file', csv);
  await page.click('#upload button');
  const msg = await until(() => page.evaluate(() => { const m = document.getElementById('upload-msg').textContent; return /Queued as job/.test(m) && m; }), 20000, 'the upload');
  const id = msg.match(/job (\S+)\./)[1];
  ok(`uploaded at high priority with the vitals algorithm: job ${id}`);

  const prog = await until(() => page.evaluate((id) => {
    const tr = document.querySelector(`#jobs tbody tr[data-id="${id}"]`);
    const p = tr && tr.cells[5].textContent;
    return p && /^([1-9]|[1-9][0-9])% \(\d+ rows\)$/.test(p) && p;
  }, id), 30000, 'live progress in the job list');
  await shot(page, 'job-progress');
  ok(`its progress shows live in the list while it runs (${prog})`);

  await until(() => page.evaluate((id) => {
    const tr = document.querySelector(`#jobs tbody tr[data-id="${id}"]`);
    return tr && tr.cells[2].textContent === 'done';
  }, id), 60000, 'the job done');
  await page.click(`#jobs tbody tr[data-id="${id}"]`);
  await until(() => page.evaluate(() => window.dashboard.jobChart && document.querySelector('#job-result table.vitals')), 10000, 'the result chart');
  const c = await page.evaluate(() => {
    const ds = window.dashboard.jobChart.data.datasets;
    const line = ds.find((d) => d.label === 'heart_rate');
    const marks = ds.find((d) => d.label === 'heart_rate out of range');
    return { points: line ? line.data.filter((v) => v != null).length : 0, marked: marks ? marks.data.filter((v) => v != null).length : -1,
      events: document.querySelectorAll('#job-result ul.events li').length, note: document.querySelector('.chart-note').textContent };
  });
  if (c.points < 100 || c.points > 400) throw new Error(`heart_rate points charted: ${c.points}`);
  if (c.marked < 1) throw new Error(`no out-of-range heart_rate bucket marked: ${JSON.stringify(c)}`);
  if (c.events < 2) throw new Error(`band crossings listed: ${c.events}`);
  await page.locator('#job-chart').scrollIntoViewIfNeeded();
  await shot(page, 'job-result-chart');
  ok(`the result charts the readings (${c.points} buckets, ${c.marked} out-of-range marked) beside the table, with ${c.events} band crossings`);

  const dl = await page.evaluate(async () => {
    const csvText = await (await fetch(document.getElementById('job-csv').href)).text();
    const json = JSON.parse(await (await fetch(document.getElementById('job-json').href)).text());
    return { head: csvText.split('\r\n')[0], algo: json.algorithm };
  });
  if (!dl.head.startsWith('column,count,missing') || dl.algo !== 'vitals') throw new Error(`downloads: ${JSON.stringify(dl)}`);
  ok('the result downloads as CSV and JSON');

  await page.click('#job-delete');
  await until(() => page.evaluate((id) => !document.querySelector(`#jobs tbody tr[data-id="${id}"]`) &&
    /deleted/.test(document.getElementById('job-result').textContent), id), 15000, 'the job gone');
  const gone = await page.evaluate(async (id) => (await fetch(`/api/jobs/${id}`)).status, id);
  if (gone !== 404) throw new Error(`GET the deleted job: ${gone}`);
  await shot(page, 'job-deleted');
  ok('"Delete job" removes it from the list and the cluster');
});
