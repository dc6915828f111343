// cmp.test.mjs -- fs-cmp.js, the snippet for sites whose own consent manager
// decides (docs/snippet.md), on pages running each manager in headless
// Chromium: the real vanilla-cookieconsent and Klaro from npm, Cookiebot's and
// OneTrust's documented cookies set by the page, a TCF CMP (a __tcfapi stub
// answering with TC strings made by @iabtechlabtcf/core, tests/data/tcf), the
// euconsent-v2 cookie without __tcfapi, and Google Consent Mode on top.
//
// One origin (a node server) serves the pages and proxies /fs-cmp.js and
// /api/event to a real collector whose config has one site per consent source,
// so every manager's cookie is first-party and reaches the collector as on a
// site that proxies it. The proxy logs each beacon's answer (status and
// Fairstat-Status); what was stored is checked in Redis, per site.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { startRedis, startCollector, freePort, waitFor, DATA, ROOT } from '../lib/harness.mjs';
import { launch, openPage, settle, DIST, ARTIFACTS } from './browser.mjs';

const TCF = Object.fromEntries(
  JSON.parse(fs.readFileSync(path.join(DATA, 'tcf/strings.json'), 'utf8')).cases.map((c) => [c.name, c.tc]));
const GRANTED = TCF.purposes_1_8_vendor_range;      // purposes 1 and 8 consented
const WITHHELD = TCF.purpose_8_withheld;            // every purpose but 8
const NM = path.join(ROOT, 'node_modules');
const LIBS = {
  '/lib/cookieconsent.js': path.join(NM, 'vanilla-cookieconsent/dist/cookieconsent.umd.js'),
  '/lib/cookieconsent.css': path.join(NM, 'vanilla-cookieconsent/dist/cookieconsent.css'),
  '/lib/klaro.js': path.join(NM, 'klaro/dist/klaro.js'),
};

// site name in the collector -> its consent source
const SITES = {
  'cc.test': { consent: 'cookieconsent' },
  'klaro.test': { consent: 'klaro' },
  'cookiebot.test': { consent: 'cookiebot' },
  'onetrust.test': { consent: 'onetrust' },
  'tcf.test': { consent: 'tcf' },
};

let redis, collector, server, browser, base;
const answers = [];   // {site, status, fst, body} of every beacon through the proxy

const enc = encodeURIComponent;
// Cookiebot's CookieConsent and OneTrust's OptanonConsent, as their documentation shows them.
const cookiebot = (stats) => 'CookieConsent=' + enc(`{stamp:'Xk2Hn1wQ==',necessary:true,preferences:false,` +
  `statistics:${stats},marketing:false,method:'explicit',ver:1,utc:1716451200000,region:'de'}`);
const onetrust = (on) => 'OptanonConsent=' + `isGpcEnabled=0&datestamp=${enc('Thu May 23 2024 10:00:00 GMT+0200')}` +
  `&version=202403.1.0&isIABGlobal=false&hosts=&landingPath=NotLandingPage&groups=${enc(`C0001:1,C0002:${on},C0003:0`)}`;

// ------------------------------------------------------------------ pages

const snippet = (site) => `<script defer src="/fs-cmp.js" data-domain="${site}"></script>`;
const html = (title, head, body = '') => `<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>${title}</title><link rel="icon" href="data:,">${head}</head>
<body><h1>${title}</h1><p>A page whose consent manager decides.</p>${body}</body></html>`;
const setCookie = (c) => `<script>document.cookie = ${JSON.stringify(c + '; path=/; SameSite=Lax')};</script>`;

// vanilla-cookieconsent v3 with the category the collector looks for
// (analytics), run at the end of <body> as its documentation does.
const ccPage = () => html('cookieconsent', `<link rel="stylesheet" href="/lib/cookieconsent.css">
${snippet('cc.test')}`, `<script src="/lib/cookieconsent.js"></script>
<script>
CookieConsent.run({
  hideFromBots: false,          // it stays hidden while navigator.webdriver is set
  categories: { necessary: { enabled: true, readOnly: true }, analytics: {} },
  language: { default: 'en', translations: { en: {
    consentModal: { title: 'Cookies', description: 'We count visits with your consent.',
      acceptAllBtn: 'Accept all', acceptNecessaryBtn: 'Reject all', showPreferencesBtn: 'Settings' },
    preferencesModal: { title: 'Settings', acceptAllBtn: 'Accept all', acceptNecessaryBtn: 'Reject all',
      savePreferencesBtn: 'Save', sections: [
        { title: 'Necessary', linkedCategory: 'necessary' },
        { title: 'Analytics', linkedCategory: 'analytics' }] },
  } } },
});
</script>`);

