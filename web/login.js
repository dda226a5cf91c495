// Sign-in for the dashboard: asks the hub who is signed in (/api/session),
// shows the login form when nobody is, and says so plainly when the
// cluster's authentication is off. Every request that changes state carries
// the session's CSRF token (X-CSRF-Token), added here to every fetch so the
// rest of the page need not think of it. Roles decide what the page shows:
// a viewer the dashboards; an operator also jobs; root also users and roles.
// What a person may do is decided by the cluster, not by what is shown.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const auth = { on: null, user: null, roles: [], csrf: '' };
  window.ddkvAuth = auth; // for the browser tests (test/browser)

  const plainFetch = window.fetch.bind(window);
  window.fetch = (input, init = {}) => {
    const method = (init.method || 'GET').toUpperCase();
    if (method !== 'GET' && method !== 'HEAD' && auth.csrf) {
      const headers = new Headers(init.headers || {});
      headers.set('X-CSRF-Token', auth.csrf);
      init = { ...init, headers };
    }
    return plainFetch(input, init).then((r) => {
      // The session ended (signed out elsewhere, expired): back to the form.
      if (r.status === 401 && auth.on && String(input).startsWith('/api/') && String(input) !== '/api/login') showLogin('Your session ended; sign in again.');
      return r;
    });
  };

  async function json(r) { return r.json().catch(() => ({ error: r.statusText })); }

  function showLogin(msg) {
    auth.user = null; auth.csrf = '';
    $('main').hidden = true;
    $('who').hidden = true; $('logout').hidden = true;
    $('login-view').hidden = false;
    $('login-msg').textContent = msg || '';
    $('login-user').focus();
  }

  let started = false;
  function showDashboard() {
    const has = (r) => auth.roles.includes(r);
    $('login-view').hidden = true;
    $('main').hidden = false;
    $('auth-off').hidden = auth.on !== false;
    if (auth.on) {
      $('who').hidden = false; $('logout').hidden = false;
      $('who').textContent = `${auth.user} (${auth.roles.join(', ') || 'no roles'})`;
    }
    // Auth off: everything is open, so everything is shown (the banner says why).
    $('jobs-panel').hidden = auth.on && !has('operator') && !has('root');
    $('users-panel').hidden = !auth.on || !has('root');
    if (!$('users-panel').hidden) loadUsers();
    if (!started && window.ddkvStart) { started = true; window.ddkvStart(); }
  }

  async function loadSession() {
    const r = await fetch('/api/session');
    const b = await json(r);
    if (r.status === 401) { auth.on = true; showLogin(); return; }
    if (!r.ok) { showLogin(b.error || 'The hub does not answer.'); return; }
    auth.on = b.auth; auth.user = b.user; auth.roles = b.roles || []; auth.csrf = b.csrf || '';
    showDashboard();
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('login-msg').textContent = 'Signing in…';
    const r = await fetch('/api/login', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ user: $('login-user').value, password: $('login-password').value }) });
    const b = await json(r);
    $('login-password').value = '';
    if (!r.ok) { $('login-msg').textContent = b.error || r.statusText; return; }
    // A fresh page: the event stream and lists start as this person.
    location.reload();
  });

  $('logout').addEventListener('click', async () => {
    await fetch('/api/logout', { method: 'POST' });
    location.reload();
  });

  // --- users and roles (root) ---
  async function loadUsers() {
    const r = await fetch('/api/users');
    const b = await json(r);
    if (!r.ok) { $('users-msg').textContent = b.error; return; }
    const tb = $('users').querySelector('tbody'); tb.replaceChildren();
    for (const u of b.users) {
      const tr = document.createElement('tr'); tr.dataset.user = u.name;
      const name = document.createElement('td'); name.textContent = u.name;
      const roles = document.createElement('td'); roles.textContent = u.roles.join(', ');
      const act = document.createElement('td');
      if (u.name !== 'root') {
        const del = document.createElement('button'); del.type = 'button'; del.textContent = 'Remove';
        del.addEventListener('click', () => change(`/api/users/${encodeURIComponent(u.name)}/remove`, {}, `Removed ${u.name}.`));
        act.append(del);
      }
      tr.append(name, roles, act); tb.append(tr);
    }
    $('roles-list').textContent = ['root', ...b.roles.map((x) => x.name)].join(', ');
  }
  async function change(path, body, ok) {
    const r = await fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const b = await json(r);
    $('users-msg').textContent = r.ok ? ok : b.error;
    loadUsers();
  }
  $('user-add').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const user = $('new-user').value, password = $('new-password').value;
    $('new-password').value = '';
    change('/api/users', { user, password }, `Added ${user}.`);
  });
  $('user-grant').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const u = $('grant-user').value, role = $('grant-role').value;
    change(`/api/users/${encodeURIComponent(u)}/grant`, { role }, `Granted ${role} to ${u}.`);
  });
  $('revoke-role').addEventListener('click', () => {
    const u = $('grant-user').value, role = $('grant-role').value;
    change(`/api/users/${encodeURIComponent(u)}/revoke`, { role }, `Revoked ${role} from ${u}.`);
  });

  loadSession().catch((e) => showLogin(e.message));
})();
