// aggregator_crash.test.mjs -- exactly once under crashes: the aggregator
// killed with SIGKILL at random moments, and Redis itself killed and restarted
// from its AOF (appendfsync everysec) while batches are being applied. After
// a final `run --once` every hit is counted exactly once and none is left raw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedis, writeConfig, run, BIN, Redis, sleep, waitFor } from '../lib/harness.mjs';

// FAIRSTAT_AGGREGATOR runs the suite against another build (e.g. a sanitizer one).
const AGG = process.env.FAIRSTAT_AGGREGATOR || BIN('fairstat-aggregator');
const SITE = 'example.com';
const HITS = `fs:{${SITE}}:hits`;

// V visitors with K pageviews each, one minute apart (one visit each, whatever
// order the hits are folded in), over 25 pages, all within the last hour.
function workload(V, K) {
  const now = Date.now() - 60 * 60 * 1000, hits = [];
  for (let k = 0; k < K; k++) {
    for (let v = 0; v < V; v++) {
      hits.push({ t: String(now + k * 60000 + v), n: 'pageview', p: `/p${(v * 7 + k) % 25}`, r: '',
        c: 'FR', b: 'Safari', o: 'macOS', dv: 'mobile', v: v.toString(16).padStart(16, '0') });
    }
  }
  return hits;
}

async function addHits(client, hits) {
  for (let i = 0; i < hits.length; i += 1000) {
    await Promise.all(hits.slice(i, i + 1000).map((h) => client.cmd('XADD', HITS, '*', ...Object.entries(h).flat())));
  }
}

async function check(conf, client, hits, V) {
  const r = await run(AGG, ['-c', conf, 'run', '--once']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await client.cmd('XLEN', HITS), 0, 'raw hits left');
  const days = [...new Set(hits.map((h) => new Date(Number(h.t)).toISOString().slice(0, 10)))].sort();
  const rep = JSON.parse((await run(AGG, ['-c', conf, 'report', '--site', SITE, '--from', days[0],
    '--to', days[days.length - 1], '--format', 'json', '--limit', '100'])).stdout);
  const want = {};
  for (const h of hits) want[h.p] = (want[h.p] || 0) + 1;
  assert.equal(rep.totals.pageviews, hits.length);
  assert.deepEqual(Object.fromEntries(rep.pages.map((p) => [p.page, p.pageviews])), want);
  assert.equal(rep.totals.visits, V);
  assert.equal(rep.totals.bounce_rate, 0);
  assert.deepEqual(rep.countries, [{ country: 'FR', visits: V }]);
}