// Klaro with a service named fairstat (what the collector's klaro source reads).
const klaroPage = () => html('klaro', `<script>
window.klaroConfig = {
  testing: false, elementID: 'klaro', storageMethod: 'cookie', cookieName: 'klaro',
  acceptAll: true, hideDeclineAll: false, mustConsent: false, default: false,
  translations: { en: { purposes: { analytics: 'Analytics' },
    fairstat: { description: 'Counts visits, without cookies of its own.' } } },
  services: [{ name: 'fairstat', title: 'Fairstat', purposes: ['analytics'] }],
};
</script><script defer src="/lib/klaro.js"></script>${snippet('klaro.test')}`);

// A TCF CMP: __tcfapi answers addEventListener with cmpuishown at once and with
// useractioncomplete (the TC string of ?tc=) only when window.decide() runs,
// as a CMP does once its dialog is answered.
const tcfPage = () => html('tcf', `<script>
(function () {
  var listeners = [];
  var tc = new URLSearchParams(location.search).get('tc');
  window.__tcfapi = function (cmd, version, cb) {
    if (cmd !== 'addEventListener' || version !== 2) return cb(null, false);
    listeners.push(cb);
    setTimeout(function () { cb({ eventStatus: 'cmpuishown', gdprApplies: true, listenerId: 1 }, true); });
  };
  window.decide = function () {
    listeners.forEach(function (cb) {
      cb({ eventStatus: 'useractioncomplete', gdprApplies: true, tcString: tc, listenerId: 1 }, true);
    });
  };
})();
</script>${snippet('tcf.test')}`);

// Google Consent Mode through gtag, before the snippet; q.get('gcm') lists the
// analytics_storage values of the default, then of updates.
const gcmHead = (q) => (q.get('gcm') ? `<script>
window.dataLayer = window.dataLayer || [];
function gtag() { dataLayer.push(arguments); }
${q.get('gcm').split(',').map((v, i) =>
    `gtag('consent', '${i ? 'update' : 'default'}', { analytics_storage: '${v}', ad_storage: 'denied' });`).join('\n')}
</script>` : '');

function pageFor(u) {
  const q = u.searchParams;
  switch (u.pathname) {
    case '/cc/': case '/cc/next': return ccPage();
    case '/klaro/': case '/klaro/next': return klaroPage();
    case '/tcf/': return tcfPage();
    case '/tcf-cookie/': return html('tcf cookie', setCookie('euconsent-v2=' + q.get('tc')) + snippet('tcf.test'));
    case '/cookiebot/': return html('cookiebot',
      setCookie(cookiebot(q.get('statistics'))) + gcmHead(q) + snippet('cookiebot.test'));
    case '/onetrust/': return html('onetrust', setCookie(onetrust(q.get('group'))) + snippet('onetrust.test'));
    default: return null;
  }
}

// Forwards a request to the collector with the headers that matter there
// (Origin, Cookie, User-Agent), and its answer back; logs beacons' answers.
async function proxy(req, res) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const headers = {};
  for (const h of ['content-type', 'cookie', 'user-agent', 'origin', 'accept-encoding'])
    if (req.headers[h]) headers[h] = req.headers[h];
  const body = chunks.length ? Buffer.concat(chunks) : undefined;
  const r = await fetch(collector.base + req.url, { method: req.method, headers, body });
  const out = Buffer.from(await r.arrayBuffer());
  if (req.url === '/api/event') {
    const sent = JSON.parse(body.toString());
    answers.push({ site: sent.domain, status: r.status, fst: r.headers.get('fairstat-status'), body: sent });
  }
  const h = {};
  for (const [k, v] of r.headers)
    if (!['content-length', 'transfer-encoding', 'connection', 'content-encoding'].includes(k)) h[k] = v;
  res.writeHead(r.status, h);
  res.end(out);
}

