// serve.test.mjs -- `fairstat-aggregator serve` black-box: known hits folded by
// the real `run --once` into a private Redis, then the Stats API asked every
// supported query shape with exact expected numbers; access (no token, wrong
// token, another site's token, the right one; the login cookie, share links);
// refusals with Plausible's kind of message; CORS only when configured.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedis, writeConfig, run, BIN, startServe as startServeWith } from '../lib/harness.mjs';

const AGG = process.env.FAIRSTAT_AGGREGATOR || BIN('fairstat-aggregator');
const SITE = 'example.com';
const OTHER = 'shop.test';
const MIN = 60 * 1000;
const sha = (s) => createHash('sha256').update(s).digest('hex');

const ALL_TOKEN = 'all-sites-token-0123456789';
const SITE_TOKEN = 'example-only-token-0123456789';
const OTHER_TOKEN = 'shop-only-token-0123456789';
const SHARE_SECRET = 'share-secret-for-example';

let redis, dir, conf;

// Three tokens do not fit on one line (199 characters): a file holds them.
function config(sections = {}) {
  const tokens = path.join(dir, 'tokens');
  writeFileSync(tokens, `# every site\nsha256:${sha(ALL_TOKEN)}\nsha256:${sha(SITE_TOKEN)}@${SITE}\n` +
    `sha256:${sha(OTHER_TOKEN)}@${OTHER} # the shop\n`);
  return writeConfig(dir, {
    port: 1,
    redisUrl: redis.url,
    sections: {
      retention: { aggregates: '10y' },   // the 2024 fixtures outlive the default
      serve: {
        tokens: `file:${tokens}`,
      },
      ...sections,
    },
    sites: {
      [SITE]: { origins: 'https://example.com', timezone: 'UTC', share: `sha256:${sha(SHARE_SECRET)}` },
      [OTHER]: { origins: 'https://shop.test' },
    },
  });
}

// Starts `serve` on a free port with -o overrides and the config's tokens.
const startServe = (overrides = []) => startServeWith(conf, { token: null, overrides });

function hit(t, p, v, extra = {}) {
  return { t: String(t), n: 'pageview', p, c: 'DE', b: 'Firefox', o: 'Linux', dv: 'desktop', v, ...extra };
}

// Two days of known traffic on example.com (UTC):
//  v1 2024-05-01 10:00 /landing (news.example, utm nl) 10:05 /pricing, event signup_click 10:06, 10:12 /signup
//  v2 11:00 /landing (direct, FR, Chrome, Windows, mobile): a bounce
//  v3 11:30 /blog (news.example) 11:40 /landing
//  v4 2024-05-02 09:00 /landing (direct): a bounce
const D1 = Date.parse('2024-05-01T10:00:00Z');
const D2 = Date.parse('2024-05-02T09:00:00Z');
const V = (n) => String(n).repeat(16);
const HITS = [
  hit(D1, '/landing', V(1), { r: 'news.example', us: 'nl' }),
  hit(D1 + 5 * MIN, '/pricing', V(1)),
  hit(D1 + 6 * MIN, '/pricing', V(1), { n: 'signup_click' }),
  hit(D1 + 12 * MIN, '/signup', V(1)),
  hit(D1 + 60 * MIN, '/landing', V(2), { c: 'FR', b: 'Chrome', o: 'Windows', dv: 'mobile' }),
  hit(D1 + 90 * MIN, '/blog', V(3), { r: 'news.example' }),
  hit(D1 + 100 * MIN, '/landing', V(3)),
  hit(D2, '/landing', V(4)),
];

