// hostile.test.mjs -- the collector against an attacker's traffic: framing
// tricks, pipelining, early refusals of large requests, invalid UTF-8,
// connection hoarding and trickling. Each hostile request has its documented
// answer in the table below; after the corpus nothing is stored in Redis and
// the collector's memory is back near where it started.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs';
import {
  startRedis, startCollector, consentCookie, FIREFOX, waitFor,
} from '../lib/harness.mjs';

const PAGE = { domain: 'example.com', name: 'pageview', url: 'https://example.com/pricing' };

// Sends chunks on one connection and collects every byte the server sends
// until it closes. opts.halfClose ends our side after the last chunk;
// opts.gapMs waits between chunks.
// opts.oneAnswer resolves as soon as one complete response is in.
function exchange(port, chunks, { halfClose = false, gapMs = 0, timeoutMs = 8000, source, oneAnswer = false } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true, localAddress: source });
    const got = [];
    let error = null;
    const done = () => { clearTimeout(timer); sock.destroy(); resolve({ data: Buffer.concat(got).toString('latin1'), error }); };
    const timer = setTimeout(done, timeoutMs);
    sock.on('data', (d) => {
      got.push(d);
      if (oneAnswer && answerComplete(Buffer.concat(got).toString('latin1'))) done();
    });
    sock.on('close', done);
    sock.on('end', done);            // the server is done sending
    sock.on('error', (e) => { error = e; done(); });
    sock.on('connect', async () => {
      for (const c of chunks) {
        if (sock.destroyed) return;
        sock.write(c);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
      if (halfClose) sock.end();
    });
  });
}

function answerComplete(data) {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const len = /^Content-Length: (\d+)/im.exec(data.slice(0, end));
  return data.length >= end + 4 + (len ? Number(len[1]) : 0);
}

const statuses = (data) => [...data.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));

function beaconRequest(cookie, body = JSON.stringify(PAGE), extra = '') {
  return `POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nCookie: ${cookie}\r\n` +
    `User-Agent: ${FIREFOX}\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

describe('pipelining and lingering close', () => {
  let redis, col, cookie;
  const HITS = 'fs:{example.com}:hits';
  before(async () => {
    redis = await startRedis();
    col = await startCollector(redis, { sections: { collector: { max_body: '4k', max_header: '4k' } } });
    cookie = await consentCookie(col.base);
  });
  after(async () => { await col.stop(); await redis.stop(); });

  test('3 pipelined beacons then a half-close get 3 answers, all stored', async () => {
    await redis.client.cmd('DEL', HITS);
    const req = beaconRequest(cookie);
    const { data } = await exchange(col.port, [req + req + req], { halfClose: true });
    assert.deepEqual(statuses(data), [202, 202, 202]);
    assert.equal(await redis.client.cmd('XLEN', HITS), 3);
  });

  test('55 pipelined beacons (over 15 KB, more than one request buffer) get 55 answers in order', async () => {
    await redis.client.cmd('DEL', HITS);
    const reqs = [];
    for (let i = 0; i < 55; i++) reqs.push(beaconRequest(cookie, JSON.stringify({ ...PAGE, url: `https://example.com/p${i}` })));
    reqs.push('GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    const wire = reqs.join('');
    assert.ok(wire.length > 15000);
    const { data } = await exchange(col.port, [wire]);
    assert.deepEqual(statuses(data), [...Array(55).fill(202), 404]);
    assert.equal(await redis.client.cmd('XLEN', HITS), 55);
  });

  // As a browser or curl uploads: the whole body is written before the
  // answer is read. Closed at once, the server's socket would reset, the
  // client's next write fail, and the 413 never be read.
  test('a 413 refusing a large body is read by a client that sends it all first', async () => {
    const size = 2048 * 1024;
    const head = `POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: ${size}\r\n\r\n`;
    const result = await new Promise((resolve) => {
      const sock = net.connect({ port: col.port, host: '127.0.0.1', allowHalfOpen: true });
      const got = [];
      const done = (error) => { sock.destroy(); resolve({ data: Buffer.concat(got).toString('latin1'), error }); };
      sock.pause();                       // read nothing until the body is out
      sock.on('data', (d) => got.push(d));
      sock.on('end', () => done(null));
      sock.on('error', (e) => done(e));
      sock.on('connect', async () => {
        sock.write(head);
        const chunk = Buffer.alloc(8192, 'x');
        for (let sent = 0; sent < size && !sock.destroyed; sent += chunk.length) {
          await new Promise((r) => sock.write(chunk, r));
        }
        sock.resume();
      });
      setTimeout(() => done(new Error('timeout')), 8000);
    });
    assert.equal(result.error, null);
    assert.deepEqual(statuses(result.data), [413]);
  });

  test('a 431 and a 414 on a large request are read by the client too', async () => {
    const tail = 'x'.repeat(256 * 1024);
    const h = await exchange(col.port, [`GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(8000)}\r\n${tail}`]);
    assert.deepEqual(statuses(h.data), [431]);
    const u = await exchange(col.port, [`GET /${'a'.repeat(8000)}${tail}`]);
    assert.deepEqual(statuses(u.data), [414]);
  });
});