before(async () => {
  redis = await startRedis();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const sites = {};
  for (const [name, kv] of Object.entries(SITES)) sites[name] = { origins: base, ...kv };
  collector = await startCollector(redis, { sections: { collector: { static_dir: DIST, rate_limit: 0 } }, sites });
  server = http.createServer((req, res) => {
    const u = new URL(req.url, base);
    if (u.pathname === '/api/event' || u.pathname === '/fs-cmp.js') {
      proxy(req, res).catch((e) => { res.writeHead(502); res.end(String(e)); });
    } else if (LIBS[u.pathname]) {
      res.writeHead(200, { 'content-type': u.pathname.endsWith('.css') ? 'text/css' : 'text/javascript' });
      res.end(fs.readFileSync(LIBS[u.pathname]));
    } else {
      const page = pageFor(u);
      res.writeHead(page ? 200 : 404, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page || 'not found');
    }
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  browser = await launch();
  fs.mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await new Promise((r) => (server ? server.close(r) : r()));
  await collector?.stop();
  await redis?.stop();
});

let opened = [];
afterEach(async () => {
  for (const c of opened.splice(0)) await c.close();
});

// ---------------------------------------------------------------- helpers

const xlen = (site) => redis.client.cmd('XLEN', `fs:{${site}}:hits`);
const answersFor = (site) => answers.filter((a) => a.site === site);

// A fresh visitor (no cookies) with console errors recorded.
async function visitor() {
  const v = await openPage(browser);
  opened.push(v.context);
  v.rec.console = [];
  v.page.on('console', (m) => m.type() === 'error' && v.rec.console.push(m.text()));
  return v;
}

// Waits until the site has had n beacons answered in all (through the proxy).
const answered = (site, n) => waitFor(`${n} beacons of ${site} answered`, () => answersFor(site).length === n);

function assertStored(a, what) {
  assert.equal(a.status, 202, `${what}: ${JSON.stringify(a)}`);
}
function assertRefused(a, what) {
  assert.equal(a.status, 204, `${what}: ${JSON.stringify(a)}`);
  assert.equal(a.fst, 'no-consent', what);
}
function assertClean(v) {
  assert.deepEqual(v.rec.errors, [], 'no page errors');
  assert.deepEqual(v.rec.console, [], 'no console errors');
}
const shot = (page, name) => page.screenshot({ path: path.join(ARTIFACTS, `cmp-${name}.png`) });

// ------------------------------------------------------------------ tests

test('the collector serves /fs-cmp.js like /fs.js, gzipped when asked, with no banner in it', async () => {
  const plain = await fetch(collector.base + '/fs-cmp.js', { headers: { 'accept-encoding': 'identity' } });
  assert.equal(plain.status, 200);
  assert.match(plain.headers.get('content-type'), /^application\/javascript/);
  const text = await plain.text();
  assert.equal(text, fs.readFileSync(path.join(DIST, 'fs-cmp.js'), 'utf8'));
  assert.doesNotMatch(text, /fairstat-consent|fs_consent|aria-pressed/, 'no banner, no consent cookie');
  assert.match(text, /__tcfapi/);
  const gz = await new Promise((resolve, reject) => {
    http.get(collector.base + '/fs-cmp.js', { headers: { 'accept-encoding': 'gzip' } }, (res) => {
      const c = [];
      res.on('data', (d) => c.push(d));
      res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(c) }));
    }).on('error', reject);
  });
  assert.equal(gz.headers['content-encoding'], 'gzip');
  assert.deepEqual(gz.body, fs.readFileSync(path.join(DIST, 'fs-cmp.js.gz')));
  assert.ok(gz.body.length <= 2048, `fs-cmp.js.gz is ${gz.body.length} bytes`);
});

