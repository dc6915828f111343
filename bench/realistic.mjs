#!/usr/bin/env node
// realistic.mjs -- the bench's realistic load (bench/README.md, "The realistic load"):
// mints one consent cookie per visitor through POST /consent on a running collector,
// then writes the request tables that bench/replay.lua replays with wrk.
//
//   node bench/realistic.mjs --url http://127.0.0.1:PORT --out DIR [--site example.com]
//        [--visitors 20000] [--requests 100000] [--addresses 50000] [--paths 5000]
//        [--referrers 300] [--seed 1]
//
// Writes, one request per line, fields separated by tabs:
//   DIR/realistic.collector.tsv   JSON beacon body, Cookie, User-Agent, X-Forwarded-For
//   DIR/realistic.nginx.tsv       GET /p.gif?... target, Cookie, User-Agent, X-Forwarded-For
//   DIR/realistic.refused.tsv     the collector's beacons for a domain it does not serve
// and a one-line summary on stdout. Everything is drawn from a seeded PRNG, so two runs
// with the same options send the same requests (the cookies excepted).
//
// Who sends what: visitor v has one cookie and one User-Agent for the whole table and
// two or three of the client addresses (a phone that changes networks). User-Agents
// are drawn Zipf-like from tests/data/ua (browsers first: they are the common ones);
// those the collector classifies as bots are kept apart, as the crawlers of
// spiders.tsv are: a refused hit (204) would be a request that stores nothing.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function parseArgs(argv) {
  const o = { site: 'example.com', visitors: 20000, requests: 100000, addresses: 50000,
              paths: 5000, referrers: 300, seed: 1, conns: 32 };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m || !(m[1] in o || m[1] === 'url' || m[1] === 'out')) throw new Error(`unknown option ${argv[i]}`);
    const v = m[2] !== undefined ? m[2] : argv[++i];
    o[m[1]] = typeof o[m[1]] === 'number' ? Number(v) : v;
  }
  if (!o.url || !o.out) throw new Error('usage: realistic.mjs --url URL --out DIR [options]');
  return o;
}
const opt = parseArgs(process.argv.slice(2));

// mulberry32: small, seeded, good enough to draw a load
let seed = opt.seed >>> 0;
function rand() {
  seed = (seed + 0x6D2B79F5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rand() * a.length)];

// Zipf (s = 1) over n ranks: rank 0 the most frequent. Cumulative weights, binary search.
function zipf(n, s = 1) {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) { sum += 1 / Math.pow(k + 1, s); cdf[k] = sum; }
  return () => {
    const x = rand() * sum;
    let lo = 0, hi = n - 1;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (cdf[mid] < x) lo = mid + 1; else hi = mid; }
    return lo;
  };
}

// ------------------------------------------------------------------ User-Agents
function uaColumn(file) {
  return fs.readFileSync(path.join(ROOT, 'tests/data/ua', file), 'utf8').split('\n').slice(1)
    .map((l) => l.split('\t')[0].trim())
    // printable ASCII only: what an HTTP client may put in a header as is
    .filter((u) => u && /^[\x20-\x7e]+$/.test(u));
}
const candidates = [...new Set([...uaColumn('browsers.tsv'), ...uaColumn('devices.tsv')])];

// ------------------------------------------------------------------ client addresses
// Mostly random public IPv4 (almost none of which the test database knows), some IPv6,
// and in one slot of ten one of the ~500 addresses of the networks the GeoIP2 test
// database knows (tests/data/geoip/README.md), so that about a tenth of the hits get a
// country. Those few are shared by many visitors, as addresses behind a NAT are.
const KNOWN = [];
for (let k = 0; k < 32; k++) KNOWN.push(`81.2.69.${160 + k}`);     // GB, ENG
for (let k = 0; k < 8; k++) KNOWN.push(`2.125.160.${216 + k}`);    // GB
for (let k = 0; k < 16; k++) KNOWN.push(`89.160.20.${112 + k}`);   // SE
for (let k = 0; k < 8; k++) KNOWN.push(`216.160.83.${56 + k}`);    // US, WA
for (let k = 0; k < 256; k++) KNOWN.push(`175.16.199.${k}`);       // CN, 22
for (let k = 1; k <= 200; k++) KNOWN.push(`2001:218::${k.toString(16)}`); // JP
function randomAddress() {
  const r = rand();
  if (r < 0.10) return pick(KNOWN);
  if (r < 0.15) {
    const h = () => Math.floor(rand() * 65536).toString(16);
    return `2a0${1 + Math.floor(rand() * 9)}:${h()}:${h()}:${h()}::${h()}`;
  }
  for (;;) {
    const a = 1 + Math.floor(rand() * 222), b = Math.floor(rand() * 256);
    if (a === 10 || a === 127 || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168)) continue;
    return `${a}.${b}.${Math.floor(rand() * 256)}.${1 + Math.floor(rand() * 254)}`;
  }
}
const addresses = Array.from({ length: opt.addresses }, randomAddress);

// ------------------------------------------------------------------ paths, referrers
const SECTIONS = ['blog', 'docs', 'products', 'news', 'help', 'shop', 'about', 'events'];
const paths = ['/'];
for (let k = 1; k < opt.paths; k++) {
  const s = SECTIONS[k % SECTIONS.length];
  paths.push(k % 3 ? `/${s}/${k}-${Math.floor(rand() * 1e6).toString(36)}` : `/${s}/${Math.floor(k / 100)}/item-${k}/`);
}
const ENGINES = ['https://www.google.com/', 'https://duckduckgo.com/', 'https://www.bing.com/',
  'https://search.brave.com/', 'https://www.ecosia.org/', 'https://www.qwant.com/'];