// ------------------------------------------------------------ the corpus

// Every request carries a valid consent cookie where it could matter: were
// the hostile part ignored, the hit would be stored, and the XLEN check at
// the end would see it.
function corpus(cookie) {
  const ok = JSON.stringify(PAGE);
  const H = (extra = '') => `Host: a\r\nContent-Type: text/plain\r\nCookie: ${cookie}\r\nUser-Agent: ${FIREFOX}\r\n${extra}`;
  const post = (body, extra = '') => `POST /api/event HTTP/1.1\r\n${H(extra)}Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\nConnection: close\r\n\r\n${body}`;
  const json = (fields) => JSON.stringify({ ...PAGE, ...fields });
  const raw = (s) => s;          // bodies with bytes JSON.stringify would escape
  const pixel = (q) => `GET /p.gif?${q} HTTP/1.1\r\n${H()}Connection: close\r\n\r\n`;
  const pq = (u, more = '') => `d=example.com&u=${encodeURIComponent(u)}${more}`;
  const chunked = (body) => `${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`;
  const nest = (n, inner) => { let s = inner; for (let i = 0; i < n; i++) s = `{"a":${s}}`; return s; };
  return [
    // framing (RFC 9112) and smuggling
    ['space before the colon of Transfer-Encoding', `POST /api/event HTTP/1.1\r\n${H()}Transfer-Encoding : chunked\r\nConnection: close\r\n\r\n${chunked(ok)}`, 400],
    ['tab before the colon of Content-Length', `POST /api/event HTTP/1.1\r\n${H()}Content-Length\t: ${ok.length}\r\n\r\n${ok}`, 400],
    ['space inside a header name', `POST /api/event HTTP/1.1\r\n${H()}Content Length: ${ok.length}\r\n\r\n${ok}`, 400],
    ['obs-fold continuation of the Cookie', `POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nCookie: x=1;\r\n ${cookie}\r\nContent-Length: ${ok.length}\r\n\r\n${ok}`, 400],
    ['obs-fold with a tab', `GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\tX-B: 2\r\n\r\n`, 400],
    ['bare LF line ends throughout', post(ok).replace(/\r\n/g, '\n'), 400],
    ['bare LF ending the head only', `POST /api/event HTTP/1.1\r\n${H()}Content-Length: ${ok.length}\r\n\n${ok}`, 400],
    ['bare CR inside the head', `GET /healthz HTTP/1.1\r\nHost: a\rX-A: 1\r\n\r\n`, 400],
    ['HTTP/9.9', `GET /healthz HTTP/9.9\r\nHost: a\r\n\r\n`, 400],
    ['HTTP/2.0 spelled as text', `GET /healthz HTTP/2.0\r\nHost: a\r\n\r\n`, 400],
    ['the HTTP/2 preface', `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`, 400],
    ['lower-case http/1.1', `GET /healthz http/1.1\r\nHost: a\r\n\r\n`, 400],
    ['Content-Length and Transfer-Encoding together (CL.TE)', `POST /api/event HTTP/1.1\r\n${H()}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(ok)}`, 400],
    ['two different Content-Lengths', `POST /api/event HTTP/1.1\r\n${H()}Content-Length: ${ok.length}\r\nContent-Length: 5\r\n\r\n${ok}`, 400],
    ['a Transfer-Encoding that does not end in chunked', `POST /api/event HTTP/1.1\r\n${H()}Transfer-Encoding: gzip\r\n\r\n${ok}`, 400],
    ['a negative Content-Length', `POST /api/event HTTP/1.1\r\n${H()}Content-Length: -1\r\n\r\n${ok}`, 400],
    ['a Content-Length past 2^64', `POST /api/event HTTP/1.1\r\n${H()}Content-Length: 99999999999999999999999\r\n\r\n${ok}`, 400],
    ['a chunk size that is not hex', `POST /api/event HTTP/1.1\r\n${H()}Transfer-Encoding: chunked\r\n\r\nzz\r\n${ok}\r\n0\r\n\r\n`, 400],
    ['a chunk size past 2^64', `POST /api/event HTTP/1.1\r\n${H()}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\n${ok}\r\n0\r\n\r\n`, 400],
    ['a NUL byte in a header value', `POST /api/event HTTP/1.1\r\n${H('X-A: a\0b\r\n')}Content-Length: ${ok.length}\r\n\r\n${ok}`, 400],
    ['a NUL byte in the request line', `GET /heal\0thz HTTP/1.1\r\nHost: a\r\n\r\n`, 400],
    ['a DEL byte in a header value', `GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: \x7f\r\n\r\n`, 400],
    ['a header line without a colon', `GET /healthz HTTP/1.1\r\nHost: a\r\nNoColonHere\r\n\r\n`, 400],
    ['an empty header name', `GET /healthz HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n`, 400],
    ['a method with a slash in it', `GE/T /healthz HTTP/1.1\r\nHost: a\r\n\r\n`, 400],
    ['binary garbage', '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello\r\n\r\n', 400],
    // sizes and time
    ['a 10 KB URI', `GET /p.gif?${'a'.repeat(10000)} HTTP/1.1\r\nHost: a\r\n\r\n`, 414],
    ['a 10 KB header', `GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: ${'b'.repeat(10000)}\r\n\r\n`, 431],
    ['2,000 small headers', `GET /healthz HTTP/1.1\r\nHost: a\r\n${'X-A: 1\r\n'.repeat(2000)}\r\n`, 431],
    ['a 9 KB Cookie', `POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nCookie: ${'c'.repeat(9000)}\r\nContent-Length: ${ok.length}\r\n\r\n${ok}`, 431],
    ['a Content-Length over max_body', `POST /api/event HTTP/1.1\r\n${H()}Content-Length: 1000000\r\n\r\n${ok}`, 413],
    ['a chunked body over max_body', `POST /api/event HTTP/1.1\r\n${H()}Transfer-Encoding: chunked\r\n\r\n${'1000\r\n' + 'x'.repeat(4096) + '\r\n'}${'1000\r\n' + 'x'.repeat(4096) + '\r\n'}0\r\n\r\n`, 413],
    // routes and methods
    ['PUT on the beacon endpoint', `PUT /api/event HTTP/1.1\r\n${H()}Content-Length: ${ok.length}\r\n\r\n${ok}`, 405],
    ['GET on the beacon endpoint', `GET /api/event?${pq('https://example.com/')} HTTP/1.1\r\n${H()}\r\n`, 405],
    ['POST on the pixel', `POST /p.gif?${pq('https://example.com/')} HTTP/1.1\r\n${H()}Content-Length: 0\r\n\r\n`, 405],
    ['TRACE', `TRACE /api/event HTTP/1.1\r\nHost: a\r\n\r\n`, 405],
    ['a path climbing out of /demo/', `GET /demo/../../../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n`, 404],
    ['an absolute-form URI for another host', `GET http://evil.test/api/event HTTP/1.1\r\nHost: a\r\n\r\n`, 404],
    // content types and bodies
    ['a form-encoded beacon', `POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nCookie: ${cookie}\r\nContent-Length: ${ok.length}\r\n\r\n${ok}`, 415],
    ['a multipart beacon', `POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Type: multipart/form-data; boundary=x\r\nCookie: ${cookie}\r\nContent-Length: ${ok.length}\r\n\r\n${ok}`, 415],
    ['a body that is not JSON', post('hello'), 400],
    ['a JSON array', post(`[${ok}]`), 400],
    ['truncated JSON', post(ok.slice(0, -3)), 400],
    ['an empty body', post(''), 400],
    ['JSON nested 100 deep', post(nest(100, ok)), 400],
    ['props nested 20 deep', post(json({ props: JSON.parse(nest(20, '1')) })), 400],
    ['10,000 opening brackets', post('['.repeat(3000)), 400],
    ['a duplicate key (domain and d)', post(`{"domain":"example.com","d":"example.com","url":"https://example.com/"}`), 400],
    ['a \\u0000 in the url', post(json({ url: 'https://example.com/a\u0000b' })), 400],
    ['a raw NUL byte in the body', post(ok.slice(0, 5) + '\0' + ok.slice(5)), 400],
    ['a number where the name goes (1e999999)', post(`{"d":"example.com","u":"https://example.com/","n":1e999999}`), 400],
    ['a 2,000-digit prop value', post(`{"d":"example.com","u":"https://example.com/","p":{"k":${'9'.repeat(2000)}}}`), 400],
    ['31 props', post(json({ props: Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`k${i}`, 1])) })), 400],
    ['a javascript: url', post(json({ url: 'javascript:alert(1)' })), 400],
    ['CRLF injected in the url', post(json({ url: 'https://example.com/a\r\nSet-Cookie: x=1' })), 400],
    ['a control character in the event name', post(json({ name: 'a\u0007b' })), 400],
    ['a domain with a space', post(json({ domain: 'exam ple.com' })), 400],
    ['a pixel without a domain', pixel(`u=${encodeURIComponent('https://example.com/')}`), 400],
    // invalid UTF-8 everywhere
    ['an overlong "/" in the url', post(raw(`{"d":"example.com","u":"https://example.com/\xc0\xaf"}`)), 400],
    ['a raw surrogate in a prop value', post(raw(`{"d":"example.com","u":"https://example.com/","p":{"k":"\xed\xa0\x80"}}`)), 400],
    ['a code point past U+10FFFF in the name', post(raw(`{"d":"example.com","u":"https://example.com/","n":"\xf4\x90\x80\x80"}`)), 400],
    ['a lone \\ud800 in the name', post(`{"d":"example.com","u":"https://example.com/","n":"\\ud800"}`), 400],
    ['a lone \\udc00 in the url', post(`{"d":"example.com","u":"https://example.com/\\udc00"}`), 400],
    ['\\ud800 glued to \\u0041', post(`{"d":"example.com","u":"https://example.com/","n":"\\ud800\\u0041"}`), 400],
    ['Latin-1 in a prop key', post(raw(`{"d":"example.com","u":"https://example.com/","p":{"caf\xe9":"1"}}`)), 400],
    ['the pixel: an overlong "/" in the path', pixel(pq('https://example.com/').replace('%2F', '%2F%C0%AF')), 400],
    ['the pixel: %FF in the referrer', pixel(pq('https://example.com/', '&r=https%3A%2F%2Fb.test%2F%FF')), 400],
    ['the pixel: a surrogate in the name', pixel(pq('https://example.com/', '&n=%ED%A0%80')), 400],
    // sites, origins, CORS
    ['an unknown site', post(json({ domain: 'evil.test', url: 'https://evil.test/' })), 403],
    ['an origin the site does not list', post(ok, 'Origin: https://evil.test\r\n'), 403],
    ['origin "null" (sandboxed iframe, file:)', post(ok, 'Origin: null\r\n'), 403],
    ['a look-alike origin', post(ok, 'Origin: https://example.com.evil.test\r\n'), 403],
    ['a preflight from an unknown origin', `OPTIONS /api/event HTTP/1.1\r\nHost: a\r\nOrigin: https://evil.test\r\nAccess-Control-Request-Method: POST\r\n\r\n`, 403],
    // consent endpoint
    ['POST /consent, not JSON', `POST /consent HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc`, 400],
    ['POST /consent without analytics', `POST /consent HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 24\r\n\r\n{"domain":"example.com"}`, 400],
    ['GET /consent without a domain', `GET /consent HTTP/1.1\r\nHost: a\r\n\r\n`, 400],
    ['PUT /consent', `PUT /consent HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n`, 405],
  ];
}

