// api.mjs -- times the Stats API of a running `fairstat-aggregator serve`
// (bench/dataset.sh starts it): the 30-day top 10 pages, and the data a
// dashboard's first paint asks for (headline numbers with the previous period,
// the daily series, the current visitors and the top 10 of each breakdown),
// all requests in flight at once, as a page sends them.
//
//   node bench/api.mjs BASE TOKEN SITE FROM TO RUNS
// prints two lines "top10 <seconds...>" and "firstpaint <seconds...>".
const [base, token, site, from, to, runs] = process.argv.slice(2);
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

async function q(body) {
  const r = await fetch(`${base}/api/v2/query`, { method: 'POST', headers,
    body: JSON.stringify({ site_id: site, date_range: [from, to], ...body }) });
  if (r.status !== 200) throw new Error(`${JSON.stringify(body)}: ${r.status} ${await r.text()}`);
  return r.json();
}

const shift = (d, days) => new Date(Date.parse(d) + days * 86400000).toISOString().slice(0, 10);
const span = (Date.parse(to) - Date.parse(from)) / 86400000 + 1;
const HEAD = ['visitors', 'visits', 'pageviews', 'views_per_visit', 'bounce_rate', 'visit_duration'];
const top = (dim, metrics = ['visits']) => q({ metrics, dimensions: [dim], pagination: { limit: 10 } });

function firstPaint() {
  return Promise.all([
    q({ metrics: HEAD }),
    q({ metrics: HEAD, date_range: [shift(from, -span), shift(from, -1)] }),
    q({ metrics: HEAD, dimensions: ['time:day'] }),
    fetch(`${base}/api/v1/stats/realtime/visitors?site_id=${site}`, { headers }).then((r) => r.text()),
    top('event:page', ['visitors', 'pageviews']),
    ...['visit:entry_page', 'visit:exit_page', 'visit:source', 'visit:utm_source', 'visit:utm_medium',
      'visit:utm_campaign', 'visit:country', 'visit:region', 'visit:browser', 'visit:os', 'visit:device']
      .map((d) => top(d)),
    top('event:name', ['events']),
  ]);
}

async function time(fn) {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

const out = { top10: [], firstpaint: [] };
await firstPaint();     // untimed: the client's own warm-up (connections, JIT)
for (let i = 0; i < Number(runs); i++) {
  out.top10.push(await time(() => top('event:page', ['visitors', 'pageviews'])));
  out.firstpaint.push(await time(firstPaint));
}
for (const [k, v] of Object.entries(out)) console.log(k, ...v.map((x) => x.toFixed(4)));
