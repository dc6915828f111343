// faults.test.mjs -- nothing lost, nothing counted twice, whatever fails.
// Black-box: a real redis-server (AOF, appendfsync everysec), the real
// collector with its spool, the real aggregator. Each scenario runs a few
// seconds of beacons from a small load loop while something fails, then lets
// the spool drain, runs `fairstat-aggregator run --once` and compares the
// pageviews counted with the beacons answered 202. It prints sent, 202'd,
// counted, lost and double-counted; lost and double-counted must be 0.
//
// FAULTS_SCALE=N (default 1; `make soak` sets 10) multiplies each scenario's
// load time and outage durations, and with them the beacons sent and the
// spool to replay; the waits for a drain and for the aggregator grow alike.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  BIN, FIREFOX, Redis, consentCookie, freePort, run, sleep, waitFor, writeConfig,
} from '../lib/harness.mjs';

const SITE = 'example.com';
const SCALE = Math.max(1, Number(process.env.FAULTS_SCALE) || 1);
// A load or outage duration, in ms, scaled.
const ms = (n) => n * SCALE;
let nextPage = 0;
// Every beacon has a path of its own, so that each is followed to its count.
const page = () => {
  const p = `/f/${nextPage++}`;
  return [p, JSON.stringify({ domain: SITE, name: 'pageview', url: `https://example.com${p}` })];
};

// A redis-server that can be stopped and started again on its port and dir.
async function persistentRedis() {
  const dir = mkdtempSync(path.join(tmpdir(), 'fs-faults-redis-'));
  const port = await freePort();
  const r = {
    dir, port, url: `redis://127.0.0.1:${port}/0`, proc: null, client: null,
    async start() {
      r.proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
        '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec',
        '--logfile', path.join(dir, 'redis.log')], { stdio: 'ignore' });
      await waitFor('redis-server', async () => {
        r.client?.close();
        r.client = await new Redis(port).connect();
        return (await r.client.cmd('PING')) === 'PONG';
      });
    },
    async kill() {
      r.client?.close();
      r.client = null;
      const p = r.proc;
      p.kill('SIGKILL');
      await new Promise((res) => (p.exitCode !== null || p.signalCode ? res() : p.once('exit', res)));
    },
    async stop() {
      await r.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await r.start();
  return r;
}

// The collector as a process that can be killed and started again on the
// same config (and so the same spool directory).
async function collector(dir, redis, extra = {}) {
  const port = await freePort();
  const conf = writeConfig(dir, {
    port, redisUrl: redis.url,
    sections: {
      collector: { redis_timeout: '500ms', spool_dir: path.join(dir, 'spool'), ...extra },
      aggregator: { batch: 100, block_ms: 100, max_members: 1000000, max_page_visitors: 0 },
    },
  });
  const c = {
    conf, port, base: `http://127.0.0.1:${port}`, proc: null, output: '',
    async start() {
      c.proc = spawn(BIN('fairstat-collector'), ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
      c.proc.stdout.on('data', (d) => { c.output += d; });
      c.proc.stderr.on('data', (d) => { c.output += d; });
      await waitFor('collector /healthz', async () => {
        if (c.proc.exitCode !== null) throw new Error('collector exited: ' + c.output);
        return (await fetch(c.base + '/healthz')).status === 200;
      });
    },
    async kill(sig = 'SIGKILL') {
      const p = c.proc;
      if (p.exitCode !== null) return p.exitCode;
      p.kill(sig);
      return new Promise((res) => p.once('exit', (code) => res(code)));
    },
    async metric(name) {
      const text = await (await fetch(c.base + '/metrics')).text();
      const m = text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
      return m ? Number(m[1]) : NaN;
    },
  };
  await c.start();
  return c;
}

// Beacons from `workers` loops until stop() is called; counts what was sent
// and what got a 202. A request that fails (connection refused while the
// collector is down) counts as sent, not 202'd.
function load(c, cookie, workers = 8) {
  const st = { sent: 0, accepted: 0, other: {}, ok: new Set() };
  let running = true;
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      st.sent++;
      const [p, body] = page();
      try {
        const r = await fetch(c.base + '/api/event', {
          method: 'POST', body,
          headers: { 'content-type': 'text/plain', 'user-agent': FIREFOX, cookie },
        });
        await r.arrayBuffer();
        if (r.status === 202) {
          st.accepted++;
          st.ok.add(p);
        }
        else st.other[r.status] = (st.other[r.status] || 0) + 1;
      } catch {
        st.other.error = (st.other.error || 0) + 1;
        await sleep(20);
      }
    }
  });
  return { st, async stop() { running = false; await Promise.all(loops); return st; } };
}

