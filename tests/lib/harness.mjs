// harness.mjs -- real processes for black-box tests: a private redis-server on a
// free port in a temporary directory, the real collector (and aggregator) built
// in bin/, and a small RESP client to look inside Redis.
import { spawn, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = (name) => path.join(ROOT, 'bin', name);
export const DATA = path.join(ROOT, 'tests', 'data');   // fixtures, see tests/data/README.md
export const SECRET = 'test-secret-0123456789abcdef0123456789abcdef';

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// How much longer than usual a wait for a readiness may take: a sanitizer
// build is several times slower (the Makefile's test target sets
// FAIRSTAT_TEST_PATIENCE when SANITIZER is set). It stretches deadlines
// only; no test asserts how long anything took.
export const PATIENCE = Math.max(1, Number(process.env.FAIRSTAT_TEST_PATIENCE) || 1);

async function waitFor(what, fn, ms = 10000) {
  const end = Date.now() + ms * PATIENCE;
  let last;
  while (Date.now() < end) {
    try {
      if (await fn()) return;
    } catch (e) {
      last = e;
    }
    await sleep(25);
  }
  throw new Error(`timed out waiting for ${what}${last ? ': ' + last.message : ''}`);
}

// ---------------------------------------------------------------- RESP client

function encode(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

// A bulk string as a string when it is UTF-8, else as the Buffer it is
// (packed raw hits are binary).
function bulk(buf, from, to) {
  const s = buf.toString('utf8', from, to);
  const raw = buf.subarray(from, to);
  return Buffer.byteLength(s) === raw.length && Buffer.from(s).equals(raw) ? s : Buffer.from(raw);
}

// Parses one reply at buf[pos]; returns [value, newPos] or null if incomplete.
function parse(buf, pos) {
  if (pos >= buf.length) return null;
  const nl = buf.indexOf('\r\n', pos);
  if (nl < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, nl);
  const next = nl + 2;
  switch (type) {
    case '+': return [line, next];
    case '-': return [new RedisError(line), next];
    case ':': return [Number(line), next];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return null;
      return [bulk(buf, next, next + n), next + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const arr = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parse(buf, p);
        if (!r) return null;
        arr.push(r[0]);
        p = r[1];
      }
      return [arr, p];
    }
    default: throw new Error('bad RESP type ' + type);
  }
}

export class RedisError extends Error {}

export class Redis {
  constructor(port) { this.port = port; }
  async connect() {
    this.sock = net.connect(this.port, '127.0.0.1');
    this.buf = Buffer.alloc(0);
    this.waiting = [];
    this.sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (;;) {
        const r = parse(this.buf, 0);
        if (!r) break;
        this.buf = this.buf.subarray(r[1]);
        const w = this.waiting.shift();
        if (r[0] instanceof RedisError) w.reject(r[0]); else w.resolve(r[0]);
      }
    });
    this.sock.on('error', (e) => { for (const w of this.waiting.splice(0)) w.reject(e); });
    // A server that dies (a crash test, or something else killing it) must
    // fail the commands in flight, not leave the test waiting forever.
    this.sock.on('close', () => {
      for (const w of this.waiting.splice(0)) w.reject(new Error('redis connection closed'));
    });
    await new Promise((res, rej) => { this.sock.once('connect', res); this.sock.once('error', rej); });
    return this;
  }
  cmd(...args) {
    return new Promise((resolve, reject) => {
      if (!this.sock || this.sock.destroyed) return reject(new Error('redis connection closed'));
      this.waiting.push({ resolve, reject });
      this.sock.write(encode(args.flat()));
    });
  }
  close() { this.sock?.destroy(); }
}

// ------------------------------------------------------------------- redis

