// bench/flood.mjs -- what one site-day of hostile input costs in Redis.
//
// One visitor sends N hits, each with a new path, a new custom event name
// and new event properties (names and values), the worst a single cookie can
// do to the aggregates. The raw hits go straight into the stream (packed as
// the collector packs them), `fairstat-aggregator run --once` folds them, and
// this prints the aggregates' memory (used_memory delta) and key count: they
// stay bounded by aggregator.max_members (max_rows_per_day), the page-visitor
// cap and the property-name cap, whatever N is.
//
//   node bench/flood.mjs [N]        default 100000
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedis, writeConfig, run, BIN, packHit } from '../tests/lib/harness.mjs';

const N = Number(process.argv[2] || 100000);
const SITE = 'flood.example';
const redis = await startRedis();
const dir = mkdtempSync(path.join(tmpdir(), 'fs-flood-'));
try {
  const conf = writeConfig(dir, { port: 1, redisUrl: redis.url, sections: { aggregator: { batch: 20000 } },
    sites: { [SITE]: { origins: `https://${SITE}` } } });
  const mem = async () => Number(/used_memory:(\d+)/.exec(await redis.client.cmd('INFO', 'memory'))[1]);
  const m0 = await mem();
  const t = Date.now();
  // Ids as one collector connection gives them: one epoch, in sequence.
  const epoch = BigInt(Math.floor(Math.random() * 2 ** 24)) << 24n;
  for (let i = 0; i < N; i += 5000) {
    await Promise.all(Array.from({ length: Math.min(5000, N - i) }, (_, k) => {
      const j = i + k;
      const h = { id: epoch | BigInt(j), v: '0123456789abcdef', t, p: `/flood/${j}`, b: 'Firefox', o: 'Linux', dv: 'desktop',
        r: `ref${j}.example`, c: 'DE', us: `src${j}` };
      if (j % 2) Object.assign(h, { n: `event-${j}`, pr: JSON.stringify({ [`prop${j}`]: `value${j}` }) });
      else h.n = 'pageview';
      return redis.client.cmd('XADD', `fs:{${SITE}}:hits`, '*', 'h', packHit(h));
    }));
  }
  const r = await run(BIN('fairstat-aggregator'), ['-c', conf, 'run', '--once']);
  if (r.code !== 0) throw new Error(r.stderr);
  // Visit state is per visitor and expires with its day: measured apart.
  await redis.client.cmd('MEMORY', 'PURGE');
  const m1 = await mem();
  const keys = await redis.client.cmd('KEYS', `fs:{${SITE}}:[dh]:*`);
  let agg = 0;
  for (const k of keys) agg += await redis.client.cmd('MEMORY', 'USAGE', k);
  console.log(`flood: ${N} hits of one visitor, each a new path, referrer, utm_source; every other one a new event name with a new property`);
  console.log(`  aggregates of the day: ${(agg / 1048576).toFixed(2)} MiB (MEMORY USAGE summed), ${keys.length} keys; all of Redis: ${((m1 - m0) / 1048576).toFixed(2)} MiB more than before`);
  console.log(`  left in the stream: ${await redis.client.cmd('XLEN', `fs:{${SITE}}:hits`)}`);
} finally {
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}
