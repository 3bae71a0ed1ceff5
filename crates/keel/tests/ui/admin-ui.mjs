// Browser test of Keel's web admin UI (issue 5 item 3) in headless Chromium through
// playwright-core. Run by crates/keel/tests/ui.rs against a real `keel serve`:
//   KEEL_URL=http://127.0.0.1:PORT KEEL_ADMIN_PASSWORD=... KEEL_ARTIFACTS=DIR node admin-ui.mjs
// Scenarios: sign-in redirect, the configuration wizard (guide §2.5) with a field error,
// creating a domain, a user and an alias (with bad input shown next to the field), check
// address, the spam filter, antivirus and DKIM pages (issue 6), the message queue (view,
// search, retry, delete), services with their connections, opened folders, a phone-sized
// layout, keyboard focus and sign-out.
// Screenshots go to KEEL_ARTIFACTS.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.KEEL_URL;
const PASSWORD = process.env.KEEL_ADMIN_PASSWORD;
const ARTIFACTS = process.env.KEEL_ARTIFACTS || 'ui-artifacts';
const CHROMIUM = process.env.KEEL_CHROMIUM || '/usr/bin/chromium';
const NEW_PASSWORD = 'Wizard-chosen-pass-7';
const EXPECT_QUEUED = process.env.KEEL_EXPECT_QUEUED || '';

if (!BASE || !PASSWORD) {
  console.error('set KEEL_URL and KEEL_ADMIN_PASSWORD');
  process.exit(2);
}
mkdirSync(ARTIFACTS, { recursive: true });

const profile = mkdtempSync(join(tmpdir(), 'keel-ui-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  viewport: { width: 1280, height: 860 },
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
context.setDefaultTimeout(15000);
const page = context.pages()[0] || (await context.newPage());
const consoleErrors = [];
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));
page.on('dialog', (d) => d.accept());

let current = 'start';
async function shot(name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}
async function step(name, fn) {
  current = name;
  process.stdout.write(`- ${name} ... `);
  await fn();
  console.log('ok');
}

// Waits for the notice a change leaves on the next page.
async function noticeSays(text) {
  await page.locator('[data-notice]', { hasText: text }).waitFor({ state: 'visible' });
}

// The error shown next to a field, inside the field's own block.
async function fieldError(inputSelector) {
  const input = page.locator(inputSelector);
  const error = input.locator('xpath=ancestor::*[contains(@class,"field")][1]').locator('.field-error');
  await error.waitFor({ state: 'visible' });
  assert.equal(await input.getAttribute('aria-invalid'), 'true');
  const text = (await error.textContent()).trim();
  assert.ok(text.length > 5, 'the error explains');
  return text;
}

