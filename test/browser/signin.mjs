// Sign-in in a real browser (Debian's chromium, playwright-core), against a
// cluster with auth on; test/cli/test_hubauth_browser.sh starts it and the
// hub and passes their addresses in the environment.
import { run, ok, until, visible, signIn as signInAt } from './lib.mjs';
import { execFileSync } from 'node:child_process';

const hub = process.env.HUB_URL;          // http://127.0.0.1:PORT/
const other = process.env.OTHER_ORIGIN;   // http://localhost:PORT/: the same hub, another site
const shots = process.env.SHOTS;
const ddkv = process.env.DDKV_BIN;
const endpoints = process.env.DDKV_ENDPOINTS;
const pw = JSON.parse(process.env.PASSWORDS || '{}'); // {"root": ..., "otto": ..., "vera": ...}

function jobCount() {
  const out = execFileSync(ddkv, ['list', 'jobs/', '--endpoints', endpoints, '--user', 'root', '--password', pw.root]).toString();
  return out.split('\n').filter((l) => l).length;
}
const signIn = (page, user, password) => signInAt(page, hub, user, password);

if (process.env.MODE === 'auth-off') {
  // The cluster's auth is off: the page says so, and shows everything without a login.
  await run({ shots, checkErrors: false }, async ({ page, shot }) => {
    await page.goto(hub);
    await until(() => visible(page, '#auth-off'), 10000, 'the auth-off banner');
    const says = await page.textContent('#auth-off');
    if (!/Authentication is off/.test(says)) throw new Error(`banner: ${says}`);
    if (await visible(page, '#login-form')) throw new Error('a login form with auth off');
    if (!(await visible(page, '#upload'))) throw new Error('auth off, yet no upload');
    await shot(page, 'auth-off');
    ok('auth off: the page says so plainly, with no login form');
  });
  process.exit();
}
await run({ shots }, async ({ ctx, page, errors, shot }) => {
  await page.goto(hub);
  await until(() => visible(page, '#login-form'), 10000, 'the login form');
  if (await visible(page, '#clients')) throw new Error('the dashboard shows before sign-in');
  await shot(page, 'login-form');
  ok('signed out, the page shows the login form and no dashboard');

  await signIn(page, 'otto', 'not-the-password');
  await until(() => page.evaluate(() => /wrong user or password/.test(document.getElementById('login-msg').textContent)), 10000, 'the refusal');
  ok('a wrong password is refused on the form');

  await signIn(page, 'otto', pw.otto);
  await until(() => visible(page, '#clients'), 15000, 'the dashboard');
  await until(() => page.evaluate(() => document.querySelectorAll('#clients li').length === 1), 20000, 'the client');
  const who = await page.textContent('#who');
  if (!/otto/.test(who) || !/operator/.test(who)) throw new Error(`who: ${who}`);
  if (!(await visible(page, '#upload'))) throw new Error('an operator does not see the upload');
  if (await visible(page, '#users-panel')) throw new Error('an operator sees user management');
  if (/ddkv_session/.test(await page.evaluate(() => document.cookie))) throw new Error('the session cookie is readable by scripts');
  const cookie = (await ctx.cookies()).find((c) => c.name === 'ddkv_session');
  if (!cookie || !cookie.httpOnly || cookie.sameSite !== 'Strict') throw new Error(`cookie: ${JSON.stringify(cookie)}`);
  await shot(page, 'operator');
  ok('an operator signs in: the dashboard with the jobs upload, no user management; the cookie is HttpOnly, SameSite=Strict');

  await Promise.all([page.waitForNavigation(), page.click('#logout')]);
  await until(() => visible(page, '#login-form'), 10000, 'the login form after signing out');
  const after = await page.evaluate(() => fetch('/api/clients').then((r) => r.status));
  if (after !== 401) throw new Error(`after sign-out /api/clients answered ${after}`);
  await shot(page, 'signed-out');
  ok('signing out returns to the form, and the API answers 401');

  await signIn(page, 'vera', pw.vera);
  await until(() => page.evaluate(() => document.querySelectorAll('#clients li').length === 1), 20000, 'the client for the viewer');
  if (await visible(page, '#upload')) throw new Error('a viewer sees the upload');
  const n0 = jobCount();
  // A forged upload from the viewer's own session (the page adds the CSRF token): the cluster refuses it.
  const forged = await page.evaluate(() => fetch('/api/jobs?name=f.csv', { method: 'POST', body: 'a,b\n1,2\n' })
    .then(async (r) => [r.status, (await r.json()).error]));
  if (forged[0] !== 403 || !/permission denied/.test(forged[1])) throw new Error(`viewer's forged POST: ${forged}`);
  // Without the token (a request the page did not make): refused by the hub.
  const bare = await page.evaluate(() => new Promise((res) => {
    const x = new XMLHttpRequest(); x.open('POST', '/api/jobs?name=g.csv'); x.onload = () => res([x.status, x.responseText]); x.send('a,b\n1,2\n');
  }));
  if (bare[0] !== 403 || !/X-CSRF-Token/.test(bare[1])) throw new Error(`POST without the token: ${bare}`);
  await shot(page, 'viewer');
  ok('a viewer sees the dashboards without the upload; its forged POST is 403 (cluster), without the token 403 (CSRF)');

  // A cross-site POST: a page of another site (localhost is not 127.0.0.1 to
  // the browser) posts to the hub with the viewer's cookie in the jar.
  const evil = await ctx.newPage();
  await evil.goto(other);
  await evil.evaluate((target) => fetch(`${target}api/jobs?name=x.csv`, { method: 'POST', body: 'a,b\n1,2\n', credentials: 'include', mode: 'no-cors' }).catch(() => {}), hub);
  await new Promise((r) => setTimeout(r, 500));
  if (jobCount() !== n0) throw new Error('a cross-site POST made a job');
  await evil.close();
  ok('a cross-site POST makes no job');

  await Promise.all([page.waitForNavigation(), page.click('#logout')]);
  await signIn(page, 'root', pw.root);
  await until(() => visible(page, '#users-panel'), 15000, 'user management for root');
  await until(() => page.evaluate(() => document.querySelectorAll('#users tbody tr').length >= 4), 10000, 'the user list');
  await page.fill('#new-user', 'nina');
  await page.fill('#new-password', 'nina-pw-7');
  await page.click('#user-add button[type=submit]');
  await until(() => page.evaluate(() => !!document.querySelector('#users tr[data-user="nina"]')), 10000, 'nina listed');
  await page.fill('#grant-user', 'nina');
  await page.fill('#grant-role', 'viewer');
  await page.click('#user-grant button[type=submit]');
  await until(() => page.evaluate(() => /viewer/.test(document.querySelector('#users tr[data-user="nina"]').textContent)), 10000, 'nina a viewer');
  await shot(page, 'root-users');
  await page.click('#users tr[data-user="nina"] button');
  await until(() => page.evaluate(() => !document.querySelector('#users tr[data-user="nina"]')), 10000, 'nina removed');
  ok('root manages users from the page: adds one, grants a role, removes it');

  await Promise.all([page.waitForNavigation(), page.click('#logout')]);
  await until(() => visible(page, '#login-form'), 10000, 'signed out');
  if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  ok('no page errors');
});
