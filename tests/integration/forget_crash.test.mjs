// forget_crash.test.mjs -- `forget` is one atomic step per site: killed with
// SIGKILL at any moment, it leaves a site either erased (the receipt's newest
// hits deleted, the visitor withdrawn, a receipt and an audit record) or
// untouched, every other hit there; and the fold then drops the rest of the
// receipt's hits uncounted, whatever the backlog.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedis, writeConfig, run, BIN, RedisError, streamEntries } from '../lib/harness.mjs';

// FAIRSTAT_AGGREGATOR runs the suite against another build (e.g. a sanitizer one).
const AGG = process.env.FAIRSTAT_AGGREGATOR || BIN('fairstat-aggregator');
const SITE = 'example.com';
const HITS = `fs:{${SITE}}:hits`;
const CONSENT = `fs:{${SITE}}:consent`;
const WITHDRAWN = `fs:{${SITE}}:withdrawn`;
const RECEIPT = 'receipt-crash-1';
const SALT = 'salt-of-today-0123456789abcdef';
const MINE = createHmac('sha256', SALT).update(`${SITE}\n${RECEIPT}`).digest('hex').slice(0, 16);
const OTHER = '3333333333333333';

// Fills the stream inside Redis (XADD from Node would take seconds): n hits of
// the receipt and n of another visitor, interleaved; the aggregator's group
// has read the first half of them (pending, not applied).
async function fill(client, n) {
  await client.cmd('FLUSHALL');
  const today = new Date().toISOString().slice(0, 10).replaceAll('-', '');
  await client.cmd('SET', `fs:salt:${today}`, SALT);
  await client.cmd('EVAL', `for i = 1, tonumber(ARGV[1]) do
      redis.call('XADD', KEYS[1], '*', 't', ARGV[4], 'n', 'pageview', 'p', '/p' .. i, 'v', ARGV[2])
      redis.call('XADD', KEYS[1], '*', 't', ARGV[4], 'n', 'pageview', 'p', '/p' .. i, 'v', ARGV[3])
    end`, 1, HITS, n, MINE, OTHER, Date.now());
  await client.cmd('XGROUP', 'CREATE', HITS, 'fairstat', '0');
  await client.cmd('XREADGROUP', 'GROUP', 'fairstat', 'reader', 'COUNT', n, 'STREAMS', HITS, '>');
}

// The erase looks at the newest ERASE_SCAN (100) raw entries only (erase.h):
// of the interleaved fill, the receipt's newest 500 are erased at once and the
// rest are the fold's to drop.
const SCAN = 100;
const AT_ONCE = SCAN / 2;

// What a kill may leave: the erase done whole or not at all. Done: the
// receipt's newest hits gone (every other hit there), none of them pending,
// the visitor in the withdrawn set, a receipt and an audit record. Not done:
// none of that. Returns 'erased' or 'untouched'.
async function allOrNothing(client, n) {
  const left = await streamEntries(client, HITS);
  const mine = left.filter((e) => e.v === MINE).length;
  const others = left.filter((e) => e.v === OTHER).length;
  assert.equal(others, n, 'other hits untouched');
  assert.ok(mine === n || mine === n - AT_ONCE, `all of the newest hits of the receipt or none, found ${mine} of ${n}`);
  const [pending] = await client.cmd('XPENDING', HITS, 'fairstat');
  const audit = await streamEntries(client, 'fs:audit');
  const consent = await streamEntries(client, CONSENT);
  const withdrawn = await client.cmd('ZCARD', WITHDRAWN);
  if (mine === n) {
    assert.equal(pending, n, 'nothing acknowledged');
    assert.deepEqual([audit.length, consent.length, withdrawn], [0, 0, 0], 'no record of an erase that did not happen');
    return 'untouched';
  }
  // The group read the older half: the newest entries erased were never pending.
  assert.equal(pending, n, 'what was pending still is');
  assert.equal(withdrawn, 1, 'the visitor is withdrawn (one salt held)');
  assert.deepEqual(audit.map(({ id, ...r }) => ({ ...r, t: '' })),
    [{ action: 'forget', by: 'aggregator', site: SITE, hits: String(AT_ONCE), t: '' }]);
  assert.deepEqual(consent.map((c) => [c.id, c.a]), [[RECEIPT, 'forget']]);
  return 'erased';
}

// PING until Redis answers PONG rather than -BUSY: no script is running.
// Returns whether one was.
async function scriptEnded(client) {
  for (let busy = false; ;) {
    try {
      await client.cmd('PING');
      return busy;
    } catch (e) {
      if (!(e instanceof RedisError) || !/^BUSY/.test(e.message)) throw e;
      busy = true;
    }
  }
}

function startForget(conf) {
  const proc = spawn(AGG, ['-c', conf, 'forget', '--receipt', RECEIPT, '--site', SITE], { stdio: 'ignore' });
  const exited = new Promise((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  return { proc, exited };
}

async function withRedis(fn) {
  // Redis answers other clients -BUSY once a script has run 1 ms: the test's
  // signal that the erase is under way.
  const redis = await startRedis(['--busy-reply-threshold', '1']);
  const dir = mkdtempSync(path.join(tmpdir(), 'fs-forget-'));
  try {
    await fn(redis, writeConfig(dir, { port: 1, redisUrl: redis.url }));
  } finally {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('after forget, the fold drops every remaining hit of the receipt uncounted, whatever the backlog', async () => {
  await withRedis(async (redis, conf) => {
    const N = 5000;
    await fill(redis.client, N);
    const r = await run(AGG, ['-c', conf, 'forget', '--receipt', RECEIPT, '--site', SITE]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`erased ${AT_ONCE} buffered hits; receipt marked withdrawn on 1 site`));
    assert.equal(await allOrNothing(redis.client, N), 'erased');
    const f = await run(AGG, ['-c', conf, 'run', '--once']);
    assert.equal(f.code, 0, f.stderr);
    assert.equal(await redis.client.cmd('XLEN', HITS), 0, 'every raw hit deleted');
    // Counted: the other visitor's N pageviews, none of the receipt's.
    const day = new Date().toISOString().slice(0, 10).replaceAll('-', '');
    assert.equal(Number(await redis.client.cmd('HGET', `fs:{${SITE}}:d:${day}:totals`, 'pageviews')), N);
    const drops = (await streamEntries(redis.client, 'fs:audit')).filter((a) => a.action === 'drop');
    assert.equal(drops.reduce((s, a) => s + Number(a.hits), 0), N - AT_ONCE, 'every dropped hit audited');
  });
});

test('kill -9 at any moment leaves all or nothing; forget run again finishes the job', async () => {
  await withRedis(async (redis, conf) => {
    const N = 5000;
    const seen = new Set();
    for (let round = 0; round < 6; round++) {
      await fill(redis.client, N);
      const { proc, exited } = startForget(conf);
      // From at once (before the connection) to after the erase.
      await new Promise((r) => setTimeout(r, round * 10));
      proc.kill('SIGKILL');
      await exited;
      await scriptEnded(redis.client);
      const state = await allOrNothing(redis.client, N);
      seen.add(state);
      if (state === 'untouched') {
        const r = await run(AGG, ['-c', conf, 'forget', '--receipt', RECEIPT, '--site', SITE]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`erased ${AT_ONCE} buffered hits`));
        assert.equal(await allOrNothing(redis.client, N), 'erased');
      }
    }
    assert.ok(seen.has('untouched'), 'a kill before the erase was exercised');
  });
});