// Consent cookies that are not what they claim: refused by policy (204,
// nothing stored), which is the documented answer for no consent.
function cookieCorpus(cookie) {
  const ok = JSON.stringify(PAGE);
  const withCookie = (c) => `POST /api/event HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nCookie: ${c}\r\nUser-Agent: ${FIREFOX}\r\nContent-Length: ${ok.length}\r\nConnection: close\r\n\r\n${ok}`;
  const [name, value] = cookie.split('=');
  return [
    ['a cookie with its MAC flipped', withCookie(`${name}=${value.slice(0, -2)}${value.endsWith('AA') ? 'BB' : 'AA'}`), 204],
    ['a cookie cut short', withCookie(`${name}=${value.slice(0, 20)}`), 204],
    ['a cookie saying analytics=1 without a MAC', withCookie(`${name}=1.1.1700000000.AAAAAAAAAAAAAAAAAAAAAA`), 204],
    ['a garbage consent cookie', withCookie(`${name}=${'%00'.repeat(100)}`), 204],
  ];
}

function vmRssKb(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+) kB/m);
  return Number(m[1]);
}

async function streamLengths(redis) {
  const keys = await redis.client.cmd('KEYS', 'fs:*:hits');
  const out = {};
  for (const k of keys) out[k] = await redis.client.cmd('XLEN', k);
  return out;
}