export async function startRedis(extra = []) {
  const dir = mkdtempSync(path.join(tmpdir(), 'fs-redis-'));
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1',
    '--dir', dir, '--save', '', '--appendonly', 'no', '--logfile', path.join(dir, 'redis.log'),
    ...extra], { stdio: 'ignore' });
  let client;
  await waitFor('redis-server', async () => {
    client = await new Redis(port).connect();
    return (await client.cmd('PING')) === 'PONG';
  });
  return {
    port, dir, proc, client,
    url: `redis://127.0.0.1:${port}/0`,
    async stop() {
      client.close();
      proc.kill('SIGKILL');
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// --------------------------------------------------------------- collector

// example.com keeps the cookie name of a one-site install (fs_consent), as an
// existing install that adds a second site does; shop.test gets the derived
// one (fs_consent_shop.test).
export const DEFAULT_SITES = {
  'example.com': { origins: 'https://example.com, https://www.example.com', cookie: 'fs_consent' },
  'shop.test': { origins: 'https://shop.test' },
};

// Writes a config file. opts.sections: {section: {key: value}}; opts.sites as DEFAULT_SITES.
export function writeConfig(dir, opts = {}) {
  const sections = {
    collector: { listen: `127.0.0.1:${opts.port}`, threads: 1, spool_dir: path.join(dir, 'spool') },
    redis: { url: opts.redisUrl },
    consent: { secret: SECRET, secure: 'no' },
    geoip: { database: '' },
    aggregator: { batch: 100, block_ms: 100 },
  };
  for (const [s, kv] of Object.entries(opts.sections || {})) sections[s] = { ...(sections[s] || {}), ...kv };
  let text = '';
  for (const [s, kv] of Object.entries(sections)) {
    text += `[${s}]\n`;
    for (const [k, v] of Object.entries(kv)) text += `${k} = ${v}\n`;
  }
  for (const [name, kv] of Object.entries(opts.sites || DEFAULT_SITES)) {
    text += `[site ${name}]\n`;
    for (const [k, v] of Object.entries(kv)) text += `${k} = ${v}\n`;
  }
  const file = path.join(dir, 'fairstat.conf');
  writeFileSync(file, text);
  return file;
}

// Starts bin/fairstat-collector against redis (from startRedis) and waits for
// /healthz. opts.port: a port chosen beforehand (when the config must name
// the collector's own origin); opts.sites, opts.sections: see writeConfig.
export async function startCollector(redis, opts = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'fs-collector-'));
  const port = opts.port || await freePort();
  const conf = writeConfig(dir, { ...opts, port, redisUrl: redis ? redis.url : opts.redisUrl });
  const proc = spawn(BIN('fairstat-collector'), ['-c', conf, ...(opts.args || [])],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const base = `http://127.0.0.1:${port}`;
  await waitFor('collector /healthz', async () => {
    if (proc.exitCode !== null) throw new Error('collector exited: ' + output);
    const r = await fetch(base + '/healthz');
    return r.status === 200;
  });
  return {
    base, port, dir, conf, proc,
    output: () => output,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Starts `fairstat-aggregator -c conf serve` on a free port, with a token
// allowed for every site (serve.tokens; opts.token: null keeps the config's
// own) and opts.overrides as -o options, and waits for /healthz. Resolves
// {base, token, proc, output(), stop()}; stop() resolves serve's exit code.
export async function startServe(conf, opts = {}) {
  const port = await freePort();
  const token = opts.token === undefined ? 'serve-test-token-0123456789abcdef' : opts.token;
  const o = [`serve.listen=127.0.0.1:${port}`, ...(opts.overrides || [])];
  if (token !== null) o.push(`serve.tokens=sha256:${createHash('sha256').update(token).digest('hex')}`);
  const args = ['-c', conf, ...o.flatMap((x) => ['-o', x]), 'serve'];
  const proc = spawn(process.env.FAIRSTAT_AGGREGATOR || BIN('fairstat-aggregator'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const base = `http://127.0.0.1:${port}`;
  await waitFor('serve /healthz', async () => {
    if (proc.exitCode !== null) throw new Error('serve exited: ' + output);
    return (await fetch(base + '/healthz')).status === 200;
  });
  return {
    base, token, proc,
    output: () => output,
    async stop() {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill('SIGTERM');
      return new Promise((r) => proc.once('exit', (code) => r(code)));
    },
  };
}

// Runs a program to completion; resolves {code, stdout, stderr}. Past its
// deadline (60 s, times PATIENCE) it is stopped with SIGTERM and its code is -1
// whatever it exits with: a program that stops cleanly on SIGTERM (the
// aggregator does, with 0) must not pass for one that finished.
export function run(file, args, opts = {}) {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: 60000 * PATIENCE, maxBuffer: 64 << 20, ...opts },
      (err, stdout, stderr) => {
        if (child.killed) {
          resolve({ code: -1, stdout, stderr: stderr + '\n(harness: stopped at its deadline)' });
          return;
        }
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
      });
  });
}

// --------------------------------------------------------------- beacons

export const FIREFOX = 'Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0';

// POST /consent with analytics=true; returns the "name=value" cookie pair.
export async function consentCookie(base, domain = 'example.com', analytics = true) {
  const r = await fetch(base + '/consent', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': FIREFOX },
    body: JSON.stringify({ domain, analytics }),
  });
  if (r.status !== 200) throw new Error('POST /consent: ' + r.status);
  const set = r.headers.get('set-cookie');
  return set.split(';')[0];
}

