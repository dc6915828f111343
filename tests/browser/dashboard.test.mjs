// dashboard.test.mjs -- the dashboard page (aggregator/web/dashboard.html) in
// Chromium, in its two lives:
// - the HTML report: hits seeded in a private Redis, `run --once`, `report
//   --format html` to a file, the file opened with every request refused:
//   exact numbers, the hostile path kept as text, print layout, screenshots,
//   axe-core;
// - the live dashboard against a Stats API: until `serve` exists, a small
//   Plausible-shaped stand-in computes the answers from a list of hits, so
//   that the page's own logic (periods, sites, filters, 400 messages, null
//   metrics, current visitors) is tested against known numbers.
// Screenshots go to tests/artifacts/ (desktop 1280 px, 360 px, dark mode).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { launch, ARTIFACTS } from './browser.mjs';
import { startRedis, writeConfig, run, BIN, ROOT, waitFor } from '../lib/harness.mjs';

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

// A Plausible-shaped stand-in for `serve`: POST /api/v2/query answered from a
// list of pageviews, GET /api/sites, the realtime count, the page at GET /.
// "Today" is 2024-05-07; the answer's query.date_range says what a period
// resolved to, as Plausible's does. A filter on visit:browser is refused with
// 400 (a combination the aggregates cannot answer), page visitors of /big
// are null (past the per-page counting cap) and pages cannot be ordered by
// them (as serve answers), and only / has time on page and
// scroll depth.
const TODAY = '2024-05-07';
const DIMS = { 'event:page': 'page', 'visit:entry_page': 'entry', 'visit:exit_page': 'exit', 'visit:source': 'source',
  'visit:country': 'country', 'visit:browser': 'browser', 'visit:os': 'os', 'visit:device': 'device',
  // Known, never set in DATA: answered with no rows.
  'visit:region': 'region', 'visit:utm_source': 'utm_source', 'visit:utm_medium': 'utm_medium',
  'visit:utm_campaign': 'utm_campaign', 'visit:utm_term': 'utm_term', 'visit:utm_content': 'utm_content', 'event:name': 'name' };

function pv(site, date, visit, visitor, page, source, country, browser) {
  return { site, date, visit, visitor, page, source, country, browser, os: 'Linux', device: 'desktop' };
}
const DATA = [
  // example.com, this week
  pv('example.com', '2024-05-07', 1, 'a', '/', 'news.example', 'DE', 'Firefox'),
  pv('example.com', '2024-05-07', 1, 'a', '/pricing', 'news.example', 'DE', 'Firefox'),
  pv('example.com', '2024-05-06', 2, 'b', '/', 'search.example', 'FR', 'Chrome'),
  pv('example.com', '2024-05-05', 3, 'c', '/big', 'search.example', 'FR', 'Chrome'),
  // example.com, 30 days back (only in 30d)
  pv('example.com', '2024-04-20', 4, 'd', '/', 'news.example', 'DE', 'Firefox'),
  pv('example.com', '2024-04-20', 5, 'e', '/old', 'mail.example', 'IT', 'Safari'),
  // example.com, the week before this one (the comparison of 7d)
  pv('example.com', '2024-04-30', 6, 'f', '/', 'news.example', 'DE', 'Firefox'),
  // shop.test
  pv('shop.test', '2024-05-07', 7, 'g', '/cart', 'ads.example', 'US', 'Edge'),
];

function resolve(range) {
  const day = (s, n) => new Date(Date.parse(s) + n * 864e5).toISOString().slice(0, 10);
  if (Array.isArray(range)) return range;
  return { day: [TODAY, TODAY], '7d': [day(TODAY, -6), TODAY], '30d': [day(TODAY, -29), TODAY],
    month: ['2024-05-01', TODAY], '12mo': [day(TODAY, -364), TODAY] }[range];
}

