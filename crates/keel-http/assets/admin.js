// Keel web administration: the pages are rendered by the server; this module sends every
// change to the JSON admin API (/admin/api/v1) with the session's CSRF token and shows the
// API's {"error", "field"} answer next to the field it names (issue 5, DESIGN §6).

const API = '/admin/api/v1';
const NOTICE_KEY = 'keel-admin-notice';

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : '';
}

function signInAgain() {
  const back = location.pathname + location.search;
  location.href = '/admin/sign-in?next=' + encodeURIComponent(back);
}

// One API call; never throws. Returns {ok, status, data}.
async function call(method, url, body) {
  const opts = { method, headers: { 'X-CSRF-Token': csrfToken() }, credentials: 'same-origin' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, opts);
  } catch {
    return { ok: false, status: 0, data: { error: 'The server could not be reached; check the connection and try again.' } };
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: text }; }
  }
  if (resp.status === 401 && url !== API + '/session') {
    signInAgain();
  }
  return { ok: resp.ok, status: resp.status, data };
}

// "quota.bytes" = 5 sets body.quota.bytes.
function setPath(obj, path, value) {
  const parts = path.split('.');
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    if (typeof cur[p] !== 'object' || cur[p] === null) cur[p] = {};
    cur = cur[p];
  }
  cur[parts[parts.length - 1]] = value;
}

// Reads a form into the JSON body its API operation expects; data-json on a field says how.
function formBody(form) {
  const body = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled || el.dataset.json === 'skip') continue;
    const raw = el.value;
    const omitEmpty = 'omitEmpty' in el.dataset;
    let value;
    switch (el.dataset.json) {
      case 'bool':
        value = el.checked;
        break;
      case 'number':
      case 'megabytes': {
        if (raw.trim() === '') {
          if (omitEmpty) continue;
          value = 0;
          break;
        }
        const n = Number(raw);
        // A non-number goes as typed, so the API names the field in its answer.
        if (!Number.isFinite(n)) { value = raw; break; }
        value = el.dataset.json === 'megabytes' ? Math.round(n * 1024 * 1024) : n;
        break;
      }
      case 'list':
        value = raw.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
        if (value.length === 0 && omitEmpty) continue;
        break;
      case 'json':
        // A JSON value typed by the administrator; malformed text goes as typed, so the
        // API names the field in its answer.
        try { value = JSON.parse(raw); } catch { value = raw; }
        break;
      case 'nullable-number': {
        // Empty means "not set" (e.g. a user's clean-out age: the domain's).
        const n = Number(raw);
        value = raw.trim() === '' ? null : (Number.isFinite(n) ? n : raw);
        break;
      }
      case 'bool-choice':
        // A select of "unchanged" (empty, left out), "true" or "false".
        if (raw === '') continue;
        value = raw === 'true';
        break;
      case 'nullable':
        // Empty means "not set" (an optional setting).
        value = raw.trim() === '' ? null : raw.trim();
        break;
      case 'ip-items':
        // guide §19.1: one item a line, "entry # description".
        value = raw.split('\n').map((line) => line.trim()).filter(Boolean).map((line) => {
          const cut = line.indexOf('#');
          return cut < 0
            ? { entry: line, description: '', enabled: true }
            : { entry: line.slice(0, cut).trim(), description: line.slice(cut + 1).trim(), enabled: true };
        });
        break;
      default:
        if (el.type === 'checkbox') {
          value = el.checked;
        } else {
          if (raw === '' && omitEmpty) continue;
          value = raw;
        }
    }
    setPath(body, el.name, value);
  }
  return body;
}

// guide §19.2: one daily or weekly range from the "New time interval" form.
function timeIntervalBody(form) {
  const seconds = (v) => (v.length === 5 ? v + ':00' : v);
  const days = [...form.querySelectorAll('input[name="days"]:checked')].map((el) => el.value);
  const from = seconds(form.elements.namedItem('from').value);
  const to = seconds(form.elements.namedItem('to').value);
  const item = days.length ? { type: 'weekly', days, from, to } : { type: 'daily', from, to };
  return { name: form.elements.namedItem('name').value, items: [item] };
}

