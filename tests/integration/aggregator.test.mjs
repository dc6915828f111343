// aggregator.test.mjs -- fairstat-aggregator against a private redis-server:
// exact counts with raw hits deleted, sessions split over batches, withdrawal
// after read, purge, forget, and the command line's exit statuses.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedis, writeConfig, run, BIN, streamEntries } from '../lib/harness.mjs';

// FAIRSTAT_AGGREGATOR runs the suite against another build (e.g. a sanitizer one).
const AGG = process.env.FAIRSTAT_AGGREGATOR || BIN('fairstat-aggregator');
const SITE = 'example.com';
const HITS = `fs:{${SITE}}:hits`;
const GEN = `fs:{${SITE}}:withdrawn:gen`;
const LEASE = `fs:{${SITE}}:lease`;
const MIN = 60 * 1000;

let redis, dir, conf;

before(async () => {
  redis = await startRedis();
  dir = mkdtempSync(path.join(tmpdir(), 'fs-agg-'));
  // The fixtures are of 2024: a retention longer than the default 25 months,
  // or the fold would expire their aggregates at once (fold_set_retention).
  conf = writeConfig(dir, { port: 1, redisUrl: redis.url, sections: { retention: { aggregates: '10y' } } });
});
after(async () => {
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const agg = (...args) => run(AGG, ['-c', conf, ...args]);

async function fresh() {
  await redis.client.cmd('FLUSHALL');
}

// Queues hits (objects of stream fields) in one pipeline.
async function addHits(hits, key = HITS) {
  await Promise.all(hits.map((h) => redis.client.cmd('XADD', key, '*', ...Object.entries(h).flat())));
}

function hit(t, p, v, extra = {}) {
  return { t: String(t), n: 'pageview', p, r: 'news.example', c: 'DE', b: 'Firefox', o: 'Linux', dv: 'desktop', v, ...extra };
}

const day = (ms) => new Date(ms).toISOString().slice(0, 10);

async function report(from, to = from, extra = []) {
  const r = await agg('report', '--site', SITE, '--from', from, '--to', to, '--format', 'json', '--limit', '1000', ...extra);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('N hits over M pages: exact totals and per-page sums, nothing raw left', async () => {
  await fresh();
  const N = 1000, M = 37, t0 = Date.parse('2024-05-01T08:00:00Z');
  const hits = [];
  for (let i = 0; i < N; i++) hits.push(hit(t0 + i * 1000, `/p${i % M}`, (i % 113).toString(16).padStart(16, '0')));
  await addHits(hits);
  const r = await agg('-o', 'aggregator.batch=64', 'run', '--once');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await redis.client.cmd('XLEN', HITS), 0);
  const rep = await report('2024-05-01');
  assert.equal(rep.totals.pageviews, N);
  assert.equal(rep.pages.length, M);
  assert.equal(rep.pages.reduce((s, p) => s + p.pageviews, 0), N);
  for (const p of rep.pages) assert.equal(p.pageviews, Math.floor(N / M) + (Number(p.page.slice(2)) < N % M ? 1 : 0));
  assert.equal(rep.totals.visitors, 113);     // HyperLogLog is exact at this size
  assert.equal(rep.timeseries.length, 1);
  assert.equal(rep.timeseries[0].pageviews, N);
  // A second run finds nothing to do and changes nothing.
  assert.equal((await agg('run', '--once')).code, 0);
  assert.equal((await report('2024-05-01')).totals.pageviews, N);
});

test('a scripted visit: entry, exit, bounce, duration, new visit after 31 min', async () => {
  const t0 = Date.parse('2024-05-01T10:00:00Z');
  const v = 'aaaaaaaaaaaaaaaa';
  const path1 = [hit(t0, '/landing', v), hit(t0 + 5 * MIN, '/pricing', v), hit(t0 + 12 * MIN, '/signup', v),
    hit(t0 + 43 * MIN, '/blog', v)];
  const expect = (rep) => {
    assert.equal(rep.totals.pageviews, 4);
    assert.equal(rep.totals.visits, 2);
    assert.equal(rep.totals.visitors, 1);
    assert.equal(rep.totals.bounce_rate, 50);
    assert.equal(rep.totals.visit_duration, 360);    // (12 min + 0) / 2 visits
    assert.equal(rep.totals.views_per_visit, 2);
    assert.deepEqual(rep.entry_pages, [{ page: '/blog', visits: 1 }, { page: '/landing', visits: 1 }]);
    assert.deepEqual(rep.exit_pages, [{ page: '/blog', visits: 1 }, { page: '/signup', visits: 1 }]);
    assert.deepEqual(rep.sources, [{ source: 'news.example', visits: 2 }]);
  };
  for (const split of ['one batch', 'batch=1', 'separate runs']) {
    await fresh();
    if (split === 'separate runs') {
      await addHits(path1.slice(0, 2));
      assert.equal((await agg('run', '--once')).code, 0);
      await addHits(path1.slice(2, 3));
      assert.equal((await agg('run', '--once')).code, 0);
      await addHits(path1.slice(3));
      assert.equal((await agg('run', '--once')).code, 0);
    } else {
      await addHits(path1);
      const args = split === 'batch=1' ? ['-o', 'aggregator.batch=1'] : [];
      assert.equal((await agg(...args, 'run', '--once')).code, 0);
    }
    expect(await report('2024-05-01'));
  }
});

test('a visit is filed under the day it began, in the site timezone', async () => {
  await fresh();
  const nyDir = mkdtempSync(path.join(tmpdir(), 'fs-agg-ny-'));
  const nyConf = writeConfig(nyDir, { port: 1, redisUrl: redis.url, sections: { retention: { aggregates: '10y' } }, sites: { [SITE]: { origins: 'https://example.com', timezone: 'America/New_York' } } });
  // 03:50Z and 04:10Z on May 2nd are 23:50 and 00:10 in New York (EDT): one visit, begun May 1st.
  const v = 'bbbbbbbbbbbbbbbb';
  await addHits([hit(Date.parse('2024-05-02T03:50:00Z'), '/a', v), hit(Date.parse('2024-05-02T04:10:00Z'), '/b', v)]);
  assert.equal((await run(AGG, ['-c', nyConf, 'run', '--once'])).code, 0);
  const r = await run(AGG, ['-c', nyConf, 'report', '--site', SITE, '--from', '2024-05-01', '--to', '2024-05-02', '--format', 'json']);
  const rep = JSON.parse(r.stdout);
  assert.equal(rep.timezone, 'America/New_York');
  assert.deepEqual(rep.timeseries.map((d) => [d.date, d.pageviews, d.visits]), [['2024-05-01', 1, 1], ['2024-05-02', 1, 0]]);
  assert.equal(rep.totals.visit_duration, 20 * 60);
  assert.equal(rep.totals.bounce_rate, 0);
  rmSync(nyDir, { recursive: true, force: true });
});

test('a hit withdrawn after it was read is deleted and not counted', async () => {
  await fresh();
  const t0 = Date.parse('2024-05-01T08:00:00Z');
  await addHits(Array.from({ length: 20 }, (_, i) => hit(t0 + i, '/w', 'cccccccccccccccc')));
  // Three entries are erased after they were queued (DELETE /consent).
  const ids = (await redis.client.cmd('XRANGE', HITS, '-', '+')).map(([id]) => id);
  await redis.client.cmd('XDEL', HITS, ids[2], ids[7], ids[11]);
  assert.equal((await agg('run', '--once')).code, 0);
  assert.equal((await report('2024-05-01')).totals.pageviews, 17);
  assert.equal(await redis.client.cmd('XLEN', HITS), 0);
});

test('custom events, breakdowns and the table and csv formats', async () => {
  await fresh();
  const t0 = Date.parse('2024-05-01T08:00:00Z');
  await addHits([
    hit(t0, '/', 'dddddddddddddddd', { us: 'newsletter', um: 'email', uc: 'may' }),
    { t: String(t0 + 1000), n: 'signup', p: '/', v: 'dddddddddddddddd', pr: '{"plan":"pro"}' },
    hit(t0 + 2000, '/x', 'eeeeeeeeeeeeeeee', { r: '', c: '', b: 'Chrome', dv: 'mobile' }),
  ]);
  assert.equal((await agg('run', '--once')).code, 0);
  const rep = await report('2024-05-01');
  assert.equal(rep.totals.pageviews, 2);
  assert.equal(rep.totals.events, 1);
  assert.deepEqual(rep.events, [{ name: 'signup', count: 1 }]);
  assert.deepEqual(rep.utm_sources, [{ utm_source: 'newsletter', visits: 1 }]);
  assert.deepEqual(rep.sources, [{ source: '(direct)', visits: 1 }, { source: 'news.example', visits: 1 }]);
  assert.deepEqual(rep.countries, [{ country: '(unknown)', visits: 1 }, { country: 'DE', visits: 1 }]);
  assert.deepEqual(rep.devices, [{ device: 'desktop', visits: 1 }, { device: 'mobile', visits: 1 }]);
  for (const k of ['pages', 'sources', 'countries', 'browsers', 'os', 'devices', 'events', 'timeseries']) assert.ok(Array.isArray(rep[k]), k);

  const limited = await report('2024-05-01', '2024-05-01', ['--limit', '1', '--other']);
  assert.deepEqual(limited.pages.map((p) => p.page), ['/', '(other)']);

  const table = await agg('report', '--site', SITE, '--from', '2024-05-01', '--to', '2024-05-01');
  assert.equal(table.code, 0);
  assert.match(table.stdout, /^example\.com  2024-05-01 \.\. 2024-05-01  \(UTC\)/);
  assert.match(table.stdout, /pageviews\s+2\n/);
  const csv = await agg('report', '--site', SITE, '--from', '2024-05-01', '--to', '2024-05-01', '--format', 'csv');
  assert.equal(csv.code, 0);
  const lines = csv.stdout.trim().split('\r\n');
  assert.equal(lines[0], 'section,key,metric,value');
  assert.ok(lines.includes('totals,,pageviews,2'));
  assert.ok(lines.includes('pages,/x,pageviews,1'));
});

test('visitors over a range are the union of days, not the sum', async () => {
  await fresh();
  const v = 'ffffffffffffffff';
  await addHits([hit(Date.parse('2024-05-01T08:00:00Z'), '/', v), hit(Date.parse('2024-05-02T08:00:00Z'), '/', v),
    hit(Date.parse('2024-05-02T09:00:00Z'), '/', '1111111111111111')]);
  assert.equal((await agg('run', '--once')).code, 0);
  const rep = await report('2024-05-01', '2024-05-02');
  assert.equal(rep.totals.visitors, 2);
  assert.deepEqual(rep.timeseries.map((d) => d.visitors), [1, 2]);
  assert.equal(rep.pages[0].visitors, 2);
});

test('purge --dry-run changes nothing; purge two days ahead leaves no raw hit and an audit record', async () => {
  await fresh();
  const now = Date.now();
  await addHits(Array.from({ length: 50 }, (_, i) => hit(now - i * 1000, `/p${i % 5}`, '2222222222222222')));
  // Some pending for a consumer that died, some old aggregates, an old salt, a receipt.
  await redis.client.cmd('XGROUP', 'CREATE', HITS, 'fairstat', '0');
  await redis.client.cmd('XREADGROUP', 'GROUP', 'fairstat', 'dead', 'COUNT', '10', 'STREAMS', HITS, '>');
  await redis.client.cmd('HSET', `fs:{${SITE}}:d:20100101:page`, '/old', '3');
  await redis.client.cmd('HSET', `fs:{${SITE}}:h:2010010112`, 'pageviews', '3');
  await redis.client.cmd('SET', 'fs:salt:20200101', 'x');
  await redis.client.cmd('XADD', `fs:{${SITE}}:consent`, '*', 'id', 'r1', 'a', 'grant', 't', String(now));
  const before = { size: await redis.client.cmd('DBSIZE'), xlen: await redis.client.cmd('XLEN', HITS) };

  const asOf = new Date(now + 2 * 24 * 3600 * 1000 + 60000).toISOString();
  const dry = await agg('purge', '--dry-run', '--as-of', asOf);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /example\.com: would remove 50 raw hits, 10 pending references, 2 aggregate keys, 0 consent receipts/);
  assert.match(dry.stdout, /salts: would remove 1/);
  assert.equal(await redis.client.cmd('DBSIZE'), before.size);
  assert.equal(await redis.client.cmd('XLEN', HITS), before.xlen);
  assert.equal(await redis.client.cmd('EXISTS', 'fs:audit'), 0);
  assert.equal(await redis.client.cmd('GET', GEN), null);

  const real = await agg('purge', '--as-of', asOf);
  assert.equal(real.code, 0, real.stderr);
  assert.match(real.stdout, /example\.com: removed 50 raw hits, 10 pending references, 2 aggregate keys/);
  assert.equal(await redis.client.cmd('XLEN', HITS), 0);
  assert.deepEqual(await redis.client.cmd('XPENDING', HITS, 'fairstat'), [0, null, null, null]);
  assert.equal(await redis.client.cmd('EXISTS', `fs:{${SITE}}:d:20100101:page`, `fs:{${SITE}}:h:2010010112`, 'fs:salt:20200101'), 0);
  assert.equal(await redis.client.cmd('XLEN', `fs:{${SITE}}:consent`), 1);   // 5 years
  const audit = await streamEntries(redis.client, 'fs:audit');
  assert.equal(audit.length, 1);
  assert.equal(audit[0].action, 'purge');
  assert.equal(audit[0].as_of, asOf.replace(/\.\d+Z$/, 'Z'));
  assert.equal(audit[0]['example.com.raw'], '50');
  assert.equal(audit[0]['example.com.pending'], '10');
  // raw hits deleted: the withdrawn generation a fold's apply WATCHes moved
  // (fold.h, fold_block); a purge that deletes none leaves it
  assert.equal(await redis.client.cmd('GET', GEN), '1');
  assert.equal((await agg('purge', '--as-of', asOf)).code, 0);
  assert.equal(await redis.client.cmd('GET', GEN), '1');
});

test('a purge that deletes the last days\' aggregates raises the withdrawn generation; one of old days only leaves it', async () => {
  await fresh();
  const now = Date.now();
  await addHits([hit(now - 60000, '/a', '4444444444444444'), hit(now - 59000, '/b', '5555555555555555')]);
  assert.equal((await agg('run', '--once')).code, 0);
  assert.equal(await redis.client.cmd('XLEN', HITS), 0);
  const gen0 = await redis.client.cmd('GET', GEN);
  await redis.client.cmd('HSET', `fs:{${SITE}}:d:20100101:page`, '/old', '3');

  // two days ahead: the 2010 key goes (retention 10y), today's stay
  let r = await agg('purge', '--as-of', new Date(now + 2 * 86400000).toISOString());
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /example\.com: removed 0 raw hits, 0 pending references, 1 aggregate keys/);
  assert.equal(await redis.client.cmd('GET', GEN), gen0);

  // past the retention of today's keys: they go, and the generation moves
  const today = (await redis.client.cmd('KEYS', `fs:{${SITE}}:d:*`)).length;
  assert.ok(today > 0);
  r = await agg('purge', '--as-of', new Date(now + (3653 + 4) * 86400000).toISOString());
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /example\.com: removed 0 raw hits, 0 pending references, [1-9]\d* aggregate keys/);
  assert.equal((await redis.client.cmd('KEYS', `fs:{${SITE}}:d:*`)).length, 0);
  // raised with each SCAN page's UNLINK: once or more
  assert.ok(Number(await redis.client.cmd('GET', GEN)) > Number(gen0 ?? 0));
});

