// receipts.test.mjs -- per-site consent cookies and proof of consent, black
// box: two sites on one collector each with their own cookie name and domain,
// a 404 for one that leaves the other's cookie alone, receipts that carry
// what a consent receipt should and nothing that identifies the person, the
// `consents` export (JSON and CSV agree exactly), `audit`, and the consent
// coverage in `report`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startCollector, run, BIN, FIREFOX, streamEntries } from '../lib/harness.mjs';

const AGG = BIN('fairstat-aggregator');
const A = 'a.test';
const B = 'b.test';
const POLICY = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
const UA = FIREFOX + ' receipts-test-ua';
const IP = '203.0.113.77';

let redis, col;

before(async () => {
  redis = await startRedis();
  col = await startCollector(redis, {
    sections: { collector: { trusted_proxies: '127.0.0.1/32' } },
    sites: {
      [A]: { origins: 'https://a.test', cookie_domain: A, policy_sha256: POLICY.toUpperCase() },
      [B]: { origins: 'https://b.test', cookie_domain: B },
    },
  });
});
after(async () => {
  await col?.stop();
  await redis?.stop();
});

function consent(method, query, { body, cookie, origin } = {}) {
  const headers = { 'user-agent': UA, 'x-forwarded-for': IP };
  if (body) headers['content-type'] = 'application/json';
  if (cookie) headers.cookie = cookie;
  if (origin) headers.origin = origin;
  return fetch(col.base + '/consent' + query, { method, headers, body: body && JSON.stringify(body) });
}
async function choose(domain, analytics, query = '') {
  const r = await consent('POST', query, { body: { domain, analytics } });
  assert.equal(r.status, 200, await r.clone().text());
  return { r, body: await r.json(), pair: r.headers.get('set-cookie').split(';')[0] };
}
const agg = (...args) => run(AGG, ['-c', col.conf, ...args]);
const today = () => new Date().toISOString().slice(0, 10);

// A small RFC 4180 reader: quoted fields, doubled quotes.
function parseCsv(text) {
  const rows = [];
  let row = [], field = '', quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') field += text[++i];
      else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { row.push(field); field = ''; }
    else if (ch === '\n') { row.push(field); rows.push(row); row = []; field = ''; }
    else field += ch;
  }
  return rows;
}

test('each site sets its own cookie, named after it, on its own domain', async () => {
  const a = await choose(A, true);
  const b = await choose(B, false);
  assert.match(a.r.headers.get('set-cookie'), /^fs_consent_a\.test=1\.1\.[^;]+; Max-Age=\d+; Path=\/; SameSite=Lax; Domain=a\.test$/);
  assert.match(b.r.headers.get('set-cookie'), /^fs_consent_b\.test=1\.0\.[^;]+; Max-Age=\d+; Path=\/; SameSite=Lax; Domain=b\.test$/);
  assert.equal(a.body.cookie, 'fs_consent_a.test');
  assert.equal(b.body.cookie, 'fs_consent_b.test');
  // Each site reads its own cookie only: A's cookie is no consent on B.
  const both = `${a.pair}; ${b.pair}`;
  assert.equal((await consent('GET', '?domain=' + A, { cookie: both })).status, 200);
  const onB = await (await consent('GET', '?domain=' + B, { cookie: both })).json();
  assert.equal(onB.receipt, b.body.receipt);
  assert.equal(onB.analytics, false);
  const hit = (cookie) => fetch(col.base + '/api/event', {
    method: 'POST',
    headers: { 'content-type': 'text/plain', 'user-agent': FIREFOX, cookie, origin: 'https://b.test' },
    body: JSON.stringify({ d: B, n: 'pageview', u: 'https://b.test/' }),
  });
  const refused = await hit(a.pair);
  assert.equal(refused.status, 204);
  assert.equal(refused.headers.get('fairstat-status'), 'no-consent');
  // Readable by the page's script: refused by policy, told apart from stored.
  assert.equal(refused.headers.get('access-control-expose-headers'), 'Fairstat-Status');
});

test('a 404 for site B clears B\'s cookie only, never A\'s', async () => {
  const a = await choose(A, true);
  const r = await consent('DELETE', '?domain=' + B, { cookie: a.pair });
  assert.equal(r.status, 404);
  const cleared = r.headers.getSetCookie();
  assert.deepEqual(cleared.map((c) => c.split('=')[0]), ['fs_consent_b.test']);
  assert.match(cleared[0], /^fs_consent_b\.test=; Max-Age=0; .*Domain=b\.test$/);
  // A's choice stands.
  const shown = await consent('GET', '?domain=' + A, { cookie: a.pair });
  assert.equal(shown.status, 200);
  assert.equal((await shown.json()).receipt, a.body.receipt);
  // A withdrawal on A clears A's cookie, and only it.
  const w = await consent('DELETE', '?domain=' + A, { cookie: a.pair });
  assert.equal(w.status, 200);
  assert.deepEqual(w.headers.getSetCookie().map((c) => c.split(';')[0]), ['fs_consent_a.test=']);
});