export function beacon(base, body, headers = {}) {
  return fetch(base + '/api/event', {
    method: 'POST',
    headers: { 'content-type': 'text/plain', 'user-agent': FIREFOX, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

// ------------------------------------------------------- raw hits (rawhit.h)

// The strings of a packed hit in their order, by the short names the
// field-per-value entries of earlier versions used.
const RAW_STRINGS = ['p', 'b', 'o', 'r', 'c', 'rg', 'n', 'pr', 'us', 'um', 'uc', 'ut', 'uo'];
const RAW_OPTIONAL_FROM = 3;
const RAW_HEAD = 15;
const DEVICES = ['', 'desktop', 'mobile', 'tablet', 'other'];
// The "which strings follow" bit saying an engagement's scroll depth and
// engaged ms follow the time (RAWHIT_P_ENGAGEMENT).
const RAW_ENGAGEMENT = 1 << 10;

function varint(n) {
  const out = [];
  let v = BigInt(n);
  while (v >= 0x80n) { out.push(Number(v & 0x7fn) | 0x80); v >>= 7n; }
  out.push(Number(v));
  return Buffer.from(out);
}

// Packs a hit given as {p, b, o, n, r, ..., dv, v (16 hex), t (ms, optional),
// id (BigInt, optional)} the way the collector stores it; n "engagement"
// with sd (percent) and e (ms) is an engagement event.
export function packHit(h) {
  const head = Buffer.alloc(RAW_HEAD);
  let flags = 0;
  if (h.v) { flags |= 1; Buffer.from(h.v, 'hex').copy(head, 7); }
  if (h.t !== undefined) flags |= 2;
  head[0] = flags | (Math.max(0, DEVICES.indexOf(h.dv || '')) << 3) | (1 << 6);
  head.writeUIntLE(Number(BigInt.asUintN(48, h.id ?? BigInt(Math.floor(Math.random() * 2 ** 48)))), 1, 6);
  const engagement = h.n === 'engagement' && h.sd !== undefined;
  const n = h.n === 'pageview' || engagement ? '' : h.n;
  const vals = RAW_STRINGS.map((k) => (k === 'n' ? n : h[k]) || '');
  let present = engagement ? RAW_ENGAGEMENT : 0;
  vals.forEach((v, i) => { if (i >= RAW_OPTIONAL_FROM && v) present |= 1 << (i - RAW_OPTIONAL_FROM); });
  const parts = [head, varint(present)];
  if (h.t !== undefined) parts.push(varint(h.t));
  if (engagement) parts.push(varint(h.sd), varint(h.e));
  vals.forEach((v, i) => {
    if (i >= RAW_OPTIONAL_FROM && !v) return;
    const b = Buffer.from(v);
    parts.push(varint(b.length), b);
  });
  return Buffer.concat(parts);
}

// The fields of a packed hit, named as above; absent optional strings are
// left out, n is "pageview" when empty, t is the hit's time.
export function unpackHit(buf, id) {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf);
  if (b[0] >> 6 !== 1) throw new Error('not a packed raw hit');
  const flags = b[0] & 7, o = {};
  o.dv = DEVICES[(b[0] >> 3) & 7] || undefined;
  o.hid = b.readUIntLE(1, 6).toString(16).padStart(12, '0');
  if (flags & 1) o.v = b.subarray(7, 15).toString('hex');
  let pos = RAW_HEAD;
  const rd = () => {
    let v = 0n, shift = 0n;
    for (;;) { const x = b[pos++]; v |= BigInt(x & 0x7f) << shift; if (!(x & 0x80)) return v; shift += 7n; }
  };
  const present = Number(rd());
  o.t = String(flags & 2 ? rd() : BigInt(id.split('-')[0]));
  if (present & RAW_ENGAGEMENT) { o.sd = Number(rd()); o.e = Number(rd()); }
  RAW_STRINGS.forEach((k, i) => {
    if (i >= RAW_OPTIONAL_FROM && !(present & (1 << (i - RAW_OPTIONAL_FROM)))) return;
    const len = Number(rd());
    const v = b.toString('utf8', pos, pos + len);
    pos += len;
    if (i < RAW_OPTIONAL_FROM || v) o[k] = v;
  });
  if (pos !== b.length) throw new Error('trailing bytes in a packed raw hit');
  o.n = present & RAW_ENGAGEMENT ? 'engagement' : o.n || 'pageview';
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

// Entries of a stream as [{id, ...fields}]; packed raw hits come unpacked.
export async function streamEntries(client, key) {
  const rows = await client.cmd('XRANGE', key, '-', '+');
  return rows.map(([id, kv]) => {
    if (kv.length === 2 && kv[0] === 'h') return { id, ...unpackHit(kv[1], id) };
    const o = { id };
    for (let i = 0; i < kv.length; i += 2) o[kv[i]] = kv[i + 1];
    return o;
  });
}

export { sleep, waitFor };
