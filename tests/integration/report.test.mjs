// report.test.mjs -- `fairstat-aggregator report` on aggregates seeded straight
// into a private redis-server: small-count protection in every breakdown and
// every format, names a terminal would act on, names that are not UTF-8, rows
// that add up to the totals (or a note saying why not), and --period.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { startRedis, writeConfig, run, BIN, startServe } from '../lib/harness.mjs';

const AGG = process.env.FAIRSTAT_AGGREGATOR || BIN('fairstat-aggregator');
const SITE = 'example.com';
const DAY = '20240501';

let redis, dir, conf;

before(async () => {
  redis = await startRedis();
  dir = mkdtempSync(path.join(tmpdir(), 'fs-report-'));
  conf = writeConfig(dir, { port: 1, redisUrl: redis.url });
});
after(async () => {
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const key = (day, dim) => `fs:{${SITE}}:d:${day}:${dim}`;
// A key or member that may hold bytes that are not UTF-8.
const bin = (s) => Buffer.from(s, 'latin1');

// Seeds one day: totals, breakdowns ({dim: [[member, n], ...]}) and
// HyperLogLogs ([['', visitors], ['/page', visitors], ...]); names as Buffers
// where they are not UTF-8.
async function seed(day, { totals = {}, dims = {}, uv = [] }) {
  const c = redis.client;
  if (Object.keys(totals).length) await c.cmd('HSET', key(day, 'totals'), ...Object.entries(totals).flat());
  for (const [dim, rows] of Object.entries(dims)) await c.cmd('HSET', key(day, dim), ...rows.flat());
  for (const [page, visitors] of uv) {
    const k = page === '' ? key(day, 'uv') : Buffer.concat([Buffer.from(key(day, 'uv:')), Buffer.from(page)]);
    await c.cmd('PFADD', k, ...visitors);
  }
}

async function report(args, extra = []) {
  return run(AGG, ['-c', conf, ...extra, 'report', '--site', SITE, '--limit', '100', ...args]);
}
async function json(args, extra = []) {
  const r = await report([...args, '--format', 'json'], extra);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}
const ONE_DAY = ['--from', '2024-05-01', '--to', '2024-05-01'];

// Every breakdown: its metric and the total its rows must add up to.
const SECTIONS = {
  pages: 'pageviews', entry_pages: 'visits', exit_pages: 'visits', sources: 'visits',
  countries: 'visits', browsers: 'visits', os: 'visits', devices: 'visits', events: 'count',
};
function assertRowsSumToTotals(rep) {
  const total = { pageviews: rep.totals.pageviews, visits: rep.totals.visits, count: rep.totals.events };
  for (const [section, metric] of Object.entries(SECTIONS)) {
    const sum = rep[section].reduce((s, r) => s + r[metric], 0);
    assert.equal(sum, total[metric], `${section} adds up to totals`);
  }
}

// One day where every breakdown has rows of a single visitor (or visit).
const SMALL = {
  totals: { pageviews: 10, visits: 6, bounces: 3, duration_ms: 60000, events: 3 },
  dims: {
    page: [['/', 4], ['/a', 3], ['/b', 2], ['/nouv', 1]],
    entry: [['/', 4], ['/b', 1], ['/x', 1]],
    exit: [['/', 3], ['/a', 3]],
    source: [['(direct)', 3], ['news.example', 2], ['solo.example', 1]],
    utm_source: [['newsletter', 2], ['rare-utm', 1]],
    utm_medium: [['email', 1]],
    country: [['DE', 5], ['IS', 1]],
    region: [['DE-BE', 1]],
    browser: [['Firefox', 4], ['Chrome', 1], ['Lynx', 1]],
    os: [['Linux', 6]],
    device: [['desktop', 5], ['mobile', 1]],
    event: [['signup', 2], ['rare-event', 1]],
  },
  // "/a": 3 pageviews by one visitor; "/nouv": no visitor count (null).
  uv: [['', ['v1', 'v2', 'v3', 'v4', 'v5', 'v6']], ['/', ['v1', 'v2', 'v3']], ['/a', ['v1']], ['/b', ['v1', 'v2']]],
};
// ('/a' stays: 3 exit visits.)
const SINGLES = ['/nouv', '/x', 'solo.example', 'rare-utm', 'email', 'IS', 'DE-BE', 'Chrome', 'Lynx',
  'mobile', 'rare-event'];

test('min_visitors = 2 folds every breakdown\'s rows under 2 into one (other), in json, table and csv', async () => {
  await redis.client.cmd('FLUSHALL');
  await seed(DAY, SMALL);
  const K = ['-o', 'aggregator.min_visitors=2'];

  // Off: every row shows by name (so the data would leak without K).
  const open = await json(ONE_DAY);
  for (const name of ['/a', 'solo.example', 'IS', 'Lynx', 'rare-event', 'DE-BE', 'email'])
    assert.ok(JSON.stringify(open).includes(`"${name}"`), name);
  assertRowsSumToTotals(open);

  const rep = await json(ONE_DAY, K);
  assert.deepEqual(rep.totals, { pageviews: 10, visitors: 6, visits: 6, bounce_rate: 50, visit_duration: 10,
    views_per_visit: 1.67, events: 3 });
  assert.deepEqual(rep.pages, [
    { page: '/', pageviews: 4, visitors: 3 },
    { page: '/b', pageviews: 2, visitors: 2 },
    { page: '(other)', pageviews: 4 },
  ]);
  assert.deepEqual(rep.entry_pages, [{ page: '/', visits: 4 }, { page: '(other)', visits: 2 }]);
  assert.deepEqual(rep.exit_pages, [{ page: '/', visits: 3 }, { page: '/a', visits: 3 }]);
  assert.deepEqual(rep.sources, [{ source: '(direct)', visits: 3 }, { source: 'news.example', visits: 2 },
    { source: '(other)', visits: 1 }]);
  assert.deepEqual(rep.utm_sources, [{ utm_source: 'newsletter', visits: 2 }, { utm_source: '(other)', visits: 1 }]);
  assert.deepEqual(rep.utm_mediums, [{ utm_medium: '(other)', visits: 1 }]);
  assert.deepEqual(rep.countries, [{ country: 'DE', visits: 5 }, { country: '(other)', visits: 1 }]);
  assert.deepEqual(rep.regions, [{ region: '(other)', visits: 1 }]);
  assert.deepEqual(rep.browsers, [{ browser: 'Firefox', visits: 4 }, { browser: '(other)', visits: 2 }]);
  assert.deepEqual(rep.os, [{ os: 'Linux', visits: 6 }]);
  assert.deepEqual(rep.devices, [{ device: 'desktop', visits: 5 }, { device: '(other)', visits: 1 }]);
  assert.deepEqual(rep.events, [{ name: 'signup', count: 2 }, { name: '(other)', count: 1 }]);
  assertRowsSumToTotals(rep);
  assert.match(rep.notes.pages[0], /^2 rows with fewer than 2 visitors \(aggregator\.min_visitors\) are counted in \(other\)$/);
  assert.match(rep.notes.browsers[0], /^2 rows with fewer than 2 visitors/);
  assert.match(rep.notes.utm_sources.at(-1), /^3 visits have no utm_source/);
  for (const name of SINGLES) assert.ok(!JSON.stringify(rep).includes(`"${name}"`), name);

  const table = await report(ONE_DAY, K);
  assert.equal(table.code, 0, table.stderr);
  for (const name of SINGLES) assert.doesNotMatch(table.stdout, new RegExp(`^  ${name} `, 'm'), name);
  assert.match(table.stdout, /\nSources\n  source +visits\n  \(direct\) +3\n  news\.example +2\n  \(other\) +1\n  note: 1 row with fewer than 2 visitors \(aggregator\.min_visitors\) is counted in \(other\)\n/);
  assert.match(table.stdout, /\nPages\n  page +pageviews +visitors\n  \/ +4 +3\n  \/b +2 +2\n  \(other\) +4 *\n/);

  const csv = await report([...ONE_DAY, '--format', 'csv'], K);
  assert.equal(csv.code, 0, csv.stderr);
  const lines = csv.stdout.trim().split('\r\n');
  for (const name of SINGLES) assert.ok(!lines.some((l) => l.split(',')[1] === name), name);
  for (const l of ['pages,(other),pageviews,4', 'entry_pages,(other),visits,2', 'sources,(other),visits,1',
    'utm_mediums,(other),visits,1', 'countries,(other),visits,1', 'regions,(other),visits,1',
    'browsers,(other),visits,2', 'devices,(other),visits,1', 'events,(other),count,1'])
    assert.ok(lines.includes(l), l);
  assert.ok(lines.some((l) => /^sources,,note,1 row with fewer than 2 visitors/.test(l)));
});

test('rows past --limit: --other sums them, without it a note says how much is not shown', async () => {
  await redis.client.cmd('FLUSHALL');
  await seed(DAY, SMALL);
  const cut = await json([...ONE_DAY, '--limit', '1']);
  assert.deepEqual(cut.sources, [{ source: '(direct)', visits: 3 }]);
  assert.deepEqual(cut.notes.sources,
    ['2 more rows (3 visits) past --limit 1 are not shown; --other adds them as (other)']);
  const other = await json([...ONE_DAY, '--limit', '1', '--other']);
  assert.deepEqual(other.sources, [{ source: '(direct)', visits: 3 }, { source: '(other)', visits: 3 }]);
  assert.equal(other.notes.sources, undefined);
  assertRowsSumToTotals(other);
});

test('the table prints control, C1 and bidi characters escaped, never raw; json and csv keep the name', async () => {
  await redis.client.cmd('FLUSHALL');
  const page = '/\x1b[31mred\u202egnp.exe';
  await seed(DAY, {
    totals: { pageviews: 3, visits: 3, events: 1 },
    dims: {
      page: [[page, 2], ['/\u2066x\u2069\u200f', 1]],
      source: [['a\u0085b\x07', 3]],
      event: [['\x9b2J\u061c', 1]],   // C1 CSI as a code point, then Arabic letter mark
    },
    uv: [['', ['v1', 'v2']], [page, ['v1', 'v2']]],
  });
  const t = await report(ONE_DAY);
  assert.equal(t.code, 0, t.stderr);
  assert.ok(t.stdout.includes('/\\x1b[31mred\\u202egnp.exe'), t.stdout);
  assert.ok(t.stdout.includes('/\\u2066x\\u2069\\u200f'));
  assert.ok(t.stdout.includes('a\\u0085b\\x07'));
  assert.ok(t.stdout.includes('\\u009b2J\\u061c'));
  assert.doesNotMatch(t.stdout, /[\x00-\x09\x0b-\x1f\x7f\u0080-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/);

  const rep = await json(ONE_DAY);
  assert.deepEqual(rep.pages, [{ page, pageviews: 2, visitors: 2 }, { page: '/\u2066x\u2069\u200f', pageviews: 1, visitors: null }]);
  assert.deepEqual(rep.sources, [{ source: 'a\u0085b\x07', visits: 3 }]);
});

test('a path that is not UTF-8 is in every format, escaped as \\xNN; names that would meet are summed', async () => {
  await redis.client.cmd('FLUSHALL');
  await seed(DAY, {
    totals: { pageviews: 7, visits: 2 },
    dims: {
      // "/caf\xff" escapes to the same text as the valid "/caf\\xff": one row, summed.
      page: [[bin('/caf\xe9'), 3], [bin('/caf\xff'), 2], ['/caf\\xff', 1], ['/', 1]],
      entry: [[bin('/caf\xe9'), 2]],
    },
    uv: [['', ['v1', 'v2']], [bin('/caf\xe9'), ['v1', 'v2']], [bin('/caf\xff'), ['v1']]],
  });
  const rep = await json(ONE_DAY);
  assert.deepEqual(rep.pages, [
    { page: '/caf\\xe9', pageviews: 3, visitors: 2 },
    { page: '/caf\\xff', pageviews: 3, visitors: null },   // two stored names: no one visitor count
    { page: '/', pageviews: 1, visitors: null },
  ]);
  assert.deepEqual(rep.entry_pages, [{ page: '/caf\\xe9', visits: 2 }]);
  assertRowsSumToTotals({ ...rep, events: [], totals: { ...rep.totals, events: 0 },
    ...Object.fromEntries(['exit_pages', 'sources', 'countries', 'browsers', 'os', 'devices'].map((s) => [s, [{ visits: 2 }]])) });

  const t = await report(ONE_DAY);
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /\n  \/caf\\xe9 +3 +2\n  \/caf\\xff +3 *\n/);
  const csv = await report([...ONE_DAY, '--format', 'csv']);
  const lines = csv.stdout.trim().split('\r\n');
  for (const l of ['pages,/caf\\xe9,pageviews,3', 'pages,/caf\\xe9,visitors,2', 'pages,/caf\\xff,pageviews,3',
    'pages,/caf\\xff,visitors,', 'entry_pages,/caf\\xe9,visits,2'])
    assert.ok(lines.includes(l), l);
});

// ------------------------------------------------------------------ periods

const utcDay = (ms) => new Date(ms).toISOString().slice(0, 10);
const compact = (dashed) => dashed.replaceAll('-', '');
function periodRange(name, now) {
  const d = new Date(now);
  const y = d.getUTCFullYear(), m = d.getUTCMonth();
  const today = utcDay(now);
  switch (name) {
    case 'day': return [today, today];
    case '7d': return [utcDay(now - 6 * 864e5), today];
    case '30d': return [utcDay(now - 29 * 864e5), today];
    case 'month': return [utcDay(Date.UTC(y, m, 1)), today];
    case '12mo': return [utcDay(Date.UTC(y, m - 11, 1)), today];
  }
}

test('--period day|7d|30d|month|12mo: ranges ending today in the site zone, in every format', async () => {
  await redis.client.cmd('FLUSHALL');
  const now = Date.now();
  // One pageview on today, 6, 7, 29 and 30 days ago: each period takes exactly its own.
  for (const back of [0, 6, 7, 29, 30])
    await seed(compact(utcDay(now - back * 864e5)), { totals: { pageviews: 10 ** (back % 5) * (back + 1) } });
  const seeded = (from, to) => [0, 6, 7, 29, 30].filter((b) => {
    const d = utcDay(now - b * 864e5);
    return d >= from && d <= to;
  }).reduce((s, b) => s + 10 ** (b % 5) * (b + 1), 0);

  for (const name of ['day', '7d', '30d', 'month', '12mo']) {
    const r = await run(AGG, ['-c', conf, 'report', '--site', SITE, '--period', name, '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout);
    // The day may have turned between the two clocks: either side is right.
    const ranges = [periodRange(name, now), periodRange(name, Date.now())];
    assert.ok(ranges.some(([f, t]) => rep.from === f && rep.to === t), `${name}: ${rep.from}..${rep.to}`);
    assert.equal(rep.totals.pageviews, seeded(rep.from, rep.to), name);
    for (const format of ['table', 'csv']) {
      const o = await run(AGG, ['-c', conf, 'report', '--site', SITE, '--period', name, '--format', format]);
      assert.equal(o.code, 0, o.stderr);
      if (format === 'table') assert.ok(o.stdout.startsWith(`${SITE}  ${rep.from} .. ${rep.to}  (UTC)\n`), o.stdout);
      else assert.ok(o.stdout.includes(`\r\ntotals,,pageviews,${rep.totals.pageviews}\r\n`), o.stdout);
    }
  }
  const seven = await run(AGG, ['-c', conf, 'report', '--site', SITE, '--period', '7d', '--format', 'json']);
  assert.equal(JSON.parse(seven.stdout).timeseries.length, 7);
});

test('--period with --from or --to, or an unknown period, is a usage error (exit 2)', async () => {
  for (const args of [['--period', '7d', '--from', '2024-05-01'], ['--to', '2024-05-01', '--period', 'day'],
    ['--period', '6mo'], ['--period']]) {
    const r = await run(AGG, ['-c', conf, 'report', '--site', SITE, ...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /--period/);
  }
});

// The day hashes are read field by field as they arrive (no reply objects):
// a name longer than the reader's 16 KiB buffer, thousands of members a day
// over several days in flight at once, and a key of the wrong type (read as
// empty, as before) must all come out exactly as stored.
test('large day hashes over several days are merged exactly; a name longer than the read buffer survives whole', async () => {
  await redis.client.cmd('FLUSHALL');
  const days = ['20240601', '20240602', '20240603', '20240604', '20240605'];
  const N = 3000;
  const long = '/' + 'x'.repeat(40000) + 'é/end';
  let pageviews = 0;
  for (const [d, day] of days.entries()) {
    const page = [];
    for (let i = 0; i < N; i++) page.push([`/p/${i}`, i + 1 + d]);
    page.push(['(other)', 100000], [long, 7]);
    pageviews += page.reduce((s, [, n]) => s + n, 0);
    await seed(day, { totals: { pageviews: page.reduce((s, [, n]) => s + n, 0), visits: 10 }, dims: { page } });
    await redis.client.cmd('SET', key(day, 'source'), 'not a hash');
  }
  const rep = await json(['--from', '2024-06-01', '--to', '2024-06-05', '--limit', '5000']);
  assert.equal(rep.totals.pageviews, pageviews);
  assert.equal(rep.pages.length, N + 2);
  const by = new Map(rep.pages.map((r) => [r.page, r.pageviews]));
  for (let i = 0; i < N; i++) assert.equal(by.get(`/p/${i}`), 5 * (i + 1) + 10, `/p/${i}`);
  assert.equal(by.get(long), 35);
  assert.equal(by.get('(other)'), 500000);
  assert.equal(rep.pages.at(-1).page, '(other)');
  assert.deepEqual(rep.pages[0], { page: '/p/2999', pageviews: 15010, visitors: null });
  assert.deepEqual(rep.sources, []);
});

// A stand-in for Redis that answers every command with an empty reply but
// cuts off the first HGETALL of a page breakdown halfway through its array
// and closes the connection: Redis restarting while a reply is in flight.
function cuttingRedis() {
  const server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const args = [];
        let at = buf.indexOf('\r\n');
        if (buf[0] !== 0x2a || at < 0) return;
        const n = Number(buf.subarray(1, at).toString());
        let p = at + 2, whole = true;
        for (let i = 0; i < n && whole; i++) {
          const e = buf.indexOf('\r\n', p);
          if (e < 0) { whole = false; break; }
          const len = Number(buf.subarray(p + 1, e).toString());
          if (buf.length < e + 2 + len + 2) { whole = false; break; }
          args.push(buf.subarray(e + 2, e + 2 + len).toString('latin1'));
          p = e + 2 + len + 2;
        }
        if (!whole) return;
        buf = buf.subarray(p);
        const cmd = args[0].toUpperCase();
        if (cmd === 'HGETALL' && args[1].endsWith(':page')) {
          sock.end('*4\r\n$2\r\n/a\r\n$1\r\n5\r\n');
          return;
        }
        sock.write(cmd === 'PING' ? '+PONG\r\n' : cmd === 'PFCOUNT' ? ':0\r\n'
          : cmd === 'HGETALL' || cmd === 'XRANGE' || cmd === 'HMGET' ? '*0\r\n' : '+OK\r\n');
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

test('Redis lost in the middle of a breakdown reply: report exits 1 saying so, serve answers 503 and stays up', async () => {
  const fake = await cuttingRedis();
  const d = mkdtempSync(path.join(tmpdir(), 'fs-report-cut-'));
  try {
    const c = writeConfig(d, { port: 1, redisUrl: `redis://127.0.0.1:${fake.address().port}/0` });
    const r = await run(AGG, ['-c', c, 'report', '--site', SITE, ...ONE_DAY, '--format', 'json']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /redis/i);
    const serve = await startServe(c);
    try {
      const q = await fetch(`${serve.base}/api/v2/query`, {
        method: 'POST',
        headers: { authorization: `Bearer ${serve.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ site_id: SITE, metrics: ['pageviews'], date_range: ['2024-05-01', '2024-05-01'],
          dimensions: ['event:page'] }),
      });
      assert.equal(q.status, 503, await q.text());
      assert.equal(serve.proc.exitCode, null, 'serve is still running: ' + serve.output());
      assert.equal((await fetch(`${serve.base}/healthz`)).status, 200);
    } finally {
      assert.equal(await serve.stop(), 0, serve.output());
    }
  } finally {
    fake.close();
    rmSync(d, { recursive: true, force: true });
  }
});

test('a count is read as Redis stores it, up to the largest integer Redis holds', async () => {
  await redis.client.cmd('FLUSHALL');
  await seed(DAY, { totals: { pageviews: 1, visits: 1 }, dims: { page: [['/max', '9223372036854775807'], ['/one', 1]] } });
  const r = await report([...ONE_DAY, '--format', 'json']);
  assert.equal(r.code, 0, r.stderr);
  // JSON.parse would round it: the text is checked.
  assert.match(r.stdout, /"page": "\/max",\s*"pageviews": 9223372036854775807\b/);
  assert.match(r.stdout, /"page": "\/one",\s*"pageviews": 1\b/);
});