test('receipts carry schema, method and policy, and nothing that identifies the person', async () => {
  const banner = await choose(A, true);
  const settings = await choose(A, false, '?method=settings');
  const bad = await consent('POST', '?method=email', { body: { domain: A, analytics: true } });
  assert.equal(bad.status, 400);
  const w = await consent('DELETE', '?domain=' + A, { cookie: settings.pair });
  assert.equal(w.status, 200);
  const entries = await streamEntries(redis.client, `fs:{${A}}:consent`);
  const mine = entries.filter((e) => e.id === banner.body.receipt || e.id === settings.body.receipt);
  const want = { sv: '1', pv: '1', ps: POLICY };
  const byMethod = Object.fromEntries(mine.map((e) => [e.m + ':' + e.a, e]));
  assert.deepEqual({ ...byMethod['banner:grant'], t: 0 },
    { id: banner.body.receipt, a: 'grant', an: '1', m: 'banner', t: 0, ...want });
  assert.deepEqual({ ...byMethod['settings:deny'], t: 0 },
    { id: settings.body.receipt, a: 'deny', an: '0', m: 'settings', t: 0, ...want });
  assert.deepEqual({ ...byMethod['withdrawal:withdraw'], t: 0 },
    { id: settings.body.receipt, a: 'withdraw', an: '0', m: 'withdrawal', t: 0, ...want });
  // Site B has no policy hash configured: recorded as empty, never invented.
  await choose(B, true);
  const bEntries = await streamEntries(redis.client, `fs:{${B}}:consent`);
  assert.equal(bEntries.at(-1).ps, '');
  const raw = JSON.stringify(await redis.client.cmd('XRANGE', `fs:{${A}}:consent`, '-', '+'));
  assert.ok(!raw.includes(IP) && !raw.includes('receipts-test-ua') && !raw.includes('Firefox'));
});

test('consents: JSON and CSV hold the same receipts, field for field', async () => {
  const given = await choose(A, true);
  // A receipt of an earlier version (schema 0, an id CSV must quote), and an
  // entry that is no receipt at all (no time): the first exported, the other not.
  const LEGACY = 'legacy,"q"';
  await redis.client.cmd('XADD', `fs:{${A}}:consent`, '*', 'id', LEGACY, 'a', 'grant', 'an', '1', 'pv', '0',
    't', String(Date.now()));
  await redis.client.cmd('XADD', `fs:{${A}}:consent`, '*', 'id', 'no-time', 'a', 'grant');
  const j = await agg('consents', '--site', A, '--format', 'json');
  assert.equal(j.code, 0, j.stderr);
  const { receipts } = JSON.parse(j.stdout);
  const entries = (await streamEntries(redis.client, `fs:{${A}}:consent`)).filter((e) => e.t);
  assert.equal(receipts.length, entries.length);
  const legacy = receipts.find((x) => x.receipt_id === LEGACY);
  assert.deepEqual([legacy.schema_version, legacy.method, legacy.policy_sha256, legacy.policy_version],
    [0, null, null, '0']);
  assert.equal(receipts.find((x) => x.action === 'withdraw').method, 'withdrawal');
  const rec = receipts.find((x) => x.receipt_id === given.body.receipt && x.action === 'grant');
  assert.deepEqual(Object.keys(rec), ['schema_version', 'record_id', 'receipt_id', 'site', 'time', 'time_ms',
    'action', 'purpose', 'analytics', 'method', 'policy_version', 'policy_sha256']);
  assert.equal(rec.schema_version, 1);
  assert.equal(rec.site, A);
  assert.equal(rec.purpose, 'analytics');
  assert.equal(rec.analytics, true);
  assert.equal(rec.method, 'banner');
  assert.equal(rec.policy_sha256, POLICY);
  assert.equal(rec.time, new Date(rec.time_ms).toISOString());
  for (const r of receipts) assert.ok(!JSON.stringify(r).includes(IP));

  const c = await agg('consents', '--site', A, '--format', 'csv');
  assert.equal(c.code, 0, c.stderr);
  const [head, ...rows] = parseCsv(c.stdout);
  assert.deepEqual(head, Object.keys(rec));
  assert.equal(rows.length, receipts.length);
  rows.forEach((row, i) => {
    const asText = head.map((k) => (receipts[i][k] === null ? '' : String(receipts[i][k])));
    assert.deepEqual(row, asText);
  });

  // --receipt picks one visitor's receipts; a range without any gives none.
  const one = JSON.parse((await agg('consents', '--site', A, '--receipt', given.body.receipt)).stdout);
  assert.deepEqual(one.receipts.map((x) => x.action), ['grant']);
  const day = today();
  const inRange = JSON.parse((await agg('consents', '--site', A, '--from', day, '--to', day)).stdout);
  assert.equal(inRange.receipts.length, receipts.length);
  const past = JSON.parse((await agg('consents', '--site', A, '--from', '2020-01-01', '--to', '2020-01-31')).stdout);
  assert.deepEqual(past, { receipts: [] });
  assert.equal((await agg('consents', '--format', 'json')).code, 2);
  assert.equal((await agg('consents', '--site', A, '--format', 'xml')).code, 2);
});

