// archive.test.mjs -- the receipt archive, black box: receipts written
// through the collector's POST and DELETE /consent (and one older receipt of
// an earlier month put into the stream as the collector writes it) move to
// encrypted files with `archive --as-of` a month and more ahead; `consents`
// prints the same before and after; the archive holds no address, agent or
// visitor hash; `archive --verify` passes, then reports a flipped byte, a
// removed record and a swapped file, each naming the file; a wrong key fails
// clearly; purge drops expired archive files with an audit record.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync, statSync, cpSync, renameSync,
  rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startRedis, startCollector, run, BIN, FIREFOX, waitFor } from '../lib/harness.mjs';

const AGG = BIN('fairstat-aggregator');
const A = 'a.test';
const B = 'b.test';
const UA = FIREFOX + ' archive-test-ua';
const IP = '203.0.113.91';
const KEY = 'k1:' + Buffer.alloc(32, 7).toString('base64');
const WRONG = 'k1:' + Buffer.alloc(32, 9).toString('base64');
const OLD_ID = '1704844800000-0';          // 2024-01-10: a file of its own month

let redis, col, work, archiveDir, keyFile;

before(async () => {
  redis = await startRedis();
  col = await startCollector(redis, {
    sections: { collector: { trusted_proxies: '127.0.0.1/32' } },
    sites: { [A]: { origins: 'https://a.test', cookie_domain: A }, [B]: { origins: 'https://b.test' } },
  });
  work = mkdtempSync(path.join(tmpdir(), 'fs-archive-'));
  archiveDir = path.join(work, 'archive');
  keyFile = path.join(work, 'archive.key');
  writeFileSync(keyFile, KEY + '\n', { mode: 0o600 });
});
after(async () => {
  await col?.stop();
  await redis?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const agg = (opts, ...args) => run(AGG, ['-c', col.conf,
  '-o', `archive.dir=${opts.dir || archiveDir}`, '-o', `archive.key=file:${opts.key || keyFile}`,
  ...(opts.o || []).flatMap((o) => ['-o', o]), ...args]);

function consent(method, query, { body, cookie } = {}) {
  const headers = { 'user-agent': UA, 'x-forwarded-for': IP };
  if (body) headers['content-type'] = 'application/json';
  if (cookie) headers.cookie = cookie;
  return fetch(col.base + '/consent' + query, { method, headers, body: body && JSON.stringify(body) });
}

// The frames of an archive file: [{type, off, len}] (docs/protocol.md, Archive).
function frames(buf) {
  const out = [];
  for (let o = 8; o + 5 <= buf.length;) {
    const len = 5 + buf.readUInt32BE(o + 1);
    out.push({ type: String.fromCharCode(buf[o]), off: o, len });
    o += len;
  }
  return out;
}

function copyArchive(name) {
  const dir = path.join(work, name);
  cpSync(archiveDir, dir, { recursive: true });
  return dir;
}

let before_json, before_csv, files;

test('archive moves old receipts out of Redis and consents prints the same', async () => {
  // A receipt of January 2024, as the collector writes one.
  await redis.client.cmd('XADD', `fs:{${A}}:consent`, OLD_ID, 'id', 'old-receipt', 'a', 'grant', 'an', '1',
    'pv', '1', 't', '1704844800000', 'sv', '1', 'm', 'banner', 'ps', '');
  const grant = await consent('POST', '', { body: { domain: A, analytics: true } });
  assert.equal(grant.status, 200);
  const pair = grant.headers.get('set-cookie').split(';')[0];
  assert.equal((await consent('POST', '?method=settings', { body: { domain: A, analytics: false } })).status, 200);
  assert.equal((await consent('DELETE', '?domain=' + A, { cookie: pair })).status, 200);

  const j = await agg({}, 'consents', '--site', A, '--format', 'json');
  assert.equal(j.code, 0, j.stderr);
  before_json = j.stdout;
  before_csv = (await agg({}, 'consents', '--site', A, '--format', 'csv')).stdout;
  const receipts = JSON.parse(before_json).receipts;
  assert.equal(receipts.length, 4);
  assert.ok(receipts.some((r) => r.action === 'withdraw' && r.method === 'withdrawal'));

  const future = new Date(Date.now() + 40 * 86400e3).toISOString().replace(/\.\d+Z$/, 'Z');
  const a = await agg({}, 'archive', '--as-of', future);
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stdout, /a\.test: archived 4 consent receipts/);
  assert.equal(await redis.client.cmd('XLEN', `fs:{${A}}:consent`), 0);

  files = readdirSync(archiveDir).sort();
  assert.equal(files.length, 2);
  assert.equal(files[0], 'a.test.2024-01.fsa');
  assert.match(files[1], /^a\.test\.\d{4}-\d{2}\.fsa$/);
  assert.equal(statSync(archiveDir).mode & 0o777, 0o700);
  for (const f of files) assert.equal(statSync(path.join(archiveDir, f)).mode & 0o777, 0o600);

  // Every record comes back, in order, the withdrawal included.
  assert.equal((await agg({}, 'consents', '--site', A, '--format', 'json')).stdout, before_json);
  assert.equal((await agg({}, 'consents', '--site', A, '--format', 'csv')).stdout, before_csv);
  // Nothing of the receipts' text is in the files in clear (the heads name
  // the file, the site and counts only).
  for (const f of files) {
    const raw = readFileSync(path.join(archiveDir, f));
    for (const s of ['old-receipt', 'receipt_id', 'withdraw', 'analytics', 'policy', IP, 'Firefox'])
      assert.ok(!raw.includes(s), s);
  }
  // What the archive decrypts to names nothing of the person.
  const text = JSON.stringify(JSON.parse(before_json));
  assert.ok(!text.includes(IP) && !text.includes('archive-test-ua') && !text.includes('Firefox'));
  for (const r of receipts)
    assert.deepEqual(Object.keys(r), ['schema_version', 'record_id', 'receipt_id', 'site', 'time', 'time_ms',
      'action', 'purpose', 'analytics', 'method', 'policy_version', 'policy_sha256']);
});

test('a second run archives nothing twice', async () => {
  const future = new Date(Date.now() + 40 * 86400e3).toISOString().replace(/\.\d+Z$/, 'Z');
  const a = await agg({}, 'archive', '--as-of', future);
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stdout, /a\.test: archived 0 consent receipts/);
  assert.equal((await agg({}, 'consents', '--site', A, '--format', 'json')).stdout, before_json);
});

