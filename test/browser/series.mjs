// Named series in a real browser (issue 23 item 3): the wrapper
// (test/cli/test_series_dashboard.sh) starts a cluster, the hub and an agent
// with two command sources at different rates (temp every 300 ms, hum every
// 1.5 s). The page lists both series with their units, both charts gain
// points live over the event stream and at their own rates, the window
// selector reloads them downsampled by the hub (12 s buckets for 1 h), and
// the disks panel shows the agent's mounts and device rates.
import { run, ok, until } from './lib.mjs';

const hub = process.env.HUB_URL;
const shots = process.env.SHOTS;
const points = (page, name) => page.evaluate((n) => {
  const s = window.seriesView.series.get(n);
  return s && s.chart ? s.points : -1;
}, name);

await run({ shots, viewport: { width: 1400, height: 1200 } }, async ({ page, shot }) => {
  await page.goto(hub);
  await until(() => page.$('#clients li[data-id="sensors"]'), 20000, 'the sensors client');
  await page.click('#clients li[data-id="sensors"]');
  await until(async () => (await points(page, 'temp')) > 0 && (await points(page, 'hum')) > 0, 15000, 'both series charted');
  const titles = await page.$$eval('#series-charts .series-box h3', (els) => els.map((e) => e.textContent));
  if (!titles.some((t) => t.startsWith('temp (C) · every 300 ms')) || !titles.some((t) => t.startsWith('hum (%) · every 1.5 s')))
    throw new Error(`series titles: ${titles}`);
  ok('the page lists both command-source series with unit and interval');

  // Live, at their own rates: no reload, only the event stream.
  const t0 = await points(page, 'temp'), h0 = await points(page, 'hum');
  await new Promise((r) => setTimeout(r, 6000));
  const t1 = await points(page, 'temp'), h1 = await points(page, 'hum');
  console.log(`in 6 s: temp +${t1 - t0} points, hum +${h1 - h0}`);
  if (t1 - t0 < 10 || h1 - h0 < 2 || h1 - h0 > 6 || t1 - t0 < 2 * (h1 - h0))
    throw new Error(`live points in 6 s: temp +${t1 - t0} (want >= 10), hum +${h1 - h0} (want 2..6)`);
  const shown = await page.$eval('#series-charts [data-series="temp"] .now', (e) => e.textContent);
  if (!/^\d+(\.\d+)? C$/.test(shown)) throw new Error(`temp's current value: ${shown}`);
  await shot(page, 'series-live');
  ok('both charts gain points live, each at its own rate');

  await page.selectOption('#series-window', '1h');
  await until(() => page.evaluate(() => {
    const s = window.seriesView.series.get('temp');
    const d = s && s.chart.data.datasets[1].data;
    return d && d.length > 0 && d.every((p) => p.x % 12000 === 0) && window.seriesView.window === '1h';
  }), 10000, '1h buckets');
  const n1h = await points(page, 'temp');
  if (n1h < t1) throw new Error(`the 1h window has fewer points (${n1h}) than seen live (${t1})`);
  await shot(page, 'series-1h');
  ok('the window selector reloads the charts from the hub in 12 s buckets');

  await until(() => page.$('#disks tbody tr[data-mount="/"]'), 10000, 'the / row of the disks panel');
  const used = await page.$eval('#disks tbody tr[data-mount="/"] td:nth-child(2)', (e) => e.textContent);
  if (!/\d/.test(used)) throw new Error(`disk used: ${used}`);
  ok('the disks panel shows the agent\'s mount with used and free');

  // A many-core machine (the wrapper pushed cpu.0 .. cpu.59 and zz.sensor
  // for client bigbox): per-core series give way, the sensor is charted.
  if (process.env.BIGBOX) {
    await until(() => page.$('#clients li[data-id="bigbox"]'), 20000, 'the bigbox client');
    await page.click('#clients li[data-id="bigbox"]');
    await until(() => page.$('#series-charts [data-series="cpu.0"]'), 15000, 'bigbox charted');
    // The charts are added as the series list is drawn: wait for the sensor
    // (a page that leaves it out never draws it, and fails here).
    await until(() => page.$('#series-charts [data-series="zz.sensor"]'), 15000, 'bigbox: its sensor charted');
    const names = await page.$$eval('#series-charts .series-box', (els) => els.map((e) => e.dataset.series));
    ok(`a 60-core client: its sensor is charted (${names.length} charts, per-core ones give way)`);
  }
});
