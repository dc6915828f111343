// consent_sources.test.mjs -- black-box tests of the consent sources other
// than Fairstat's own banner (collector/cmp.h): one site per consent manager
// on one collector; beacons carrying each manager's cookie for accept and
// for reject; the TC string in the beacon; Google Consent Mode; GPC and DNT
// merged by a proxy. A refusal is checked in Redis: nothing at all written.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startRedis, startCollector, beacon, streamEntries, DATA } from '../lib/harness.mjs';

const TCF = Object.fromEntries(
  JSON.parse(fs.readFileSync(path.join(DATA, 'tcf/strings.json'), 'utf8')).cases.map((c) => [c.name, c.tc]));

const SITES = {
  'example.com': { origins: 'https://example.com' },
  'tcf.test': { origins: 'https://tcf.test', consent: 'tcf' },
  'vendor.test': { origins: 'https://vendor.test', consent: 'tcf', tcf_purposes: '1', tcf_vendor: 755 },
  'cookiebot.test': { origins: 'https://cookiebot.test', consent: 'cookiebot' },
  'onetrust.test': { origins: 'https://onetrust.test', consent: 'onetrust', consent_group: 'C0004' },
  'klaro.test': { origins: 'https://klaro.test', consent: 'klaro' },
  'cc.test': { origins: 'https://cc.test', consent: 'cookieconsent' },
  'custom.test': { origins: 'https://custom.test', consent: 'custom', consent_cookie: 'site_choice',
    consent_match: '^(?:.*,)?stats(?:,.*)?$' },
};

const enc = encodeURIComponent;
const cookiebot = (stats) => 'CookieConsent=' + enc(`{stamp:'Xk2Hn1wQ==',necessary:true,preferences:false,` +
  `statistics:${stats},marketing:false,method:'explicit',ver:1,utc:1716451200000,region:'de'}`);
const onetrust = (g4) => 'OptanonConsent=' + `isGpcEnabled=0&datestamp=${enc('Thu May 23 2024 10:00:00 GMT+0200').replace(/%20/g, '+')}` +
  `&version=202403.1.0&isIABGlobal=false&hosts=&landingPath=NotLandingPage&groups=${enc(`C0001:1,C0002:1,C0003:0,C0004:${g4}`)}`;
const klaro = (on) => 'klaro=' + enc(JSON.stringify({ fairstat: on, youtube: true }));
const cc = (cats) => 'cc_cookie=' + enc(JSON.stringify({ categories: cats, revision: 0, data: null,
  consentTimestamp: '2024-05-23T10:00:00.000Z', consentId: 'e2b1', services: {}, languageCode: 'en' }));

const CASES = [
  // site, cookie that grants, cookie that refuses
  ['tcf.test', `euconsent-v2=${TCF.purposes_1_8_vendor_range}`, `euconsent-v2=${TCF.purpose_8_withheld}`],
  ['vendor.test', `euconsent-v2=${TCF.single_vendor_755}`, `euconsent-v2=${TCF.purposes_1_8_vendor_range}`],
  ['cookiebot.test', cookiebot(true), cookiebot(false)],
  ['onetrust.test', onetrust(1), onetrust(0)],
  ['klaro.test', klaro(true), klaro(false)],
  ['cc.test', cc(['necessary', 'analytics']), cc(['necessary'])],
  ['custom.test', 'site_choice=' + enc('ads,stats'), 'site_choice=ads'],
];

const page = (domain, extra = {}) => ({ domain, name: 'pageview', url: `https://${domain}/a`, ...extra });