test('archive --verify passes on an intact archive', async () => {
  const v = await agg({}, 'archive', '--verify');
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /archive ok: 2 files, 4 records/);
});

async function verifyFails(dir, file, pattern) {
  const v = await agg({ dir }, 'archive', '--verify');
  assert.equal(v.code, 1, v.stdout + v.stderr);
  assert.ok(v.stderr.includes(path.join(dir, file)), v.stderr);
  assert.match(v.stderr, pattern);
}

test('a flipped byte is reported with its file and record', async () => {
  const dir = copyArchive('flipped');
  const p = path.join(dir, files[1]);
  const buf = readFileSync(p);
  const r = frames(buf).filter((f) => f.type === 'R');
  buf[r[1].off + r[1].len - 20] ^= 0x01;
  writeFileSync(p, buf);
  await verifyFails(dir, files[1], /record 1 does not authenticate/);
});

test('a removed record is reported', async () => {
  const dir = copyArchive('removed');
  const p = path.join(dir, files[1]);
  const buf = readFileSync(p);
  const r = frames(buf).filter((f) => f.type === 'R');
  writeFileSync(p, Buffer.concat([buf.subarray(0, r[0].off), buf.subarray(r[0].off + r[0].len)]));
  await verifyFails(dir, files[1], /record 0 does not authenticate/);
});

test('a swapped file is reported', async () => {
  const dir = copyArchive('swapped');
  const [a, b] = files.map((f) => path.join(dir, f));
  renameSync(a, a + '.x');
  renameSync(b, a);
  renameSync(a + '.x', b);
  await verifyFails(dir, files[0], /does not authenticate|names another file/);
});

test('a wrong key fails clearly', async () => {
  const wrong = path.join(work, 'wrong.key');
  writeFileSync(wrong, WRONG + '\n', { mode: 0o600 });
  chmodSync(wrong, 0o600);
  const v = await agg({ key: wrong }, 'archive', '--verify');
  assert.equal(v.code, 1);
  assert.match(v.stderr, /cannot decrypt \S+a\.test\.2024-01\.fsa record 0 with key k1: wrong key\?/);
  const c = await agg({ key: wrong }, 'consents', '--site', A);
  assert.equal(c.code, 1);
  assert.match(c.stderr, /wrong key\?/);
});

test('purge drops expired archive files with an audit record, and the chain still verifies', async () => {
  const p = await agg({ o: ['retention.consent_receipts=365d'] }, 'purge');
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, /a\.test: removed 1 archive files \(1 consent receipts\)/);
  assert.deepEqual(readdirSync(archiveDir).filter((f) => f.endsWith('.fsa')), [files[1]]);
  const audit = await redis.client.cmd('XRANGE', 'fs:audit', '-', '+');
  const rec = audit.map(([, kv]) => Object.fromEntries(kv.map((v, i) => (i % 2 ? null : [v, kv[i + 1]])).filter(Boolean)))
    .find((r) => r.action === 'archive_purge');
  assert.ok(rec, JSON.stringify(audit));
  assert.deepEqual([rec.site, rec.files, rec.records, rec.by], [A, '1', '1', 'aggregator']);
  const v = await agg({}, 'archive', '--verify');
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /archive ok: 1 files, 3 records/);
  const after_ = JSON.parse((await agg({}, 'consents', '--site', A, '--format', 'json')).stdout).receipts;
  assert.deepEqual(after_, JSON.parse(before_json).receipts.filter((r) => r.record_id !== OLD_ID));
});

test('the daemon archives on its timer (first at start)', async () => {
  const dir = path.join(work, 'daemon');
  await redis.client.cmd('XADD', `fs:{${B}}:consent`, '1706745600000-0', 'id', 'b-old', 'a', 'deny', 'an', '0',
    'pv', '1', 't', '1706745600000', 'sv', '1', 'm', 'banner', 'ps', '');
  const proc = spawn(AGG, ['-c', col.conf, '-o', `archive.dir=${dir}`, '-o', `archive.key=file:${keyFile}`,
    '-o', 'aggregator.archive_interval=1h', 'run'], { stdio: 'ignore' });
  try {
    await waitFor('the daemon archived b.test', async () =>
      (await redis.client.cmd('XLEN', `fs:{${B}}:consent`)) === 0);
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
  }
  assert.deepEqual(readdirSync(dir), ['b.test.2024-02.fsa']);
  const c = await agg({ dir }, 'consents', '--site', B, '--format', 'json');
  assert.equal(c.code, 0, c.stderr);
  assert.deepEqual(JSON.parse(c.stdout).receipts.map((r) => [r.receipt_id, r.action]), [['b-old', 'deny']]);
});
