// dashboard.test.mjs -- the dashboard page (aggregator/web/dashboard.html) in
// Chromium, in its two lives:
// - the HTML report: hits seeded in a private Redis, `run --once`, `report
//   --format html` to a file, the file opened with every request refused:
//   exact numbers, the hostile path kept as text, print layout, screenshots,
//   axe-core;
// - the live dashboard on the real `fairstat-aggregator serve`: hits dated
//   from now folded by `run --once`, the login form, then periods, sites,
//   filters (only what the aggregates hold is asked), current visitors, a
//   refusal's message, every request kept inside the server, no console
//   error, screenshots, axe-core.
// Screenshots go to tests/artifacts/ (desktop 1280 px, 360 px, dark mode).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { launch, ARTIFACTS } from './browser.mjs';
import { startRedis, startServe, writeConfig, run, BIN, ROOT, waitFor } from '../lib/harness.mjs';

const AGG = process.env.FAIRSTAT_AGGREGATOR || BIN('fairstat-aggregator');
const PAGE = path.join(ROOT, 'aggregator', 'web', 'dashboard.html');
const AXE = path.join(ROOT, 'node_modules', 'axe-core', 'axe.min.js');
const HOSTILE = '/x</script><script>window.__pwned=1</script><!--\u2028y';
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 360, height: 740 };

let browser, dir;
before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'fs-dash-'));
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// A page in a fresh context that records console errors, page errors and
// every request; requests for which allow(url) is false are aborted.
async function open(allow, opts = {}) {
  const context = await browser.newContext({ viewport: opts.viewport || DESKTOP, colorScheme: opts.colorScheme || 'light' });
  const page = await context.newPage();
  const rec = { errors: [], requests: [], refused: [] };
  page.on('console', (m) => { if (m.type() === 'error') rec.errors.push(m.text()); });
  page.on('pageerror', (e) => rec.errors.push(e.message));
  await context.route('**/*', (route) => {
    const url = route.request().url();
    rec.requests.push(url);
    if (allow(url)) return route.continue();
    rec.refused.push(url);
    return route.abort();
  });
  return { context, page, rec };
}

// axe-core from npm, injected into the page: no serious or critical violation.
async function axe(page, what) {
  await page.addScriptTag({ path: AXE });
  const found = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  });
  assert.deepEqual(found, [], `${what}: axe-core violations`);
}

const card = (page, metric) => page.locator(`.metric[data-metric="${metric}"]`);
const cardValue = (page, metric) => card(page, metric).locator('.value').textContent();
const panel = (page, title) => page.locator('section.panel').filter({ has: page.getByRole('heading', { name: title, exact: true }) });
// A panel's rows as [label, ...metric cells].
const rows = (page, title) => panel(page, title).locator('tbody tr').evaluateAll((trs) =>
  trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));

async function noOverflow(page, width) {
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(w <= width, `page is ${w} px wide at a ${width} px viewport`);
  // A number column's header is shown whole ("VISITORS", not "VISITO…").
  const cut = await page.evaluate(() => [...document.querySelectorAll('.panel th')]
    .filter((th) => th.previousElementSibling && th.scrollWidth > th.clientWidth)
    .map((th) => `${th.textContent} (${th.scrollWidth} px in ${th.clientWidth})`));
  assert.deepEqual(cut, [], `headers cut at a ${width} px viewport`);
}

// ------------------------------------------------------------ the HTML report