test('audit: withdrawals and purges as counts, filtered by site, table and json', async () => {
  await redis.client.cmd('XADD', 'fs:audit', '*', 'action', 'purge', 't', String(Date.now()), 'as_of',
    '2024-05-01T00:00:00Z', 'salts', '1', `${A}.raw`, '3', `${B}.raw`, '4', 'visitor', 'abcdef0123456789x');
  const j = await agg('audit', '--format', 'json');
  assert.equal(j.code, 0, j.stderr);
  const { records } = JSON.parse(j.stdout);
  const withdrawals = records.filter((r) => r.action === 'withdraw');
  assert.ok(withdrawals.length >= 2);
  assert.deepEqual(Object.keys(withdrawals[0]).sort(), ['action', 'by', 'hits', 'id', 'site', 't', 'time']);
  assert.equal(withdrawals[0].by, 'collector');
  const purge = records.find((r) => r.action === 'purge');
  assert.equal(purge[`${A}.raw`], 3);
  assert.equal(purge[`${B}.raw`], 4);
  // A field that is neither a known text nor a count never leaves.
  assert.equal(purge.visitor, undefined);

  const onlyB = JSON.parse((await agg('audit', '--site', B, '--format', 'json')).stdout).records;
  assert.ok(onlyB.every((r) => r.site === B || r.action === 'purge'));
  const purgeB = onlyB.find((r) => r.action === 'purge');
  assert.equal(purgeB[`${B}.raw`], 4);
  assert.equal(purgeB[`${A}.raw`], undefined);
  assert.ok(!onlyB.some((r) => r.action === 'withdraw'));

  const t = await agg('audit', '--site', A);
  assert.equal(t.code, 0, t.stderr);
  const lines = t.stdout.trim().split('\n');
  assert.match(lines[0], /^TIME\s+ACTION\s+BY\s+SITE\s+COUNTS$/);
  assert.ok(lines.some((l) => /withdraw\s+collector\s+a\.test\s+hits=\d+/.test(l)));
  assert.ok(lines.some((l) => /purge .* a\.test\.raw=3/.test(l) && !l.includes('b.test')));
  const none = JSON.parse((await agg('audit', '--from', '2020-01-01', '--to', '2020-01-02', '--format', 'json')).stdout);
  assert.deepEqual(none, { records: [] });
});

test('report: consent coverage per day from the receipts, in every format', async () => {
  // Receipts only: the entry without a time is none.
  const entries = (await streamEntries(redis.client, `fs:{${A}}:consent`)).filter((e) => e.t);
  const count = (a) => entries.filter((e) => e.a === a).length;
  const day = today();
  const r = await agg('report', '--site', A, '--from', day, '--to', day, '--format', 'json');
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(r.stdout);
  const acc = count('grant'), rej = count('deny');
  assert.deepEqual(rep.consent_coverage, [{
    date: day, accept: acc, reject: rej, withdraw: count('withdraw'),
    accept_share: Math.round((1000 * acc) / (acc + rej)) / 10,
  }]);
  assert.ok(rep.notes.consent_coverage.length === 1);
  const csv = await agg('report', '--site', A, '--from', day, '--to', day, '--format', 'csv');
  assert.ok(csv.stdout.includes(`consent_coverage,${day},accept,${acc}\r\n`));
  const table = await agg('report', '--site', A, '--from', day, '--to', day);
  assert.match(table.stdout, /\nConsent coverage\n\s+date\s+accept\s+reject\s+withdraw\s+accept_share\n/);
  // A day without choices has no row.
  const empty = JSON.parse((await agg('report', '--site', A, '--from', '2020-01-01', '--to', '2020-01-01', '--format', 'json')).stdout);
  assert.deepEqual(empty.consent_coverage, []);
});
