// forget_crash.test.mjs -- `forget` is one atomic step per site: killed with
// SIGKILL while Redis runs its erase, or at any other moment, it leaves a
// site's stream holding either all of the receipt's hits or none of them,
// every other hit untouched, and a receipt and audit record exactly when the
// erase happened.
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

// What a kill may leave: all of the receipt's hits or none, the others all
// there, no pending entry left pointing at an erased one, and a receipt and
// audit record iff the hits are gone. Returns 'erased' or 'untouched'.
async function allOrNothing(client, n) {
  const left = await streamEntries(client, HITS);
  const mine = left.filter((e) => e.v === MINE).length;
  const others = left.filter((e) => e.v === OTHER).length;
  assert.equal(others, n, 'other hits untouched');
  assert.ok(mine === 0 || mine === n, `all of the receipt's hits or none, found ${mine} of ${n}`);
  const [pending] = await client.cmd('XPENDING', HITS, 'fairstat');
  const audit = await streamEntries(client, 'fs:audit');
  const consent = await streamEntries(client, CONSENT);
  if (mine === n) {
    assert.equal(pending, n, 'nothing acknowledged');
    assert.deepEqual([audit.length, consent.length], [0, 0], 'no record of an erase that did not happen');
    return 'untouched';
  }
  assert.equal(pending, n / 2, 'the erased entries are no longer pending');
  assert.deepEqual(audit.map(({ id, ...r }) => ({ ...r, t: '' })),
    [{ action: 'forget', by: 'aggregator', site: SITE, hits: String(n), t: '' }]);
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

test('kill -9 while Redis runs the erase: the erase completes, all of it', async () => {
  await withRedis(async (redis, conf) => {
    const N = 20000;
    await fill(redis.client, N);
    const { proc, exited } = startForget(conf);
    let busy = false, done = false;
    exited.then(() => { done = true; });
    while (!busy && !done) {
      try {
        await redis.client.cmd('PING');
      } catch (e) {
        if (!(e instanceof RedisError) || !/^BUSY/.test(e.message)) throw e;
        busy = true;
        proc.kill('SIGKILL');
      }
    }
    assert.ok(busy, 'forget finished before its erase was ever seen running');
    assert.equal((await exited).signal, 'SIGKILL');
    assert.ok(await scriptEnded(redis.client), 'the erase outlived its client');
    assert.equal(await allOrNothing(redis.client, N), 'erased');
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
        assert.match(r.stdout, new RegExp(`erased ${N} buffered hits`));
        assert.equal(await allOrNothing(redis.client, N), 'erased');
      }
    }
    assert.ok(seen.has('untouched'), 'a kill before the erase was exercised');
  });
});
