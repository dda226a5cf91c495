// The dashboard in a real browser: Debian's chromium driven by playwright-core.
// The shell wrapper (test/cli/test_dashboard.sh) starts a 3-node cluster, the
// hub and two agents, and passes their addresses and PIDs in the environment.
import { run, ok, until } from './lib.mjs';
import { execFileSync } from 'node:child_process';

const hub = process.env.HUB_URL;
const shots = process.env.SHOTS;
const nodePids = JSON.parse(process.env.NODE_PIDS);   // {"n1": pid, ...}
const agentPids = JSON.parse(process.env.AGENT_PIDS); // {"alpha": pid, "beta": pid}
const csv = process.env.CSV_FILE;
const ddkv = process.env.DDKV_BIN;
const endpoints = process.env.DDKV_ENDPOINTS;

await run({ shots, viewport: { width: 1400, height: 900 } }, async ({ page, shot }) => {
  let reloads = 0;
  page.on('load', () => { reloads++; });
  await page.goto(hub);
  await until(() => page.evaluate(() => document.querySelectorAll('#clients li').length === 2), 20000, 'two clients');
  const names = await page.$$eval('#clients li .name', (els) => els.map((e) => e.textContent).sort());
  if (names.join(',') !== 'alpha,beta') throw new Error(`clients listed: ${names}`);
  ok('the page lists both clients');

  await page.click('#clients li[data-id="alpha"]');
  const n0 = await until(() => page.evaluate(() => window.dashboard.charts && window.dashboard.charts.cpu.data.datasets[0].data.length), 10000, 'CPU points');
  await until(() => page.evaluate((n) => window.dashboard.charts.cpu.data.datasets[0].data.length >= n + 3, n0), 15000, 'new CPU points');
  await shot(page, 'client-charts');
  ok('the CPU chart of a client gains points live');

  await page.click('#fetch-now');
  await until(() => page.evaluate(() => /Fresh from alpha/.test(document.getElementById('fresh').textContent)), 10000, 'fresh data');
  ok('"Fetch fresh data" gets a sample from the agent through the hub');

  await page.setInputFiles('#file', csv);
  await page.click('#upload button');
  await until(() => page.evaluate(() => /Queued as job/.test(document.getElementById('upload-msg').textContent)), 20000, 'the upload');
  await until(() => page.evaluate(() => [...document.querySelectorAll('#jobs td.state')].some((td) => td.textContent === 'done')), 60000, 'the job done');
  await page.click('#jobs tbody tr');
  await until(() => page.evaluate(() => document.querySelectorAll('#job-result table tr').length > 2), 10000, 'the result table');
  const cols = await page.$$eval('#job-result table tr td:first-child', (els) => els.map((e) => e.textContent));
  if (!cols.includes('heart_rate')) throw new Error(`result columns: ${cols}`);
  await shot(page, 'job-result');
  ok(`an uploaded file is processed and its result table shown (${cols.join(', ')})`);

  // Kill -9 the cluster's leader: the page keeps updating, without a reload.
  const st = JSON.parse(execFileSync(ddkv, ['--endpoints', endpoints, '-o', 'json', 'ping']).toString());
  const leader = st.leader;
  if (!nodePids[leader]) throw new Error(`leader ${leader} unknown`);
  const before = await page.evaluate(() => window.dashboard.charts.cpu.data.datasets[0].data.length);
  const t0 = Date.now();
  process.kill(nodePids[leader], 'SIGKILL');
  await until(() => page.evaluate((n) => window.dashboard.charts.cpu.data.datasets[0].data.length > n + 1, before), 20000, 'points after the leader kill');
  const gap = Date.now() - t0;
  if (reloads !== 1) throw new Error(`the page reloaded (${reloads} loads)`);
  await until(() => page.evaluate(() => /cluster 2\/3/.test(document.getElementById('cluster-pill').textContent)), 15000, 'the cluster panel showing the dead node');
  // The dead node's row names it (from the live members' list) and says it is down.
  await until(() => page.evaluate((name) => [...document.querySelectorAll('#cluster tbody tr')].some((tr) =>
    tr.cells[0].textContent === name && tr.cells[7].textContent === 'down'), leader), 15000, `a row '${leader} … down'`);
  await shot(page, 'after-leader-kill');
  ok(`after kill -9 of the leader (${leader}) the charts keep updating (new points within ${gap} ms), no reload`);

  process.kill(agentPids.beta, 'SIGKILL');
  await until(() => page.evaluate(() => document.querySelectorAll('#clients li').length === 1), 20000, 'beta to leave the list');
  await shot(page, 'agent-gone');
  ok('a killed agent disappears from the list when its lease ends');
});