describe('a corpus of hostile requests', () => {
  let redis, col, cookie;
  before(async () => {
    redis = await startRedis();
    col = await startCollector(redis, { sections: { collector: { read_timeout: '1s', max_body: '4k', max_header: '8k' } } });
    cookie = await consentCookie(col.base);
  });
  after(async () => { await col.stop(); await redis.stop(); });

  test('each gets its documented answer, nothing is stored, memory returns near its baseline', async (t) => {
    const cases = [...corpus(cookie), ...cookieCorpus(cookie)];
    assert.ok(cases.filter(([, , s]) => s >= 400).length >= 50);
    // Warm up: one good hit, so that the baseline counts what a working
    // collector holds anyway (Redis connection, caches), then drop it.
    const good = await exchange(col.port, [beaconRequest(cookie, undefined, 'Connection: close\r\n')]);
    assert.deepEqual(statuses(good.data), [202]);
    await redis.client.cmd('DEL', 'fs:{example.com}:hits');
    const baseline = vmRssKb(col.proc.pid);

    const wrong = [];
    for (let round = 0; round < 3; round++) {
      for (const [name, wire, want] of cases) {
        const { data } = await exchange(col.port, [Buffer.from(wire, 'latin1')], { oneAnswer: true });
        const got = statuses(data)[0];
        if (got !== want) wrong.push(`${name}: want ${want}, got ${got ?? 'nothing'} ${data.slice(0, 80)}`);
      }
    }
    // A slowloris: headers trickling one byte at a time past read_timeout.
    const slow = await exchange(col.port, 'POST /api/event HTTP/1.1\r\nHost: a\r\nX-Slow: 1234567890123456789012345'.split(''), { gapMs: 100, timeoutMs: 6000 });
    if (statuses(slow.data)[0] !== 408) wrong.push(`slowloris: want 408, got ${slow.data.slice(0, 40)}`);

    assert.deepEqual(wrong, []);
    const lengths = await streamLengths(redis);
    for (const [k, n] of Object.entries(lengths)) assert.equal(n, 0, `${k} holds ${n} entries`);
    assert.equal(col.proc.exitCode, null, 'still running');
    const rss = vmRssKb(col.proc.pid);
    t.diagnostic(`${cases.length} cases x 3 rounds; VmRSS ${baseline} kB before, ${rss} kB after`);
    assert.ok(rss < baseline + 16 * 1024, `RSS ${rss} kB after the corpus, ${baseline} kB before`);
  });
});

