// aggregator_collector.test.mjs -- the acceptance path end to end: consented
// beacons through the real collector, `run --once`, then the report. Skipped
// (with a message) only while bin/fairstat-collector is not built yet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startRedis, startCollector, run, BIN, consentCookie, beacon } from '../lib/harness.mjs';

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
