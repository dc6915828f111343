// bench/erase.mjs -- what GET and DELETE /consent cost Redis, by backlog.
//
// A withdrawal must cost Redis the same with 0 or 500,000 raw hits waiting
// (the aggregator down or behind): erase.lua looks at the newest 100 entries
// only and leaves the rest to the fold (common/erase.h). For each backlog this
// fills the site's stream with another visitor's packed hits, then times the
// script of one GET /consent and one DELETE /consent through the real
// collector, as Redis measures it (SLOWLOG, microseconds, the script alone).
//
//   node bench/erase.mjs [BACKLOG...]      default: 0 10000 500000
import { startRedis, startCollector, consentCookie, beacon, packHit } from '../tests/lib/harness.mjs';

const backlogs = process.argv.slice(2).map(Number).filter((n) => n >= 0);
if (!backlogs.length) backlogs.push(0, 10000, 500000);
const HITS = 'fs:{example.com}:hits';

const redis = await startRedis();
const col = await startCollector(redis);
try {
  console.log('backlog   GET /consent   DELETE /consent   (Redis time of the script, us)');
  for (const n of backlogs) {
    await redis.client.cmd('DEL', HITS);
    const cookie = await consentCookie(col.base);
    const r = await beacon(col.base, { domain: 'example.com', name: 'pageview', url: 'https://example.com/' },
      { cookie, origin: 'https://example.com' });
    if (r.status !== 202) throw new Error(`beacon: ${r.status}`);
    const one = packHit({ v: '3333333333333333', t: Date.now(), n: 'pageview', p: '/other', b: 'Firefox', o: 'Linux', dv: 'desktop' });
    for (let left = n; left > 0; left -= 50000)
      await redis.client.cmd('EVAL', "for i = 1, tonumber(ARGV[1]) do redis.call('XADD', KEYS[1], '*', 'h', ARGV[2]) end",
        1, HITS, Math.min(left, 50000), one);
    await redis.client.cmd('CONFIG', 'SET', 'slowlog-log-slower-than', '0');
    await redis.client.cmd('SLOWLOG', 'RESET');
    const g = await fetch(col.base + '/consent?domain=example.com', { headers: { cookie } });
    const d = await fetch(col.base + '/consent?domain=example.com', { method: 'DELETE', headers: { cookie } });
    if (g.status !== 200 || d.status !== 200) throw new Error(`consent: ${g.status} ${d.status}`);
    const log = await redis.client.cmd('SLOWLOG', 'GET', '100');
    await redis.client.cmd('CONFIG', 'SET', 'slowlog-log-slower-than', '10000');
    // Oldest first; the scripts are the EVALs (the collector sends nothing else as EVAL).
    const evals = log.reverse().filter((e) => String(e[3][0]).toUpperCase() === 'EVAL').map((e) => e[2]);
    if (evals.length !== 2) throw new Error(`expected 2 scripts in the slow log, found ${evals.length}`);
    console.log(`${String(n).padStart(7)}   ${String(evals[0]).padStart(12)}   ${String(evals[1]).padStart(15)}`);
  }
} finally {
  await col.stop();
  await redis.stop();
}
