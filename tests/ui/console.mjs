// The web console in headless Chromium (playwright-core), run by tests/ui.rs against the real
// `inventory serve`: node console.mjs <base-url> <plan-json>. Prints "console e2e: ok" and exits
// 0 when every check passes; exits 1 naming the first that failed. With
// INVENTORY_UI_SCREENSHOTS=<dir>, writes the screenshots of docs/ui.md there.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [base, planJson] = process.argv.slice(2);
const plan = JSON.parse(planJson);
const shots = process.env.INVENTORY_UI_SCREENSHOTS;
if (shots) mkdirSync(shots, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
  console.log('ok - ' + what);
}

async function shot(page, name) {
  if (shots) await page.screenshot({ path: join(shots, name + '.png'), fullPage: false });
}

// Waits for the page's data fragment (or its error) to arrive.
async function loaded(page) {
  await page.waitForSelector('#main[aria-busy="false"]', { timeout: 15000 });
}

async function names(page) {
  return page.$$eval('#assets tbody td:first-child a', (as) => as.map((a) => a.textContent.trim()));
}

const browser = await chromium.launch({
  executablePath: process.env.INVENTORY_UI_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
let failed = null;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const errors = [];
  // Console errors (CSP violations, script errors), and failed responses other than the 401s
  // this test asks for and the browser's own favicon probe.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('response', (r) => {
    if (r.status() >= 400 && r.status() !== 401 && !r.url().endsWith('/favicon.ico')) errors.push(r.status() + ' ' + r.url());
  });

  // 1. Viewer tokens are configured: without one, the shell asks and shows no data.
  await page.goto(base + '/');
  await loaded(page);
  check((await page.getAttribute('#main', 'data-status')) === '401', 'the inventory needs a token');
  check(await page.isVisible('#token-form'), 'the token prompt is shown');
  const bare = await page.content();
  check(!bare.includes(plan.search_hits[0]) && !bare.includes(plan.gcp_only), 'no data without a token');
  // Keyboard: the prompt takes the focus; the skip link shows itself when focused.
  check(await page.evaluate(() => document.activeElement.id === 'token'), 'the token prompt has the keyboard focus');
  await page.focus('a.skip');
  check(await page.evaluate(() => document.querySelector('a.skip').getBoundingClientRect().left >= 0), 'the skip link is visible when focused');
  await page.focus('#token');
  await shot(page, 'token');
  await page.fill('#token', plan.viewer);
  await page.press('#token', 'Enter');
  await page.waitForSelector('#assets', { timeout: 15000 });
  const all = await names(page);
  check(plan.search_hits.every((n) => all.includes(n)) && all.includes(plan.gcp_only), 'the token shows the inventory: ' + all.join(', '));
  check(!all.includes(plan.deleted_name), 'the deleted asset is hidden now');
  check(await page.evaluate(() => sessionStorage.getItem('asset-inventory-token')) !== null, 'the token is kept in sessionStorage');
  await shot(page, 'inventory');

  // 2. Search and facets narrow the list.
  await page.fill('#q', plan.search);
  await Promise.all([page.waitForURL(/q=/), page.press('#q', 'Enter')]);
  await page.waitForSelector('#assets');
  const hits = await names(page);
  check(plan.search_hits.every((n) => hits.includes(n)) && plan.search_misses.every((n) => !hits.includes(n)), 'search narrows: ' + hits.join(', '));
  await page.goto(base + '/');
  await page.waitForSelector('#assets');
  await Promise.all([page.waitForURL(/provider=gcp/), page.click('a[data-facet="provider"][data-value="gcp"]')]);
  await page.waitForSelector('#assets');
  const gcp = await names(page);
  check(gcp.length === 1 && gcp[0] === plan.gcp_only, 'the provider facet narrows: ' + gcp.join(', '));
  check((await page.textContent('#total')).trim() === '1', 'the facet total is 1');
  await page.click('details.api-call summary');
  check((await page.textContent('details.api-call code')).includes('/api/v1/assets?provider=gcp'), 'show as API call names the query');
  await page.goto(base + '/');
  await page.waitForSelector('#assets');
  await Promise.all([page.waitForURL(/label=/), page.click('a[data-facet="label"][data-value="' + plan.label + '"]')]);
  await page.waitForSelector('#assets');
  const labelled = await names(page);
  check(labelled.length === 1 && labelled[0] === plan.label_only, 'the label facet narrows: ' + labelled.join(', '));
  check((await page.textContent('#total')).trim() === '1', 'the label facet total is 1');

  // 3. As of before the deletion, the deleted asset is back; the slider knows the stream.
  await page.goto(base + '/?as_of=seq:' + plan.before_delete);
  await page.waitForSelector('#assets');
  const then = await names(page);
  check(then.includes(plan.deleted_name), 'as of seq:' + plan.before_delete + ' the deleted asset is back');
  check(await page.isEnabled('#as_of_slider'), 'the as-of slider is enabled');
  check((await page.inputValue('#as_of_slider')) === String(plan.before_delete), 'the slider stands at the as-of point');
  check((await page.getAttribute('nav[aria-label="Console"] a[href^="/ui/diff"]', 'href')).includes('as_of=seq'), 'navigation keeps as_of');
  await shot(page, 'as-of');

  // 4. The asset page: pick two versions, the diff shows the changed field.
  await page.goto(base + '/ui/asset?key=' + encodeURIComponent(plan.asset));
  await page.waitForSelector('#timeline');
  const seqs = await page.$$eval('#timeline tbody tr', (trs) => trs.map((t) => Number(t.dataset.seq)));
  check(seqs.length === 3, 'the timeline has every version: ' + seqs.join(', '));
  check((await page.getAttribute('#chain-status', 'class')) === 'ok', 'the asset chain verifies: ' + (await page.textContent('#chain-status')));
  await page.check('#a-' + Math.min(...seqs));
  await page.check('#b-' + Math.max(...seqs));
  await Promise.all([page.waitForURL(/b=/), page.click('#timeline-form button[type="submit"]')]);
  await page.waitForSelector('#version-diff');
  const paths = await page.$$eval('#version-diff tr[data-path]', (trs) => trs.map((t) => t.dataset.path));
  check(paths.includes('/name') && paths.includes('/labels/team'), 'the diff shows the changed fields: ' + paths.join(', '));
  check((await page.textContent('#version-diff')).includes('payments-production'), 'the diff shows the new name');
  await page.evaluate(() => window.scrollTo(0, document.querySelector('h1').getBoundingClientRect().top + window.scrollY - 10));
  await shot(page, 'asset');

  // 5. The estate diff's totals are /api/v1/diff's.
  const q = 'from=seq:' + plan.first_seq + '&to=seq:' + plan.last_seq;
  await page.goto(base + '/ui/diff?' + q);
  await page.waitForSelector('#diff-totals');
  const api = await (await fetch(base + '/api/v1/diff?' + q, { headers: { Authorization: 'Bearer ' + plan.viewer } })).json();
  for (const k of ['added', 'removed', 'changed']) {
    const shown = Number((await page.textContent('#diff-' + k)).trim());
    check(shown === api.counts[k], `estate diff ${k}: page ${shown} = API ${api.counts[k]}`);
  }
  await shot(page, 'diff');

  // 6. Collectors and the chart.
  await page.goto(base + '/ui/collectors');
  await page.waitForSelector('#collectors');
  await shot(page, 'collectors');
  await page.goto(base + '/ui/changes');
  await page.waitForSelector('#chart figure svg');
  await shot(page, 'changes');

  // 7. Live: a change published during the test appears within 2 s.
  await page.goto(base + '/ui/live');
  await page.waitForFunction(() => (document.getElementById('live').dataset.state || '').startsWith('Connected'), null, { timeout: 15000 });
  const started = Date.now();
  const resp = await fetch(base + '/api/v1/monitoring', {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + plan.writer, 'Content-Type': 'application/json' },
    body: JSON.stringify({ kind: 'prometheus', name: 'live-probe', url: 'http://live-probe.example:9090/' }),
  });
  check(resp.status < 300, 'declared an endpoint during the test (HTTP ' + resp.status + ')');
  await page.waitForFunction(() => document.getElementById('live-rows').textContent.includes('live-probe'), null, { timeout: 2000 });
  check(Date.now() - started <= 2000, 'the change appeared in the live view in ' + (Date.now() - started) + ' ms');
  // Pause, publish, resume: the change made while paused arrives (Last-Event-ID, no gap).
  await page.click('#live-toggle');
  await fetch(base + '/api/v1/monitoring', {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + plan.writer, 'Content-Type': 'application/json' },
    body: JSON.stringify({ kind: 'prometheus', name: 'while-paused', url: 'http://while-paused.example:9090/' }),
  });
  await new Promise((r) => setTimeout(r, 500));
  check(!(await page.textContent('#live-rows')).includes('while-paused'), 'nothing arrives while paused');
  await page.click('#live-toggle');
  await page.waitForFunction(() => document.getElementById('live-rows').textContent.includes('while-paused'), null, { timeout: 5000 });
  check(true, 'resume with Last-Event-ID delivers the change made while paused');
  await shot(page, 'live');

  // 8. Phone width: no horizontal scrolling of the page itself.
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(base + '/');
  // A new tab: the token was kept for the other tab only.
  await phone.waitForSelector('#token-form:not([hidden])');
  check(!(await phone.content()).includes(plan.gcp_only), 'a new tab has no token and shows no data');
  await phone.fill('#token', plan.viewer);
  await phone.press('#token', 'Enter');
  await phone.waitForSelector('#assets');
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, 'at phone width the page does not scroll sideways (' + overflow + ' px)');
  await shot(phone, 'phone');

  check(errors.length === 0, 'no console errors: ' + errors.join(' | '));
} catch (e) {
  failed = e;
} finally {
  await browser.close();
}
if (failed) {
  console.error(String(failed && failed.stack ? failed.stack : failed));
  process.exit(1);
}
console.log('console e2e: ok');
