// engagement_props.test.mjs -- Plausible's engagement events and event
// properties end to end: beacons through the real collector, `run --once`,
// then the report's exact numbers. An engagement is neither a pageview nor an
// event; props count per name and value, also when sent as a JSON string.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startCollector, run, BIN, consentCookie, beacon, streamEntries } from '../lib/harness.mjs';

const AGG = process.env.FAIRSTAT_AGGREGATOR || BIN('fairstat-aggregator');
const ORIGIN = { origin: 'https://example.com' };

async function send(base, cookie, body) {
  const r = await beacon(base, { d: 'example.com', ...body }, { cookie, ...ORIGIN });
  return r.status;
}

test('engagements give time on page and scroll depth, props a breakdown, and nothing else moves', async () => {
  const redis = await startRedis();
  const collector = await startCollector(redis);
  try {
    const cookie = await consentCookie(collector.base);
    const s = (body) => send(collector.base, cookie, body);
    // Payloads as @plausible-analytics/tracker builds them.
    assert.equal(await s({ n: 'pageview', u: 'https://example.com/blog', v: 36 }), 202);
    assert.equal(await s({ n: 'engagement', u: 'https://example.com/blog', sd: 40, e: 4000, v: 36 }), 202);
    assert.equal(await s({ n: 'engagement', u: 'https://example.com/blog', sd: 80, e: 6000, v: 36, h: 1 }), 202);
    assert.equal(await s({ n: 'pageview', u: 'https://example.com/pricing', r: null }), 202);
    assert.equal(await s({ n: 'Signup', u: 'https://example.com/pricing', p: { plan: 'pro', seats: 3 } }), 202);
    // The older plausible-tracker sends props JSON-encoded.
    assert.equal(await s({ n: 'Signup', u: 'https://example.com/pricing', p: JSON.stringify({ plan: 'free' }) }), 202);
    assert.equal(await s({ n: 'Signup', u: 'https://example.com/pricing', p: { plan: 'pro' } }), 202);
    assert.equal(await s({ n: 'engagement', u: 'https://example.com/pricing', sd: 100, e: 2000, p: { plan: 'pro' } }), 202);

    // Refused: nothing of them is stored.
    for (const bad of [{ sd: -1, e: 1 }, { sd: 50 }, { sd: 50, e: -5 }, { sd: '50', e: 1 }, { sd: 5.5, e: 1 }]) {
      assert.equal(await s({ n: 'engagement', u: 'https://example.com/blog', ...bad }), 400, JSON.stringify(bad));
    }
    assert.equal(await s({ n: 'Signup', u: 'https://example.com/', p: '{"nested":{"a":1}}' }), 400);
    assert.equal(await s({ n: 'Signup', u: 'https://example.com/', p: 'not json' }), 400);

    const queued = await streamEntries(redis.client, 'fs:{example.com}:hits');
    assert.equal(queued.length, 8);
    assert.deepEqual(queued.filter((h) => h.n === 'engagement').map((h) => [h.p, h.sd, h.e]),
      [['/blog', 40, 4000], ['/blog', 80, 6000], ['/pricing', 100, 2000]]);

    const once = await run(AGG, ['-c', collector.conf, 'run', '--once']);
    assert.equal(once.code, 0, once.stderr);
    const rep = await run(AGG, ['-c', collector.conf, 'report', '--site', 'example.com', '--format', 'json']);
    assert.equal(rep.code, 0, rep.stderr);
    const r = JSON.parse(rep.stdout);

    assert.equal(r.totals.pageviews, 2);
    assert.equal(r.totals.events, 3);
    assert.equal(r.totals.visits, 1);
    assert.deepEqual(r.events, [{ name: 'Signup', count: 3 }]);
    const pages = Object.fromEntries(r.pages.map((p) => [p.page, p]));
    // /blog: 10 s engaged over 1 pageview; scroll (40 + 80) / 2 events.
    assert.equal(pages['/blog'].time_on_page, 10);
    assert.equal(pages['/blog'].scroll_depth, 60);
    assert.equal(pages['/pricing'].time_on_page, 2);
    assert.equal(pages['/pricing'].scroll_depth, 100);
    assert.deepEqual(r.props, [
      { property: 'plan', value: 'pro', count: 2 },
      { property: 'plan', value: 'free', count: 1 },
      { property: 'seats', value: '3', count: 1 },
    ]);

    // min_visitors holds back values and names carried by fewer events.
    const small = await run(AGG, ['-c', collector.conf, '-o', 'aggregator.min_visitors=2',
      'report', '--site', 'example.com', '--format', 'json']);
    assert.equal(small.code, 0, small.stderr);
    assert.deepEqual(JSON.parse(small.stdout).props, [
      { property: 'plan', value: 'pro', count: 2 },
      { property: 'plan', value: '(other)', count: 1 },
    ]);

    // The table and CSV carry the new columns too.
    const csv = await run(AGG, ['-c', collector.conf, 'report', '--site', 'example.com', '--format', 'csv']);
    assert.match(csv.stdout, /^pages,\/blog,time_on_page,10\r$/m);
    assert.match(csv.stdout, /^props,plan,value,pro\r$/m);
  } finally {
    await collector.stop();
    await redis.stop();
  }
});