const referrers = [...ENGINES];
while (referrers.length < opt.referrers) {
  const k = referrers.length;
  referrers.push(k % 4 === 0 ? `https://news.ycombinator.com/item?id=${3e7 + k}`
    : k % 4 === 1 ? `https://www.reddit.com/r/sub${k}/comments/${k.toString(36)}/`
    : `https://site${k}.example.net/${k % 7 ? 'post/' + k : ''}`);
}
const UTM = [['newsletter', 'email', 'spring'], ['twitter', 'social', 'launch'],
  ['mastodon', 'social', ''], ['partner', 'referral', 'q3'], ['google', 'cpc', 'brand']];
const drawPath = zipf(paths.length), drawRef = zipf(referrers.length);

// ------------------------------------------------------------------ HTTP (keep-alive)
const agent = new http.Agent({ keepAlive: true, maxSockets: opt.conns });
const base = new URL(opt.url);
function post(pathname, body, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: base.hostname, port: base.port, path: pathname, method: 'POST', agent,
      headers: { 'Content-Type': 'text/plain', Origin: `https://${opt.site}`, ...headers } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res));
    });
    req.on('error', reject);
    req.end(body);
  });
}
async function parallel(n, fn) {     // fn(i) for i < n, opt.conns at a time
  let next = 0;
  const worker = async () => { while (next < n) { const i = next++; await fn(i); } };
  await Promise.all(Array.from({ length: Math.min(opt.conns, n) }, worker));
}
async function mint(ua, xff) {
  const res = await post('/consent', JSON.stringify({ domain: opt.site, analytics: true }),
    { 'User-Agent': ua, 'X-Forwarded-For': xff });
  const c = (res.headers['set-cookie'] || []).map((s) => s.split(';')[0]).find((s) => s.startsWith('fs_consent='));
  if (res.statusCode >= 300 || !c) throw new Error(`POST /consent -> ${res.statusCode}, no fs_consent cookie`);
  return c;
}

const t0 = Date.now();
// Which User-Agents the collector stores a hit for (202) and which it refuses as bots.
const probeCookie = await mint(candidates[0], addresses[0]);
const verdict = new Array(candidates.length);
await parallel(candidates.length, async (i) => {
  const res = await post('/api/event', JSON.stringify({ d: opt.site, n: 'pageview', u: `https://${opt.site}/` }),
    { Cookie: probeCookie, 'User-Agent': candidates[i], 'X-Forwarded-For': addresses[0] });
  verdict[i] = res.statusCode;
});
const uas = candidates.filter((_, i) => verdict[i] === 202);
if (uas.length === 0) throw new Error(`no User-Agent got 202 (statuses: ${[...new Set(verdict)]})`);
const drawUa = zipf(uas.length);

// The visitors, each with its cookie minted with its own User-Agent and address.
const visitors = Array.from({ length: opt.visitors }, (_, v) => {
  const own = [addresses[v % addresses.length]];
  for (let a = v + opt.visitors; a < addresses.length && own.length < 3; a += opt.visitors) own.push(addresses[a]);
  return { ua: uas[drawUa()], addrs: own, cookie: '' };
});
await parallel(visitors.length, async (v) => { visitors[v].cookie = await mint(visitors[v].ua, visitors[v].addrs[0]); });
const tMint = Date.now();

// ------------------------------------------------------------------ the tables
const enc = encodeURIComponent;
const out = { collector: [], nginx: [], refused: [] };
let withRef = 0, withUtm = 0;
for (let i = 0; i < opt.requests; i++) {
  const vis = visitors[Math.floor(rand() * visitors.length)];
  const xff = rand() < 0.8 ? vis.addrs[0] : pick(vis.addrs);
  let url = `https://${opt.site}${paths[drawPath()]}`;
  if (rand() < 0.08) {
    const [s, m, c] = pick(UTM);
    url += `?utm_source=${s}&utm_medium=${m}${c ? '&utm_campaign=' + c : ''}`;
    withUtm++;
  }
  const x = rand();   // 45 % direct, 20 % from the site itself, 35 % from elsewhere
  const ref = x < 0.45 ? null : x < 0.65 ? `https://${opt.site}${paths[drawPath()]}` : referrers[drawRef()];
  if (ref) withRef++;
  const tail = `\t${vis.cookie}\t${vis.ua}\t${xff}`;
  out.collector.push(JSON.stringify({ d: opt.site, n: 'pageview', u: url, r: ref }) + tail);
  out.refused.push(JSON.stringify({ d: 'unconfigured.example', n: 'pageview', u: url.replace(opt.site, 'unconfigured.example'), r: ref }) + tail);
  out.nginx.push(`/p.gif?d=${opt.site}&n=pageview&u=${enc(url)}${ref ? '&r=' + enc(ref) : ''}` + tail);
}
fs.mkdirSync(opt.out, { recursive: true });
for (const [k, lines] of Object.entries(out)) fs.writeFileSync(path.join(opt.out, `realistic.${k}.tsv`), lines.join('\n') + '\n');
agent.destroy();
console.log(`realistic load: ${opt.visitors} visitors (cookies minted in ${((tMint - t0) / 1000).toFixed(1)} s), ` +
  `${uas.length} User-Agents (${candidates.length - uas.length} of ${candidates.length} refused as bots, left out), ` +
  `${opt.addresses} addresses, ${opt.paths} paths, ${opt.referrers} referrers; ` +
  `${opt.requests} requests, ${(100 * withRef / opt.requests).toFixed(0)}% with a referrer, ` +
  `${(100 * withUtm / opt.requests).toFixed(0)}% with UTM tags`);