test('vanilla-cookieconsent: "Accept all" makes the next page count; "Reject all" refuses, nothing stored', async () => {
  const site = 'cc.test';
  const n0 = answersFor(site).length;
  const v = await visitor();
  await v.page.goto(base + '/cc/');
  await answered(site, n0 + 1);                       // before any choice: refused
  assertRefused(answersFor(site)[n0], 'cc: no choice yet');
  await shot(v.page, 'cookieconsent');
  await v.page.getByRole('button', { name: 'Accept all' }).first().click();
  await waitFor('cc_cookie', async () => (await v.context.cookies()).some((c) => c.name === 'cc_cookie'));
  // The next page, as a single-page-app navigation.
  await v.page.evaluate(() => history.pushState({}, '', '/cc/next'));
  await answered(site, n0 + 2);
  assertStored(answersFor(site)[n0 + 1], 'cc: accepted');
  assert.equal(new URL(answersFor(site)[n0 + 1].body.url).pathname, '/cc/next');
  assert.equal(await xlen(site), 1);
  await settle(v.rec);
  assertClean(v);

  const w = await visitor();
  await w.page.goto(base + '/cc/');
  await answered(site, n0 + 3);
  await w.page.getByRole('button', { name: 'Reject all' }).first().click();
  await waitFor('cc_cookie', async () => (await w.context.cookies()).some((c) => c.name === 'cc_cookie'));
  await w.page.reload();
  await answered(site, n0 + 4);
  for (const a of answersFor(site).slice(n0 + 2)) assertRefused(a, 'cc: rejected');
  assert.equal(await xlen(site), 1, 'nothing stored after the reject');
  await settle(w.rec);
  assertClean(w);
});

test('Klaro: accepting the fairstat service makes the next page count; declining refuses', async () => {
  const site = 'klaro.test';
  const n0 = answersFor(site).length;
  const v = await visitor();
  await v.page.goto(base + '/klaro/');
  await answered(site, n0 + 1);
  assertRefused(answersFor(site)[n0], 'klaro: no choice yet');
  const notice = v.page.locator('.klaro .cookie-notice');
  await notice.waitFor();
  await shot(v.page, 'klaro');
  await notice.locator('.cm-btn-success').first().click();
  await waitFor('klaro cookie', async () =>
    (await v.context.cookies()).some((c) => c.name === 'klaro' && /fairstat%22%3Atrue|"fairstat":true/.test(c.value)));
  await v.page.evaluate(() => history.pushState({}, '', '/klaro/next'));
  await answered(site, n0 + 2);
  assertStored(answersFor(site)[n0 + 1], 'klaro: accepted');
  assert.equal(await xlen(site), 1);
  await settle(v.rec);
  assertClean(v);

  const w = await visitor();
  await w.page.goto(base + '/klaro/');
  await answered(site, n0 + 3);
  await w.page.locator('.klaro .cookie-notice .cn-decline').click();
  await waitFor('klaro cookie', async () =>
    (await w.context.cookies()).some((c) => c.name === 'klaro' && /fairstat%22%3Afalse|"fairstat":false/.test(c.value)));
  await w.page.evaluate(() => history.pushState({}, '', '/klaro/next'));
  await answered(site, n0 + 4);
  for (const a of answersFor(site).slice(n0 + 2)) assertRefused(a, 'klaro: declined');
  assert.equal(await xlen(site), 1, 'nothing stored after the decline');
  await settle(w.rec);
  assertClean(w);
});

for (const [name, site, yes, no] of [
  ['Cookiebot', 'cookiebot.test', '/cookiebot/?statistics=true', '/cookiebot/?statistics=false'],
  ['OneTrust', 'onetrust.test', '/onetrust/?group=1', '/onetrust/?group=0'],
]) {
  test(`${name}: its documented cookie granting statistics stores the pageview, refusing it does not`, async () => {
    const n0 = answersFor(site).length;
    const v = await visitor();
    await v.page.goto(base + yes);
    await answered(site, n0 + 1);
    assertStored(answersFor(site)[n0], `${name}: granted`);
    assert.equal(await xlen(site), 1);
    await shot(v.page, name.toLowerCase());
    await settle(v.rec);
    assertClean(v);
    const w = await visitor();
    await w.page.goto(base + no);
    await answered(site, n0 + 2);
    assertRefused(answersFor(site)[n0 + 1], `${name}: refused`);
    assert.equal(await xlen(site), 1);
    await settle(w.rec);
    assertClean(w);
    await redis.client.cmd('DEL', `fs:{${site}}:hits`);
  });
}