// ------------------------------------------------------------ connections

// Opens a keep-alive connection from source, asks /healthz once and keeps
// the connection open, idle. Resolves with the socket, or null when the
// server closed it without an answer.
function idleConnection(port, source) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1', localAddress: source });
    let data = '';
    const fail = () => { sock.destroy(); resolve(null); };
    sock.on('error', fail);
    sock.on('close', fail);
    sock.on('data', (d) => {
      data += d;
      if (answerComplete(data)) {
        sock.removeListener('close', fail);
        sock.on('close', () => { sock.closedByServer = true; });
        resolve(statuses(data)[0] === 200 ? sock : null);
      }
    });
    sock.on('connect', () => sock.write('GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n'));
  });
}

async function metric(col, name) {
  const m = await (await fetch(col.base + '/metrics')).text();
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(m)[1]);
}

describe('one client holding connections', () => {
  test('an address at max_connections_per_address is refused more; others, and trusted proxies, are not', async () => {
    const redis = await startRedis();
    const col = await startCollector(redis, { sections: { collector: { max_connections_per_address: 8, trusted_proxies: '127.0.0.3/32' } } });
    const socks = [];
    try {
      const cookie = await consentCookie(col.base);
      for (let i = 0; i < 8; i++) socks.push(await idleConnection(col.port, '127.0.0.2'));
      assert.ok(socks.every(Boolean), 'the first 8 are served');
      assert.equal(await idleConnection(col.port, '127.0.0.2'), null, 'the 9th from the same address is closed');
      // Another address still gets its beacons stored.
      for (let i = 0; i < 3; i++) {
        const { data } = await exchange(col.port, [beaconRequest(cookie, undefined, 'Connection: close\r\n')], { source: '127.0.0.4', oneAnswer: true });
        assert.deepEqual(statuses(data), [202]);
      }
      // A trusted proxy carries many clients: it is not capped.
      for (let i = 0; i < 12; i++) {
        const s = await idleConnection(col.port, '127.0.0.3');
        assert.ok(s, `proxy connection ${i + 1}`);
        socks.push(s);
      }
      assert.ok(await metric(col, 'fairstat_http_refused_per_address_total') >= 1);
      // A slot given back can be taken again.
      socks.shift().destroy();
      await waitFor('a slot back', async () => {
        const s = await idleConnection(col.port, '127.0.0.2');
        if (s) socks.push(s);
        return Boolean(s);
      });
    } finally {
      for (const s of socks) s?.destroy();
      await col.stop();
      await redis.stop();
    }
  });

  test('with every slot held by idle keep-alive connections, a new client gets in (the oldest idle one goes)', async () => {
    const redis = await startRedis();
    const col = await startCollector(redis, { sections: { collector: { max_connections: 40, max_connections_per_address: 0, idle_timeout: '60s' } } });
    const socks = [];
    try {
      const cookie = await consentCookie(col.base);
      while (socks.length < 40) {
        const s = await idleConnection(col.port, '127.0.0.2');
        assert.ok(s, `idle connection ${socks.length + 1}`);
        socks.push(s);
      }
      for (let i = 0; i < 5; i++) {
        const { data } = await exchange(col.port, [beaconRequest(cookie, undefined, 'Connection: close\r\n')], { source: '127.0.0.4', oneAnswer: true });
        assert.deepEqual(statuses(data), [202], `beacon ${i + 1}`);
      }
      assert.ok(await metric(col, 'fairstat_http_idle_evicted_total') >= 1);
      await waitFor('the oldest closed', async () => socks[0].closedByServer === true);
      assert.equal(socks[39].closedByServer, undefined, 'the newest idle one stays');
    } finally {
      for (const s of socks) s.destroy();
      await col.stop();
      await redis.stop();
    }
  });

  test('1,000 trickling connections do not keep a normal client from getting 202s', async () => {
    const redis = await startRedis();
    const col = await startCollector(redis, { sections: { collector: { read_timeout: '10s' } } });
    const tricklers = [];
    let ticking = true;
    try {
      const cookie = await consentCookie(col.base);
      // 50 from each of 20 addresses (under the per-address cap), each
      // sending its head one byte at a time.
      for (let i = 0; i < 1000; i++) {
        const sock = net.connect({ port: col.port, host: '127.0.0.1', localAddress: `127.0.1.${10 + (i % 20)}` });
        sock.on('error', () => {});
        sock.on('connect', () => sock.write('POST /api/event HTTP/1.1\r\nHost: a\r\n'));
        tricklers.push(sock);
      }
      await waitFor('1,000 connections open', async () => await metric(col, 'fairstat_http_connections') >= 1000);
      const tick = (async () => {
        while (ticking) {
          for (const s of tricklers) if (!s.destroyed) s.write('X');
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
      for (let i = 0; i < 20; i++) {
        const { data } = await exchange(col.port, [beaconRequest(cookie, undefined, 'Connection: close\r\n')], { oneAnswer: true });
        assert.deepEqual(statuses(data), [202], `beacon ${i + 1}`);
      }
      assert.ok(await metric(col, 'fairstat_http_connections') >= 1000, 'the tricklers were still connected');
      ticking = false;
      await tick;
      assert.equal(await redis.client.cmd('XLEN', 'fs:{example.com}:hits'), 20);
    } finally {
      ticking = false;
      for (const s of tricklers) s.destroy();
      await col.stop();
      await redis.stop();
    }
  });
});