before(async () => {
  redis = await startRedis();
  dir = mkdtempSync(path.join(tmpdir(), 'fs-serve-'));
  conf = config();
  for (const h of HITS) await redis.client.cmd('XADD', `fs:{${SITE}}:hits`, '*', ...Object.entries(h).flat());
  await redis.client.cmd('XADD', `fs:{${OTHER}}:hits`, '*', ...Object.entries(hit(D1, '/', V(9))).flat());
  const r = await run(AGG, ['-c', conf, 'run', '--once']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await redis.client.cmd('XLEN', `fs:{${SITE}}:hits`), 0);
});
after(async () => {
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const RANGE = ['2024-05-01', '2024-05-02'];

async function query(base, body, token = ALL_TOKEN) {
  const r = await fetch(base + '/api/v2/query', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify({ site_id: SITE, date_range: RANGE, ...body }),
  });
  return { status: r.status, headers: r.headers, json: await r.json() };
}

// The results as [[dimensions..., metrics...], ...] for compact comparison.
async function rows(base, body) {
  const r = await query(base, body);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json.results.map((x) => [...x.dimensions, ...x.metrics]);
}

async function refused(base, body, message) {
  const r = await query(base, body);
  assert.equal(r.status, 400, JSON.stringify(r.json));
  assert.equal(typeof r.json.error, 'string');
  assert.match(r.json.error, message);
}

test('every supported query shape answers the exact numbers of the known hits', async () => {
  const s = await startServe();
  try {
    assert.deepEqual(await rows(s.base, {
      metrics: ['visitors', 'visits', 'pageviews', 'bounce_rate', 'visit_duration', 'views_per_visit', 'events'],
    }), [[4, 4, 7, 50, 330, 1.75, 1]]);
    assert.deepEqual(await rows(s.base, { metrics: ['visitors', 'visits', 'pageviews', 'bounce_rate'], dimensions: ['time:day'] }),
      [['2024-05-01', 3, 3, 6, 33], ['2024-05-02', 1, 1, 1, 100]]);
    assert.deepEqual(await rows(s.base, { metrics: ['pageviews', 'visits', 'events'], dimensions: ['time:hour'], date_range: ['2024-05-01', '2024-05-01'] }),
      [['2024-05-01 10:00:00', 3, 1, 1], ['2024-05-01 11:00:00', 3, 2, 0]]);
    assert.deepEqual(await rows(s.base, { metrics: ['pageviews', 'visitors'], dimensions: ['event:page'] }),
      [['/landing', 4, 4], ['/blog', 1, 1], ['/pricing', 1, 1], ['/signup', 1, 1]]);
    assert.deepEqual(await rows(s.base, { metrics: ['events'], dimensions: ['event:name'] }), [['signup_click', 1]]);
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], dimensions: ['visit:entry_page'] }), [['/landing', 3], ['/blog', 1]]);
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], dimensions: ['visit:exit_page'] }), [['/landing', 3], ['/signup', 1]]);
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], dimensions: ['visit:source'] }), [['(direct)', 2], ['news.example', 2]]);
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], dimensions: ['visit:utm_source'] }), [['nl', 1]]);
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], dimensions: ['visit:country'] }), [['DE', 3], ['FR', 1]]);
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], dimensions: ['visit:browser'] }), [['Firefox', 3], ['Chrome', 1]]);
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], dimensions: ['visit:os'] }), [['Linux', 3], ['Windows', 1]]);
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], dimensions: ['visit:device'] }), [['desktop', 3], ['mobile', 1]]);
  } finally {
    assert.equal(await s.stop(), 0, 'SIGTERM stops serve cleanly');
  }
});

test('filters, ordering and pagination are answered from the aggregates exactly', async () => {
  const s = await startServe();
  try {
    // a filter on the dimension of a total: that row's count
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], filters: [['is', 'visit:country', ['DE']]] }), [[3]]);
    assert.deepEqual(await rows(s.base, { metrics: ['visitors', 'pageviews'], filters: [['is', 'event:page', ['/landing']]] }), [[4, 4]]);
    assert.deepEqual(await rows(s.base, { metrics: ['visitors', 'pageviews'], dimensions: ['time:day'], filters: [['is', 'event:page', ['/landing']]] }),
      [['2024-05-01', 3, 3], ['2024-05-02', 1, 1]]);
    // a filter on the dimension broken down by
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], dimensions: ['visit:country'], filters: [['is_not', 'visit:country', ['DE']]] }), [['FR', 1]]);
    assert.deepEqual(await rows(s.base, { metrics: ['pageviews'], dimensions: ['event:page'], filters: [['contains', 'event:page', ['ing']]] }),
      [['/landing', 4], ['/pricing', 1]]);
    // order and pages
    assert.deepEqual(await rows(s.base, { metrics: ['pageviews'], dimensions: ['event:page'], order_by: [['event:page', 'asc']] }),
      [['/blog', 1], ['/landing', 4], ['/pricing', 1], ['/signup', 1]]);
    const page = await query(s.base, { metrics: ['pageviews'], dimensions: ['event:page'], pagination: { limit: 2, offset: 1 }, include: { total_rows: true } });
    assert.deepEqual(page.json.results.map((x) => x.dimensions[0]), ['/blog', '/pricing']);
    assert.equal(page.json.meta.total_rows, 4);
    const labels = await query(s.base, { metrics: ['visits'], dimensions: ['time:day'], date_range: ['2024-04-30', '2024-05-02'], include: { time_labels: true } });
    assert.deepEqual(labels.json.meta.time_labels, ['2024-04-30', '2024-05-01', '2024-05-02']);
    assert.equal(labels.json.results.length, 2, 'empty buckets are left out, as Plausible does');
  } finally {
    await s.stop();
  }
});