test('kill -9 of the aggregator at random moments, then run --once: exact', async () => {
  const redis = await startRedis();
  const dir = mkdtempSync(path.join(tmpdir(), 'fs-crash-'));
  let p;
  try {
    const conf = writeConfig(dir, { port: 1, redisUrl: redis.url, sections: { aggregator: { batch: 25, block_ms: 50 } } });
    const V = 600, hits = workload(V, 15);
    await addHits(redis.client, hits);
    // Each kill lands a random moment after the aggregator has folded
    // something in this round: a slow build (a sanitizer one) takes longer to
    // start, and a fixed sleep would kill it before its first batch.
    // A killed aggregator's lease (FOLD_LEASE_MS, 10 s) must run out before
    // the next one may fold: the wait allows for it.
    let killedMidway = 0, before = hits.length;
    for (let round = 0; round < 8 && before > 0; round++) {
      p = spawn(AGG, ['-c', conf, 'run'], { stdio: 'ignore' });
      // The kill lands once a random part of what is left (at most half)
      // has been folded: a fixed delay after the first batch can outlast
      // the whole drain of a fast build.
      const target = before - 1 - Math.floor(Math.random() * Math.max(1, before / 2));
      await waitFor('the aggregator folding', async () => (await redis.client.cmd('XLEN', HITS)) <= target, 30000);
      p.kill('SIGKILL');
      await new Promise((r) => (p.exitCode !== null || p.signalCode ? r() : p.once('exit', r)));
      const left = await redis.client.cmd('XLEN', HITS);
      if (left > 0 && left < hits.length) killedMidway++;
      before = left;
    }
    assert.ok(killedMidway > 0, 'no kill landed while hits were being folded');
    await check(conf, redis.client, hits, V);
  } finally {
    p?.kill('SIGKILL');     // a failed wait must not leave it running (and the test waiting)
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Redis killed and restarted from AOF (everysec) between batches: exact', async () => {
  const redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'everysec']);
  const dir = mkdtempSync(path.join(tmpdir(), 'fs-aof-'));
  const args = ['--port', String(redis.port), '--bind', '127.0.0.1', '--dir', redis.dir, '--save', '',
    '--appendonly', 'yes', '--appendfsync', 'everysec', '--aof-load-truncated', 'no',
    '--logfile', path.join(redis.dir, 'redis.log')];
  let server = redis.proc, client = redis.client, agg;
  try {
    const conf = writeConfig(dir, { port: 1, redisUrl: redis.url, sections: { aggregator: { batch: 20, block_ms: 50 } } });
    const V = 800, hits = workload(V, 10);
    await addHits(client, hits);
    const restart = async (how) => {
      if (how === 'shutdown') client.cmd('SHUTDOWN').catch(() => {});
      else server.kill('SIGKILL');
      await new Promise((r) => (server.exitCode !== null || server.signalCode ? r() : server.once('exit', r)));
      client.close();
      // As docs/operations.md says to run Redis: a cut AOF is repaired by
      // redis-check-aof --fix (to before an open MULTI), not by Redis 7.0's
      // aof-load-truncated, which leaves the MULTI open (a batch then counted
      // twice after the next restart).
      const { execFileSync } = await import('node:child_process');
      execFileSync('sh', ['-c', 'echo y | redis-check-aof --fix "$1" >/dev/null 2>&1 || true', 'fix',
        path.join(redis.dir, 'appendonlydir', 'appendonly.aof.manifest')]);
      server = spawn('redis-server', args, { stdio: 'ignore' });
      await waitFor('redis restart', async () => {
        client = await new Redis(redis.port).connect();
        return (await client.cmd('PING')) === 'PONG';
      });
      // Loading the AOF may take a moment: wait until the stream answers.
      await waitFor('AOF loaded', async () => (await client.cmd('EXISTS', HITS)) === 1);
    };
    // A clean shutdown first, so that the hits themselves are on disk: with
    // everysec a slow fsync may hold back up to 2 s of writes, and a hit lost
    // before it was ever read is not what this test is about.
    await restart('shutdown');
    assert.equal(await client.cmd('XLEN', HITS), hits.length);
    agg = spawn(AGG, ['-c', conf, 'run'], { stdio: 'ignore' });
    // Each crash lands once the aggregator has folded something since it
    // (re)connected, a random moment later: a slow build (a sanitizer one)
    // takes longer to get there, and a fixed sleep would crash Redis before
    // any batch was applied.
    let midway = 0, before = hits.length;
    for (let round = 0; round < 3 && before > 0; round++) {
      await waitFor('the aggregator folding', async () => (await client.cmd('XLEN', HITS)) < before);
      await sleep(Math.floor(Math.random() * 100));
      const left = await client.cmd('XLEN', HITS);
      if (left > 0 && left < hits.length) midway++;
      await restart('kill');
      before = await client.cmd('XLEN', HITS);
    }
    assert.ok(midway > 0, 'no Redis crash landed while hits were being folded');
    agg.kill('SIGTERM');
    assert.equal(await new Promise((r) => agg.once('exit', r)), 0);
    agg = null;
    await check(conf, client, hits, V);
  } finally {
    agg?.kill('SIGKILL');
    client.close();
    server.kill('SIGKILL');
    rmSync(redis.dir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});