function clearErrors(form) {
  for (const p of form.querySelectorAll('.field-error')) p.remove();
  for (const el of form.querySelectorAll('[aria-invalid="true"]')) {
    el.removeAttribute('aria-invalid');
    const ids = (el.getAttribute('aria-describedby') || '').split(' ').filter((id) => id && !id.endsWith('-error'));
    if (ids.length) el.setAttribute('aria-describedby', ids.join(' '));
    else el.removeAttribute('aria-describedby');
  }
  const box = form.querySelector('.form-error');
  if (box) { box.hidden = true; box.textContent = ''; }
}

// The field an API error names: exact name, or the first field below it ("quota" -> "quota.bytes").
function findField(form, field) {
  if (!field) return null;
  for (const el of form.elements) {
    if (el.name === field && !el.disabled && el.type !== 'hidden') return el;
  }
  for (const el of form.elements) {
    if (el.name && el.name.startsWith(field + '.') && !el.disabled && el.type !== 'hidden') return el;
  }
  return null;
}

function showError(form, data, fallback) {
  const message = (data && data.error) || fallback || 'The change was not saved.';
  const el = findField(form, data && data.field);
  if (el) {
    const p = document.createElement('p');
    p.className = 'field-error';
    p.id = (el.id || el.name.replace(/\W/g, '-')) + '-error';
    p.textContent = message;
    el.setAttribute('aria-invalid', 'true');
    const ids = (el.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
    ids.push(p.id);
    el.setAttribute('aria-describedby', ids.join(' '));
    const holder = el.closest('.field');
    if (holder) holder.append(p); else el.after(p);
    el.focus();
    return;
  }
  let box = form.querySelector('.form-error');
  if (!box) {
    box = document.createElement('p');
    box.className = 'form-error';
    box.setAttribute('role', 'alert');
    box.tabIndex = -1;
    form.prepend(box);
  }
  box.textContent = message;
  box.hidden = false;
  box.focus();
}

function notice(message, isError) {
  const box = document.querySelector('[data-notice]');
  if (!box) { if (isError) alert(message); return; }
  box.textContent = message;
  box.classList.toggle('error', Boolean(isError));
  box.setAttribute('role', isError ? 'alert' : 'status');
  box.hidden = false;
}

// After a change: go on (or reload) and say what happened on the next page.
function done(target, message) {
  if (message) sessionStorage.setItem(NOTICE_KEY, message);
  if (target) location.href = target; else location.reload();
}

async function submitApiForm(form, submitter) {
  clearErrors(form);
  if ('checkConfirm' in form.dataset) {
    const pw = form.elements.namedItem('password');
    const again = form.elements.namedItem('password_confirm');
    if (pw && again && pw.value !== again.value) {
      showError(form, { field: 'password_confirm', error: 'The two passwords differ: type the same new password twice.' });
      return;
    }
  }
  const body = form.dataset.build === 'time-interval' ? timeIntervalBody(form) : formBody(form);
  if (submitter) submitter.disabled = true;
  form.setAttribute('aria-busy', 'true');
  const r = await call(form.dataset.method || 'POST', form.dataset.api, body);
  form.removeAttribute('aria-busy');
  if (submitter) submitter.disabled = false;
  if (r.ok) {
    let message = form.dataset.success || 'Saved.';
    if (r.data && typeof r.data.restored === 'number') message += ` (${r.data.restored} items)`;
    done(form.dataset.next, message);
  } else if (r.status !== 401) {
    showError(form, r.data);
  }
}

async function signIn(form) {
  clearErrors(form);
  const body = { login: form.elements.namedItem('login').value, password: form.elements.namedItem('password').value };
  const r = await call('POST', API + '/session', body);
  if (r.ok) {
    location.href = form.dataset.next || '/admin/';
  } else {
    showError(form, { error: (r.data && r.data.error) || 'Sign-in failed.', field: r.status === 401 ? 'password' : undefined });
  }
}

async function buttonAction(button) {
  if (button.dataset.confirm && !confirm(button.dataset.confirm)) return;
  let body;
  if (button.dataset.body) {
    try { body = JSON.parse(button.dataset.body); } catch { body = undefined; }
  }
  button.disabled = true;
  const r = await call(button.dataset.method || 'POST', button.dataset.api, body);
  button.disabled = false;
  if (r.ok) {
    let message = button.dataset.success || 'Done.';
    if (r.data && typeof r.data.unlocked === 'number') message += ` (${r.data.unlocked} locked)`;
    if (r.data && Array.isArray(r.data.folders)) message += ' ' + reindexSummary(r.data);
    done(button.dataset.next, message);
  } else if (r.status !== 401) {
    notice((r.data && r.data.error) || 'The action failed.', true);
  }
}

// The answer of POST /users/{address}/reindex in one sentence.
function reindexSummary(report) {
  const changed = report.folders.filter((f) => f.sizes_fixed.length || f.flags_normalized.length
    || JSON.stringify(f.before) !== JSON.stringify(f.after)).length;
  const unreadable = report.folders.reduce((n, f) => n + f.unreadable.length, 0);
  let text = `${report.folders.length} folders checked, ${changed} repaired.`;
  if (unreadable) text += ` ${unreadable} messages have no readable file and were kept.`;
  return text;
}

function describeTarget(t) {
  switch (t.type) {
    case 'local-user': return 'mailbox of ' + t.user + (t.local_copy_of_forward ? ' (local copy)' : '');
    case 'external': return 'forwarded to ' + t.address;
    case 'public-folder': return 'public folder ' + t.path + ' (' + t.domain + ')';
    case 'forwarded': return t.address + ' relayed to ' + t.host + ':' + t.port;
    default: return JSON.stringify(t);
  }
}

// guide §12.3 "Check Address": where would mail to this address go?
async function checkAddress(form) {
  clearErrors(form);
  const out = form.querySelector('[data-result]');
  out.textContent = '';
  const address = form.elements.namedItem('address').value;
  const r = await call('POST', API + '/aliases/check-address', { address });
  if (!r.ok) { showError(form, r.data); return; }
  const list = document.createElement('ul');
  const add = (text) => { const li = document.createElement('li'); li.textContent = text; list.append(li); };
  if (r.data.result === 'deliver') {
    for (const t of r.data.targets) add(describeTarget(t));
    for (const n of r.data.notes) add('Note: ' + n);
    out.append(document.createTextNode('Mail to ' + address + ' is delivered to:'), list);
  } else if (r.data.result === 'not-found') {
    out.textContent = address + ' is in a local domain but matches no user, group or alias: it would be rejected.';
  } else {
    out.textContent = address + ' is not in a local domain: it would be relayed (if relaying is allowed).';
  }
}

// guide §8.4 bulk edit: the fields set in the form, on every user ticked in the table.
async function bulkEdit(form, submitter) {
  clearErrors(form);
  const addresses = [...document.querySelectorAll('input[data-bulk-user]:checked')].map((el) => el.value);
  if (addresses.length === 0) { showError(form, { error: 'Tick at least one user in the table first.' }); return; }
  const patch = formBody(form);
  if (Object.keys(patch).length === 0) { showError(form, { error: 'Set at least one field to change.' }); return; }
  if (submitter) submitter.disabled = true;
  const r = await call('PATCH', API + '/users', { addresses, patch });
  if (submitter) submitter.disabled = false;
  if (r.ok) {
    done(null, `${r.data.users.length} users changed.`);
  } else if (r.status !== 401) {
    const data = Object.assign({}, r.data);
    if (data.field) data.field = data.field.replace(/^patch\./, '');
    showError(form, data);
  }
}

// guide §8.9 user import: a preview of every row first, then the rows the admin keeps ticked.
function importRequest(form, dryRun) {
  const val = (name) => form.elements.namedItem(name).value;
  const body = { domain: val('domain'), csv: val('csv'), dry_run: dryRun };
  if (val('template')) body.template = val('template');
  if (!dryRun) {
    body.only = [...form.querySelectorAll('input[data-import-row]:checked')].map((el) => el.value);
  }
  return body;
}

function importTable(form, report) {
  const out = form.querySelector('[data-import-result]');
  out.textContent = '';
  const table = document.createElement('table');
  const head = table.createTHead().insertRow();
  for (const h of ['Import', 'Line', 'Address', 'Full name', 'Groups', 'Result']) {
    const th = document.createElement('th');
    th.scope = 'col';
    th.textContent = h;
    head.append(th);
  }
  const body = table.createTBody();
  for (const row of report.rows) {
    const tr = body.insertRow();
    const pick = tr.insertCell();
    if (report.dry_run) {
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.value = row.name;
      box.dataset.importRow = '';
      box.checked = row.status === 'ready';
      box.disabled = row.status !== 'ready';
      box.setAttribute('aria-label', 'Import ' + row.address);
      pick.append(box);
    }
    for (const text of [String(row.line), row.address, row.full_name, row.groups.join(', ')]) {
      tr.insertCell().textContent = text;
    }
    const result = tr.insertCell();
    result.textContent = row.status === 'error' ? row.problem : row.status;
    if (row.status === 'error') tr.className = 'import-error';
  }
  const wrap = document.createElement('div');
  wrap.className = 'table-wrap';
  wrap.append(table);
  const summary = document.createElement('p');
  summary.setAttribute('role', 'status');
  summary.textContent = report.dry_run
    ? `${report.ready} of ${report.rows.length} users can be imported; ${report.errors} have a problem.`
    : `${report.created} users created, ${report.skipped} not selected, ${report.errors} with a problem.`;
  out.append(summary, wrap);
  form.querySelector('[data-import-go]').hidden = !report.dry_run || report.ready === 0;
}

async function importUsers(form, dryRun, submitter) {
  clearErrors(form);
  if (submitter) submitter.disabled = true;
  const r = await call('POST', API + '/users/import', importRequest(form, dryRun));
  if (submitter) submitter.disabled = false;
  if (!r.ok) { if (r.status !== 401) showError(form, r.data); return; }
  importTable(form, r.data);
  if (!dryRun) notice(`${r.data.created} users imported.`, false);
}

// The file chosen is read into the text box in the encoding chosen (guide §8.9).
document.addEventListener('change', (ev) => {
  const input = ev.target;
  if (!(input instanceof HTMLInputElement) || input.type !== 'file' || !('importFile' in input.dataset)) return;
  const form = input.form;
  const file = input.files && input.files[0];
  if (!file) return;
  const reader = new FileReader();
  reader.onload = () => { form.elements.namedItem('csv').value = String(reader.result); };
  reader.readAsText(file, form.elements.namedItem('encoding').value);
});

document.addEventListener('submit', (ev) => {
  const form = ev.target;
  if (!(form instanceof HTMLFormElement)) return;
  if ('bulkEdit' in form.dataset) { ev.preventDefault(); bulkEdit(form, ev.submitter); return; }
  if ('importUsers' in form.dataset) {
    ev.preventDefault();
    importUsers(form, !(ev.submitter && 'importGo' in ev.submitter.dataset), ev.submitter);
    return;
  }
  if ('signin' in form.dataset) { ev.preventDefault(); signIn(form); return; }
  if ('checkAddress' in form.dataset) { ev.preventDefault(); checkAddress(form); return; }
  if (form.dataset.api) { ev.preventDefault(); submitApiForm(form, ev.submitter); }
});

document.addEventListener('click', (ev) => {
  const el = ev.target instanceof Element ? ev.target.closest('button') : null;
  if (!el || el.form && el.type === 'submit') return;
  if (el.dataset.copy) {
    // DKIM page: copy a read-only field (the DNS record to publish).
    ev.preventDefault();
    const src = document.getElementById(el.dataset.copy);
    if (!src) return;
    src.select();
    const ok = () => notice('Copied.', false);
    if (navigator.clipboard) navigator.clipboard.writeText(src.value).then(ok, () => { document.execCommand('copy'); ok(); });
    else { document.execCommand('copy'); ok(); }
    return;
  }
  if ('signout' in el.dataset) {
    ev.preventDefault();
    call('DELETE', API + '/session').then(() => { location.href = '/admin/sign-in'; });
    return;
  }
  if (el.dataset.api) { ev.preventDefault(); buttonAction(el); }
});

// guide ch. 25 log viewer: "Follow" re-reads the log's last lines every two seconds.
let following = null;
document.addEventListener('change', (ev) => {
  const box = ev.target;
  if (!(box instanceof HTMLInputElement) || !box.dataset.followLog) return;
  clearInterval(following);
  following = null;
  if (!box.checked) return;
  const pre = document.querySelector('pre.log');
  const q = box.dataset.q ? '&q=' + encodeURIComponent(box.dataset.q) : '';
  const url = API + '/logs/' + encodeURIComponent(box.dataset.followLog) + '?lines=' + (box.dataset.lines || '300') + q;
  const refresh = async () => {
    const r = await call('GET', url);
    if (!r.ok) { notice((r.data && r.data.error) || 'The log could not be read.', true); return; }
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.textContent = r.data.lines.join('\n');
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  };
  refresh();
  following = setInterval(refresh, 2000);
});

// A message saved before the last navigation ("Domain created.").
const pending = sessionStorage.getItem(NOTICE_KEY);
if (pending) {
  sessionStorage.removeItem(NOTICE_KEY);
  notice(pending, false);
}
document.documentElement.classList.add('js');
