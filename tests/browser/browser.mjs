// browser.mjs -- shared set-up of the browser tests: redis + the real collector
// serving js-snippet/dist (the snippet and the demo site, same origin), Debian's
// Chromium driven by playwright-core, and helpers to watch the snippet's requests
// and the hits that reach Redis.
import { before, after, beforeEach } from 'node:test';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startRedis, startCollector, freePort, waitFor, streamEntries, ROOT } from '../lib/harness.mjs';

export const SITE = 'localhost';   // data-domain of the demo pages, the site `make run` configures
export const HITS = `fs:{${SITE}}:hits`;
export const DIST = path.join(ROOT, 'js-snippet', 'dist');
export const ARTIFACTS = path.join(ROOT, 'tests', 'artifacts');
// A desktop Chrome UA: the collector's bot filter refuses "HeadlessChrome".
export const CHROME_UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 ' +
  '(KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';

// Redis and the collector serving the demo. The site's origins must hold the
// collector's own origin (the demo is served by the collector itself), so the
// port is chosen before the config is written.
// opts.site: extra keys of the site's section; opts.sections: other sections.
export async function startStack(opts = {}) {
  if (!existsSync(path.join(DIST, 'fs.js'))) throw new Error('js-snippet/dist/fs.js missing: run make');
  const redis = await startRedis();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let col;
  try {
    col = await startCollector(redis, {
      port,
      sections: { ...opts.sections, collector: { static_dir: DIST, rate_limit: 0 } },
      sites: { [SITE]: { origins: base, ...opts.site } },
    });
  } catch (e) {
    await redis.stop();
    throw e;
  }
  return {
    base, redis,
    output: col.output,
    hits: () => streamEntries(redis.client, HITS),
    xlen: () => redis.client.cmd('XLEN', HITS),
    async stop() {
      await col.stop();
      await redis.stop();
    },
  };
}

// The set-up every browser test file shares: one stack and one browser per
// file; per test, a fresh stream and the previous test's pages closed.
// s.stack and s.browser are set once the file's `before` hook has run.
export function suite() {
  const s = { stack: null, browser: null, open: [] };
  before(async () => {
    s.stack = await startStack();
    s.browser = await launch();
  });
  after(async () => {
    await s.browser?.close();
    await s.stack?.stop();
  });
  beforeEach(async () => {
    for (const c of s.open.splice(0)) await c.close();
    await s.stack.redis.client.cmd('DEL', HITS);
  });
  s.visitor = async (opts) => {
    const v = await openPage(s.browser, opts);
    s.open.push(v.context);
    return v;
  };
  s.waitHits = (n) => waitFor(`${n} hits in Redis`, async () => (await s.stack.xlen()) === n);
  return s;
}

export function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', ...extraArgs],
  });
}

// A fresh browser profile (no cookies) with one page, recording the snippet's
// requests: events (POST /api/event bodies, parsed), consent (method + status),
// and everything in flight, so that tests can wait for the network to settle.
export async function openPage(browser, opts = {}) {
  const context = await browser.newContext({
    userAgent: CHROME_UA,
    viewport: opts.viewport || { width: 1280, height: 800 },
    ...(opts.context || {}),
  });
  const page = await context.newPage();
  if (opts.init) await page.addInitScript(opts.init);
  const rec = { events: [], consent: [], pending: new Set(), errors: [] };
  page.on('pageerror', (e) => rec.errors.push(e.message));
  page.on('request', (req) => {
    const u = new URL(req.url());
    if (u.pathname === '/api/event') {
      rec.events.push(JSON.parse(req.postData()));
      rec.pending.add(req);
    } else if (u.pathname === '/consent') {
      rec.consent.push({ method: req.method(), req });
      rec.pending.add(req);
    }
  });
  const done = (req) => rec.pending.delete(req);
  page.on('response', (res) => done(res.request()));
  page.on('requestfinished', done);
  page.on('requestfailed', done);
  // A beacon still in flight when its page is left may never report an end
  // to Playwright; what reached the collector is checked in Redis instead.
  let doc = 0;
  const born = new WeakMap();
  page.on('request', (req) => born.set(req, doc));
  page.on('framenavigated', (frame) => {
    if (frame !== page.mainFrame()) return;
    doc++;
    for (const req of rec.pending) if (born.get(req) < doc) rec.pending.delete(req);
  });
  return { context, page, rec };
}

// Waits until every recorded snippet request has finished.
export function settle(rec) {
  return waitFor('snippet requests to finish', () => rec.pending.size === 0);
}

export const dialog = (page) => page.locator('fairstat-consent [role=dialog]');
export const button = (page, name) => dialog(page).getByRole('button', { name });

// Accepts on the banner and waits until the collector has answered.
export async function accept(page, rec) {
  await button(page, 'Accept').click();
  await waitFor('consent cookie', async () =>
    (await page.context().cookies()).some((c) => c.name === 'fs_consent' && c.value.startsWith('1.1.')));
  await settle(rec);
}

export { waitFor, streamEntries };