// Six hits, folded by the real aggregator. 1-7 May: visitor A reads /landing
// then /pricing 5 minutes later and signs up; B lands from a search engine
// and leaves; C lands on a hostile path and leaves. 25 April: D alone.
async function htmlReport() {
  const redis = await startRedis();
  try {
    // The fixtures are of 2024: kept past the default retention (25 months),
    // which the fold applies as an expiry on the aggregates it writes.
    const conf = writeConfig(dir, { port: 1, redisUrl: redis.url, sections: { retention: { aggregates: '10y' } } });
    const hit = (t, p, v, extra = {}) => ({ t: String(Date.parse(t)), n: 'pageview', p, r: 'news.example', c: 'DE',
      b: 'Firefox', o: 'Linux', dv: 'desktop', v: v.repeat(16), ...extra });
    const hits = [
      hit('2024-05-01T10:00:00Z', '/landing', 'a'),
      hit('2024-05-01T10:05:00Z', '/pricing', 'a'),
      hit('2024-05-01T10:06:00Z', '/pricing', 'a', { n: 'Signup', pr: '{"plan":"pro"}' }),
      hit('2024-05-02T09:00:00Z', '/landing', 'b', { r: 'search.example', c: 'FR', b: 'Chrome' }),
      hit('2024-05-03T12:00:00Z', HOSTILE, 'c'),
      hit('2024-04-25T12:00:00Z', '/landing', 'd'),
    ];
    for (const h of hits) await redis.client.cmd('XADD', 'fs:{example.com}:hits', '*', ...Object.entries(h).flat());
    const folded = await run(AGG, ['-c', conf, 'run', '--once']);
    assert.equal(folded.code, 0, folded.stderr);
    const r = await run(AGG, ['-c', conf, 'report', '--site', 'example.com', '--from', '2024-05-01', '--to', '2024-05-07', '--format', 'html']);
    assert.equal(r.code, 0, r.stderr);
    const file = path.join(dir, 'report.html');
    writeFileSync(file, r.stdout);
    return { file, html: r.stdout };
  } finally {
    await redis.stop();
  }
}