test('forget erases the receipt\'s buffered hits, marks it withdrawn, audits counts only', async () => {
  await fresh();
  const now = Date.now();
  const today = new Date(now).toISOString().slice(0, 10).replaceAll('-', '');
  const salt = 'salt-for-today-0123456789';
  await redis.client.cmd('SET', `fs:salt:${today}`, salt);
  const mine = createHmac('sha256', salt).update(`${SITE}\nreceipt-123`).digest('hex').slice(0, 16);
  await addHits([hit(now, '/a', mine), hit(now, '/b', '3333333333333333'), hit(now, '/c', mine)]);
  const r = await agg('forget', '--receipt', 'receipt-123');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /erased 2 buffered hits; receipt marked withdrawn on 1 site/);
  const left = await streamEntries(redis.client, HITS);
  assert.deepEqual(left.map((e) => e.p), ['/b']);
  const consent = await streamEntries(redis.client, `fs:{${SITE}}:consent`);
  assert.equal(consent.length, 1);
  assert.equal(consent[0].id, 'receipt-123');
  assert.equal(consent[0].a, 'forget');
  // One audit record per site erased on, counts only.
  const audit = await streamEntries(redis.client, 'fs:audit');
  assert.deepEqual(audit.map(({ id, ...rest }) => rest),
    [{ action: 'forget', by: 'aggregator', site: SITE, hits: '2', t: consent[0].t }]);
  assert.ok(!JSON.stringify(audit).includes('receipt-123'));
  assert.ok(!JSON.stringify(audit).includes(mine));
});

