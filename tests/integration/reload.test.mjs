// reload.test.mjs -- SIGHUP reloads the collector's sites, consent secrets
// and GeoIP database while it serves: a keep-alive connection opened before
// the reload keeps working, a stream of beacons running across it loses
// none, cookies signed with the previous secret still count, and a broken
// file changes nothing. Black-box: the real binary, a private redis-server.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import {
  startRedis, startCollector, consentCookie, beacon, streamEntries, writeConfig,
  DATA, DEFAULT_SITES, SECRET, FIREFOX, freePort, waitFor,
} from '../lib/harness.mjs';

const HITS = 'fs:{example.com}:hits';
const NEW_SECRET = 'rotated-secret-fedcba9876543210fedcba9876543210';
const CITY_DB = path.join(DATA, 'geoip/GeoIP2-City-Test.mmdb');
const page = (p) => ({ domain: 'example.com', name: 'pageview', url: `https://example.com${p}` });

// One HTTP/1.1 connection kept open across the reload; request() sends one
// request on it and resolves the answer's status once the whole answer
// (headers and Content-Length body) has arrived.
function keepAlive(port) {
  const sock = net.connect(port, '127.0.0.1');
  let buf = Buffer.alloc(0);
  let waiting = null;
  let closed = false;
  const settle = () => {
    if (!waiting) return;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = buf.subarray(0, end).toString();
    const len = Number((/\r\ncontent-length: *(\d+)/i.exec(head) || [0, 0])[1]);
    if (buf.length < end + 4 + len) return;
    buf = buf.subarray(end + 4 + len);
    const w = waiting;
    waiting = null;
    w.resolve(Number(head.split(' ')[1]));
  };
  sock.on('data', (d) => { buf = Buffer.concat([buf, d]); settle(); });
  sock.on('close', () => { closed = true; waiting?.reject(new Error('keep-alive connection closed')); });
  sock.on('error', () => {});
  const ready = new Promise((r) => sock.once('connect', r));
  return {
    async request(text) {
      await ready;
      if (closed) throw new Error('keep-alive connection closed');
      return new Promise((resolve, reject) => {
        waiting = { resolve, reject };
        sock.write(text);
      });
    },
    close() { sock.destroy(); },
  };
}