test('HTML report: the numbers of the seeded hits, offline, no request but the file itself', async () => {
  const { file, html } = await htmlReport();
  assert.doesNotMatch(html, /<script[^>]+src=|<link|@import|url\(/i, 'nothing to load from elsewhere');
  assert.equal(html.split('</script>').length - 1, 2, 'the data and the script: no value ends an element');
  assert.ok(!/[\u2028\u2029]/.test(html), 'line separators escaped');
  assert.ok(html.includes('"previous":{"from":"2024-04-24","to":"2024-04-30"'), 'the previous period of the same length');
  const url = pathToFileURL(file).href;
  const { context, page, rec } = await open((u) => u === url);
  await page.goto(url);
  await page.locator('.metric[data-metric="visitors"] .value').waitFor();
  assert.equal(await cardValue(page, 'visitors'), '3');
  assert.equal(await cardValue(page, 'visits'), '3');
  assert.equal(await cardValue(page, 'pageviews'), '4');
  assert.equal(await cardValue(page, 'views_per_visit'), '1.33');
  assert.equal(await cardValue(page, 'bounce_rate'), '67%');
  assert.equal(await cardValue(page, 'visit_duration'), '1m 40s');
  // Against 24-30 April (D alone: 1 visitor, 1 visit, 1 pageview, 100 % bounce).
  assert.match(await card(page, 'visitors').locator('.chg').textContent(), /^↑ 200%/);
  assert.match(await card(page, 'pageviews').locator('.chg').textContent(), /^↑ 300%/);
  assert.match(await card(page, 'bounce_rate').locator('.chg').textContent(), /^↓ 33 pts/);
  assert.equal(await card(page, 'bounce_rate').locator('.chg.good').count(), 1, 'a lower bounce rate is good');
  assert.equal(await page.locator('#range').textContent(), '1 May 2024 – 7 May 2024 (UTC)');

  assert.deepEqual(await rows(page, 'Top pages'), [['/landing', '2', '2'], ['/pricing', '1', '1'], [HOSTILE, '1', '1']]);
  assert.deepEqual(await rows(page, 'Sources'), [['news.example', '2'], ['search.example', '1']]);
  assert.deepEqual(await rows(page, 'Countries'), [['DE', '2'], ['FR', '1']]);
  assert.deepEqual(await rows(page, 'Custom events'), [['Signup', '1']]);
  assert.deepEqual(await rows(page, 'Event properties'), [['plan · pro', '1']]);
  assert.equal(await panel(page, 'UTM sources').count(), 0, 'empty UTM breakdowns are left out');
  // The chart: one point per day of the range.
  assert.equal(await page.locator('#chart svg circle').count(), 7);
  assert.equal(await page.locator('#chart table td').nth(1).textContent(), '1', '1 May: one visitor');

  // The hostile path stayed text: no script of its own, nothing ran.
  assert.equal(await page.locator('script').count(), 2);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  // In a report, rows are text, not filters.
  assert.equal(await page.locator('.rowbtn').count(), 0);
  assert.equal(await page.locator('#site').isVisible(), false);
  assert.equal(await page.locator('#live').isVisible(), false);

  await page.screenshot({ path: path.join(ARTIFACTS, 'report-desktop.png'), fullPage: true });
  await axe(page, 'report, light');
  // Printable: pickers and toggles gone, numbers, chart and tables kept.
  await page.emulateMedia({ media: 'print' });
  assert.equal(await page.locator('#controls').isVisible(), false);
  assert.ok(await page.locator('#chart svg').isVisible());
  assert.ok(await panel(page, 'Top pages').isVisible());
  await page.emulateMedia({ media: 'screen' });

  assert.deepEqual(rec.requests, [url], 'the file is the only request');
  assert.deepEqual(rec.errors, []);
  await context.close();

  // 360 px and dark mode.
  for (const [name, opts] of [['report-360', { viewport: PHONE }], ['report-dark', { colorScheme: 'dark' }]]) {
    const v = await open((u) => u === url, opts);
    await v.page.goto(url);
    await v.page.locator('.metric .value').first().waitFor();
    if (opts.viewport) await noOverflow(v.page, PHONE.width);
    if (opts.colorScheme) {
      const bg = await v.page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
      assert.equal(bg, 'rgb(15, 19, 26)', 'dark background');
    }
    await v.page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
    await axe(v.page, name);
    assert.deepEqual(v.rec.requests, [url]);
    assert.deepEqual(v.rec.errors, []);
    await v.context.close();
  }
});

// ----------------------------------------------------- the live dashboard

// `fairstat-aggregator serve` over hits folded by the real `run --once`,
// dated from the moment the test runs (the periods end today, UTC):
//  example.com  A  now-3 min /, now-2 min /pricing (news.example, DE, Firefox)
//               B  today-2   /      (search.example, FR, Chrome): a bounce
//               C  today-3   /blog  (search.example, FR, Chrome): a bounce
//               D  today-20  /      (news.example, DE, Firefox)
//               E  today-20  /old   (mail.example, IT, Safari)
//               F  today-10  /      (news.example, DE, Firefox): the 7d comparison
//  shop.test    9  today-1   /cart  (ads.example, US, Edge)
// (visitor ids are hex, as the collector writes them)
// A's hits may fall on yesterday just after midnight: no assertion below
// tells today from yesterday.
const TOKEN = 'dashboard-test-token-0123456789abcdef';
const MIN = 60 * 1000;
const DAY = 24 * 60 * MIN;
const NOW = Date.now();
const dayStart = (n) => Math.floor(NOW / DAY) * DAY - n * DAY;
const iso = (n) => new Date(dayStart(n)).toISOString().slice(0, 10);

// Redis with the hits above folded, and `serve` over it.
async function startStack() {
  const redis = await startRedis();
  const conf = writeConfig(dir, {
    port: 1,
    redisUrl: redis.url,
    sections: { retention: { aggregates: '10y' } },
    sites: { 'example.com': { origins: 'https://example.com', timezone: 'UTC' }, 'shop.test': { origins: 'https://shop.test', timezone: 'UTC' } },
  });
  const hit = (site, t, p, v, r, c, b) => [site, { t: String(t), n: 'pageview', p, r, c, b, o: 'Linux', dv: 'desktop', v: v.repeat(16) }];
  const noon = (n) => dayStart(n) + 12 * 60 * MIN;
  const hits = [
    hit('example.com', NOW - 3 * MIN, '/', 'a', 'news.example', 'DE', 'Firefox'),
    hit('example.com', NOW - 2 * MIN, '/pricing', 'a', 'news.example', 'DE', 'Firefox'),
    hit('example.com', noon(2), '/', 'b', 'search.example', 'FR', 'Chrome'),
    hit('example.com', noon(3), '/blog', 'c', 'search.example', 'FR', 'Chrome'),
    hit('example.com', noon(20), '/', 'd', 'news.example', 'DE', 'Firefox'),
    hit('example.com', noon(20) + 30 * MIN, '/old', 'e', 'mail.example', 'IT', 'Safari'),
    hit('example.com', noon(10), '/', 'f', 'news.example', 'DE', 'Firefox'),
    hit('shop.test', noon(1), '/cart', '9', 'ads.example', 'US', 'Edge'),
  ];
  for (const [site, h] of hits) await redis.client.cmd('XADD', `fs:{${site}}:hits`, '*', ...Object.entries(h).flat());
  const folded = await run(AGG, ['-c', conf, 'run', '--once']);
  assert.equal(folded.code, 0, folded.stderr);
  try {
    const serve = await startServe(conf, { token: TOKEN });
    return { base: serve.base, async stop() { await serve.stop(); await redis.stop(); } };
  } catch (e) {
    await redis.stop();
    throw e;
  }
}

// The page done loading: the status line says when it was updated.
const loaded = (page) => waitFor('the dashboard to load', async () => /^Updated/.test(await page.locator('#status').textContent()));
async function reload(page, act) {
  await page.evaluate(() => { document.getElementById('status').textContent = ''; });
  await act();
  await loaded(page);
}

// Through the server's login form: the token, then the dashboard.
async function logIn(page, base) {
  await page.goto(base + '/');
  assert.equal(new URL(page.url()).pathname, '/login', 'no session: the login form');
  await page.getByLabel('Access token').fill(TOKEN);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(base + '/');
  await loaded(page);
}

test('dashboard on `serve`: login, period, site and filter changes update the numbers; nothing outside the server', async () => {
  const srv = await startStack();
  const inside = (u) => u.startsWith(srv.base + '/');
  try {
    const { context, page, rec } = await open(inside);
    await page.goto(srv.base + '/login');
    await axe(page, 'login form');
    await logIn(page, srv.base);
    const cookie = (await context.cookies()).find((c) => c.name === 'fs_session');
    assert.ok(cookie && cookie.httpOnly && cookie.sameSite === 'Strict', 'an HttpOnly, SameSite=Strict session');

    // Last 7 days of example.com (A, B, C) against the 7 days before (F).
    assert.equal(await page.locator('#site').inputValue(), 'example.com');
    assert.deepEqual(await page.locator('#site option').allTextContents(), ['example.com', 'shop.test']);
    assert.equal(await cardValue(page, 'visitors'), '3');
    assert.equal(await cardValue(page, 'visits'), '3');
    assert.equal(await cardValue(page, 'pageviews'), '4');
    assert.equal(await cardValue(page, 'views_per_visit'), '1.33');
    assert.equal(await cardValue(page, 'bounce_rate'), '67%');
    assert.match(await card(page, 'visitors').locator('.chg').textContent(), /^↑ 200%/);
    assert.deepEqual(await rows(page, 'Top pages'), [['/', '2', '2'], ['/blog', '1', '1'], ['/pricing', '1', '1']]);
    assert.deepEqual(await rows(page, 'Sources'), [['search.example', '2'], ['news.example', '1']]);
    assert.deepEqual(await rows(page, 'Countries'), [['FR', '2'], ['DE', '1']]);
    assert.equal(await page.locator('#chart svg circle').count(), 7);
    // A's hits of the last minutes: the current visitors.
    await waitFor('the current visitors', async () => Number(await page.locator('#live-n').textContent()) >= 1);

    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-desktop.png'), fullPage: true });
    await axe(page, 'dashboard');

    // Period: the last 30 days take in D, E and F.
    await reload(page, () => page.locator('#period').selectOption('30d'));
    assert.equal(await cardValue(page, 'visitors'), '6');
    assert.equal(await cardValue(page, 'pageviews'), '7');
    assert.equal(await page.locator('#chart svg circle').count(), 30);
    // A custom range of one day, from the keyboard: D and E alone.
    await page.locator('#period').selectOption('custom');
    await page.locator('#from').fill(iso(20));
    await page.locator('#to').fill(iso(20));
    await reload(page, () => page.keyboard.press('Enter'));
    assert.equal(await cardValue(page, 'visitors'), '2');
    assert.equal(await cardValue(page, 'pageviews'), '2');
    assert.deepEqual(await rows(page, 'Countries'), [['DE', '1'], ['IT', '1']]);
    // One day: per hour, of what the aggregates hold per hour (not visitors).
    assert.equal(await page.locator('#h-chart').textContent(), 'Total visits per hour');
    assert.equal(await page.locator('#chart svg circle').count(), 24);
    assert.equal(await page.locator('#chart table td').nth(25).textContent(), '2', 'noon: two visits');
    assert.match(page.url(), new RegExp(`period=custom&from=${iso(20)}&to=${iso(20)}`));

    // Site: shop.test has its own numbers.
    await reload(page, () => page.locator('#period').selectOption('7d'));
    await reload(page, () => page.locator('#site').selectOption('shop.test'));
    assert.equal(await cardValue(page, 'visitors'), '1');
    assert.deepEqual(await rows(page, 'Top pages'), [['/cart', '1', '1']]);
    assert.deepEqual(await rows(page, 'Sources'), [['ads.example', '1']]);
    await reload(page, () => page.locator('#site').selectOption('example.com'));
    assert.equal(await cardValue(page, 'visitors'), '3');

    // Filter by a source row, from the keyboard: B and C. The aggregates
    // hold visits per source, nothing else of it: one headline number, the
    // other breakdowns say why they are empty, and nothing refused is asked.
    await panel(page, 'Sources').getByRole('button', { name: 'Filter by source search.example' }).focus();
    await reload(page, () => page.keyboard.press('Enter'));
    assert.equal(await page.locator('#filters .chip').textContent(), 'Source is search.example✕');
    assert.deepEqual(await page.locator('.metric').evaluateAll((els) => els.map((e) => e.dataset.metric)), ['visits']);
    assert.equal(await cardValue(page, 'visits'), '2');
    assert.match(await card(page, 'visits').locator('.chg').textContent(), /^new/);
    assert.equal(await page.locator('#h-chart').textContent(), 'Total visits per day');
    assert.deepEqual(await rows(page, 'Sources'), [['search.example', '2']]);
    assert.match(await panel(page, 'Top pages').textContent(), /Not held per source/);
    // Another row replaces the filter: an entry page, whose visits the
    // aggregates hold per source, country, browser, OS and device.
    await reload(page, () => page.locator('#filters button').click());
    await reload(page, () => panel(page, 'Entry pages').getByRole('button', { name: 'Filter by entry page /', exact: true }).click());
    assert.equal(await page.locator('#filters .chip').textContent(), 'Entry page is /✕');
    assert.equal(await cardValue(page, 'visits'), '2');
    assert.deepEqual(await rows(page, 'Sources'), [['news.example', '1'], ['search.example', '1']]);
    assert.deepEqual(await rows(page, 'Countries'), [['DE', '1'], ['FR', '1']]);
    assert.deepEqual(await rows(page, 'Entry pages'), [['/', '2']]);
    // A page filter: its pageviews and visitors.
    await reload(page, () => page.locator('#filters button').click());
    await reload(page, () => panel(page, 'Top pages').getByRole('button', { name: 'Filter by page /pricing' }).click());
    assert.equal(await cardValue(page, 'visitors'), '1');
    assert.equal(await cardValue(page, 'pageviews'), '1');
    // The chip removes it.
    await reload(page, () => page.getByRole('button', { name: 'Remove filter: page is /pricing' }).click());
    assert.equal(await page.locator('#filters .chip').count(), 0);
    assert.equal(await cardValue(page, 'visitors'), '3');
    assert.equal(await cardValue(page, 'pageviews'), '4');
    assert.equal(await page.locator('.metric').count(), 6);

    // The chart follows the chosen headline number.
    await card(page, 'pageviews').click();
    assert.equal(await page.locator('#h-chart').textContent(), 'Total pageviews per day');

    assert.deepEqual(rec.refused, [], 'no request outside the server');
    assert.deepEqual(rec.errors, [], 'no console errors');

    // A hand-edited filter the API refuses: its message instead of numbers
    // (the browser logs the 400 answer; nothing else may be logged).
    await page.goto(`${srv.base}/#period=7d&filters=${encodeURIComponent(JSON.stringify([['is', 'visit:city', ['Paris']]]))}`);
    await page.reload();
    await waitFor('the refusal', async () => (await page.locator('#cards .error').count()) === 1);
    assert.match(await page.locator('#cards').textContent(), /^This combination cannot be answered: .*visit:city/);
    assert.equal(await page.locator('.metric').count(), 0, 'no numbers');
    assert.ok(rec.errors.length > 0 && rec.errors.every((e) => /the server responded with a status of 400/.test(e)), rec.errors.join('\n'));
    assert.deepEqual(rec.refused, []);
    await context.close();

    for (const [name, opts] of [['dashboard-360', { viewport: PHONE }], ['dashboard-dark', { colorScheme: 'dark' }]]) {
      const v = await open(inside, opts);
      await logIn(v.page, srv.base);
      assert.equal(await cardValue(v.page, 'visitors'), '3');
      if (opts.viewport) await noOverflow(v.page, PHONE.width);
      if (opts.colorScheme) {
        assert.equal(await v.page.locator('#theme').getAttribute('aria-pressed'), 'true');
        assert.equal(await v.page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor), 'rgb(15, 19, 26)');
      }
      await v.page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
      await axe(v.page, name);
      assert.deepEqual(v.rec.refused, []);
      assert.deepEqual(v.rec.errors, []);
      await v.context.close();
    }
  } finally {
    await srv.stop();
  }
});