test('forget over every site marks only where the receipt had hits or was issued; --site marks there anyway', async () => {
  await fresh();
  await redis.client.cmd('XADD', 'fs:{shop.test}:consent', '*', 'id', 'receipt-9', 'a', 'grant', 'an', '1', 't', '1');
  await addHits([hit(Date.now(), '/b', '3333333333333333')]);
  let r = await agg('forget', '--receipt', 'receipt-9');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /erased 0 buffered hits; receipt marked withdrawn on 1 site$/m);
  assert.equal(await redis.client.cmd('EXISTS', `fs:{${SITE}}:consent`), 0);
  assert.deepEqual((await streamEntries(redis.client, 'fs:audit')).map((a) => a.site), ['shop.test']);
  r = await agg('forget', '--receipt', 'receipt-9', '--site', SITE);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /erased 0 buffered hits; receipt marked withdrawn on 1 site$/m);
  assert.equal((await streamEntries(redis.client, `fs:{${SITE}}:consent`))[0].a, 'forget');
  assert.equal(await redis.client.cmd('XLEN', HITS), 1);
});

test('sites not in the config are found in Redis and counted', async () => {
  await fresh();
  await addHits([hit(Date.parse('2024-05-01T08:00:00Z'), '/', '4444444444444444')], 'fs:{new.example}:hits');
  assert.equal((await agg('run', '--once')).code, 0);
  assert.equal(await redis.client.cmd('XLEN', 'fs:{new.example}:hits'), 0);
  const r = await agg('report', '--site', 'new.example', '--from', '2024-05-01', '--to', '2024-05-01', '--format', 'json');
  assert.equal(JSON.parse(r.stdout).totals.pageviews, 1);
});