function answer(q) {
  if (!q || typeof q.site_id !== 'string' || !Array.isArray(q.metrics)) return [400, { error: 'site_id and metrics are required' }];
  const range = resolve(q.date_range);
  if (!range) return [400, { error: `Invalid date_range ${JSON.stringify(q.date_range)}` }];
  const filters = q.filters || [];
  if (filters.some((f) => f[1] === 'visit:browser')) return [400, { error: 'Filtering by visit:browser is not supported' }];
  let hits = DATA.filter((h) => h.site === q.site_id && h.date >= range[0] && h.date <= range[1]);
  const visits = {};
  for (const h of hits) (visits[h.visit] ||= []).push(h);
  for (const vs of Object.values(visits)) for (const h of vs) { h.entry = vs[0].page; h.exit = vs[vs.length - 1].page; }
  for (const [, dim, values] of filters) {
    const k = DIMS[dim];
    if (!k) return [400, { error: `Invalid filter dimension ${dim}` }];
    hits = dim === 'event:page' ? hits.filter((h) => values.includes(h.page))
      : hits.filter((h) => values.includes(visits[h.visit][0][k]));
  }
  const metric = (hs, m) => {
    const nv = new Set(hs.map((h) => h.visit)).size;
    switch (m) {
    case 'visitors': return hs.some((h) => h.page === '/big') && q.dimensions?.[0] === 'event:page' ? null : new Set(hs.map((h) => h.visitor)).size;
    case 'visits': return nv;
    case 'pageviews': return hs.length;
    case 'views_per_visit': return nv ? Math.round(hs.length / nv * 100) / 100 : 0;
    case 'bounce_rate': return nv ? Math.round(100 * [...new Set(hs.map((h) => h.visit))].filter((v) => visits[v].length === 1).length / nv) : 0;
    case 'visit_duration': return 0;
    case 'events': return 0;
    // Engagement only for / (the other pages' visitors never scrolled).
    case 'time_on_page': return hs.length && hs.every((h) => h.page === '/') ? 42 : null;
    case 'scroll_depth': return hs.length && hs.every((h) => h.page === '/') ? 80 : null;
    default: return undefined;
    }
  };
  if (q.metrics.some((m) => metric([], m) === undefined)) return [400, { error: `Unsupported metric ${q.metrics.find((m) => metric([], m) === undefined)}` }];
  const dims = q.dimensions || [];
  if (dims[0] === 'event:page' && q.order_by?.[0]?.[0] === 'visitors') return [400, { error: 'Invalid order_by: event:page cannot be ordered by visitors' }];
  let results;
  if (!dims.length) {
    results = [{ metrics: q.metrics.map((m) => metric(hits, m)), dimensions: [] }];
  } else {
    const key = dims[0] === 'time:day' ? (h) => h.date : dims[0] === 'time:hour' ? (h) => `${h.date} 10:00:00` : DIMS[dims[0]] && ((h) => h[DIMS[dims[0]]]);
    if (dims.length !== 1 || !key) return [400, { error: `Unsupported dimension ${dims.join(',')}` }];
    const groups = {};
    for (const h of hits) if (key(h) !== undefined) (groups[key(h)] ||= []).push(h);
    results = Object.entries(groups).map(([k, hs]) => ({ dimensions: [k], metrics: q.metrics.map((m) => metric(hs, m)) }));
    const by = q.order_by?.[0]?.[0];
    const i = Math.max(0, q.metrics.indexOf(by));
    results.sort((a, b) => (b.metrics[i] ?? 0) - (a.metrics[i] ?? 0) || (a.dimensions[0] < b.dimensions[0] ? -1 : 1));
    if (dims[0].startsWith('time:')) results.sort((a, b) => (a.dimensions[0] < b.dimensions[0] ? -1 : 1));
    results = results.slice(0, q.pagination?.limit ?? 10000);
  }
  return [200, { results, meta: {}, query: { ...q, date_range: [`${range[0]}T00:00:00+00:00`, `${range[1]}T23:59:59+00:00`] } }];
}