test('visit dimensions filtered by entry page come from the fold\'s per-entry-page breakdowns', async () => {
  const s = await startServe();
  try {
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], dimensions: ['visit:source'], filters: [['is', 'visit:entry_page', ['/landing']]] }),
      [['(direct)', 2], ['news.example', 1]]);
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], dimensions: ['visit:country'], filters: [['is', 'visit:entry_page', ['/landing']]] }),
      [['DE', 2], ['FR', 1]]);
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], dimensions: ['visit:source'], filters: [['is', 'visit:entry_page', ['/blog']]] }),
      [['news.example', 1]]);
  } finally {
    await s.stop();
  }
});

test('aggregator.min_visitors folds small rows into (other) in the API too', async () => {
  const s = await startServe(['aggregator.min_visitors=2']);
  try {
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], dimensions: ['visit:country'] }), [['DE', 3], ['(other)', 1]]);
    assert.deepEqual(await rows(s.base, { metrics: ['pageviews', 'visitors'], dimensions: ['event:page'] }),
      [['/landing', 4, 4], ['(other)', 3, null]]);
    // totals are not breakdowns: untouched
    assert.deepEqual(await rows(s.base, { metrics: ['pageviews'] }), [[7]]);
  } finally {
    await s.stop();
  }
});

test('names that are not UTF-8 keep their bytes as \\xNN; the data\'s own (other) is one last row', async () => {
  const key = `fs:{${SITE}}:d:20240503:source`;
  await redis.client.cmd('HSET', key, Buffer.from([0x62, 0x61, 0x64, 0xff]), 2, '(other)', 3, 'a.example', 5);
  const s = await startServe();
  try {
    assert.deepEqual(await rows(s.base, { metrics: ['visits'], dimensions: ['visit:source'], date_range: ['2024-05-03', '2024-05-03'] }),
      [['a.example', 5], ['bad\\xff', 2], ['(other)', 3]]);
  } finally {
    await s.stop();
    await redis.client.cmd('DEL', key);
  }
});

test('time on page and scroll depth per page, from the engagement sums; null where a page has none', async () => {
  const d = (dim) => `fs:{${SITE}}:d:20240504:${dim}`;
  await redis.client.cmd('HSET', d('page'), '/a', 7, '/b', 3);
  await redis.client.cmd('HSET', d('engaged'), '/a', 30000);
  await redis.client.cmd('HSET', d('scroll'), '/a', 150);
  await redis.client.cmd('HSET', d('engagements'), '/a', 2);
  const s = await startServe();
  try {
    assert.deepEqual(await rows(s.base, { metrics: ['pageviews', 'time_on_page', 'scroll_depth'], dimensions: ['event:page'],
      date_range: ['2024-05-04', '2024-05-04'] }), [['/a', 7, 4, 75], ['/b', 3, null, null]]);
    await refused(s.base, { metrics: ['time_on_page'] }, /can only be queried with dimension `event:page`/);
  } finally {
    await s.stop();
    await redis.client.cmd('DEL', d('page'), d('engaged'), d('scroll'), d('engagements'));
  }
});

test('event:props:<name>: a property\'s values by events, filtered on its own values', async () => {
  const key = `fs:{${SITE}}:d:20240505:prop:plan`;
  await redis.client.cmd('HSET', key, 'pro', 3, 'free', 1, 'team', 2);
  const s = await startServe();
  try {
    const range = ['2024-05-05', '2024-05-05'];
    assert.deepEqual(await rows(s.base, { metrics: ['events'], dimensions: ['event:props:plan'], date_range: range }),
      [['pro', 3], ['team', 2], ['free', 1]]);
    assert.deepEqual(await rows(s.base, { metrics: ['events'], dimensions: ['event:props:plan'], date_range: range,
      filters: [['is_not', 'event:props:plan', ['free']]] }), [['pro', 3], ['team', 2]]);
    assert.deepEqual(await rows(s.base, { metrics: ['events'], dimensions: ['event:props:size'], date_range: range }), []);
    await refused(s.base, { metrics: ['visitors'], dimensions: ['event:props:plan'] }, /events per property value/);
  } finally {
    await s.stop();
    await redis.client.cmd('DEL', key);
  }
});