async function counted(conf) {
  const r = await run(BIN('fairstat-aggregator'), ['-c', conf, 'run', '--once'], { timeout: ms(60000) });
  assert.equal(r.code, 0, r.stderr);
  const day = new Date().toISOString().slice(0, 10);
  const yesterday = new Date(Date.now() - 864e5).toISOString().slice(0, 10);
  const rep = await run(BIN('fairstat-aggregator'), ['-c', conf, 'report', '--site', SITE,
    '--from', yesterday, '--to', day, '--format', 'json', '--limit', '100000']);
  const j = JSON.parse(rep.stdout);
  // report --limit stops at 100,000 rows: past it the check below cannot see each page.
  assert.ok(j.totals.pageviews <= 100000, `${j.totals.pageviews} pages: more than report --limit shows, ` +
    'lower FAULTS_SCALE');
  return { total: j.totals.pageviews, pages: new Map(j.pages.map((x) => [x.page, x.pageviews])) };
}

async function drained(c) {
  await waitFor('spool replayed', async () => (await c.metric('fairstat_spool_bytes')) === 0 &&
    (await fetch(c.base + '/readyz')).status === 200, ms(30000));
}

// lost: a 202'd beacon not counted; double-counted: any beacon counted more
// than once. A beacon whose answer never came (the collector killed) may be
// counted once or not at all: "stored without a 202".
function report(name, st, count) {
  let lost = 0, doubled = 0, unanswered = 0;
  for (const p of st.ok) if (!count.pages.get(p)) lost++;
  for (const [p, n] of count.pages) {
    if (n > 1) doubled++;
    if (!st.ok.has(p)) unanswered++;
  }
  console.log(`# ${name}: sent ${st.sent}, 202 ${st.accepted}, counted ${count.total}, lost ${lost}, ` +
    `double-counted ${doubled}, stored without a 202 ${unanswered}, other ${JSON.stringify(st.other)}`);
  assert.equal(count.pages.size, count.total, 'one pageview per page');
  assert.equal(lost, 0, 'lost');
  assert.equal(doubled, 0, 'double-counted');
}