try {
  await step('an unauthenticated visit goes to the sign-in page', async () => {
    await page.goto(`${BASE}/admin/users`);
    await page.waitForURL(/\/admin\/sign-in\?next=/);
    assert.ok(await page.locator('label[for="login"]').isVisible());
    await shot('01-sign-in');
  });

  await step('a wrong password is refused with a message', async () => {
    await page.fill('#login', 'admin');
    await page.fill('#password', 'not-the-password');
    await page.click('button[type="submit"]');
    const text = await fieldError('#password');
    assert.match(text, /invalid user name or password/);
  });

  await step('the first sign-in opens the configuration wizard', async () => {
    await page.fill('#password', PASSWORD);
    await page.click('button[type="submit"]');
    await page.waitForURL(`${BASE}/admin/wizard`);
    assert.equal(await page.inputValue('#w-hostname'), 'mail.example.com');
    assert.equal(await page.inputValue('#w-domain'), 'example.com');
    await shot('02-wizard');
  });

  await step('the wizard explains a bad hostname next to the field', async () => {
    await page.fill('#w-hostname', 'bad host!');
    await page.fill('#w-password', NEW_PASSWORD);
    await page.fill('#w-password2', NEW_PASSWORD);
    await page.click('form[data-api] button[type="submit"]');
    const text = await fieldError('#w-hostname');
    assert.match(text, /not a valid Internet hostname/);
    await shot('03-wizard-field-error');
  });

  await step('the wizard refuses two different passwords', async () => {
    await page.fill('#w-hostname', 'mail.ui.test');
    await page.fill('#w-password2', NEW_PASSWORD + 'x');
    await page.click('form[data-api] button[type="submit"]');
    assert.match(await fieldError('#w-password2'), /differ/);
  });

  await step('the wizard saves hostname, domain and password', async () => {
    await page.fill('#w-password2', NEW_PASSWORD);
    await page.click('form[data-api] button[type="submit"]');
    await page.waitForURL(`${BASE}/admin/`);
    await noticeSays('Setup complete');
    assert.equal((await page.textContent('[data-hostname]')).trim(), 'mail.ui.test');
    assert.equal((await page.textContent('[data-primary-domain]')).trim(), 'example.com');
    await shot('04-dashboard');
  });

  await step('the keyboard reaches the skip link first, with a visible focus', async () => {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => document.activeElement && document.activeElement.textContent.trim());
    assert.equal(focused, 'Skip to content');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none');
  });

  await step('create a domain', async () => {
    await page.click('nav >> text=Domains');
    await page.waitForURL(`${BASE}/admin/domains`);
    await page.fill('#nd-name', 'ui-test.example');
    await page.fill('#nd-description', 'Made in the browser');
    await page.click('form[data-api] button[type="submit"]');
    await noticeSays('Domain created.');
    await page.locator('table a', { hasText: 'ui-test.example' }).waitFor();
  });

  await step('an invalid and a duplicate domain name are explained next to the field', async () => {
    await page.fill('#nd-name', 'bad..name');
    await page.click('form[data-api] button[type="submit"]');
    assert.match(await fieldError('#nd-name'), /not a valid domain name/);
    await shot('05-domain-field-error');
    await page.fill('#nd-name', 'ui-test.example');
    await page.click('form[data-api] button[type="submit"]');
    assert.match(await fieldError('#nd-name'), /already used/);
    assert.equal(await page.locator('table a', { hasText: 'bad..name' }).count(), 0);
    // An over-long value is named too, and nothing is saved.
    await page.fill('#nd-name', 'long.example');
    await page.fill('#nd-description', 'x'.repeat(1100));
    await page.click('form[data-api] button[type="submit"]');
    assert.match(await fieldError('#nd-description'), /too long/);
    await page.reload();
    assert.equal(await page.locator('table a', { hasText: 'long.example' }).count(), 0);
  });

  await step('create a user, after an invalid address is explained', async () => {
    await page.click('nav >> text=Users');
    await page.waitForURL(`${BASE}/admin/users`);
    await page.fill('#nu-address', 'not an address');
    await page.fill('#nu-name', 'Jane Roe');
    await page.fill('#nu-password', 'Jane-secret-99');
    await page.click('form[data-api] button[type="submit"]');
    await fieldError('#nu-address');
    await shot('06-user-field-error');
    await page.fill('#nu-address', 'jane@ui-test.example');
    await page.fill('#nu-quota', '250');
    await page.click('form[data-api] button[type="submit"]');
    await noticeSays('User created.');
    await page.locator('table a', { hasText: 'jane@ui-test.example' }).waitFor();
    await shot('07-users');
  });

  await step('search users and edit one', async () => {
    await page.fill('#s-q', 'jane');
    await page.click('form[role="search"] button');
    await page.waitForURL(/q=jane/);
    assert.equal(await page.locator('tbody tr').count(), 1);
    await page.click('table a >> text=jane@ui-test.example');
    await page.waitForURL(/\/admin\/users\/jane/);
    assert.equal(await page.inputValue('#u-quota'), '250');
    await page.fill('#u-description', 'Sales lead');
    await page.click('form[data-api] button[type="submit"]');
    await noticeSays('User saved.');
    assert.equal(await page.inputValue('#u-description'), 'Sales lead');
  });

  // The JSON the admin API answers for a GET, with the page's session.
  const apiGet = (path) => page.evaluate(async (url) => {
    const r = await fetch(url, { credentials: 'same-origin' });
    return { status: r.status, data: await r.json() };
  }, `${BASE}/admin/api/v1${path}`);

  await step('bulk edit: one change on two ticked users (guide §8.4)', async () => {
    await page.goto(`${BASE}/admin/users`);
    await page.click('#bulk-form button[type="submit"]');
    await page.locator('#bulk-form .form-error', { hasText: 'Tick at least one user' }).waitFor();
    await page.check('input[data-bulk-user][value="jane@ui-test.example"]');
    await page.check('input[data-bulk-user][value="admin@example.com"]');
    await page.fill('#b-messages', '5000');
    await page.selectOption('#b-local', 'true');
    await page.click('#bulk-form button[type="submit"]');
    await noticeSays('2 users changed.');
    for (const a of ['jane@ui-test.example', 'admin@example.com']) {
      const u = (await apiGet(`/users/${a}`)).data.user;
      assert.equal(u.quota.messages, 5000, a);
      assert.equal(u.local_domain_only, true, a);
      assert.equal(u.quota.bytes, a.startsWith('jane') ? 250 * 1024 * 1024 : 0, 'untouched fields stay');
    }
    await page.check('input[data-bulk-user][value="admin@example.com"]');
    await page.selectOption('#b-local', 'false');
    await page.click('#bulk-form button[type="submit"]');
    await noticeSays('1 users changed.');
  });

  await step('create a user template (guide §8.10)', async () => {
    await page.click('nav >> text=User templates');
    await page.waitForURL(`${BASE}/admin/templates`);
    await page.fill('#nt-name', 'UI staff');
    await page.selectOption('#nt-domain', 'ui-test.example');
    await page.fill('#nt-description', 'Made by the import');
    await page.fill('#nt-quota', '100');
    await page.click('form[data-api] button[type="submit"]');
    await noticeSays('Template created.');
    await page.locator('td', { hasText: 'UI staff' }).waitFor();
  });

  await step('import users from CSV: preview, untick one, import (guide §8.9)', async () => {
    await page.click('nav >> text=Users');
    await page.waitForURL(`${BASE}/admin/users`);
    assert.ok(await page.locator('#nu-template option', { hasText: 'UI staff' }).count() === 1);
    await page.selectOption('#im-domain', 'ui-test.example');
    await page.selectOption('#im-template', 'UI staff');
    await page.fill('#im-csv', 'Name;FullName;MailAddress\nbulk1;Bulk One;b1\nbulk2;Bulk Two;\nbad name;Bad;\n');
    await page.click('form[data-import-users] button:not([data-import-go])');
    const rows = page.locator('[data-import-result] tbody tr');
    await rows.nth(2).waitFor();
    assert.equal(await rows.count(), 3);
    assert.match(await rows.nth(2).textContent(), /not a valid login name/);
    assert.ok(await rows.nth(2).locator('input').isDisabled());
    assert.match(await page.textContent('[data-import-result] p'), /2 of 3 users can be imported/);
    await rows.nth(1).locator('input').uncheck();
    await shot('07b-import-preview');
    await page.click('[data-import-go]');
    await noticeSays('1 users imported.');
    const one = await apiGet('/users/bulk1@ui-test.example');
    assert.equal(one.status, 200);
    assert.equal(one.data.user.quota.bytes, 100 * 1024 * 1024, 'the template applied');
    assert.deepEqual(one.data.user.addresses, ['b1@ui-test.example']);
    assert.equal((await apiGet('/users/bulk2@ui-test.example')).status, 404);
  });

  await step('recovery is off: the recover form explains why; a user clean-out age is saved', async () => {
    await page.goto(`${BASE}/admin/users/jane@ui-test.example`);
    await page.locator('#recover-off').waitFor();
    assert.ok(await page.isDisabled('#r-since'), 'the recover form is disabled while recovery is off');
    assert.equal(await page.inputValue('#u-cleanout-junk'), '', 'empty = the domain\'s');
    await page.fill('#u-cleanout-junk', '7');
    await page.click('form[data-method="PATCH"] button[type="submit"]');
    await noticeSays('User saved.');
    assert.equal(await page.inputValue('#u-cleanout-junk'), '7');
    const r = await apiGet('/users/jane@ui-test.example');
    assert.equal(r.data.user.cleanout_junk_days, 7, JSON.stringify(r.data.user));
    assert.equal(r.data.user.cleanout_deleted_items_days, null, JSON.stringify(r.data.user));
  });

  await step('set the domain\'s deleted-items recovery and clean-out on its page', async () => {
    await page.goto(`${BASE}/admin/domains/ui-test.example`);
    assert.equal(await page.inputValue('#e-recovery'), '0');
    await page.fill('#e-recovery', '400');
    await page.click('form[data-method="PATCH"] button[type="submit"]');
    assert.match(await fieldError('#e-recovery'), /at most 365 days/);
    await page.fill('#e-recovery', '30');
    await page.fill('#e-cleanout-junk', '14');
    await page.click('form[data-method="PATCH"] button[type="submit"]');
    await noticeSays('Domain saved.');
    assert.equal(await page.inputValue('#e-recovery'), '30');
    assert.equal(await page.inputValue('#e-cleanout-junk'), '14');
    await shot('07a-domain-retention');
    const r = await apiGet('/domains/ui-test.example');
    assert.equal(r.status, 200);
    assert.equal(r.data.settings.deleted_items_recovery_days, 30, JSON.stringify(r.data));
    assert.equal(r.data.settings.cleanout_junk_days, 14, JSON.stringify(r.data));
  });

  await step('public folders shared by all domains, then per domain again (guide §7.1)', async () => {
    await page.goto(`${BASE}/admin/domains`);
    assert.equal(await page.inputValue('#pf-scope'), 'per-domain');
    await page.selectOption('#pf-scope', 'global');
    await page.click('form[data-api="/admin/api/v1/public-folders"] button[type="submit"]');
    await noticeSays('Public folder setting saved.');
    let r = await apiGet('/public-folders');
    assert.equal(r.data.scope, 'global', JSON.stringify(r.data));
    await page.goto(`${BASE}/admin/domains`);
    assert.equal(await page.inputValue('#pf-scope'), 'global');
    await page.selectOption('#pf-scope', 'per-domain');
    await page.click('form[data-api="/admin/api/v1/public-folders"] button[type="submit"]');
    await noticeSays('Public folder setting saved.');
    r = await apiGet('/public-folders');
    assert.equal(r.data.scope, 'per-domain', JSON.stringify(r.data));
  });

  await step('name the domain\'s special folders on its page', async () => {
    await page.goto(`${BASE}/admin/domains/ui-test.example`);
    assert.equal(await page.getAttribute('#e-folder-junk', 'placeholder'), 'Junk E-mail');
    await page.fill('#e-folder-junk', 'INBOX');
    await page.click('form[data-method="PATCH"] button[type="submit"]');
    assert.match(await fieldError('#e-folder-junk'), /not a special-use folder/);
    await page.fill('#e-folder-junk', 'Spam');
    await page.click('form[data-method="PATCH"] button[type="submit"]');
    await noticeSays('Domain saved.');
    assert.equal(await page.inputValue('#e-folder-junk'), 'Spam');
    assert.equal(await page.inputValue('#e-folder-sent'), '');
    const r = await apiGet('/domains/ui-test.example');
    assert.deepEqual(r.data.settings.folder_names, { junk: 'Spam' }, JSON.stringify(r.data));
  });

  await step('recover deleted items and reindex from the user page', async () => {
    await page.goto(`${BASE}/admin/users/jane@ui-test.example`);
    assert.equal(await page.locator('#recover-off').count(), 0);
    assert.ok(!(await page.isDisabled('#r-since')), 'the recover form is enabled');
    await page.fill('#r-since', '2026-01-01');
    await page.click('form[data-api$="/recover"] button[type="submit"]');
    await noticeSays('Deleted items recovered into Deleted Items. (0 items)');
    await page.click('#u-reindex');
    await noticeSays('Mailbox reindexed.');
    await shot('07b-user-retention-reindex');
  });

  await step('create an alias and check where it delivers', async () => {
    await page.click('nav >> text=Aliases');
    await page.waitForURL(`${BASE}/admin/aliases`);
    await page.fill('#na-name', 'sales');
    await page.selectOption('#na-domain', 'ui-test.example');
    await page.fill('#na-targets', 'jane@ui-test.example');
    await page.click('form[data-api] button[type="submit"]');
    await noticeSays('Alias created.');
    await page.locator('td', { hasText: 'sales@ui-test.example' }).waitFor();
    await page.fill('#c-address', 'sales@ui-test.example');
    await page.click('form[data-check-address] button');
    await page.locator('output[data-result]', { hasText: 'mailbox of jane@ui-test.example' }).waitFor();
    await shot('08-aliases');
  });

  await step('create an IP address group, after a bad item is explained', async () => {
    await page.click('nav >> text=IP address groups');
    await page.waitForURL(`${BASE}/admin/ip-groups`);
    await page.fill('#ni-name', 'Office');
    await page.fill('#ni-items', '192.168.10.0/24 # office LAN\n999.1.1.1');
    await page.click('form[data-method="POST"] button[type="submit"]');
    await fieldError('#ni-items');
    await page.fill('#ni-items', '192.168.10.0/24 # office LAN\n10.0.0.1-10.0.0.9');
    await page.click('form[data-method="POST"] button[type="submit"]');
    await noticeSays('IP address group created.');
    await page.locator('td', { hasText: 'office LAN' }).waitFor();
  });

  await step('change the security policy', async () => {
    await page.click('nav >> text=Security policy');
    await page.waitForURL(`${BASE}/admin/security`);
    await page.selectOption('#p-exempt', 'Office');
    await page.fill('#p-fail', '7');
    await page.click('form[data-api] button[type="submit"]');
    await noticeSays('Security policy saved.');
    assert.equal(await page.inputValue('#p-fail'), '7');
    assert.equal(await page.inputValue('#p-exempt'), 'Office');
    await shot('10a-security');
  });

  await step('change the spam filter and the server blacklist', async () => {
    await page.click('nav >> text=Spam filter');
    await page.waitForURL(`${BASE}/admin/spam`);
    await page.fill('#s-tag', '4.5');
    await page.click('form[data-api$="/spam-settings"] button[type="submit"]');
    await noticeSays('Antispam settings saved.');
    assert.equal(await page.inputValue('#s-tag'), '4.5');
    await page.fill('#l-block', 'two words');
    await page.click('form[data-api$="/sender-lists/server"] button[type="submit"]');
    assert.match(await fieldError('#l-block'), /not an address/);
    await page.fill('#l-block', 'spam.example\n*@bad.example');
    await page.click('form[data-api$="/sender-lists/server"] button[type="submit"]');
    await noticeSays('Sender lists saved.');
    assert.equal(await page.inputValue('#l-block'), 'spam.example\n*@bad.example');
    await shot('10b-spam');
  });

  await step('the antivirus settings are refused next to the address while the scanner fails', async () => {
    await page.click('nav >> text=Antivirus');
    await page.waitForURL(`${BASE}/admin/antivirus`);
    await page.check('#v-enabled');
    await page.fill('#v-address', '127.0.0.1:9');
    await page.fill('#v-timeout', '2');
    await page.click('form[data-api$="/antivirus-settings"] button[type="submit"]');
    assert.match(await fieldError('#v-address'), /not functional/);
    await shot('10c-antivirus-error');
    await page.reload();
    assert.equal(await page.isChecked('#v-enabled'), false, 'nothing was saved');
  });

  await step('generate a DKIM key and see the DNS record to publish', async () => {
    await page.click('nav >> text=DKIM');
    await page.waitForURL(`${BASE}/admin/dkim`);
    await page.fill('#dk-sel-1', 'bad selector');
    await page.click('form[data-api^="/admin/api/v1/dkim/"] button[type="submit"] >> nth=0');
    assert.match(await fieldError('#dk-sel-1'), /selector/);
    await page.fill('#dk-sel-1', 'ui1');
    await page.selectOption('#dk-alg-1', 'ed25519');
    await page.click('form[data-api^="/admin/api/v1/dkim/"] button[type="submit"] >> nth=0');
    await noticeSays('New DKIM key');
    assert.match(await page.inputValue('#dk-name-1'), /^ui1\._domainkey\./);
    assert.match(await page.inputValue('#dk-txt-1'), /^v=DKIM1; k=ed25519; p=/);
    assert.ok(await page.locator('button[data-copy="dk-txt-1"]').isVisible());
    await shot('10d-dkim');
  });

  await step('generate a self-signed certificate and see it listed', async () => {
    await page.click('nav >> text=SSL certificates');
    await page.waitForURL(`${BASE}/admin/certificates`);
    const before = await page.locator('tr[data-cert]').count();
    await page.fill('#g-hostnames', 'bad host');
    await page.click('form[data-api$="/certificates/generate"] button[type="submit"]');
    assert.match(await fieldError('#g-hostnames'), /host name/);
    await page.fill('#g-hostnames', 'ui.example.com');
    await page.fill('#g-country', 'CZ');
    await page.click('form[data-api$="/certificates/generate"] button[type="submit"]');
    await noticeSays('Certificate generated');
    assert.equal(await page.locator('tr[data-cert]').count(), before + 1);
    const row = page.locator('tr[data-cert]', { hasText: 'ui.example.com' });
    assert.match(await row.innerText(), /self-signed/);
    assert.match(await row.innerText(), /([0-9A-F]{2}:){31}[0-9A-F]{2}/);
    await shot('10e-certificates');
  });

  await step('create a weekly time interval', async () => {
    await page.click('nav >> text=Time intervals');
    await page.waitForURL(`${BASE}/admin/time-intervals`);
    await page.fill('#nt-name', 'Work hours');
    await page.check('#nt-Mon');
    await page.check('#nt-Fri');
    await page.fill('#nt-from', '08:30');
    await page.fill('#nt-to', '17:00');
    await page.click('form[data-api] button[type="submit"]');
    await noticeSays('Time interval created.');
    await page.locator('td', { hasText: 'Mon, Fri 08:30–17:00' }).waitFor();
  });

  await step('view, search, retry and delete in the message queue', async () => {
    await page.click('nav >> text=Message queue');
    await page.waitForURL(`${BASE}/admin/queue`);
    const totals = (await page.textContent('[data-queue-totals]')).trim();
    if (EXPECT_QUEUED) {
      await page.locator('td', { hasText: EXPECT_QUEUED }).first().waitFor();
      assert.match(totals, /^1 messages/);
      await shot('09-queue');
      await page.fill('#q-q', 'nobody-matches-this');
      await page.click('form[role="search"] button');
      await page.locator('text=No queued message matches.').waitFor();
      await page.fill('#q-q', EXPECT_QUEUED);
      await page.click('form[role="search"] button');
      await page.locator('td', { hasText: EXPECT_QUEUED }).first().waitFor();
      await page.click('button:has-text("Try now")');
      await noticeSays('will be tried now');
      await page.click('button:has-text("Delete")');
      await noticeSays('Message deleted.');
      await page.locator('p.empty', { hasText: 'No queued message matches.' }).waitFor();
      assert.equal(await page.locator('table').first().locator('tbody tr').count(), 0);
      // guide §24.2: the queue processing table is there, empty when nothing is sent.
      await page.locator('#tasks').waitFor();
      await page.goto(`${BASE}/admin/queue`);
      await page.locator('text=The queue is empty.').waitFor();
    } else {
      assert.match(totals, /messages/);
      await shot('09-queue');
    }
  });

  await step('the services page lists the services with their actions', async () => {
    await page.click('nav >> text=Services');
    await page.waitForURL(`${BASE}/admin/services`);
    await page.locator('td', { hasText: 'smtp' }).first().waitFor();
    assert.ok((await page.locator('button:has-text("Restart")').count()) > 0);
    // guide §24.3: the browser's own plain-HTTP connection is listed, not secure.
    const own = page
      .locator('#connections + .table-wrap tbody tr')
      .filter({ has: page.locator('td:first-child', { hasText: /^http$/ }) })
      .first();
    assert.equal((await own.locator('td').nth(1).textContent()).trim(), 'No');
    await shot('10-services');
  });

  await step('the opened folders page renders (guide §24.4)', async () => {
    await page.click('nav >> text=Opened folders');
    await page.waitForURL(`${BASE}/admin/folders`);
    await page.locator('th', { hasText: 'Reference count' }).waitFor();
  });

  await step('the log viewer searches and follows a log', async () => {
    await page.click('nav >> text=Logs');
    await page.waitForURL(`${BASE}/admin/logs`);
    await page.selectOption('#l-log', 'config');
    await page.fill('#l-q', 'ui-test.example');
    await page.click('form[role="search"] button');
    await page.waitForURL(/log=config/);
    assert.match(await page.textContent('pre.log'), /ui-test\.example/);
    await page.check('#l-follow');
    await page.waitForTimeout(300);
    assert.match(await page.textContent('pre.log'), /ui-test\.example/);
    await shot('12-logs');
  });

  await step('log settings: rotation and a debug category (guide §25.1, §25.9)', async () => {
    await page.goto(`${BASE}/admin/logs`);
    await page.selectOption('#ls-mail-rotation', 'weekly');
    await page.fill('#ls-debug', 'smtp-server\nbogus-category');
    await page.click('form[data-api] button[type="submit"]');
    assert.match(await fieldError('#ls-debug'), /bogus-category|debug/);
    await page.fill('#ls-debug', 'smtp-server');
    await page.click('form[data-api] button[type="submit"]');
    await noticeSays('Log settings saved.');
    const s = (await apiGet('/log-settings')).data;
    assert.equal(s.mail.rotation, 'weekly');
    assert.deepEqual(s.debug_categories, ['smtp-server']);
  });

  await step('traffic charts are drawn by the server (guide §24.5)', async () => {
    await page.click('nav >> text=Traffic charts');
    await page.waitForURL(/\/admin\/traffic/);
    await page.selectOption('#t-series', 'connections.http');
    await page.selectOption('#t-range', '2h');
    await page.click('form[aria-label="Chart"] button[type="submit"]');
    await page.waitForURL(/series=connections.http/);
    const svg = page.locator('svg.chart');
    await svg.waitFor();
    assert.equal(await svg.getAttribute('data-points'), '360');
    await shot('12-traffic-chart');
  });

  await step('on a phone-sized screen the navigation and forms stay usable', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click('nav >> text=Users');
    await page.waitForURL(`${BASE}/admin/users`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the page is ${overflow}px wider than the phone screen`);
    assert.ok(await page.locator('#nu-address').isVisible());
    await shot('11-phone-users');
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await step('sign out ends the session', async () => {
    await page.click('button[data-signout]');
    await page.waitForURL(/\/admin\/sign-in/);
    await page.goto(`${BASE}/admin/`);
    await page.waitForURL(/\/admin\/sign-in/);
  });

  await step('the new password works, the generated one does not', async () => {
    await page.fill('#login', 'admin');
    await page.fill('#password', PASSWORD);
    await page.click('button[type="submit"]');
    await fieldError('#password');
    await page.fill('#password', NEW_PASSWORD);
    await page.click('button[type="submit"]');
    // The wizard is done: straight to the dashboard.
    await page.waitForURL(`${BASE}/admin/`);
    await page.locator('h1', { hasText: 'Dashboard' }).waitFor();
  });

  assert.deepEqual(consoleErrors.filter((e) => !/status of 4\d\d/.test(e)), [], 'no script errors');
  console.log('all admin UI scenarios passed');
} catch (e) {
  console.log('FAILED');
  console.error(`step "${current}" failed:`, e);
  try { await shot(`failure-${current.replace(/\W+/g, '-')}`); } catch { /* ignore */ }
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
