// consent.test.mjs -- the snippet's consent flow in a real browser against the
// real collector and Redis: banner, no beacon before a choice, Reject, Accept
// (page loads and SPA navigations), withdrawal, GPC/DNT, keyboard, layout.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  suite, settle, dialog, button, accept, waitFor, HITS, SITE, ARTIFACTS,
} from './browser.mjs';

const env = suite();
const { visitor, waitHits } = env;
before(() => mkdirSync(ARTIFACTS, { recursive: true }));

const paths = async () => (await env.stack.hits()).map((h) => h.p);
// Inside the shadow root: the element that has keyboard focus.
const focused = (page) => page.evaluate(() => {
  const host = document.activeElement;
  const el = host?.shadowRoot?.activeElement;
  return el ? { host: host.localName, tag: el.localName, text: el.textContent, role: el.getAttribute('role') } : null;
});

test('banner appears on first visit as a labelled dialog and takes focus', async () => {
  const { page, rec } = await visitor();
  await page.goto(env.stack.base + '/demo/');
  const d = dialog(page);
  await d.waitFor();
  assert.equal(await d.getAttribute('aria-labelledby'), 't');
  assert.equal(await d.getAttribute('aria-describedby'), 'x');
  // The accessible name and description come from the heading and the text.
  assert.equal(await page.locator('fairstat-consent #t').textContent(), 'Count your visit?');
  assert.match(await page.locator('fairstat-consent #x').textContent(), /consent/);
  assert.ok(await page.getByRole('dialog', { name: 'Count your visit?' }).isVisible());
  // Focus moved into the dialog.
  assert.deepEqual(await focused(page), { host: 'fairstat-consent', tag: 'div', text: await d.textContent(), role: 'dialog' });
  // A link to the privacy policy; Accept and Reject of equal weight.
  assert.equal(await d.getByRole('link', { name: 'Privacy policy' }).getAttribute('href'), '/demo/privacy.html');
  const [a, r] = [button(page, 'Accept'), button(page, 'Reject')];
  const [ba, br] = [await a.boundingBox(), await r.boundingBox()];
  assert.equal(Math.round(ba.width), Math.round(br.width));
  assert.equal(Math.round(ba.height), Math.round(br.height));
  const style = (l) => l.evaluate((el) => {
    const s = getComputedStyle(el);
    return [s.backgroundColor, s.color, s.fontSize, s.fontWeight, s.borderWidth].join();
  });
  assert.equal(await style(a), await style(r));
  assert.equal(rec.consent.length, 0, 'same origin: the cookie alone tells that no choice exists');
});

test('no request to /api/event before a choice', async () => {
  const { page, rec } = await visitor();
  await page.goto(env.stack.base + '/demo/');
  await dialog(page).waitFor();
  await page.click('#signup');                                    // fairstat.track('Signup')
  await page.evaluate(() => fairstat.track('Manual'));
  await page.goto(env.stack.base + '/demo/app/');                     // another page load
  await dialog(page).waitFor();
  await page.click('#app-nav >> text=Reports');                   // pushState
  await page.goBack();                                            // popstate
  await settle(rec);
  assert.equal(rec.events.length, 0);
  assert.equal(await env.stack.xlen(), 0);
});

test('Reject: no beacon, no hit in Redis, and no banner on later pages', async () => {
  const { page, rec, context } = await visitor();
  await page.goto(env.stack.base + '/demo/');
  await button(page, 'Reject').click();
  await waitFor('refusal cookie', async () =>
    (await context.cookies()).some((c) => c.name === 'fs_consent' && c.value.startsWith('1.0.')));
  assert.equal(await dialog(page).count(), 0);
  assert.deepEqual(rec.consent.map((c) => c.method), ['POST']);
  assert.equal(JSON.parse(rec.consent[0].req.postData()).analytics, false);
  await page.goto(env.stack.base + '/demo/pricing.html');
  await page.goto(env.stack.base + '/demo/app/');
  await page.click('#app-nav >> text=Settings');
  await page.evaluate(() => fairstat.track('Signup', { plan: 'pro' }));
  await settle(rec);
  assert.equal(await dialog(page).count(), 0, 'the choice is remembered');
  assert.equal(rec.events.length, 0);
  assert.equal(await env.stack.xlen(), 0);
});

