// twosites.test.mjs -- two sites on unrelated domains (www.site-a.test,
// www.site-b.test) served by one collector, each reaching it on a host of its
// own (stats.site-a.test, stats.site-b.test), each with its own consent
// cookie on its own domain. One visitor, one browser: consent, withdrawal and
// erasure on one site never touch the other's cookie, hits or receipts.
// Chromium resolves both domains to 127.0.0.1; the pages are served by
// request interception, the snippet and the API by the real collector.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startCollector, freePort, streamEntries } from '../lib/harness.mjs';
import { launch, openPage, settle, dialog, button, waitFor, DIST } from './browser.mjs';

const SITES = ['site-a.test', 'site-b.test'];
const page = (site) => `http://www.${site}`;
const cookieName = (site) => `fs_consent_${site}`;
let redis, col, browser, port;

before(async () => {
  redis = await startRedis();
  port = await freePort();
  col = await startCollector(redis, {
    port,
    sections: { collector: { static_dir: DIST, rate_limit: 0 } },
    sites: Object.fromEntries(SITES.map((s) => [s, { origins: page(s), cookie_domain: s }])),
  });
  browser = await launch(['--host-resolver-rules=MAP *.site-a.test 127.0.0.1, MAP *.site-b.test 127.0.0.1',
    // The intercepted pages have no address, so Chromium would treat them as
    // public and block their requests to the loopback collector.
    '--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights']);
});
after(async () => {
  await browser?.close();
  await col?.stop();
  await redis?.stop();
});

const hits = (site) => redis.client.cmd('XLEN', `fs:{${site}}:hits`);
const receipts = async (site) =>
  (await streamEntries(redis.client, `fs:{${site}}:consent`)).map((e) => `${e.a}/${e.m}`);

test('two sites, one collector: each site\'s choice, withdrawal and erasure stay its own', async () => {
  const { page: tab, rec, context } = await openPage(browser);
  for (const site of SITES) {
    const html = `<!doctype html><html lang="en"><head><meta charset="utf-8">
      <script defer src="http://stats.${site}:${port}/fs.js" data-domain="${site}"></script></head>
      <body><a href="#" data-fairstat-settings>settings</a></body></html>`;
    await context.route(`${page(site)}/**`, (r) => r.fulfill({ contentType: 'text/html', body: html }));
  }
  const cookies = async () => Object.fromEntries((await context.cookies()).map((c) => [c.name, c]));
  const visit = async (site, path = '/') => {
    await tab.goto(page(site) + path);
    await tab.waitForFunction(() => window.fairstat);
  };
  const waitHits = (site, n) => waitFor(`${n} hits on ${site}`, async () => (await hits(site)) === n);
  const [A, B] = SITES;

  // A: accept on the banner. Its cookie, on its domain; a pageview.
  await visit(A);
  await button(tab, 'Accept').click();
  await waitHits(A, 1);
  const a1 = (await cookies())[cookieName(A)];
  assert.equal(a1.domain, '.' + A);
  assert.match(a1.value, /^1\.1\./);

  // B asks on its own (A's choice is not B's), and B's refusal is B's only.
  await visit(B);
  await dialog(tab).waitFor();
  await button(tab, 'Reject').click();
  await waitFor('B refusal cookie', async () => (await cookies())[cookieName(B)]?.value.startsWith('1.0.'));
  assert.equal((await cookies())[cookieName(B)].domain, '.' + B);
  assert.equal((await cookies())[cookieName(A)].value, a1.value);

  // Back on A: no banner, counted as before.
  await visit(A, '/again');
  await waitHits(A, 2);
  assert.equal(await dialog(tab).count(), 0);
  assert.equal(await hits(B), 0);

  // B changes its mind in the settings: B counts from now on, A untouched.
  await visit(B, '/b2');
  await tab.click('[data-fairstat-settings]');
  await button(tab, 'Accept').click();
  await waitHits(B, 1);
  assert.equal((await cookies())[cookieName(A)].value, a1.value);

  // A withdraws: A's hits erased and its cookie now a refusal; B keeps its
  // hit and its cookie.
  const b1 = (await cookies())[cookieName(B)];
  await visit(A, '/last');
  await waitHits(A, 3);
  await tab.click('[data-fairstat-settings]');
  await button(tab, 'Reject').click();
  await waitHits(A, 0);
  await waitFor('A refusal cookie', async () => (await cookies())[cookieName(A)]?.value.startsWith('1.0.'));
  await settle(rec);
  assert.equal(await hits(B), 1);
  assert.equal((await cookies())[cookieName(B)].value, b1.value);

  // Each site's receipts hold its own story, and how each choice was made.
  assert.deepEqual(await receipts(A), ['grant/banner', 'withdraw/withdrawal', 'deny/settings']);
  assert.deepEqual(await receipts(B), ['deny/banner', 'grant/settings']);
  assert.deepEqual(rec.errors, []);
  await context.close();
});