test('the response has Plausible\'s shape: results of metrics and dimensions, meta, the resolved query', async () => {
  const s = await startServe();
  try {
    const r = await query(s.base, { metrics: ['visitors', 'pageviews'], dimensions: ['event:page'], date_range: '7d' });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /^application\/json/);
    assert.deepEqual(Object.keys(r.json).sort(), ['meta', 'query', 'results']);
    for (const x of r.json.results) {
      assert.ok(Array.isArray(x.metrics) && Array.isArray(x.dimensions));
    }
    assert.equal(typeof r.json.meta, 'object');
    const q = r.json.query;
    assert.equal(q.site_id, SITE);
    assert.deepEqual(q.metrics, ['visitors', 'pageviews']);
    assert.deepEqual(q.dimensions, ['event:page']);
    assert.deepEqual(q.order_by, [['pageviews', 'desc']]);
    assert.deepEqual(q.pagination, { limit: 10000, offset: 0 });
    assert.equal(q.date_range.length, 2);
    assert.match(q.date_range[0], /^\d{4}-\d\d-\d\dT00:00:00\+00:00$/);
    assert.match(q.date_range[1], /^\d{4}-\d\d-\d\dT23:59:59\+00:00$/);
    const days = (Date.parse(q.date_range[1]) + 1000 - Date.parse(q.date_range[0])) / 86400000;
    assert.equal(days, 7);
  } finally {
    await s.stop();
  }
});

test('malformed and unsupported queries get 400 with a message', async () => {
  const s = await startServe();
  try {
    await refused(s.base, '{"site_id": ', /Invalid JSON/);
    await refused(s.base, { metrics: ['visitors', 'nonsense'] }, /Unknown metric `nonsense`/);
    await refused(s.base, { metrics: ['bounce_rate'], dimensions: ['visit:country'] },
      /Metric `bounce_rate` cannot be queried with dimension `visit:country`/);
    await refused(s.base, { metrics: ['visits'], dimensions: ['visit:city'] }, /Invalid dimension/);
    await refused(s.base, { metrics: ['visits'], dimensions: ['visit:source'], filters: [['is', 'visit:country', ['DE']]] },
      /Filtering by `visit:country` with dimension `visit:source` is not supported/);
    await refused(s.base, { metrics: ['visits'], date_range: 'forever' }, /Invalid date_range/);
    await refused(s.base, { metrics: ['visits'], date_range: ['2024-05-02', '2024-05-01'] }, /after the second/);
    await refused(s.base, { metrics: ['visits'], site_id: 'unknown.example' }, /Unknown site_id/);
    // nothing about the server broke
    assert.deepEqual(await rows(s.base, { metrics: ['pageviews'] }), [[7]]);
  } finally {
    await s.stop();
  }
});

test('tokens: none and wrong are 401, another site is 403, the right one 200', async () => {
  const s = await startServe();
  try {
    const body = { metrics: ['visits'] };
    const none = await query(s.base, body, null);
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate'), /^Bearer/);
    assert.equal((await query(s.base, body, 'wrong-token')).status, 401);
    assert.equal((await query(s.base, body, ALL_TOKEN + 'x')).status, 401);
    assert.equal((await query(s.base, body, OTHER_TOKEN)).status, 403);
    assert.equal((await query(s.base, body, SITE_TOKEN)).status, 200);
    assert.equal((await query(s.base, body, ALL_TOKEN)).status, 200);
    // a site token lists only its site
    const list = async (t) => (await (await fetch(s.base + '/api/sites', { headers: { authorization: `Bearer ${t}` } })).json()).sites.map((x) => x.site_id);
    assert.deepEqual(await list(SITE_TOKEN), [SITE]);
    assert.deepEqual((await list(ALL_TOKEN)).sort(), [SITE, OTHER].sort());
    assert.equal((await fetch(s.base + '/api/sites')).status, 401);
  } finally {
    await s.stop();
  }
});