test('Accept: exactly one pageview in Redis per page load', async () => {
  const { page, rec } = await visitor();
  await page.goto(env.stack.base + '/demo/');
  await accept(page, rec);
  await page.click('header >> text=Pricing');
  await page.waitForURL('**/pricing.html');
  await page.click('header >> text=Privacy');
  await page.waitForURL('**/privacy.html');
  await page.reload();                                            // a reload is a new view
  await settle(rec);
  await waitHits(4);
  assert.deepEqual(await paths(), ['/demo/', '/demo/pricing.html', '/demo/privacy.html', '/demo/privacy.html']);
  // Redis can see a beacon before Playwright reports its request event.
  await waitFor('the browser to report the beacons', () => rec.events.length >= 4);
  assert.equal(rec.events.length, 4);
  assert.ok(rec.events.every((e) => e.name === 'pageview' && e.domain === SITE));
  assert.equal(await dialog(page).count(), 0, 'no banner once accepted');
});

test('Accept: one pageview per SPA navigation, none for the same path', async () => {
  const { page, rec } = await visitor();
  await page.goto(env.stack.base + '/demo/app/');
  await accept(page, rec);
  const nav = (name) => page.click(`#app-nav >> text=${name}`);
  await nav('Reports');                                           // pushState
  await nav('Reports');                                           // same path: no pushState at all
  await page.click('[data-tab=month]');                           // replaceState ?tab=month, same path
  await page.click('[data-tab=week]');
  await page.evaluate(() => history.pushState({}, '', location.pathname + '?again'));  // same path
  await nav('Settings');
  await page.goBack();                                            // popstate -> /reports/?again
  await page.goBack();                                            // popstate, same path
  await settle(rec);
  await waitHits(4);
  assert.deepEqual(await paths(), ['/demo/app/', '/demo/app/reports/', '/demo/app/settings/', '/demo/app/reports/']);
  // Redis can see a beacon before Playwright reports its request event.
  await waitFor('the browser to report the beacons', () => rec.events.length >= 4);
  assert.equal(rec.events.length, 4);
  // A reload of an SPA route is a real file and one more page load.
  await page.reload();
  await settle(rec);
  await waitHits(5);
  assert.equal((await paths())[4], '/demo/app/reports/');
});

test('withdrawal via a data-fairstat-settings link stops beacons and erases pending hits', async () => {
  const { page, rec, context } = await visitor();
  await page.goto(env.stack.base + '/demo/');
  await accept(page, rec);
  await page.goto(env.stack.base + '/demo/pricing.html');
  await settle(rec);
  await waitHits(2);
  const link = page.locator('footer [data-fairstat-settings]');
  await link.focus();
  await link.press('Enter');
  await dialog(page).waitFor();
  // Reopened: the choice in force is marked.
  assert.equal(await button(page, 'Accept').getAttribute('aria-pressed'), 'true');
  assert.equal(await button(page, 'Reject').getAttribute('aria-pressed'), 'false');
  await button(page, 'Reject').click();
  await waitHits(0);
  await waitFor('refusal cookie', async () =>
    (await context.cookies()).some((c) => c.name === 'fs_consent' && c.value.startsWith('1.0.')));
  assert.deepEqual(rec.consent.map((c) => c.method), ['POST', 'DELETE', 'POST']);
  assert.equal(await dialog(page).count(), 0);
  // Focus went back to the link that opened the settings.
  assert.equal(await page.evaluate(() => document.activeElement.hasAttribute('data-fairstat-settings')), true);
  const before = rec.events.length;
  await page.evaluate(() => fairstat.track('Signup'));
  await page.goto(env.stack.base + '/demo/');
  await page.click('#signup');
  await settle(rec);
  assert.equal(rec.events.length, before, 'no beacon after withdrawal');
  assert.equal(await env.stack.xlen(), 0);
  assert.equal(await dialog(page).count(), 0, 'the refusal is remembered');
});

test('withdrawal via fairstat.openSettings() stops beacons and erases pending hits', async () => {
  const { page, rec } = await visitor();
  await page.goto(env.stack.base + '/demo/app/');
  await accept(page, rec);
  await page.click('#app-nav >> text=Reports');
  await settle(rec);
  await waitHits(2);
  await page.evaluate(() => fairstat.openSettings());
  await button(page, 'Reject').click();
  await waitHits(0);
  await settle(rec);
  const before = rec.events.length;
  await page.click('#app-nav >> text=Settings');
  await page.evaluate(() => fairstat.track('Signup'));
  await settle(rec);
  assert.equal(rec.events.length, before);
  assert.equal(await env.stack.xlen(), 0);
  // Changing one's mind again works: Accept starts counting anew.
  await page.evaluate(() => fairstat.openSettings());
  await accept(page, rec);
  await waitHits(1);
  assert.deepEqual(await paths(), ['/demo/app/settings/']);
});