async function scenario(name, fn, extra) {
  const redis = await persistentRedis();
  const dir = mkdtempSync(path.join(tmpdir(), 'fs-faults-'));
  const c = await collector(dir, redis, extra);
  try {
    const cookie = await consentCookie(c.base, SITE);
    const st = await fn({ redis, c, cookie });
    await drained(c);
    report(name, st, await counted(c.conf));
    return st;
  } finally {
    await c.kill();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('Redis stopped for seconds under load, then started: every 202 counted once', async () => {
  const st = await scenario(`redis stopped ${2 * SCALE} s`, async ({ redis, c, cookie }) => {
    const l = load(c, cookie);
    await sleep(ms(500));
    await redis.kill();
    await sleep(ms(2000));
    await redis.start();
    await sleep(ms(500));
    return l.stop();
  });
  assert.ok(st.accepted > 0);
});

test('Redis frozen (SIGSTOP) beyond redis_timeout, then resumed: every 202 counted once', async () => {
  const st = await scenario(`redis frozen ${0.5 + 1.5 * SCALE} s`, async ({ redis, c, cookie }) => {
    const l = load(c, cookie);
    await sleep(ms(500));
    redis.proc.kill('SIGSTOP');
    await waitFor('readyz 503', async () => (await fetch(c.base + '/readyz')).status === 503);
    assert.equal((await fetch(c.base + '/healthz')).status, 200, 'still taking hits: spooling');
    await sleep(ms(1500));
    redis.proc.kill('SIGCONT');
    await sleep(ms(500));
    const s = await l.stop();
    assert.ok(await c.metric('fairstat_spool_hits_total') > 0, 'hits went to the spool');
    return s;
  });
  assert.ok(st.accepted > 0);
});

// A write Redis refuses (an error reply: here maxmemory reached, OOM) did not
// land, while the hits after it on the same connection do once Redis takes
// writes again: the refused ones are spooled and replayed, and each must be
// counted, not taken for the twin of an original that landed.
test('Redis refusing writes (maxmemory reached), then taking them again: every 202 counted once', async () => {
  const st = await scenario('redis OOM', async ({ redis, c, cookie }) => {
    const l = load(c, cookie);
    await sleep(ms(300));
    await redis.client.cmd('CONFIG', 'SET', 'maxmemory', '1');
    await waitFor('hits spooled', async () => await c.metric('fairstat_spool_hits_total') > 20 * SCALE,
      ms(10000));
    await redis.client.cmd('CONFIG', 'SET', 'maxmemory', '0');
    await sleep(ms(500));
    return l.stop();
  });
  assert.ok(st.accepted > 0);
});

test('kill -9 of the collector under load, then restart: the spool is replayed', async () => {
  await scenario('collector kill -9 while spooling', async ({ redis, c, cookie }) => {
    const l = load(c, cookie);
    await sleep(ms(300));
    redis.proc.kill('SIGSTOP');             // hits go to the spool...
    await sleep(ms(1500));
    await c.kill('SIGKILL');                // ...and the collector dies with them on disk
    redis.proc.kill('SIGCONT');
    await c.start();                        // same spool directory
    await sleep(ms(500));
    return l.stop();
  });
});

test('Redis restarted from its AOF (everysec) between batches: every 202 counted once', async () => {
  await scenario('redis restart from AOF', async ({ redis, c, cookie }) => {
    const l = load(c, cookie);
    await sleep(ms(700));
    const first = await l.stop();
    // everysec: wait for the fsync of what was acknowledged, then restart.
    await sleep(1500);
    await redis.kill();
    await redis.start();
    await waitFor('readyz 200', async () => (await fetch(c.base + '/readyz')).status === 200);
    const l2 = load(c, cookie);
    await sleep(ms(700));
    const second = await l2.stop();
    return { sent: first.sent + second.sent, accepted: first.accepted + second.accepted,
      other: { ...first.other, ...second.other }, ok: new Set([...first.ok, ...second.ok]) };
  });
});

test('SIGTERM: in-flight hits are answered, the spool synced, exit 0', async () => {
  const redis = await persistentRedis();
  const dir = mkdtempSync(path.join(tmpdir(), 'fs-faults-'));
  const c = await collector(dir, redis, { shutdown_timeout: '3s' });
  try {
    const cookie = await consentCookie(c.base, SITE);
    const l = load(c, cookie, 4);
    await sleep(ms(300));
    assert.equal(await c.kill('SIGTERM'), 0);
    const st = await l.stop();
    await c.start();
    await drained(c);
    report('collector SIGTERM under load', st, await counted(c.conf));
  } finally {
    await c.kill();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

// The spool directory damaged while the collector is down: the restart must
// still start, replay every good record once and count the bad ones.
//   Redis down: A (5 beacons) spooled, the collector killed; a copy of A's
//   file kept; Redis up, the collector restarted replays A (file deleted).
//   Redis down again: B (8) spooled into a new file, the collector killed.
//   Damage: (a) B's last record cut in its middle; (b) a byte flipped in the
//   payload of B's fourth record; (c) position files deleted (none is left
//   when nothing was partly replayed) and A's file put back without one, as
//   if its deletion had been lost: replayed from the start, counted once;
//   (d) a garbage file named like a spool file.
// Expected: A, and B but its fourth and last, each counted once; 3 records
// skipped (torn, corrupt, garbage).
// (A collector started while Redis is down answers 503: it has no salts. So
// the collector is restarted only with Redis up.)
test('a damaged spool directory: the collector starts, replays the good records once, counts the bad', async () => {
  const redis = await persistentRedis();
  const dir = mkdtempSync(path.join(tmpdir(), 'fs-faults-'));
  const spool = path.join(dir, 'spool');
  const c = await collector(dir, redis);
  const spoolFiles = () => readdirSync(spool).filter((f) => /^w\d+-\d+\.spool$/.test(f)).sort();
  // Offsets of the records of a spool file: u32 length, u32 CRC32C, payload.
  const records = (file) => {
    const buf = readFileSync(path.join(spool, file));
    const at = [];
    for (let o = 0; o + 8 <= buf.length; o += 8 + buf.readUInt32LE(o)) at.push(o);
    return { buf, at };
  };
  const post = async (cookie, n) => {
    const pages = [];
    for (let i = 0; i < n; i++) {
      const [p, body] = page();
      const r = await fetch(c.base + '/api/event', {
        method: 'POST', body, headers: { 'content-type': 'text/plain', 'user-agent': FIREFOX, cookie },
      });
      assert.equal(r.status, 202, `beacon ${p} spooled`);
      pages.push(p);
    }
    return pages;
  };
  try {
    const cookie = await consentCookie(c.base, SITE);
    await redis.kill();
    const a = await post(cookie, 5);
    await c.kill('SIGKILL');
    const [fileA] = spoolFiles();
    assert.equal(records(fileA).at.length, 5);
    const savedA = readFileSync(path.join(spool, fileA));
    await redis.start();
    await c.start();
    await drained(c);
    assert.deepEqual(spoolFiles(), [], 'A replayed and its file deleted');

    await redis.kill();
    const b = await post(cookie, 8);
    await c.kill('SIGKILL');
    const [fileB, ...more] = spoolFiles();
    assert.deepEqual(more, []);
    assert.notEqual(fileB, fileA, 'spool file names do not repeat');
    const rb = records(fileB);
    assert.equal(rb.at.length, 8);

    // (b) one byte of B's fourth record's payload (in its site name) flipped.
    rb.buf[rb.at[3] + 8 + 11 + 2] ^= 0x20;
    // (a) B's last record torn in its middle.
    const last = rb.at[7];
    writeFileSync(path.join(spool, fileB), rb.buf.subarray(0, last + 8 + (rb.buf.readUInt32LE(last) >> 1)));
    // (c) no position files; A's file back under its own name.
    for (const f of readdirSync(spool)) if (f.endsWith('.pos')) unlinkSync(path.join(spool, f));
    writeFileSync(path.join(spool, fileA), savedA, { mode: 0o600 });
    // (d) garbage named like a spool file (its "length" is absurd).
    writeFileSync(path.join(spool, 'w0-0000000099.spool'), 'this is not a spool record\n'.repeat(10),
      { mode: 0o600 });

    await redis.start();
    await c.start();                         // it starts, whatever the directory holds
    await drained(c);
    assert.deepEqual(spoolFiles(), [], 'every file read to its end and deleted');
    assert.equal(await c.metric('fairstat_spool_corrupt_total'), 3, 'torn + flipped + garbage');
    assert.equal(await c.metric('fairstat_spool_replayed_total'), 5 + 6);

    const good = [...a, ...b.filter((_, i) => i !== 3 && i !== 7)];
    const count = await counted(c.conf);
    console.log(`# damaged spool: 202 ${a.length + b.length}, good records ${good.length}, ` +
      `counted ${count.total}, skipped 3`);
    assert.deepEqual([...count.pages.keys()].sort(), [...good].sort(), 'the good records, and only them');
    for (const p of good) assert.equal(count.pages.get(p), 1, `${p} counted once`);
    assert.equal(count.total, good.length);
  } finally {
    await c.kill();
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