test('current visitors: the union of the last minutes\' HyperLogLogs, a bare number', async () => {
  const now = Math.floor(Date.now() / MIN);
  const key = (m) => {
    const d = new Date(m * MIN).toISOString();
    return `fs:{${SITE}}:rt:${d.slice(0, 4)}${d.slice(5, 7)}${d.slice(8, 10)}${d.slice(11, 13)}${d.slice(14, 16)}`;
  };
  await redis.client.cmd('PFADD', key(now), 'a', 'b');
  await redis.client.cmd('PFADD', key(now - 3), 'b', 'c');
  await redis.client.cmd('PFADD', key(now - 20), 'd');
  const s = await startServe();
  try {
    const url = `${s.base}/api/v1/stats/realtime/visitors?site_id=${SITE}`;
    const r = await fetch(url, { headers: { authorization: `Bearer ${SITE_TOKEN}` } });
    assert.equal(r.status, 200);
    assert.equal(await r.text(), '3');
    assert.equal((await fetch(url)).status, 401);
    assert.equal((await fetch(url, { headers: { authorization: `Bearer ${OTHER_TOKEN}` } })).status, 403);
  } finally {
    await s.stop();
  }
});

function setCookie(r) {
  return r.headers.get('set-cookie') || '';
}

test('login: the token buys an HttpOnly SameSite=Strict session cookie that is not the token; logout ends it', async () => {
  const s = await startServe();
  try {
    const page = await fetch(s.base + '/', { redirect: 'manual' });
    assert.equal(page.status, 303);
    assert.equal(page.headers.get('location'), '/login');
    const form = await fetch(s.base + '/login');
    assert.equal(form.status, 200);
    assert.match(await form.text(), /<form method="post" action="\/login">/);
    // The browser's favicon request: no icon, and no 404 for the console.
    const icon = await fetch(s.base + '/favicon.ico');
    assert.equal(icon.status, 204);
    assert.equal(await icon.text(), '');

    const bad = await fetch(s.base + '/login', { method: 'POST', redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=nope' });
    assert.equal(bad.status, 401);
    assert.equal(setCookie(bad), '');

    const ok = await fetch(s.base + '/login', { method: 'POST', redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${encodeURIComponent(SITE_TOKEN)}` });
    assert.equal(ok.status, 303);
    assert.equal(ok.headers.get('location'), '/');
    const c = setCookie(ok);
    assert.match(c, /^fs_session=[0-9a-f]{64};/);
    assert.match(c, /; HttpOnly/);
    assert.match(c, /; SameSite=Strict/);
    assert.match(c, /; Path=\//);
    assert.doesNotMatch(c, /Secure/);
    assert.ok(!c.includes(SITE_TOKEN));
    const cookie = c.split(';')[0];

    const dash = await fetch(s.base + '/', { headers: { cookie } });
    assert.equal(dash.status, 200);
    assert.match(dash.headers.get('content-type'), /^text\/html/);
    assert.match(dash.headers.get('content-security-policy'), /default-src 'self'/);
    const api = await fetch(s.base + '/api/v2/query', { method: 'POST', headers: { cookie },
      body: JSON.stringify({ site_id: SITE, metrics: ['pageviews'], date_range: RANGE }) });
    assert.equal(api.status, 200);
    assert.deepEqual((await api.json()).results, [{ metrics: [7], dimensions: [] }]);
    const other = await fetch(s.base + '/api/v2/query', { method: 'POST', headers: { cookie },
      body: JSON.stringify({ site_id: OTHER, metrics: ['pageviews'], date_range: RANGE }) });
    assert.equal(other.status, 403);

    const out = await fetch(s.base + '/logout', { method: 'POST', redirect: 'manual', headers: { cookie } });
    assert.equal(out.status, 303);
    assert.match(setCookie(out), /^fs_session=; .*Max-Age=0/);
    assert.equal((await fetch(s.base + '/api/sites', { headers: { cookie } })).status, 401);
  } finally {
    await s.stop();
  }
  const secure = await startServe(['serve.secure_cookie=yes']);
  try {
    const ok = await fetch(secure.base + '/login', { method: 'POST', redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${ALL_TOKEN}` });
    assert.match(setCookie(ok), /; Secure/);
  } finally {
    await secure.stop();
  }
});

test('a share link opens one site read-only; a wrong secret opens nothing', async () => {
  const s = await startServe();
  try {
    const wrong = await fetch(`${s.base}/share/${SITE}?auth=guess`, { redirect: 'manual' });
    assert.equal(wrong.status, 401);
    assert.equal(setCookie(wrong), '');
    assert.equal((await fetch(`${s.base}/share/${OTHER}?auth=${SHARE_SECRET}`, { redirect: 'manual' })).status, 401);
    const ok = await fetch(`${s.base}/share/${SITE}?auth=${SHARE_SECRET}`, { redirect: 'manual' });
    assert.equal(ok.status, 303);
    assert.equal(ok.headers.get('location'), `/?site=${SITE}`);
    const cookie = setCookie(ok).split(';')[0];
    const q = (site) => fetch(s.base + '/api/v2/query', { method: 'POST', headers: { cookie },
      body: JSON.stringify({ site_id: site, metrics: ['visits'], date_range: RANGE }) });
    assert.equal((await q(SITE)).status, 200);
    assert.equal((await q(OTHER)).status, 403);
  } finally {
    await s.stop();
  }
});

test('no CORS header unless serve.cors_origins lists the origin', async () => {
  const headers = { origin: 'https://app.example', authorization: `Bearer ${ALL_TOKEN}` };
  const body = JSON.stringify({ site_id: SITE, metrics: ['visits'], date_range: RANGE });
  let s = await startServe();
  try {
    const r = await fetch(s.base + '/api/v2/query', { method: 'POST', headers, body });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), null);
    const pre = await fetch(s.base + '/api/v2/query', { method: 'OPTIONS', headers: { origin: 'https://app.example' } });
    assert.equal(pre.headers.get('access-control-allow-origin'), null);
  } finally {
    await s.stop();
  }
  s = await startServe(['serve.cors_origins=https://app.example']);
  try {
    const r = await fetch(s.base + '/api/v2/query', { method: 'POST', headers, body });
    assert.equal(r.headers.get('access-control-allow-origin'), 'https://app.example');
    const pre = await fetch(s.base + '/api/v2/query', { method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-headers': 'authorization' } });
    assert.equal(pre.status, 204);
    assert.match(pre.headers.get('access-control-allow-headers'), /Authorization/);
    const elsewhere = await fetch(s.base + '/api/v2/query', { method: 'POST',
      headers: { ...headers, origin: 'https://evil.example' }, body });
    assert.equal(elsewhere.headers.get('access-control-allow-origin'), null);
  } finally {
    await s.stop();
  }
});

test('serve refuses to start on a tokens file it cannot read or a port it cannot have', async () => {
  const r = await run(AGG, ['-c', conf, '-o', 'serve.tokens=file:/nonexistent/tokens', 'serve']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /serve\.tokens: \/nonexistent\/tokens: No such file/);
  const bad = await run(AGG, ['-c', conf, '-o', 'serve.listen=nonsense', 'serve']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /serve\.listen: not host:port: 'nonsense'/);
  const cfg = await run(AGG, ['-c', conf, '-o', 'serve.tokens=sha256:abc', 'serve']);
  assert.equal(cfg.code, 2);
  assert.match(cfg.stderr, /serve\.tokens: each token must be sha256:<64 hex digits>\[@site\]/);
});

test('token prints a new random token and the config line that accepts it', async () => {
  const a = await run(AGG, ['-c', conf, 'token', '--site', SITE]);
  const b = await run(AGG, ['-c', conf, 'token']);
  assert.equal(a.code, 0, a.stderr);
  const [tok, line] = a.stdout.trim().split('\n');
  assert.match(tok, /^[A-Za-z0-9_-]{43}$/);
  assert.equal(line, `tokens = sha256:${sha(tok)}@${SITE}`);
  const [tok2, line2] = b.stdout.trim().split('\n');
  assert.notEqual(tok2, tok);
  assert.equal(line2, `tokens = sha256:${sha(tok2)}`);
  // and that line works
  conf = config({ serve: { tokens: line.replace('tokens = ', '') } });
  const s = await startServe();
  try {
    assert.equal((await query(s.base, { metrics: ['visits'] }, tok)).status, 200);
    assert.equal((await query(s.base, { metrics: ['visits'] }, ALL_TOKEN)).status, 401);
  } finally {
    await s.stop();
    conf = config();
  }
});
