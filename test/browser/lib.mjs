// What the browser tests share: Debian's chromium driven by playwright-core,
// a page that collects its script errors, numbered screenshots, polling
// waits, and sign-in through the page's own form. Each test's shell wrapper
// (test/cli/test_*.sh) starts the processes and passes addresses in the
// environment; a test is `run(options, async (t) => { ... })`.
import { chromium } from 'playwright-core';

export function ok(msg) { console.log(`ok - ${msg}`); }
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// until(fn, ms, what[, pollMs]): fn's first truthy value, polled; an error
// naming `what` after ms.
export async function until(fn, ms, what, pollMs = 200) {
  const end = Date.now() + ms;
  for (;;) {
    let v;
    try {
      v = await fn();
    } catch (e) {
      // The page navigated under the check (a sign-in reloads it): not yet.
      if (!/Execution context was destroyed|navigat/i.test(String(e && e.message))) throw e;
    }
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}

// As rendered: CSS and the hidden attribute included.
export const visible = (page, sel) => page.isVisible(sel);

// Screenshots DIR/NN-name.png, numbered in the order taken.
export function shooter(dir) {
  let step = 0;
  const shot = async (page, name) => {
    const path = `${dir}/${String(++step).padStart(2, '0')}-${name}.png`;
    await page.screenshot({ path, fullPage: true });
    return path;
  };
  shot.count = () => step;
  return shot;
}

export function launch(args = []) {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox', ...args] });
}

// A fresh context (its own cookie jar) and page; the page's uncaught errors
// are collected in `errors`.
export async function newPage(browser, contextOptions = {}) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 }, ...contextOptions });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return { ctx, page, errors };
}

// Signs in through the login form at `url` (the page reloads itself after a
// successful login; wait for what should follow).
export async function signIn(page, url, user, password) {
  await page.goto(url);
  await until(() => visible(page, '#login-form'), 10000, 'the login form');
  await page.fill('#login-user', user);
  await page.fill('#login-password', password);
  await page.click('#login-form button[type=submit]');
}

export async function signOut(page) {
  await Promise.all([page.waitForNavigation(), page.click('#logout')]);
  await until(() => visible(page, '#login-form'), 10000, 'the login form after signing out');
}

// run(options, body): launches the browser, opens a page, runs body({browser,
// ctx, page, errors, shot}); on failure a last screenshot and exit code 1;
// the browser closed whatever happens. Options: shots (the screenshot dir),
// viewport, contextOptions, launchArgs, checkErrors (default true: page
// errors fail the test).
export async function run(opts, body) {
  const browser = await launch(opts.launchArgs || []);
  const shot = shooter(opts.shots);
  let page = null;
  try {
    const p = await newPage(browser, { ...(opts.viewport ? { viewport: opts.viewport } : {}), ...(opts.contextOptions || {}) });
    page = p.page;
    await body({ browser, ctx: p.ctx, page, errors: p.errors, shot });
    if (opts.checkErrors !== false && p.errors.length) throw new Error(`page errors: ${p.errors.join('; ')}`);
    console.log(`${shot.count()} screenshots in ${opts.shots}`);
  } catch (e) {
    if (page) await shot(page, 'failure').catch(() => {});
    console.error(`FAIL: ${e.message}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
