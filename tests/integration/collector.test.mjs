// collector.test.mjs -- black-box tests of fairstat-collector: a real
// redis-server on a free port, the real binary, plain HTTP. Every "nothing is
// stored" claim is checked in Redis, not inferred from a status code.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import net from 'node:net';
import fs from 'node:fs';
import path from 'node:path';
import {
  startRedis, startCollector, consentCookie, beacon, streamEntries, run, writeConfig,
  BIN, DATA, SECRET, FIREFOX, sleep, waitFor,
} from '../lib/harness.mjs';

const HITS = 'fs:{example.com}:hits';
const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const GOOGLEBOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
const PAGE = { domain: 'example.com', name: 'pageview', url: 'https://example.com/pricing?utm_source=news&x=1', referrer: 'https://www.google.com/search?q=secret' };

// A cookie signed with the test secret, as an attacker with the key could: for
// the expiry test we need one issued long ago.
// The MAC covers site "\n" policy_version "\n" payload (see collector/consent.h).
function signCookie(analytics, issued, receipt, secret = SECRET, site = 'example.com', policy = '1') {
  const msg = `1.${analytics}.${issued}.${receipt}`;
  const mac = crypto.createHmac('sha256', secret).update(`${site}\n${policy}\n${msg}`).digest('base64url');
  return `fs_consent=${msg}.${mac}`;
}

// Sends raw bytes and returns everything the server sent back until it closes
// (or the timeout).
function rawRequest(port, chunks, { gapMs = 0, timeoutMs = 5000 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    const started = Date.now();
    const done = () => { sock.destroy(); resolve({ data, ms: Date.now() - started }); };
    sock.on('data', (d) => { data += d; });
    sock.on('close', done);
    sock.on('error', done);
    setTimeout(done, timeoutMs);
    sock.on('connect', async () => {
      for (const c of chunks) {
        if (sock.destroyed) return;
        sock.write(c);
        if (gapMs) await sleep(gapMs);
      }
    });
  });
}