function startStub() {
  const queries = [];
  const server = createServer((req, res) => {
    const send = (status, body, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type });
      res.end(typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/') return send(200, readFileSync(PAGE), 'text/html; charset=utf-8');
    if (req.method === 'GET' && req.url === '/api/sites') return send(200, ['example.com', 'shop.test']);
    if (req.method === 'GET' && req.url.startsWith('/api/v1/stats/realtime/visitors?site_id=')) {
      return send(200, new URL(req.url, 'http://x').searchParams.get('site_id') === 'example.com' ? '4' : '1');
    }
    if (req.method === 'POST' && req.url === '/api/v2/query') {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        let q = null;
        try { q = JSON.parse(body); } catch { /* 400 below */ }
        queries.push(q);
        const [status, out] = answer(q);
        if (status !== 200 && process.env.DEBUG_STUB) console.log(status, JSON.stringify(q), out);
        send(status, out);
      });
      return undefined;
    }
    return send(404, { error: 'not found' });
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({
    base: `http://127.0.0.1:${server.address().port}`, queries, stop: () => new Promise((s) => server.close(s)),
  })));
}

// The page done loading: the status line says when it was updated.
const loaded = (page) => waitFor('the dashboard to load', async () => /^Updated/.test(await page.locator('#status').textContent()));
async function reload(page, act) {
  await page.evaluate(() => { document.getElementById('status').textContent = ''; });
  await act();
  await loaded(page);
}