test('GPC set in the browser: no banner, no beacon, no consent request at all', async () => {
  const gpc = () => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true });
  const { page, rec } = await visitor({ init: gpc });
  await page.goto(env.stack.base + '/demo/');
  assert.equal(await page.evaluate(() => navigator.globalPrivacyControl), true);
  await page.click('#signup');
  await page.goto(env.stack.base + '/demo/app/');
  await page.click('#app-nav >> text=Reports');
  await settle(rec);
  assert.equal(await dialog(page).count(), 0);
  assert.equal(rec.events.length, 0);
  assert.equal(rec.consent.length, 0);
  assert.equal(await env.stack.xlen(), 0);
});

test('GPC or DNT stop beacons even after an earlier Accept', async () => {
  for (const init of [
    () => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true }),
    () => Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' }),
  ]) {
    const { page, rec, context } = await visitor({ init });
    // The visitor accepted before turning the signal on.
    const r = await context.request.post(env.stack.base + '/consent', {
      headers: { 'content-type': 'text/plain', origin: env.stack.base },
      data: JSON.stringify({ domain: SITE, analytics: true }),
    });
    assert.equal(r.status(), 200);
    await page.goto(env.stack.base + '/demo/');
    await page.click('#signup');
    await settle(rec);
    assert.equal(await dialog(page).count(), 0);
    assert.equal(rec.events.length, 0);
    assert.equal(await env.stack.xlen(), 0);
  }
});

test('keyboard-only user can Tab to Accept and press Enter', async () => {
  const { page, rec } = await visitor();
  await page.goto(env.stack.base + '/demo/');
  await dialog(page).waitFor();
  let f;
  for (let i = 0; i < 6; i++) {
    await page.keyboard.press('Tab');
    f = await focused(page);
    if (f?.text === 'Accept') break;
  }
  assert.equal(f?.tag, 'button');
  assert.equal(f?.text, 'Accept', 'Tab reaches Accept within the dialog');
  // A visible focus ring.
  const ring = await button(page, 'Accept').evaluate((el) => {
    const s = getComputedStyle(el);
    return { style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
  });
  assert.equal(ring.style, 'solid');
  assert.ok(ring.width >= 2);
  await page.keyboard.press('Enter');
  await waitHits(1);
  await settle(rec);
  assert.deepEqual(await paths(), ['/demo/']);
  assert.equal(await dialog(page).count(), 0);
});

test('Escape closes the banner without recording a choice', async () => {
  const { page, rec } = await visitor();
  await page.goto(env.stack.base + '/demo/');
  await dialog(page).waitFor();
  await page.keyboard.press('Escape');
  assert.equal(await dialog(page).count(), 0);
  await page.goto(env.stack.base + '/demo/pricing.html');
  await dialog(page).waitFor();                                   // asked again on the next page
  await settle(rec);
  assert.equal(rec.consent.length, 0);
  assert.equal(rec.events.length, 0);
});

test('banner screenshots: desktop 1280x800 and 360 px wide', async () => {
  for (const [name, viewport] of [['desktop', { width: 1280, height: 800 }], ['360', { width: 360, height: 740 }]]) {
    const { page } = await visitor({ viewport });
    await page.goto(env.stack.base + '/demo/');
    const d = dialog(page);
    await d.waitFor();
    const box = await d.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= viewport.width, `${name}: dialog inside the viewport`);
    assert.ok(box.y >= 0 && box.y + box.height <= viewport.height);
    for (const b of ['Accept', 'Reject']) assert.ok(await button(page, b).isVisible());
    await page.screenshot({ path: path.join(ARTIFACTS, `banner-${name}.png`) });
  }
});

test('banner works at 320 px wide and at 400% zoom (320x200 CSS px)', async () => {
  for (const viewport of [{ width: 320, height: 640 }, { width: 320, height: 200 }]) {
    const { page, rec } = await visitor({ viewport });
    await page.goto(env.stack.base + '/demo/');
    const d = dialog(page);
    await d.waitFor();
    const box = await d.boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= viewport.width, 'no horizontal overflow');
    assert.ok(box.y >= 0 && box.y + box.height <= viewport.height, 'fits the height, scrolling inside');
    // No text cut off sideways.
    assert.equal(await d.evaluate((el) => el.scrollWidth <= el.clientWidth), true);
    if (viewport.height === 200) await page.screenshot({ path: path.join(ARTIFACTS, 'banner-320-zoom400.png') });
    await accept(page, rec);                                      // scrolled into view and clicked
    await waitHits(1);
    await env.stack.redis.client.cmd('DEL', HITS);
  }
});
