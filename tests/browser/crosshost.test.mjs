// crosshost.test.mjs -- the snippet on www.fairstat.test talking to a collector
// on stats.fairstat.test (same site, another origin): CORS with credentials,
// consent.cookie_domain so that the page sees the choice, the DELETE preflight.
// Chromium resolves *.fairstat.test to 127.0.0.1; the page itself is served by
// request interception, the snippet and the API by the real collector.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, launch, openPage, settle, dialog, button, waitFor, SITE } from './browser.mjs';

const PAGE = 'http://www.fairstat.test';
let stack;
let browser;
let api;

before(async () => {
  stack = await startStack({ site: { origins: PAGE }, sections: { consent: { cookie_domain: 'fairstat.test' } } });
  api = stack.base.replace('127.0.0.1', 'stats.fairstat.test');
  browser = await launch(['--host-resolver-rules=MAP *.fairstat.test 127.0.0.1',
    // The intercepted page has no address, so Chromium would treat it as public
    // and block its requests to the loopback collector (Local Network Access).
    '--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights']);
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

test('collector on another host: consent, beacons, withdrawal across origins', async () => {
  const { page, rec, context } = await openPage(browser);
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8">
    <script defer src="${api}/fs.js" data-domain="${SITE}"></script></head>
    <body><a href="/b" id=b>next</a> <a href="#" data-fairstat-settings>settings</a></body></html>`;
  await page.route(`${PAGE}/**`, (r) => r.fulfill({ contentType: 'text/html', body: html }));
  const waitHits = (n) => waitFor(`${n} hits`, async () => (await stack.xlen()) === n);

  await page.goto(PAGE + '/a');
  await button(page, 'Accept').click();
  await waitHits(1);
  const cookie = (await context.cookies()).find((c) => c.name === 'fs_consent');
  assert.equal(cookie.domain, '.fairstat.test');
  // The next page sees the choice without asking: no banner, one pageview.
  await page.click('#b');
  await page.waitForURL('**/b');
  await waitHits(2);
  assert.equal(await dialog(page).count(), 0);
  assert.deepEqual((await stack.hits()).map((h) => h.p), ['/a', '/b']);
  assert.ok(rec.events.every((e) => e.domain === SITE));
  // Withdrawal: DELETE (preflighted) erases, then the refusal is recorded.
  await page.click('[data-fairstat-settings]');
  await button(page, 'Reject').click();
  await waitHits(0);
  await waitFor('refusal cookie', async () =>
    (await context.cookies()).some((c) => c.name === 'fs_consent' && c.value.startsWith('1.0.')));
  await settle(rec);
  assert.deepEqual(rec.consent.filter((c) => c.method !== 'OPTIONS').map((c) => c.method), ['POST', 'DELETE', 'POST']);
  await context.close();
});