function rawBeacon(cookie, p) {
  const body = JSON.stringify(page(p));
  return `POST /api/event HTTP/1.1\r\nHost: x\r\nUser-Agent: ${FIREFOX}\r\nContent-Type: text/plain\r\n` +
         `Cookie: ${cookie}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

async function storedHit(redis, p) {
  return (await streamEntries(redis.client, HITS)).find((h) => h.p === p);
}

describe('SIGHUP reload', () => {
  let redis, col;
  const collector = { trusted_proxies: '127.0.0.1/32', threads: 2 };
  // The config as the operator edits it: writeConfig over the running file.
  const rewrite = (opts) => writeConfig(col.dir, {
    port: col.port, redisUrl: redis.url, ...opts,
    sections: { collector, ...opts.sections },
  });
  const reloads = (re) => (col.output().match(re) || []).length;

  before(async () => {
    redis = await startRedis();
    col = await startCollector(redis, { sections: { collector, geoip: { database: '' } } });
  });
  after(async () => { await col?.stop(); await redis?.stop(); });

  test('a new site, a rotated secret and a new GeoIP database, with nothing dropped', async () => {
    const oldCookie = await consentCookie(col.base);
    const conn = keepAlive(col.port);
    assert.equal(await conn.request(rawBeacon(oldCookie, '/before')), 202);
    assert.equal((await consentCookie(col.base, 'new.test').catch((e) => e.message)), 'POST /consent: 403',
      'new.test is not a site yet');
    assert.equal((await beacon(col.base, page('/geo-before'), { cookie: oldCookie, 'x-forwarded-for': '81.2.69.142' })).status, 202);
    assert.equal((await storedHit(redis, '/geo-before')).c, undefined, 'no database: no country');

    // A stream of beacons across the reload, each answer checked.
    const statuses = [];
    let streaming = true, afterHup = 0, hupSent = false;
    const stream = (async () => {
      for (let i = 0; streaming; i++) {
        const r = await beacon(col.base, page(`/stream/${i}`), { cookie: oldCookie });
        statuses.push(r.status);
        if (hupSent) afterHup++;
      }
    })();
    await waitFor('the stream to run', () => statuses.length >= 20);

    rewrite({
      sections: { consent: { secret: NEW_SECRET, previous_secrets: SECRET, secure: 'no' }, geoip: { database: CITY_DB } },
      sites: { ...DEFAULT_SITES, 'new.test': { origins: 'https://new.test' } },
    });
    col.proc.kill('SIGHUP');
    hupSent = true;
    let newCookie;
    await waitFor('new.test to be a site', async () => {
      newCookie = await consentCookie(col.base, 'new.test');
      return true;
    });
    const r = await beacon(col.base, { domain: 'new.test', name: 'pageview', url: 'https://new.test/' },
      { cookie: newCookie, origin: 'https://new.test' });
    assert.equal(r.status, 202, 'the new site takes hits with a cookie signed by the new secret');
    await waitFor('the stream to run on after the reload', () => afterHup >= 20);
    streaming = false;
    await stream;

    assert.deepEqual(statuses.filter((s) => s !== 202), [], `every one of ${statuses.length} beacons answered 202`);
    assert.equal(await conn.request(rawBeacon(oldCookie, '/after')), 202, 'the old keep-alive connection still works');
    assert.ok(await storedHit(redis, '/after'));
    assert.equal((await beacon(col.base, page('/old-cookie'), { cookie: oldCookie })).status, 202,
      'a cookie signed with the previous secret still counts');
    const fresh = await consentCookie(col.base);
    assert.notEqual(fresh, oldCookie);
    assert.equal((await beacon(col.base, page('/geo-after'), { cookie: fresh, 'x-forwarded-for': '81.2.69.142' })).status, 202);
    assert.equal((await storedHit(redis, '/geo-after')).c, 'GB', 'the reopened database answers');
    assert.match(col.output(), /reloaded .*: 3 sites/);
    assert.doesNotMatch(col.output(), /needs a restart/);
    conn.close();
  });

  test('a broken file is logged and the last good config keeps serving', async () => {
    const cookie = await consentCookie(col.base, 'new.test');
    const conn = keepAlive(col.port);
    assert.equal(await conn.request('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'), 200);
    // Without new.test and with a bad value: were any of it applied, new.test would go.
    rewrite({ sections: { collector: { ...collector, max_body: '4q' } } });
    col.proc.kill('SIGHUP');
    await waitFor('the reload error in the log', () => /reload failed/.test(col.output()));
    assert.match(col.output(), /reload failed, keeping the running configuration: .*collector\.max_body: not a size/);
    const r = await beacon(col.base, { domain: 'new.test', name: 'pageview', url: 'https://new.test/x' },
      { cookie, origin: 'https://new.test' });
    assert.equal(r.status, 202, 'new.test is still a site');
    assert.equal(await conn.request('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'), 200);
    assert.equal(col.proc.exitCode, null);
    conn.close();
  });

  test('a key that needs a restart is reported and keeps its running value', async () => {
    const before = reloads(/reloaded /g);
    const other = await freePort();
    writeConfig(col.dir, {
      port: other, redisUrl: redis.url,
      sections: { collector, consent: { secret: NEW_SECRET, previous_secrets: SECRET, secure: 'no' } },
    });
    col.proc.kill('SIGHUP');
    await waitFor('the reload', () => reloads(/reloaded /g) > before);
    assert.match(col.output(), /collector\.listen changed: needs a restart; keeping the running value/);
    assert.equal((await fetch(col.base + '/healthz')).status, 200, 'still on the old port');
    assert.equal((await consentCookie(col.base, 'new.test').catch((e) => e.message)), 'POST /consent: 403',
      'the rest of the file applied: new.test is gone');
  });
});