describe('consent sources', () => {
  let redis, col, noConsentStatus;

  before(async () => {
    redis = await startRedis();
    col = await startCollector(redis, { sites: SITES, sections: { collector: { trusted_proxies: '127.0.0.1/32' } } });
    const r = await beacon(col.base, page('example.com'));
    assert.equal(r.status, 204);
    noConsentStatus = r.headers.get('fairstat-status');
    assert.ok(noConsentStatus);
  });
  after(async () => { await col?.stop(); await redis?.stop(); });

  const hits = (site) => streamEntries(redis.client, `fs:{${site}}:hits`);
  const keys = async () => (await redis.client.cmd('KEYS', '*')).sort();

  async function assertRefusedAndNothingWritten(site, headers, body = page(site)) {
    const before = await keys();
    const n = (await hits(site)).length;
    const r = await beacon(col.base, body, headers);
    assert.equal(r.status, 204, `${site} ${JSON.stringify(headers)}`);
    assert.equal(r.headers.get('fairstat-status'), noConsentStatus, 'answered as any refusal without consent');
    assert.equal((await hits(site)).length, n);
    assert.deepEqual(await keys(), before, 'nothing written anywhere');
  }

  for (const [site, yes, no] of CASES) {
    test(`${site}: the manager's accept stores the hit, its reject and garbage refuse`, async () => {
      const r = await beacon(col.base, page(site), { cookie: `other=1; ${yes}` });
      assert.equal(r.status, 202);
      const [hit] = (await hits(site)).slice(-1);
      assert.equal(hit.p, '/a');
      assert.match(hit.v, /^[0-9a-f]{16}$/);
      await assertRefusedAndNothingWritten(site, { cookie: no });
      await assertRefusedAndNothingWritten(site, {});
      await assertRefusedAndNothingWritten(site, { cookie: yes.replace('=', '=%zz') });
      await assertRefusedAndNothingWritten(site, { cookie: yes.slice(0, Math.floor(yes.length * 0.6)) });
    });
  }

  test("a manager's cookie is nothing to a Fairstat site, nor to another manager's site", async () => {
    await assertRefusedAndNothingWritten('example.com', { cookie: klaro(true) });
    await assertRefusedAndNothingWritten('cookiebot.test', { cookie: klaro(true) });
    await assertRefusedAndNothingWritten('klaro.test', { cookie: cookiebot(true) });
  });

  test('tcf: the TC string sent by the snippet counts, and wins over a stale cookie', async () => {
    const r = await beacon(col.base, page('tcf.test', { tc: TCF.purposes_1_8_vendor_range }));
    assert.equal(r.status, 202);
    await assertRefusedAndNothingWritten('tcf.test', { cookie: `euconsent-v2=${TCF.purposes_1_8_vendor_range}` },
      page('tcf.test', { tc: TCF.purpose_1_withheld }));
    await assertRefusedAndNothingWritten('tcf.test', {}, page('tcf.test', { tc: TCF.nothing_granted }));
    const bad = await beacon(col.base, page('tcf.test', { tc: 'not a tc string' }));
    assert.equal(bad.status, 400, 'a tc field that is not base64url is a bad beacon');
  });

  test('Google Consent Mode denied refuses even with consent; granted never grants alone', async () => {
    const [site, yes] = CASES[4];
    await assertRefusedAndNothingWritten(site, { cookie: yes }, page(site, { analytics_storage: 'denied' }));
    await assertRefusedAndNothingWritten(site, {}, page(site, { analytics_storage: 'granted' }));
    await assertRefusedAndNothingWritten('tcf.test', {}, page('tcf.test', { analytics_storage: 'granted' }));
    const r = await beacon(col.base, page(site, { analytics_storage: 'granted' }), { cookie: yes });
    assert.equal(r.status, 202);
  });

  test('GPC and DNT, also merged by a proxy, refuse on top of every source', async () => {
    for (const [site, yes] of CASES) {
      for (const h of [{ 'sec-gpc': '1, 1' }, { dnt: '1,1' }, { 'sec-gpc': '1' }]) {
        const before = await keys();
        const r = await beacon(col.base, page(site), { cookie: yes, ...h });
        assert.equal(r.status, 204, `${site} ${JSON.stringify(h)}`);
        assert.notEqual(r.headers.get('fairstat-status'), noConsentStatus);
        assert.deepEqual(await keys(), before);
      }
    }
  });

  test('a visitor without a receipt is hashed from address and User-Agent, nothing stored for it', async () => {
    const [site, yes] = CASES[5];
    const send = (ip, ua) => beacon(col.base, page(site), { cookie: yes, 'x-forwarded-for': ip, ...(ua ? { 'user-agent': ua } : {}) });
    await redis.client.cmd('DEL', `fs:{${site}}:hits`);
    for (const [ip, ua] of [['81.2.69.142'], ['81.2.69.142'], ['81.2.69.160'], ['81.2.69.142', 'Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0 Safari/537.36']])
      assert.equal((await send(ip, ua)).status, 202);
    const v = (await hits(site)).map((h) => h.v);
    assert.equal(v[0], v[1], 'same address and browser: same visitor today');
    assert.notEqual(v[0], v[2], 'another address: another visitor');
    assert.notEqual(v[0], v[3], 'another browser: another visitor');
    const all = JSON.stringify(await hits(site));
    assert.ok(!all.includes('81.2.69') && !all.includes('Gecko'), 'no address, no User-Agent');
    assert.deepEqual((await keys()).filter((k) => k.includes(site)), [`fs:{${site}}:hits`],
      'no receipt, no consent record for a manager-consented visitor');
  });
});