test('dashboard: period, site and filter changes update the numbers; nothing outside the server', async () => {
  const stub = await startStub();
  const { context, page, rec } = await open((u) => u.startsWith(stub.base + '/'));
  try {
    await page.goto(stub.base + '/');
    await loaded(page);
    // Last 7 days (1-7 May) of example.com, against 24-30 April.
    assert.equal(await page.locator('#site').inputValue(), 'example.com');
    assert.deepEqual(await page.locator('#site option').allTextContents(), ['example.com', 'shop.test']);
    assert.equal(await cardValue(page, 'visitors'), '3');
    assert.equal(await cardValue(page, 'pageviews'), '4');
    assert.equal(await cardValue(page, 'bounce_rate'), '67%');
    assert.match(await card(page, 'visitors').locator('.chg').textContent(), /^↑ 200%/);
    assert.equal(await page.locator('#range').textContent(), '1 May 2024 – 7 May 2024');
    assert.equal(await page.locator('#live-n').textContent(), '4');
    // /big's visitors are not counted: "—", never 0.
    assert.deepEqual(await rows(page, 'Top pages'), [['/', '2', '2', '42s', '80%'], ['/big', '—', '1', '—', '—'], ['/pricing', '1', '1', '—', '—']]);
    assert.deepEqual(await panel(page, 'Top pages').locator('th').allTextContents(), ['Page', 'Visitors', 'Views', 'Time', 'Scroll']);
    assert.deepEqual(await rows(page, 'Sources'), [['search.example', '2'], ['news.example', '1']]);
    assert.equal(await page.locator('#chart svg circle').count(), 7);
    const q = stub.queries.find((x) => x.dimensions?.[0] === 'visit:source');
    assert.deepEqual(q, { site_id: 'example.com', filters: [], date_range: '7d', dimensions: ['visit:source'],
      pagination: { limit: 10 }, metrics: ['visits'], order_by: [['visits', 'desc']] }, 'a Plausible v2 query');
    assert.deepEqual(stub.queries.find((x) => x.dimensions?.[0] === 'event:page').order_by, [['pageviews', 'desc']]);

    await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-desktop.png'), fullPage: true });
    await axe(page, 'dashboard');

    // Period: last 30 days takes in 20 April.
    await reload(page, () => page.locator('#period').selectOption('30d'));
    assert.equal(await cardValue(page, 'visitors'), '6');
    assert.equal(await cardValue(page, 'pageviews'), '7');
    assert.equal(await page.locator('#chart svg circle').count(), 30);
    // Today: per hour.
    await reload(page, () => page.locator('#period').selectOption('day'));
    assert.equal(await cardValue(page, 'visitors'), '1');
    assert.equal(await page.locator('#h-chart').textContent(), 'Unique visitors per hour');
    assert.equal(await page.locator('#chart svg circle').count(), 24);
    // Custom range, from the keyboard.
    await page.locator('#period').selectOption('custom');
    await page.locator('#from').fill('2024-04-20');
    await page.locator('#to').fill('2024-04-20');
    await reload(page, () => page.keyboard.press('Enter'));
    assert.equal(await cardValue(page, 'visitors'), '2');
    assert.deepEqual(await rows(page, 'Countries'), [['DE', '1'], ['IT', '1']]);
    assert.match(page.url(), /period=custom&from=2024-04-20&to=2024-04-20/);

    // Site.
    await reload(page, () => page.locator('#period').selectOption('7d'));
    await reload(page, () => page.locator('#site').selectOption('shop.test'));
    assert.equal(await cardValue(page, 'visitors'), '1');
    assert.deepEqual(await rows(page, 'Top pages'), [['/cart', '1', '1']], 'no engagement data: no columns for it');
    await waitFor('the current visitors of shop.test', async () => (await page.locator('#live-n').textContent()) === '1');
    await reload(page, () => page.locator('#site').selectOption('example.com'));

    // Filter by clicking a row, by keyboard: focus the source, press Enter.
    await panel(page, 'Sources').getByRole('button', { name: 'Filter by source search.example' }).focus();
    await reload(page, () => page.keyboard.press('Enter'));
    assert.deepEqual(stub.queries.at(-1).filters, [['is', 'visit:source', ['search.example']]]);
    assert.equal(await page.locator('#filters .chip').textContent(), 'Source is search.example✕');
    assert.equal(await cardValue(page, 'visitors'), '2');
    assert.deepEqual(await rows(page, 'Top pages'), [['/', '1', '1', '42s', '80%'], ['/big', '—', '1', '—', '—']]);
    // The chip removes it.
    await reload(page, () => page.getByRole('button', { name: 'Remove filter: source is search.example' }).click());
    assert.equal(await page.locator('#filters .chip').count(), 0);
    assert.equal(await cardValue(page, 'visitors'), '3');

    assert.deepEqual(rec.errors, []);
    // A combination the API refuses: its message instead of numbers (the
    // browser logs each 400 answer; nothing else may be logged).
    await panel(page, 'Browsers').getByRole('button', { name: 'Filter by browser Chrome' }).click();
    await waitFor('the refusal', async () => (await page.locator('#cards .error').count()) === 1);
    assert.match(await page.locator('#cards').textContent(), /Filtering by visit:browser is not supported/);
    assert.equal(await page.locator('.metric').count(), 0, 'no numbers');
    await reload(page, () => page.getByRole('button', { name: /Remove filter: browser is Chrome/ }).click());
    assert.equal(await cardValue(page, 'visitors'), '3');

    // The chart follows the chosen headline number.
    await card(page, 'pageviews').click();
    assert.equal(await page.locator('#h-chart').textContent(), 'Total pageviews per day');
    assert.equal(await card(page, 'pageviews').getAttribute('aria-pressed'), 'true');

    assert.deepEqual(rec.refused, [], 'no request outside the server');
    assert.deepEqual(rec.errors.filter((e) => !/the server responded with a status of 400/.test(e)), []);
  } finally {
    await context.close();
  }

  for (const [name, opts] of [['dashboard-360', { viewport: PHONE }], ['dashboard-dark', { colorScheme: 'dark' }]]) {
    const v = await open((u) => u.startsWith(stub.base + '/'), opts);
    await v.page.goto(stub.base + '/');
    await loaded(v.page);
    assert.equal(await cardValue(v.page, 'visitors'), '3');
    if (opts.viewport) await noOverflow(v.page, PHONE.width);
    if (opts.colorScheme) {
      assert.equal(await v.page.locator('#theme').getAttribute('aria-pressed'), 'true');
      // The toggle wins over the system's choice.
      await v.page.locator('#theme').click();
      assert.equal(await v.page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor), 'rgb(246, 247, 249)');
      await v.page.locator('#theme').click();
    }
    await v.page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
    await axe(v.page, name);
    assert.deepEqual(v.rec.refused, []);
    assert.deepEqual(v.rec.errors, []);
    await v.context.close();
  }
  await stub.stop();
});
