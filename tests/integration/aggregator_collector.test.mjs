// aggregator_collector.test.mjs -- the acceptance path end to end: consented
// beacons through the real collector, `run --once`, then the report. Skipped
// (with a message) only while bin/fairstat-collector is not built yet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startRedis, startCollector, run, BIN, consentCookie, beacon, packHit, streamEntries } from '../lib/harness.mjs';

// FAIRSTAT_AGGREGATOR runs the suite against another build (e.g. a sanitizer one).
const AGG = process.env.FAIRSTAT_AGGREGATOR || BIN('fairstat-aggregator');
const HAVE_COLLECTOR = existsSync(BIN('fairstat-collector'));

test('N consented beacons over M pages through the collector: exact report, nothing raw left',
  { skip: HAVE_COLLECTOR ? false : 'bin/fairstat-collector is not built yet' }, async () => {
    const redis = await startRedis();
    const collector = await startCollector(redis);
    try {
      const N = 120, M = 7;
      const cookie = await consentCookie(collector.base);
      for (let i = 0; i < N; i++) {
        const r = await beacon(collector.base, { domain: 'example.com', name: 'pageview', url: `https://example.com/p${i % M}` },
          { cookie, origin: 'https://example.com' });
        assert.equal(r.status, 202, `beacon ${i}: ${r.status} ${r.headers.get('fairstat-status') || ''}`);
      }
      assert.equal(await redis.client.cmd('XLEN', 'fs:{example.com}:hits'), N);

      const once = await run(AGG, ['-c', collector.conf, 'run', '--once']);
      assert.equal(once.code, 0, once.stderr);
      assert.equal(await redis.client.cmd('XLEN', 'fs:{example.com}:hits'), 0);

      const rep = await run(AGG, ['-c', collector.conf, 'report', '--site', 'example.com', '--format', 'json', '--limit', '100']);
      assert.equal(rep.code, 0, rep.stderr);
      const r = JSON.parse(rep.stdout);
      assert.equal(r.totals.pageviews, N);
      assert.equal(r.totals.visitors, 1);
      assert.equal(r.totals.visits, 1);
      assert.equal(r.pages.length, M);
      assert.equal(r.pages.reduce((s, p) => s + p.pageviews, 0), N);
      for (const p of r.pages) assert.equal(p.pageviews, Math.floor(N / M) + (Number(p.page.slice(2)) < N % M ? 1 : 0));
      assert.deepEqual(r.browsers.map((b) => b.visits), [1]);
    } finally {
      await collector.stop();
      await redis.stop();
    }
  });

test('a withdrawal behind a long backlog costs one bounded step; the fold drops the rest uncounted',
  { skip: HAVE_COLLECTOR ? false : 'bin/fairstat-collector is not built yet' }, async () => {
    const redis = await startRedis();
    const collector = await startCollector(redis);
    const HITS = 'fs:{example.com}:hits';
    try {
      const mine = await consentCookie(collector.base);
      const M = 5;
      for (let i = 0; i < M; i++) {
        const r = await beacon(collector.base, { domain: 'example.com', name: 'pageview', url: `https://example.com/mine${i}` },
          { cookie: mine, origin: 'https://example.com' });
        assert.equal(r.status, 202);
      }
      // Then a backlog of another visitor's hits, more than one erase looks at (100).
      const B = 300, now = Date.now();
      await Promise.all(Array.from({ length: B }, (_, i) =>
        redis.client.cmd('XADD', HITS, '*', 'h', packHit({ v: '3333333333333333', t: now, n: 'pageview', p: `/other${i % 10}`, b: 'Firefox', o: 'Linux', dv: 'desktop' }))));

      const g = await fetch(collector.base + '/consent?domain=example.com', { headers: { cookie: mine } });
      assert.equal(g.status, 200);
      assert.deepEqual((await g.json()).held, { hits: 0, complete: false }, 'counted within the newest 100 only, and says so');
      const d = await fetch(collector.base + '/consent?domain=example.com', { method: 'DELETE', headers: { cookie: mine } });
      assert.equal(d.status, 200);
      assert.deepEqual(await d.json(), { withdrawn: true, erased: 0, complete: false });
      assert.equal(await redis.client.cmd('XLEN', HITS), B + M, 'nothing walked past the newest entries');

      const once = await run(AGG, ['-c', collector.conf, 'run', '--once']);
      assert.equal(once.code, 0, once.stderr);
      assert.equal(await redis.client.cmd('XLEN', HITS), 0, 'the withdrawn visitor\'s hits deleted with the rest');
      const rep = JSON.parse((await run(AGG, ['-c', collector.conf, 'report', '--site', 'example.com', '--format', 'json', '--limit', '100'])).stdout);
      assert.equal(rep.totals.pageviews, B, 'none of the withdrawn visitor\'s hits counted');
      assert.ok(!rep.pages.some((p) => p.page.startsWith('/mine')));
      const audit = await streamEntries(redis.client, 'fs:audit');
      assert.deepEqual(audit.filter((a) => a.action === 'drop').map((a) => [a.site, a.hits]), [['example.com', String(M)]]);
      assert.deepEqual(audit.filter((a) => a.action === 'withdraw').map((a) => a.hits), ['0']);
    } finally {
      await collector.stop();
      await redis.stop();
    }
  });