test('TCF: beacons wait for the CMP, then carry its TC string; granted stores, withheld refuses', async () => {
  const site = 'tcf.test';
  await redis.client.cmd('DEL', `fs:{${site}}:hits`);
  for (const [tc, ok] of [[GRANTED, true], [WITHHELD, false]]) {
    const n0 = answersFor(site).length;
    const v = await visitor();
    await v.page.goto(`${base}/tcf/?tc=${tc}`);
    await v.page.waitForFunction(() => window.fairstat && window.fairstat.track);
    // The CMP has shown its dialog, nobody has answered: nothing goes out,
    // a custom event is held too.
    await v.page.evaluate(() => window.fairstat.track('Signup', { plan: 'pro' }));
    await v.page.evaluate(() => new Promise((r) => setTimeout(r)));   // past cmpuishown
    assert.equal(v.rec.events.length, 0, 'no beacon before the CMP answered');
    if (ok) await shot(v.page, 'tcf');
    await v.page.evaluate(() => window.decide());
    await answered(site, n0 + 2);
    // Sent in order (as the page issued them); two requests in flight may
    // reach the server in either order, so the answers are matched by name.
    assert.deepEqual(v.rec.events.map((e) => e.name ?? e.n), ['pageview', 'Signup'], 'held beacons go out in order');
    const got = answersFor(site).slice(n0);
    const pv = got.find((a) => a.body.name === 'pageview'), ev = got.find((a) => a.body.name === 'Signup');
    assert.ok(pv && ev, 'both beacons answered');
    assert.equal(pv.body.tc, tc);
    assert.equal(ev.body.tc, tc);
    assert.equal(pv.body.analytics_storage, undefined, 'no Consent Mode on the page, none sent');
    for (const a of [pv, ev]) (ok ? assertStored : assertRefused)(a, `tcf ${ok ? 'granted' : 'withheld'}`);
    assert.equal(await xlen(site), 2, ok ? 'both stored' : 'nothing more stored for the withheld string');
    await settle(v.rec);
    assertClean(v);
  }
});

test('TCF without __tcfapi: the euconsent-v2 cookie decides, no tc sent', async () => {
  const site = 'tcf.test';
  await redis.client.cmd('DEL', `fs:{${site}}:hits`);
  for (const [tc, ok] of [[GRANTED, true], [WITHHELD, false]]) {
    const n0 = answersFor(site).length;
    const v = await visitor();
    await v.page.goto(`${base}/tcf-cookie/?tc=${tc}`);
    await answered(site, n0 + 1);
    const a = answersFor(site)[n0];
    assert.equal(a.body.tc, undefined);
    (ok ? assertStored : assertRefused)(a, `euconsent-v2 ${ok ? 'granted' : 'withheld'}`);
    assert.equal(await xlen(site), 1);
    await settle(v.rec);
    assertClean(v);
  }
});

test('Google Consent Mode: analytics_storage denied refuses a granted Cookiebot cookie; the last update wins', async () => {
  const site = 'cookiebot.test';
  await redis.client.cmd('DEL', `fs:{${site}}:hits`);
  const cases = [
    ['denied', 'denied', false],
    ['granted,denied', 'denied', false],
    ['denied,granted', 'granted', true],
  ];
  for (const [gcm, sent, ok] of cases) {
    const n0 = answersFor(site).length;
    const v = await visitor();
    await v.page.goto(`${base}/cookiebot/?statistics=true&gcm=${gcm}`);
    await answered(site, n0 + 1);
    const a = answersFor(site)[n0];
    assert.equal(a.body.analytics_storage, sent, gcm);
    (ok ? assertStored : assertRefused)(a, `consent mode ${gcm}`);
    if (gcm === 'denied') await shot(v.page, 'consent-mode');
    await settle(v.rec);
    assertClean(v);
  }
  assert.equal(await xlen(site), 1, 'only the granted update stored');
});

test('GPC: fs-cmp.js sends nothing, whatever the consent manager granted', async () => {
  const site = 'cookiebot.test';
  const n0 = answersFor(site).length;
  const v = await openPage(browser, {
    init: () => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true }),
  });
  opened.push(v.context);
  await v.page.goto(`${base}/cookiebot/?statistics=true`);
  // The pageview would have gone out while the script started.
  await v.page.waitForFunction(() => window.fairstat && window.fairstat.track);
  await v.page.evaluate(() => window.fairstat.track('Signup'));
  assert.equal(v.rec.events.length, 0);
  assert.equal(answersFor(site).length, n0);
  assert.deepEqual(v.rec.errors, []);
});
