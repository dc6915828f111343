// plausible.test.mjs -- the real @plausible-analytics/tracker (from npm,
// bundled here with esbuild: the package is an ES module) driving a page
// whose /api/event is proxied same-origin to the collector, as Plausible's
// proxy guide sets it up. Consent comes first (POST /consent through the same
// proxy, so the cookie is the page's). The tracker's pageviews, its engagement
// events (a scroll, time passing on the page's clock, a navigation, then the
// page hidden) and a custom event with props must come out of `run --once`
// as pageviews, time on page, scroll depth and a props breakdown -- in the
// report, in the Stats API of `serve` and on its dashboard.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { build } from 'esbuild';
import { startRedis, startCollector, startServe, freePort, run, BIN, ROOT } from '../lib/harness.mjs';
import { launch, openPage, waitFor, streamEntries } from './browser.mjs';

const AGG = process.env.FAIRSTAT_AGGREGATOR || BIN('fairstat-aggregator');
const SITE = 'plausible.test';
const HITS = `fs:{${SITE}}:hits`;
const ENGAGED_MS = 42000;       // time on "/" by the page's clock

let redis, collector, server, browser, base, tracker;

// The page: long enough to scroll; consent, then the tracker. Playwright's
// navigator.webdriver would make the tracker ignore every event unless
// window.__plausible is set; 127.0.0.1 needs captureOnLocalhost.
function page() {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>t</title>
<script>window.__plausible = true;</script>
<script src="/tracker.js"></script>
<script>
fetch('/consent', {method: 'POST', headers: {'content-type': 'application/json'},
  body: JSON.stringify({domain: '${SITE}', analytics: true})})
  .then(function (r) {
    if (r.status !== 200) throw new Error('consent ' + r.status);
    plausibleTracker.init({domain: '${SITE}', endpoint: '/api/event', captureOnLocalhost: true});
    window.trackerReady = true;
  });
</script></head><body><div style="height: 4000px">top</div><p>bottom</p></body></html>`;
}

// Forwards the request to the collector, headers and body as they came
// (Origin, Cookie and User-Agent matter there), and its answer back.
async function proxy(req, res) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const headers = {};
  for (const h of ['content-type', 'cookie', 'user-agent', 'origin']) if (req.headers[h]) headers[h] = req.headers[h];
  const r = await fetch(collector.base + req.url, {
    method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined,
  });
  const out = {};
  for (const [k, v] of r.headers) if (!['content-length', 'transfer-encoding', 'connection'].includes(k)) out[k] = v;
  const cookies = r.headers.getSetCookie();
  if (cookies.length) out['set-cookie'] = cookies;
  res.writeHead(r.status, out);
  res.end(Buffer.from(await r.arrayBuffer()));
}

before(async () => {
  const bundle = await build({
    entryPoints: [path.join(ROOT, 'node_modules/@plausible-analytics/tracker/plausible.js')],
    bundle: true, format: 'iife', globalName: 'plausibleTracker', write: false, logLevel: 'warning',
  });
  tracker = bundle.outputFiles[0].text;
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  redis = await startRedis();
  collector = await startCollector(redis, {
    sections: { collector: { rate_limit: 0 } },
    sites: { [SITE]: { origins: base } },
  });
  server = http.createServer((req, res) => {
    const u = new URL(req.url, base);
    if (u.pathname === '/api/event' || u.pathname === '/consent') {
      proxy(req, res).catch((e) => { res.writeHead(502); res.end(String(e)); });
    } else if (u.pathname === '/tracker.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(tracker);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(page());
    }
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await new Promise((r) => (server ? server.close(r) : r()));
  await collector?.stop();
  await redis?.stop();
});

test('the Plausible tracker through a same-origin proxy: pageviews, engagement and props in the report', async () => {
  const { page, rec, context } = await openPage(browser);
  const xlen = () => redis.client.cmd('XLEN', HITS);
  const waitHits = (n) => waitFor(`${n} hits`, async () => (await xlen()) === n);
  try {
    await page.clock.install();
    await page.goto(base + '/');
    await page.waitForFunction(() => window.trackerReady === true);
    await waitHits(1);                                          // the pageview of "/"

    // Scroll to the bottom; the tracker's scroll listener runs before the
    // next frames. Then time passes on the page's clock only.
    await page.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await page.clock.fastForward(ENGAGED_MS);

    // A navigation (the tracker follows pushState): engagement of "/", then
    // the pageview of "/second"; then a custom event with props.
    await page.evaluate(() => { window.scrollTo(0, 0); history.pushState({}, '', '/second'); });
    await waitHits(3);
    await page.evaluate(() => plausibleTracker.track('Signup', { props: { plan: 'pro', seats: '3' } }));
    await waitHits(4);
    // The page is hidden: the engagement of "/second".
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { value: 'hidden', configurable: true });
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await waitHits(5);
    assert.deepEqual(rec.errors, []);

    const sent = rec.events.map((e) => [e.n, new URL(e.u).pathname]);
    assert.deepEqual(sent, [['pageview', '/'], ['engagement', '/'], ['pageview', '/second'],
      ['Signup', '/second'], ['engagement', '/second']]);
    const first = rec.events[1];
    assert.ok(first.sd > 50 && first.sd <= 100, `scroll depth ${first.sd}`);
    assert.ok(first.e >= ENGAGED_MS, `engaged ${first.e}`);
    const queued = await streamEntries(redis.client, HITS);
    assert.deepEqual(queued.map((h) => h.n), ['pageview', 'engagement', 'pageview', 'Signup', 'engagement']);
    assert.deepEqual([queued[1].sd, queued[1].e], [first.sd, first.e]);

    const once = await run(AGG, ['-c', collector.conf, 'run', '--once']);
    assert.equal(once.code, 0, once.stderr);
    const rep = await run(AGG, ['-c', collector.conf, 'report', '--site', SITE, '--format', 'json']);
    assert.equal(rep.code, 0, rep.stderr);
    const r = JSON.parse(rep.stdout);
    assert.equal(r.totals.pageviews, 2);
    assert.equal(r.totals.events, 1);
    assert.equal(r.totals.visitors, 1);
    assert.deepEqual(r.events, [{ name: 'Signup', count: 1 }]);
    const pages = Object.fromEntries(r.pages.map((p) => [p.page, p]));
    assert.equal(pages['/'].time_on_page, Math.round(first.e / 1000));
    assert.ok(pages['/'].time_on_page > 0);
    assert.equal(pages['/'].scroll_depth, first.sd);
    const last = rec.events[4];
    assert.equal(pages['/second'].time_on_page, Math.round(last.e / 1000));
    assert.equal(pages['/second'].scroll_depth, last.sd);
    assert.deepEqual(r.props, [{ property: 'plan', value: 'pro', count: 1 }, { property: 'seats', value: '3', count: 1 }]);

    // The same numbers from `serve`: the Stats API, then the dashboard.
    const serve = await startServe(collector.conf);
    try {
      const query = async (q) => {
        const res = await fetch(serve.base + '/api/v2/query', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${serve.token}` },
          body: JSON.stringify({ site_id: SITE, date_range: '7d', ...q }),
        });
        const body = await res.json();
        assert.equal(res.status, 200, JSON.stringify(body));
        return body.results.map((x) => [...x.dimensions, ...x.metrics]);
      };
      assert.deepEqual(await query({ metrics: ['pageviews', 'visitors', 'events'] }), [[2, 1, 1]]);
      const tp = (e) => Math.round(e.e / 1000);
      assert.deepEqual(await query({ metrics: ['pageviews', 'time_on_page', 'scroll_depth'], dimensions: ['event:page'], order_by: [['event:page', 'asc']] }),
        [['/', 1, tp(first), first.sd], ['/second', 1, tp(last), last.sd]]);
      assert.deepEqual(await query({ metrics: ['events'], dimensions: ['event:props:plan'] }), [['pro', 1]]);
      assert.deepEqual(await query({ metrics: ['events'], dimensions: ['event:props:seats'] }), [['3', 1]]);
      assert.deepEqual(await query({ metrics: ['events'], dimensions: ['event:name'] }), [['Signup', 1]], 'engagement is no custom event');

      const d = await openPage(browser);
      const consoleErrors = [], outside = [];
      d.page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
      d.page.on('request', (q) => { if (!q.url().startsWith(serve.base + '/')) outside.push(q.url()); });
      try {
        await d.page.goto(serve.base + '/');
        await d.page.getByLabel('Access token').fill(serve.token);
        await d.page.getByRole('button', { name: 'Log in' }).click();
        const loaded = () => waitFor('the dashboard', async () => /^Updated/.test(await d.page.locator('#status').textContent()));
        await loaded();
        const rows = (title) => d.page.locator('section.panel').filter({ has: d.page.getByRole('heading', { name: title, exact: true }) })
          .locator('tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
        // the page's format: 42s, 1m 05s
        const dur = (e) => (tp(e) >= 60 ? `${Math.floor(tp(e) / 60)}m ${String(tp(e) % 60).padStart(2, '0')}s` : `${tp(e)}s`);
        assert.equal(await d.page.locator('.metric[data-metric="pageviews"] .value').textContent(), '2');
        assert.deepEqual((await rows('Top pages')).sort(), [['/', '1', '1', dur(first), `${first.sd}%`], ['/second', '1', '1', dur(last), `${last.sd}%`]]);
        assert.deepEqual(await rows('Custom events'), [['Signup', '1']]);
        await d.page.evaluate(() => { document.getElementById('status').textContent = ''; });
        await d.page.getByLabel('Property name').fill('plan');
        await d.page.getByRole('button', { name: 'Show' }).click();
        await loaded();
        assert.deepEqual(await rows('Property “plan”'), [['pro', '1']]);
        assert.deepEqual([...d.rec.errors, ...consoleErrors], []);
        assert.deepEqual(outside, [], 'nothing outside the server');
      } finally {
        await d.context.close();
      }
    } finally {
      await serve.stop();
    }
  } finally {
    await context.close();
  }
});