describe('collector', () => {
  let redis, col, cookie;

  before(async () => {
    redis = await startRedis();
    col = await startCollector(redis, {
      sections: {
        collector: { trusted_proxies: '127.0.0.1/32', read_timeout: '1500ms', max_body: '4k', max_header: '4k' },
        geoip: { database: path.join(DATA, 'geoip/GeoIP2-City-Test.mmdb') },
      },
    });
    cookie = await consentCookie(col.base);
  });
  after(async () => { await col?.stop(); await redis?.stop(); });

  async function xlen(key = HITS) { return redis.client.cmd('XLEN', key); }
  async function clear() { await redis.client.cmd('DEL', HITS); }

  test('a consented beacon is in Redis when the 202 arrives, reduced to what we keep', async () => {
    await clear();
    const r = await beacon(col.base, PAGE, { cookie, 'x-forwarded-for': '81.2.69.142' });
    assert.equal(r.status, 202);
    const [hit] = await streamEntries(redis.client, HITS);
    assert.ok(hit, 'the hit is stored');
    assert.equal(hit.p, '/pricing');
    assert.equal(hit.n, 'pageview');
    assert.equal(hit.r, 'google.com');
    assert.equal(hit.us, 'news');
    assert.equal(hit.c, 'GB');
    assert.equal(hit.rg, 'GB-ENG');
    assert.equal(hit.b, 'Firefox');
    assert.equal(hit.dv, 'desktop');
    assert.match(hit.v, /^[0-9a-f]{16}$/);
    assert.equal(hit.um, undefined, 'empty optional fields are left out');
    assert.equal(hit.pr, undefined);
    const all = JSON.stringify(hit);
    assert.ok(!all.includes('81.2.69.142') && !all.includes('Gecko') && !all.includes('secret'),
      'no IP, no User-Agent, no query string beyond utm_*');
  });

  test('short keys and the no-script pixel store hits too', async () => {
    await clear();
    const r1 = await beacon(col.base, { d: 'example.com', n: 'Signup', u: 'https://example.com/join', p: { plan: 'pro' } }, { cookie });
    assert.equal(r1.status, 202);
    const q = new URLSearchParams({ d: 'example.com', u: 'https://example.com/nojs', r: '' });
    const r2 = await fetch(`${col.base}/p.gif?${q}`, { headers: { cookie, 'user-agent': FIREFOX } });
    assert.equal(r2.status, 202);
    assert.equal(r2.headers.get('content-type'), 'image/gif');
    const hits = await streamEntries(redis.client, HITS);
    assert.deepEqual(hits.map((h) => [h.n, h.p]), [['Signup', '/join'], ['pageview', '/nojs']]);
    assert.equal(hits[0].pr, '{"plan":"pro"}');
  });

  test('the same visitor gets the same hash within a day; another receipt another', async () => {
    await clear();
    const other = await consentCookie(col.base);
    for (const c of [cookie, cookie, other]) assert.equal((await beacon(col.base, PAGE, { cookie: c })).status, 202);
    const v = (await streamEntries(redis.client, HITS)).map((h) => h.v);
    assert.equal(v[0], v[1]);
    assert.notEqual(v[0], v[2]);
  });

  const refusals = [
    ['no cookie', {}, 'no-consent'],
    ['a tampered cookie', () => ({ cookie: cookie.replace('fs_consent=1.1', 'fs_consent=1.0').replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')) }), 'no-consent'],
    ['a cookie signed with another secret', () => ({ cookie: signCookie(1, Math.floor(Date.now() / 1000), 'A'.repeat(22), 'x'.repeat(40)) }), 'no-consent'],
    ['an expired cookie', () => ({ cookie: signCookie(1, Math.floor(Date.now() / 1000) - 181 * 86400, 'A'.repeat(22)) }), 'no-consent'],
    ['a declined choice', () => ({ cookie: signCookie(0, Math.floor(Date.now() / 1000), 'A'.repeat(22)) }), 'no-consent'],
    ["another site's consent", () => ({ cookie: signCookie(1, Math.floor(Date.now() / 1000), 'A'.repeat(22), SECRET, 'shop.test') }), 'no-consent'],
    ['an older policy version', () => ({ cookie: signCookie(1, Math.floor(Date.now() / 1000), 'A'.repeat(22), SECRET, 'example.com', '0') }), 'no-consent'],
    ['Sec-GPC: 1 despite a valid cookie', () => ({ cookie, 'sec-gpc': '1' }), 'gpc'],
    ['DNT: 1 despite a valid cookie', () => ({ cookie, dnt: '1' }), 'dnt'],
    ['a known crawler', () => ({ cookie, 'user-agent': GOOGLEBOT }), 'bot'],
    ['no User-Agent at all', () => ({ cookie, 'user-agent': '' }), 'bot'],
  ];
  for (const [what, headers, reason] of refusals) {
    test(`refused with 204 and nothing stored: ${what}`, async () => {
      await clear();
      const h = typeof headers === 'function' ? headers() : headers;
      const r = await beacon(col.base, PAGE, h);
      assert.equal(r.status, 204);
      assert.equal(r.headers.get('fairstat-status'), reason);
      assert.equal(await xlen(), 0);
    });
  }

  test('a signed cookie from the test secret is accepted (the refusals above are not an accident)', async () => {
    await clear();
    const r = await beacon(col.base, PAGE, { cookie: signCookie(1, Math.floor(Date.now() / 1000), 'A'.repeat(22)) });
    assert.equal(r.status, 202);
    assert.equal(await xlen(), 1);
  });

  const rejections = [
    ['malformed JSON', '{"domain":"example.com",', 400],
    ['JSON that is not an object', '[1,2,3]', 400],
    ['bad UTF-8', Buffer.from('{"domain":"example.com","url":"https://example.com/\xff\xfe"}', 'latin1'), 400],
    ['a relative url', { domain: 'example.com', url: '/pricing' }, 400],
    ['an overlong url', { domain: 'example.com', url: 'https://example.com/' + 'a'.repeat(3000) }, 400],
    ['an overlong event name', { domain: 'example.com', name: 'n'.repeat(200), url: 'https://example.com/' }, 400],
    ['an unknown site', { domain: 'evil.test', url: 'https://evil.test/' }, 403],
    ['a body over max_body', { domain: 'example.com', url: 'https://example.com/', props: { x: 'y'.repeat(5000) } }, 413],
  ];
  for (const [what, body, status] of rejections) {
    test(`rejected with ${status} and nothing stored: ${what}`, async () => {
      await clear();
      const r = await fetch(col.base + '/api/event', {
        method: 'POST', headers: { 'content-type': 'text/plain', cookie, 'user-agent': FIREFOX },
        body: Buffer.isBuffer(body) || typeof body === 'string' ? body : JSON.stringify(body),
      });
      assert.equal(r.status, status);
      assert.equal(await xlen(), 0);
    });
  }

  test('a wrong Origin is refused with 403; an allowed one gets CORS with credentials', async () => {
    await clear();
    const bad = await beacon(col.base, PAGE, { cookie, origin: 'https://evil.test' });
    assert.equal(bad.status, 403);
    assert.equal(bad.headers.get('access-control-allow-origin'), null);
    const good = await beacon(col.base, PAGE, { cookie, origin: 'https://www.example.com' });
    assert.equal(good.status, 202);
    assert.equal(good.headers.get('access-control-allow-origin'), 'https://www.example.com');
    assert.equal(good.headers.get('access-control-allow-credentials'), 'true');
    assert.equal(await xlen(), 1);
    const pre = await fetch(col.base + '/api/event', { method: 'OPTIONS', headers: { origin: 'https://example.com', 'access-control-request-method': 'POST' } });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get('access-control-allow-methods'), /POST/);
  });

  test('a wrong content type gets 415, a wrong method 405, an unknown path 404', async () => {
    const r = await beacon(col.base, PAGE, { cookie, 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(r.status, 415);
    assert.equal((await fetch(col.base + '/api/event')).status, 405);
    assert.equal((await fetch(col.base + '/nope')).status, 404);
  });

  test('headers over max_header get 431 and the connection is closed', async () => {
    const big = 'x'.repeat(5000);
    const { data } = await rawRequest(col.port, [`GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: ${big}\r\n\r\n`]);
    assert.match(data, /^HTTP\/1\.1 431 /);
  });

  test('garbage on the wire gets 400, not a crash', async () => {
    const { data } = await rawRequest(col.port, ['\x00\x01\x02 not http at all\r\n\r\n']);
    assert.match(data, /^HTTP\/1\.1 400 /);
    assert.equal((await fetch(col.base + '/healthz')).status, 200);
  });

  test('a client trickling its request is cut off at the whole-request deadline (408)', async () => {
    const chunks = 'POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789'.split('');
    const { data, ms } = await rawRequest(col.port, chunks, { gapMs: 100, timeoutMs: 6000 });
    assert.match(data, /^HTTP\/1\.1 408 /);
    assert.ok(ms < 3500, `cut off after ${ms} ms although every byte came within 100 ms`);
  });

  test('a repeated Sec-GPC header refuses if any line says 1', async () => {
    await clear();
    const body = JSON.stringify(PAGE);
    const req = `POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nCookie: ${cookie}\r\nUser-Agent: ${FIREFOX}\r\nSec-GPC: 0\r\nSec-GPC: 1\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const { data } = await rawRequest(col.port, [req]);
    assert.match(data, /^HTTP\/1\.1 204 /);
    assert.match(data, /Fairstat-Status: gpc/);
    assert.doesNotMatch(data, /Content-Length/i, 'a 204 carries no Content-Length');
    assert.equal(await xlen(), 0);
  });

  test('a cookie sent only as a chunked trailer is not consent', async () => {
    await clear();
    const body = JSON.stringify(PAGE);
    const chunk = `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\nCookie: ${cookie}\r\n\r\n`;
    const req = `POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nUser-Agent: ${FIREFOX}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunk}`;
    const { data } = await rawRequest(col.port, [req]);
    assert.match(data, /^HTTP\/1\.1 204 /);
    assert.equal(await xlen(), 0);
  });

  test('a client that half-closes after its request still gets the answer', async () => {
    await clear();
    const body = JSON.stringify(PAGE);
    const req = `POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nCookie: ${cookie}\r\nUser-Agent: ${FIREFOX}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const data = await new Promise((resolve) => {
      const sock = net.connect({ port: col.port, host: '127.0.0.1', allowHalfOpen: true });
      let out = '';
      sock.on('data', (d) => { out += d; });
      sock.on('end', () => resolve(out));
      sock.on('error', () => resolve(out));
      sock.on('connect', () => sock.end(req));
      setTimeout(() => { sock.destroy(); resolve(out); }, 5000);
    });
    assert.match(data, /^HTTP\/1\.1 202 /);
    assert.equal(await xlen(), 1);
  });

  test('HEAD /p.gif stores nothing; health and metrics answer GET only', async () => {
    await clear();
    const q = new URLSearchParams({ d: 'example.com', u: 'https://example.com/head' });
    const r = await fetch(`${col.base}/p.gif?${q}`, { method: 'HEAD', headers: { cookie, 'user-agent': FIREFOX } });
    assert.equal(r.status, 405);
    assert.equal(await xlen(), 0);
    assert.equal((await fetch(col.base + '/metrics', { method: 'POST' })).status, 404);
  });

  test('pipelined requests are answered in order on one connection', async () => {
    await clear();
    const body = JSON.stringify(PAGE);
    const req = `POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nCookie: ${cookie}\r\nUser-Agent: ${FIREFOX}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    const { data } = await rawRequest(col.port, [req + req + 'GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n']);
    const statuses = [...data.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ['202', '202', '404']);
    assert.equal(await xlen(), 2);
  });

  test('Expect: 100-continue gets 100 Continue before the body is sent, then the answer', async () => {
    await clear();
    const body = JSON.stringify(PAGE);
    const head = `POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nCookie: ${cookie}\r\nUser-Agent: ${FIREFOX}\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`;
    const data = await new Promise((resolve) => {
      const sock = net.connect(col.port, '127.0.0.1');
      let out = '', sent = false;
      sock.on('data', (d) => {
        out += d;
        if (!sent && /^HTTP\/1\.1 100 Continue\r\n\r\n/.test(out)) { sent = true; sock.write(body); }
      });
      sock.on('close', () => resolve(out));
      sock.on('error', () => resolve(out));
      sock.on('connect', () => sock.write(head));
      setTimeout(() => { sock.destroy(); resolve(out); }, 5000);
    });
    const statuses = [...data.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ['100', '202']);
    assert.equal(await xlen(), 1);
  });

  // The point of Expect: a body the server will refuse is never sent. A
  // 100 Continue before the 413 would invite the client to send it anyway.
  // The refusal answers the refused request, not the HEAD before it: it
  // carries the body its Content-Length announces.
  test('a refusal after a pipelined HEAD still has its body', async () => {
    for (const next of ['\x01\r\n\r\n', 'G\x00T / HTTP/1.1\r\n\r\n']) {
      const { data } = await rawRequest(col.port, [`HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n${next}`], { timeoutMs: 3000 });
      const statuses = [...data.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]);
      assert.equal(statuses.length, 2, data);
      assert.equal(statuses[1], '400');
      const refusal = data.slice(data.lastIndexOf('HTTP/1.1 '));
      const length = Number(/\r\nContent-Length: (\d+)\r\n/.exec(refusal)[1]);
      assert.equal(Buffer.byteLength(refusal.slice(refusal.indexOf('\r\n\r\n') + 4)), length, JSON.stringify(refusal));
    }
  });

  // RFC 9110 10.1.1: a server MUST ignore 100-continue in an HTTP/1.0 request.
  test('Expect: 100-continue in an HTTP/1.0 request gets no 100 Continue', async () => {
    const { data } = await rawRequest(col.port, ['GET /healthz HTTP/1.0\r\nExpect: 100-continue\r\n\r\n'], { timeoutMs: 3000 });
    const statuses = [...data.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]);
    assert.equal(statuses.length, 1, data);
    assert.notEqual(statuses[0], '100');
  });

  test('Expect: 100-continue with a refused head gets the refusal alone, no 100 Continue', async () => {
    const head = (extra) => `POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nExpect: 100-continue\r\n${extra}\r\n`;
    for (const [extra, status] of [
      ['Content-Length: 1000000\r\n', '413'],
      ['Transfer-Encoding: gzip\r\n', '400'],
      ['Content-Length: 5\r\nTransfer-Encoding: chunked\r\n', '400'],
    ]) {
      const { data } = await rawRequest(col.port, [head(extra)], { timeoutMs: 3000 });
      const statuses = [...data.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => m[1]);
      assert.deepEqual(statuses, [status], extra);
    }
  });

  test('consent: POST records a receipt without IP and sets the cookie as documented', async () => {
    await redis.client.cmd('DEL', 'fs:{example.com}:consent');
    const r = await fetch(col.base + '/consent', {
      method: 'POST', headers: { 'content-type': 'text/plain', 'user-agent': FIREFOX, 'x-forwarded-for': '81.2.69.142' },
      body: JSON.stringify({ domain: 'example.com', analytics: true }),
    });
    assert.equal(r.status, 200);
    const json = await r.json();
    assert.match(json.receipt, /^[A-Za-z0-9_-]{22}$/);
    assert.equal(json.analytics, true);
    const setCookie = r.headers.get('set-cookie');
    assert.match(setCookie, /^fs_consent=1\.1\.\d+\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}; Max-Age=15552000; Path=\/; SameSite=Lax$/);
    const [receipt] = await streamEntries(redis.client, 'fs:{example.com}:consent');
    assert.equal(receipt.id, json.receipt);
    assert.equal(receipt.a, 'grant');
    assert.equal(receipt.pv, '1');
    assert.ok(!JSON.stringify(receipt).includes('81.2.69.142'));
  });

  test('consent: GET shows the receipt and what is held; DELETE withdraws and erases', async () => {
    await clear();
    const mine = await consentCookie(col.base);
    const theirs = await consentCookie(col.base);
    for (const c of [mine, mine, theirs]) assert.equal((await beacon(col.base, PAGE, { cookie: c })).status, 202);

    const g = await fetch(col.base + '/consent?domain=example.com', { headers: { cookie: mine } });
    assert.equal(g.status, 200);
    const info = await g.json();
    assert.deepEqual(info.held, { hits: 2, complete: true });
    assert.equal(info.analytics, true);

    const d = await fetch(col.base + '/consent?domain=example.com', { method: 'DELETE', headers: { cookie: mine } });
    assert.equal(d.status, 200);
    assert.deepEqual(await d.json(), { withdrawn: true, erased: 2, complete: true });
    assert.match(d.headers.get('set-cookie'), /^fs_consent=; Max-Age=0/);
    assert.equal(await xlen(), 1, "the other visitor's hit stays");
    const receipts = await streamEntries(redis.client, 'fs:{example.com}:consent');
    assert.equal(receipts.at(-1).a, 'withdraw');
    await waitFor('audit record', async () => (await redis.client.cmd('XLEN', 'fs:audit')) > 0);
    const [audit] = (await streamEntries(redis.client, 'fs:audit')).slice(-1);
    assert.equal(audit.action, 'withdraw');
    assert.equal(audit.hits, '2');
    assert.equal((await fetch(col.base + '/consent?domain=example.com')).status, 404);
  });

  test('a copy of a withdrawn cookie is refused, here at once and on other collectors soon after', async () => {
    await clear();
    const mine = await consentCookie(col.base);
    assert.equal((await beacon(col.base, PAGE, { cookie: mine })).status, 202);
    const other = await startCollector(redis);     // a second instance on the same Redis
    try {
      assert.equal((await beacon(other.base, PAGE, { cookie: mine })).status, 202);
      const d = await fetch(col.base + '/consent?domain=example.com', { method: 'DELETE', headers: { cookie: mine } });
      assert.equal(d.status, 200);
      assert.equal(await xlen(), 0, 'both stored hits were erased');
      const r = await beacon(col.base, PAGE, { cookie: mine });
      assert.equal(r.status, 204);
      assert.equal(r.headers.get('fairstat-status'), 'no-consent');
      assert.equal(await xlen(), 0);
      // The other instance reads withdrawals every 2 s: wait until its
      // GET /consent (which stores nothing) no longer knows the receipt.
      await waitFor('the other collector learns of the withdrawal', async () =>
        (await fetch(other.base + '/consent?domain=example.com', { headers: { cookie: mine } })).status === 404);
      assert.equal((await beacon(other.base, PAGE, { cookie: mine })).status, 204);
      assert.equal(await xlen(), 0);
      assert.equal((await fetch(col.base + '/consent?domain=example.com', { headers: { cookie: mine } })).status, 404);
    } finally {
      await other.stop();
    }
  });

  test('a cached verdict does not outlive its cookie: refused once expired', async () => {
    await clear();
    // Expires within two seconds (max_age_days = 180): the first hit is
    // verified and cached, later ones come from the cache until it expires.
    const issued = Math.floor(Date.now() / 1000) - 180 * 86400 + 2;
    const dying = signCookie(1, issued, 'E'.repeat(22));
    assert.equal((await beacon(col.base, PAGE, { cookie: dying })).status, 202);
    assert.equal((await beacon(col.base, PAGE, { cookie: dying })).status, 202);
    await waitFor('the cached cookie expires', async () => (await beacon(col.base, PAGE, { cookie: dying })).status === 204);
    const stored = await xlen();
    const r = await beacon(col.base, PAGE, { cookie: dying });
    assert.equal(r.status, 204);
    assert.equal(r.headers.get('fairstat-status'), 'no-consent');
    assert.equal(await xlen(), stored, 'nothing stored after expiry');
  });

  test('a cached verdict is for the exact cookie and site only', async () => {
    await clear();
    const now = Math.floor(Date.now() / 1000);
    const good = signCookie(1, now, 'F'.repeat(22));
    assert.equal((await beacon(col.base, PAGE, { cookie: good })).status, 202, 'cached now');
    const flipped = good.replace(/.$/, (ch) => (ch === 'A' ? 'B' : 'A'));
    assert.equal((await beacon(col.base, PAGE, { cookie: flipped })).status, 204, 'one byte off is not the cached cookie');
    const shop = { ...PAGE, domain: 'shop.test', url: 'https://shop.test/' };
    assert.equal((await beacon(col.base, shop, { cookie: good })).status, 204, "example.com's cookie is no consent on shop.test");
    assert.equal(await xlen(), 1);
    assert.equal(await xlen('fs:{shop.test}:hits'), 0);
  });

  test('many visitors in turn: each cached verdict stays its own (visitor hash per receipt)', async () => {
    await clear();
    const now = Math.floor(Date.now() / 1000);
    const cookies = Array.from({ length: 300 }, (_, i) => signCookie(1, now, `V${String(i).padStart(21, '0')}`));
    for (let round = 0; round < 2; round++)
      for (const c of cookies) assert.equal((await beacon(col.base, PAGE, { cookie: c })).status, 202);
    const v = (await streamEntries(redis.client, HITS)).map((h) => h.v);
    assert.equal(v.length, 600);
    assert.equal(new Set(v).size, 300, 'one visitor id per receipt');
    assert.deepEqual(v.slice(300), v.slice(0, 300), 'the cached id is the one computed first');
  });

  test('healthz and metrics report what happened', async () => {
    const h = await fetch(col.base + '/healthz');
    assert.equal(h.status, 200);
    const m = await (await fetch(col.base + '/metrics')).text();
    assert.match(m, /^fairstat_hits_accepted_total [1-9]\d*$/m);
    assert.match(m, /^fairstat_hits_refused_total\{reason="gpc"\} [1-9]/m);
    assert.match(m, /^fairstat_requests_rejected_total\{status="400"\} [1-9]/m);
    // Refused by the HTTP layer itself (before any handler): counted too.
    assert.match(m, /^fairstat_requests_rejected_total\{status="431"\} [1-9]/m);
    assert.match(m, /^fairstat_requests_rejected_total\{status="408"\} [1-9]/m);
    assert.match(m, /^fairstat_redis_latency_seconds_count [1-9]/m);
    // Nothing is left unanswered -- but the watch's PING (one a tick) may be
    // in flight at the moment of any one scrape: the queue must drain to 0.
    let q = m;
    for (let i = 0; i < 50 && !/^fairstat_redis_queue_depth 0$/m.test(q); i++) {
      await new Promise((r) => setTimeout(r, 20));
      q = await (await fetch(col.base + '/metrics')).text();
    }
    assert.match(q, /^fairstat_redis_queue_depth 0$/m);
  });

  test('refused and rejected hits leave no trace of their data in the log', async () => {
    const marker = 'zz-private-path-' + Date.now();
    await beacon(col.base, { ...PAGE, url: `https://example.com/${marker}` }, {});
    await beacon(col.base, { ...PAGE, url: `https://example.com/${marker}` }, { cookie, 'sec-gpc': '1' });
    await beacon(col.base, `{"domain":"example.com","url":"${marker}`, { cookie });
    await sleep(100);
    const out = col.output();
    assert.ok(!out.includes(marker));
    assert.ok(!out.includes('Firefox/121') && !out.includes('81.2.69.142'));
  });

  test('a Redis dump holds no client IP and no full User-Agent', async () => {
    const ip = '89.160.20.112', ua = CHROME + ' UniqueMarker/9.9';
    assert.equal((await beacon(col.base, PAGE, { cookie, 'x-forwarded-for': ip, 'user-agent': ua })).status, 202);
    await redis.client.cmd('CONFIG', 'SET', 'rdbcompression', 'no');
    await redis.client.cmd('SAVE');
    const dump = fs.readFileSync(path.join(redis.dir, 'dump.rdb')).toString('latin1');
    assert.ok(dump.length > 100);
    assert.ok(dump.includes('/pricing'), 'the dump is readable: the path is in it');
    for (const secret of [ip, 'UniqueMarker', 'AppleWebKit', 'Gecko/', '127.0.0.1']) assert.ok(!dump.includes(secret), secret);
  });
});

describe('collector under hostile pipelining', () => {
  test('thousands of pipelined requests behind a slow one neither crash nor hang it', async () => {
    const redis = await startRedis();
    const col = await startCollector(redis, { sections: { collector: { max_body: '64k' } } });
    try {
      const cookie = await consentCookie(col.base);
      await redis.client.cmd('CLIENT', 'PAUSE', '500', 'WRITE');   // the first hit waits for Redis
      const body = JSON.stringify(PAGE);
      const first = `POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nCookie: ${cookie}\r\nUser-Agent: ${FIREFOX}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
      // 2000 requests (66 KB) fit the pending buffer (max_header + max_body):
      // each is answered, in order, without the stack growing per request.
      const flood = 'GET /nope HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(2000);
      const { data } = await rawRequest(col.port, [first + flood], { timeoutMs: 8000 });
      assert.match(data, /^HTTP\/1\.1 202 /);
      assert.equal((data.match(/HTTP\/1\.1 404/g) || []).length, 2000);
      // More than the buffer holds: the connection is closed after what fits,
      // memory stays bounded, the server carries on.
      await redis.client.cmd('CLIENT', 'PAUSE', '300', 'WRITE');
      const big = await rawRequest(col.port, [first + flood + flood], { timeoutMs: 8000 });
      assert.match(big.data, /^HTTP\/1\.1 202 /);
      assert.equal(col.proc.exitCode, null, 'still running');
      assert.equal((await fetch(col.base + '/healthz')).status, 200);
    } finally {
      await col.stop();
      await redis.stop();
    }
  });
});

describe('collector without Redis', () => {
  test('without a spool: answers 503 while Redis is down or hung, and recovers', async () => {
    const redis = await startRedis();
    const col = await startCollector(redis, { sections: { collector: { redis_timeout: '300ms', spool_dir: '' } } });
    try {
      const cookie = await consentCookie(col.base);
      redis.proc.kill('SIGSTOP');                 // hung: the socket stays open
      const t0 = Date.now();
      const r = await beacon(col.base, PAGE, { cookie });
      assert.equal(r.status, 503);
      assert.ok(Date.now() - t0 < 3000, 'our own timer noticed the hang');
      // Connecting to a hung Redis succeeds: only a PING tells.
      assert.equal((await fetch(col.base + '/readyz')).status, 503);
      redis.proc.kill('SIGCONT');
      await waitFor('readyz 200', async () => (await fetch(col.base + '/readyz')).status === 200);
      const before = await redis.client.cmd('XLEN', HITS);
      assert.equal((await beacon(col.base, PAGE, { cookie })).status, 202);
      assert.equal(await redis.client.cmd('XLEN', HITS), before + 1);
      // Connections killed while hits are queued: the collector reconnects and
      // keeps storing (a lost flush once left it answering 503 for good).
      const load = Array.from({ length: 16 }, async () => {
        for (let i = 0; i < 30; i++) await beacon(col.base, PAGE, { cookie });
      });
      for (let k = 0; k < 8; k++) {
        await sleep(20);
        await redis.client.cmd('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      }
      await Promise.all(load);
      await waitFor('readyz 200 again', async () => (await fetch(col.base + '/readyz')).status === 200);
      const n = await redis.client.cmd('XLEN', HITS);
      assert.equal((await beacon(col.base, PAGE, { cookie })).status, 202);
      assert.equal(await redis.client.cmd('XLEN', HITS), n + 1);
    } finally {
      redis.proc.kill('SIGCONT');
      await col.stop();
      await redis.stop();
    }
  });
});

describe('collector configuration', () => {
  const dir = fs.mkdtempSync('/tmp/fs-conf-');
  test('a bad value exits 2 with one line naming file, line and key', async () => {
    const f = path.join(dir, 'bad.conf');
    fs.writeFileSync(f, `[collector]\nthreads = 1\nmax_body = lots\n[consent]\nsecret = ${SECRET}\n`);
    const r = await run(BIN('fairstat-collector'), ['-c', f]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, new RegExp(`${f}:3: collector\\.max_body`));
  });
  test('without a consent secret the collector refuses to start', async () => {
    const f = path.join(dir, 'nosecret.conf');
    fs.writeFileSync(f, '[collector]\nlisten = 127.0.0.1:1\n');
    const r = await run(BIN('fairstat-collector'), ['-c', f]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /consent\.secret/);
  });
  test('a corrupt GeoIP database degrades to unknown country, never a crash', async () => {
    const redis = await startRedis();
    for (const db of ['GeoIP2-City-Test-Broken-Double-Format.mmdb', 'GeoIP2-City-Test-Invalid-Node-Count.mmdb']) {
      const col = await startCollector(redis, { sections: { collector: { trusted_proxies: '127.0.0.1' }, geoip: { database: path.join(DATA, 'geoip', db) } } });
      try {
        const cookie = await consentCookie(col.base);
        await redis.client.cmd('DEL', HITS);
        for (const ip of ['81.2.69.142', '2001:218::1', '1.1.1.1']) {
          assert.equal((await beacon(col.base, PAGE, { cookie, 'x-forwarded-for': ip })).status, 202);
        }
        const hits = await streamEntries(redis.client, HITS);
        assert.equal(hits.length, 3);
        for (const h of hits) assert.ok(h.c === undefined || /^[A-Z]{2}$/.test(h.c));
      } finally {
        await col.stop();
      }
    }
    await redis.stop();
  });
  test('the ip-location-db schema works with country_path = country_code', async () => {
    const redis = await startRedis();
    const db = path.resolve('node_modules/@ip-location-db/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb');
    const col = await startCollector(redis, { sections: { collector: { trusted_proxies: '127.0.0.1' }, geoip: { database: db, country_path: 'country_code', region_path: '' } } });
    try {
      const cookie = await consentCookie(col.base);
      assert.equal((await beacon(col.base, PAGE, { cookie, 'x-forwarded-for': '81.2.69.142' })).status, 202);
      const [hit] = await streamEntries(redis.client, HITS);
      assert.equal(hit.c, 'GB');
      assert.equal(hit.rg, undefined, 'no region in this schema: the field is left out');
    } finally {
      await col.stop();
      await redis.stop();
    }
  });
  test('X-Forwarded-For from an untrusted peer is ignored', async () => {
    const redis = await startRedis();
    const col = await startCollector(redis, { sections: { collector: { trusted_proxies: '10.0.0.0/8' }, geoip: { database: path.join(DATA, 'geoip/GeoIP2-City-Test.mmdb') } } });
    try {
      const cookie = await consentCookie(col.base);
      assert.equal((await beacon(col.base, PAGE, { cookie, 'x-forwarded-for': '81.2.69.142' })).status, 202);
      const [hit] = await streamEntries(redis.client, HITS);
      assert.equal(hit.c, undefined, 'the peer 127.0.0.1 has no country; the spoofed GB address was not used');
    } finally {
      await col.stop();
      await redis.stop();
    }
  });
});

describe('collector limits and threads', () => {
  test('a client over collector.rate_limit gets 429 and those hits are not stored', async () => {
    const redis = await startRedis();
    const col = await startCollector(redis, { sections: { collector: { rate_limit: 5 } } });
    try {
      const cookie = await consentCookie(col.base);
      const statuses = [];
      for (let i = 0; i < 40; i++) statuses.push((await beacon(col.base, PAGE, { cookie })).status);
      const ok = statuses.filter((s) => s === 202).length;
      const limited = statuses.filter((s) => s === 429).length;
      assert.ok(limited > 0, 'some requests were limited');
      assert.equal(ok + limited, 40);
      assert.equal(await redis.client.cmd('XLEN', HITS), ok);
    } finally {
      await col.stop();
      await redis.stop();
    }
  });

  test('several worker threads share the port and all store hits', async () => {
    const redis = await startRedis();
    const col = await startCollector(redis, { sections: { collector: { threads: 3 } } });
    try {
      const cookie = await consentCookie(col.base);
      // Fresh connections spread over the SO_REUSEPORT sockets.
      const rs = await Promise.all(Array.from({ length: 60 }, () => beacon(col.base, PAGE, { cookie, connection: 'close' })));
      assert.ok(rs.every((r) => r.status === 202));
      assert.equal(await redis.client.cmd('XLEN', HITS), 60);
      const m = await (await fetch(col.base + '/metrics')).text();
      assert.match(m, /^fairstat_hits_accepted_total 60$/m);
    } finally {
      await col.stop();
      await redis.stop();
    }
  });

  test('too many connections are closed at once instead of piling up', async () => {
    const redis = await startRedis();
    const col = await startCollector(redis, { sections: { collector: { max_connections: 5 } } });
    try {
      const socks = [];
      for (let i = 0; i < 5; i++) {
        const s = net.connect(col.port, '127.0.0.1');
        await new Promise((r) => s.once('connect', r));
        socks.push(s);
      }
      await sleep(100);
      const extra = await rawRequest(col.port, ['GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n'], { timeoutMs: 2000 });
      assert.equal(extra.data, '', 'the sixth connection got no answer: it was closed');
      for (const s of socks) s.destroy();
      await waitFor('connections freed', async () => (await fetch(col.base + '/healthz')).status === 200);
      const m = await (await fetch(col.base + '/metrics')).text();
      assert.match(m, /^fairstat_http_refused_connections_total [1-9]/m);
    } finally {
      await col.stop();
      await redis.stop();
    }
  });
});

describe('collector with 10,000 sites', () => {
  const N = 10000;
  const LAST = `s${N - 1}.example.org`;
  const sites = { 'example.com': { origins: 'https://example.com' } };
  for (let i = 0; i < N; i++) sites[`s${i}.example.org`] = { origins: `https://s${i}.example.org` };
  let redis, col;

  before(async () => {
    redis = await startRedis();
    // A key of another type among the consent streams: the batch holding
    // it must still be read, site by site.
    await redis.client.cmd('SET', `fs:{s${N - 2}.example.org}:consent`, 'not a stream');
    col = await startCollector(redis, { sites });
  });
  after(async () => { await col?.stop(); await redis?.stop(); });

  async function withdrawElsewhere(receipt) {
    await redis.client.cmd('XADD', `fs:{${LAST}}:consent`, '*', 'id', receipt, 'a', 'withdraw', 't', String(Date.now()));
  }

  test('a beacon for the last configured site is stored, with its CORS answer', async () => {
    const cookie = await consentCookie(col.base, LAST);
    const r = await beacon(col.base, { d: LAST, n: 'pageview', u: `https://${LAST}/a` },
      { cookie, origin: `https://${LAST}` });
    assert.equal(r.status, 202);
    assert.equal(r.headers.get('access-control-allow-origin'), `https://${LAST}`);
    assert.equal(await redis.client.cmd('XLEN', `fs:{${LAST}}:hits`), 1);
    const u = await beacon(col.base, { d: 's10000.example.org', n: 'pageview', u: 'https://s10000.example.org/' }, { cookie });
    assert.equal(u.status, 403);
  });

  test('withdrawals on the last site are learned, with a handful of Redis reads per refresh', async () => {
    await redis.client.cmd('CONFIG', 'RESETSTAT');
    // Two withdrawals, each made after the collector learned of the one
    // before: at least one whole refresh of all 10,001 streams lies between.
    for (let k = 0; k < 2; k++) {
      const cookie = await consentCookie(col.base, LAST);
      const receipt = cookie.split('=')[1].split('.')[3];
      const hit = () => beacon(col.base, { d: LAST, n: 'pageview', u: `https://${LAST}/b` }, { cookie });
      assert.equal((await hit()).status, 202, 'the verdict is cached before the withdrawal');
      await withdrawElsewhere(receipt);
      await waitFor('the collector learns of the withdrawal', async () => (await hit()).status === 204);
    }
    const stats = await redis.client.cmd('INFO', 'commandstats');
    const calls = (cmd) => Number((stats.match(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`)) || [0, 0])[1]);
    const reads = calls('xread') + calls('xrange');
    assert.ok(reads > 0, 'the streams were read');
    // One command per site would be 10,001 per refresh.
    assert.ok(reads < 500, `${reads} stream reads for a few refreshes of 10,001 sites`);
  });
});
