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
function exchange(port, chunks, { halfClose = false, gapMs = 0, timeoutMs = 8000, source } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true, localAddress: source });
    const got = [];
    let error = null;
    const done = () => { clearTimeout(timer); sock.destroy(); resolve({ data: Buffer.concat(got).toString('latin1'), error }); };
    const timer = setTimeout(done, timeoutMs);
    sock.on('data', (d) => got.push(d));
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
