// options.test.mjs -- the snippet's options and API in a real browser against
// the real collector: languages, double embedding, external consent mode,
// custom events, link tracking, texts/colours/position, no storage of its own.
// Variant pages are served under the collector's origin by request
// interception (page.route); /fs.js, /consent and /api/event stay real.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  suite, settle, dialog, button, accept, waitFor, HITS, SITE,
} from './browser.mjs';

const env = suite();
const { visitor, waitHits } = env;


// Serves `body` as /t/<name>.html on the collector's origin and opens it.
async function fixture(page, name, body) {
  const url = `${env.stack.base}/t/${name}.html`;
  await page.route(url, (route) => route.fulfill({ contentType: 'text/html; charset=utf-8', body }));
  await page.goto(url);
}
const tag = (attrs = '') => `<script defer src="/fs.js" data-domain="${SITE}" ${attrs}></script>`;
const html = (lang, head, body = '<p>page</p>') =>
  `<!doctype html><html${lang ? ` lang="${lang}"` : ''}><head><meta charset="utf-8">${head}</head><body>${body}</body></html>`;

// The native consent cookie, obtained beforehand as a consent manager would.
async function consentBeforehand(context, analytics = true) {
  const r = await context.request.post(env.stack.base + '/consent', {
    headers: { 'content-type': 'text/plain', origin: env.stack.base },
    data: JSON.stringify({ domain: SITE, analytics }),
  });
  assert.equal(r.status(), 200);
}

test('texts in English, German and French follow <html lang>; data-lang overrides', async () => {
  const cases = [
    ['en', '', 'Count your visit?', 'Accept', 'Reject', 'en'],
    ['de-DE', '', 'Besuch zählen?', 'Akzeptieren', 'Ablehnen', 'de'],
    ['fr', '', 'Compter votre visite\u00a0?', 'Accepter', 'Refuser', 'fr'],
    ['it', '', 'Count your visit?', 'Accept', 'Reject', 'en'],              // unknown: English
    ['en', 'data-lang="de"', 'Besuch zählen?', 'Akzeptieren', 'Ablehnen', 'de'],
  ];
  for (const [lang, attrs, title, acc, rej, dlang] of cases) {
    const { page } = await visitor();
    await fixture(page, 'lang', html(lang, tag(attrs)));
    const d = dialog(page);
    await d.waitFor();
    assert.equal(await page.locator('fairstat-consent h2').textContent(), title, lang);
    assert.ok(await button(page, acc).isVisible());
    assert.ok(await button(page, rej).isVisible());
    assert.equal(await d.getAttribute('lang'), dlang, 'the dialog says which language it speaks');
  }
});

test('embedded twice: loaded once, one banner, one pageview', async () => {
  const { page, rec } = await visitor();
  await fixture(page, 'twice', html('en', tag() + tag('data-lang="de"')));
  await dialog(page).waitFor();
  assert.equal(await page.locator('fairstat-consent').count(), 1);
  assert.equal(await page.locator('fairstat-consent h2').textContent(), 'Count your visit?', 'the first tag wins');
  await accept(page, rec);
  await page.evaluate(() => history.pushState({}, '', '/t/other'));
  await settle(rec);
  await waitHits(2);
  // Redis can see a beacon before Playwright reports its request event.
  await waitFor('the browser to report the beacons', () => rec.events.length >= 2);
  assert.deepEqual(rec.events.map((e) => new URL(e.url).pathname), ['/t/twice.html', '/t/other']);
});

test('data-consent="external": no banner, beacons sent, the collector decides', async () => {
  // With the native consent cookie obtained beforehand: counted.
  {
    const { page, rec, context } = await visitor();
    await consentBeforehand(context);
    await fixture(page, 'external', html('en', tag('data-consent="external"')));
    await page.evaluate(() => history.pushState({}, '', '/t/next'));
    await settle(rec);
    await waitHits(2);
    assert.equal(await dialog(page).count(), 0);
    assert.equal(rec.consent.length, 0, 'the snippet never asks in external mode');
    await page.evaluate(() => fairstat.openSettings());
    assert.equal(await dialog(page).count(), 0, 'settings belong to the consent manager');
  }
  await env.stack.redis.client.cmd('DEL', HITS);
  // Without consent: the beacon goes out and the collector refuses it (204).
  {
    const { page, rec } = await visitor();
    const statuses = [];
    page.on('response', (r) => r.url().endsWith('/api/event') && statuses.push(r.status()));
    await fixture(page, 'external', html('en', tag('data-consent="external"')));
    // The beacon leaves after load; wait for it rather than for silence.
    await waitFor('the beacon', () => rec.events.length >= 1);
    await settle(rec);
    assert.equal(rec.events.length, 1);
    await waitFor('response', () => statuses.length === 1);
    assert.deepEqual(statuses, [204]);
    assert.equal(await env.stack.xlen(), 0);
  }
  // GPC still stops beacons in external mode.
  {
    const gpc = () => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true });
    const { page, rec, context } = await visitor({ init: gpc });
    await consentBeforehand(context);
    await fixture(page, 'external', html('en', tag('data-consent="external"')));
    await page.evaluate(() => fairstat.track('Signup'));
    await settle(rec);
    assert.equal(rec.events.length, 0);
    assert.equal(await env.stack.xlen(), 0);
  }
});