test('SIGTERM ends the daemon with status 0', async () => {
  await fresh();
  const { spawn } = await import('node:child_process');
  const p = spawn(AGG, ['-c', conf, 'run'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  // Ready once it has looked at the configured site (and taken its lease).
  for (let i = 0; i < 200 && (await redis.client.cmd('EXISTS', LEASE)) === 0; i++) await new Promise((r) => setTimeout(r, 25));
  await addHits([hit(Date.now(), '/live', '5555555555555555')]);
  for (let i = 0; i < 200 && (await redis.client.cmd('XLEN', HITS)) > 0; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(await redis.client.cmd('XLEN', HITS), 0);
  p.kill('SIGTERM');
  const code = await new Promise((r) => p.once('exit', r));
  assert.equal(code, 0, err);
});

test('a daemon quiet for longer than a lease still folds the next hit', async () => {
  await fresh();
  const { spawn } = await import('node:child_process');
  const p = spawn(AGG, ['-c', conf, 'run'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (d) => { err += d; });
  const until = async (cond, ms) => {
    for (const end = Date.now() + ms; !(await cond()) && Date.now() < end;) await new Promise((r) => setTimeout(r, 50));
    return cond();
  };
  try {
    assert.ok(await until(async () => (await redis.client.cmd('EXISTS', LEASE)) === 1, 5000), 'the daemon took no lease');
    // Quiet until the lease has run out (it is not renewed for a site with no hits).
    assert.ok(await until(async () => (await redis.client.cmd('EXISTS', LEASE)) === 0, 15000), 'the lease did not run out');
    await addHits([hit(Date.now(), '/after-quiet', '6666666666666666')]);
    assert.ok(await until(async () => (await redis.client.cmd('XLEN', HITS)) === 0, 10000), 'the hit was not folded');
    assert.equal((await report(day(Date.now()))).totals.pageviews, 1);
  } finally {
    p.kill('SIGTERM');
    assert.equal(await new Promise((r) => p.once('exit', r)), 0, err);
  }
});

test('usage and config errors exit 2 with one line; Redis down exits 1', async () => {
  let r = await run(AGG, ['run']);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  r = await agg('frobnicate');
  assert.equal(r.code, 2);
  r = await agg('report');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--site/);
  r = await agg('report', '--site', SITE, '--from', '2024-02-30');
  assert.equal(r.code, 2);
  r = await agg('purge', '--as-of', 'yesterday');
  assert.equal(r.code, 2);
  r = await agg('-o', 'aggregator.batch=0', 'run', '--once');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /aggregator\.batch/);
  r = await agg('-o', 'aggregator.timezone=Mars/Base', 'run', '--once');
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Mars\/Base/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  r = await agg('-o', 'redis.url=redis://127.0.0.1:1/0', 'purge');
  assert.equal(r.code, 1);
});
