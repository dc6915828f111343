// harness.mjs -- real processes for black-box tests: a private redis-server on a
// free port in a temporary directory, the real collector (and aggregator) built
// in bin/, and a small RESP client to look inside Redis.
import { spawn, execFile } from 'node:child_process';
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

async function waitFor(what, fn, ms = 10000) {
  const end = Date.now() + ms;
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
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const b = Buffer.from(String(a));
    out += `$${b.length}\r\n${b.toString('latin1')}\r\n`;
  }
  return Buffer.from(out, 'latin1');
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
      return [buf.toString('utf8', next, next + n), next + n + 2];
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
    await new Promise((res, rej) => { this.sock.once('connect', res); this.sock.once('error', rej); });
    return this;
  }
  cmd(...args) {
    return new Promise((resolve, reject) => {
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

export const DEFAULT_SITES = {
  'example.com': { origins: 'https://example.com, https://www.example.com' },
  'shop.test': { origins: 'https://shop.test' },
};

// Writes a config file. opts.sections: {section: {key: value}}; opts.sites as DEFAULT_SITES.
export function writeConfig(dir, opts = {}) {
  const sections = {
    collector: { listen: `127.0.0.1:${opts.port}`, threads: 1 },
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

// Runs a program to completion; resolves {code, stdout, stderr}.
export function run(file, args, opts = {}) {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 60000, maxBuffer: 64 << 20, ...opts }, (err, stdout, stderr) => {
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

// Entries of a stream as [{id, ...fields}].
export async function streamEntries(client, key) {
  const rows = await client.cmd('XRANGE', key, '-', '+');
  return rows.map(([id, kv]) => {
    const o = { id };
    for (let i = 0; i < kv.length; i += 2) o[kv[i]] = kv[i + 1];
    return o;
  });
}

export { sleep, waitFor };