test('fairstat.track("Signup", {plan: "pro"}) stores a custom event with its props', async () => {
  const { page, rec } = await visitor();
  await page.goto(env.stack.base + '/demo/');
  await accept(page, rec);
  await page.click('#signup');                          // onclick: fairstat.track('Signup', {plan: 'pro'})
  await settle(rec);
  await waitHits(2);
  const [pv, ev] = await env.stack.hits();
  assert.equal(pv.n, 'pageview');
  assert.equal(ev.n, 'Signup');
  assert.equal(ev.p, '/demo/');
  // Redis is the witness: the props as stored, not as the page reported them.
  assert.deepEqual(JSON.parse(ev.pr), { plan: 'pro' });
});

test('outbound links and file downloads are tracked when opted in, not otherwise', async () => {
  const { page, rec } = await visitor();
  await page.route('https://www.example.org/**', (r) => r.fulfill({ contentType: 'text/html', body: 'elsewhere' }));
  await page.goto(env.stack.base + '/demo/');              // data-track-outbound data-track-files
  await accept(page, rec);
  await page.click('#download');
  await page.click('#outbound');
  await page.waitForURL('https://www.example.org/');
  // A beacon sent while leaving the page completes after the page is gone, so
  // Redis is the witness here, not the page's network events.
  await waitHits(3);
  rec.pending.clear();
  const hits = await env.stack.hits();
  assert.deepEqual(hits.map((h) => h.n), ['pageview', 'File Download', 'Outbound Link: Click']);
  assert.deepEqual(JSON.parse(hits[1].pr), { url: env.stack.base + '/demo/files/price-list.csv' });
  assert.deepEqual(JSON.parse(hits[2].pr), { url: 'https://www.example.org/' });

  // Without the attributes: no link events.
  await env.stack.redis.client.cmd('DEL', HITS);
  const body = '<a id=o href="https://www.example.org/">out</a> <a id=f href="/demo/files/price-list.csv" download>csv</a>';
  await fixture(page, 'plain', html('en', tag(), body));
  await page.click('#f');
  await page.click('#o');
  await page.waitForURL('https://www.example.org/');
  await waitHits(1);
  await new Promise((r) => setTimeout(r, 300));  // no event on its way: nothing may arrive late
  assert.deepEqual((await env.stack.hits()).map((h) => h.n), ['pageview']);
});

test('texts, colour, position and policy link from data-* and the JS API', async () => {
  const { page } = await visitor();
  const preset = `<script>window.fairstat = {texts: {title: 'Cookies? None. Stats?', accept: 'Yes'}}</script>`;
  await fixture(page, 'custom', html('en', preset +
    tag('data-color="#7a1fa2" data-position="top" data-policy="/legal/privacy"')));
  const d = dialog(page);
  await d.waitFor();
  assert.equal(await page.locator('fairstat-consent h2').textContent(), 'Cookies? None. Stats?');
  assert.ok(await button(page, 'Yes').isVisible());
  assert.equal(await d.getByRole('link').getAttribute('href'), '/legal/privacy');
  assert.equal(await button(page, 'Yes').evaluate((el) => getComputedStyle(el).backgroundColor), 'rgb(122, 31, 162)');
  const box = await d.boundingBox();
  assert.ok(box.y < 50, 'data-position="top"');
  // fairstat.texts() re-renders the open banner.
  await page.evaluate(() => fairstat.texts({ reject: 'No thanks' }));
  assert.ok(await button(page, 'No thanks').isVisible());
  assert.ok(await button(page, 'Yes').isVisible());
});

test('no cookies or storage of its own: only the collector\'s consent cookie', async () => {
  const { page, rec, context } = await visitor();
  await page.goto(env.stack.base + '/demo/');
  await accept(page, rec);
  await page.goto(env.stack.base + '/demo/app/');
  await page.click('#app-nav >> text=Reports');
  await settle(rec);
  const cookies = await context.cookies();
  assert.deepEqual(cookies.map((c) => c.name), ['fs_consent']);
  assert.deepEqual(await page.evaluate(() => [localStorage.length, sessionStorage.length]), [0, 0]);
  // Beacons carry no identifier: only domain, name, url, referrer, props.
  for (const e of rec.events) assert.deepEqual(Object.keys(e).filter((k) => !['domain', 'name', 'url', 'referrer', 'props'].includes(k)), []);
  assert.deepEqual(Object.keys(await page.evaluate(() => window.fairstat)).sort(), ['openSettings', 'texts', 'track']);
});
