// readme.test.mjs -- the README's demo, run as a newcomer runs it: the shell blocks
// marked `sh runnable`, in their order, in a fresh copy of the repository.
//
// The copy holds the files git knows (committed or not; ignored ones left out), as a
// clone of this working tree would, with node_modules linked from here: installing
// it is make deps' job, which `make test` has just done. The demo's addresses become
// free ports, so that a `make run` of the developer's own is not disturbed: make run
// gets them as LISTEN and REDIS_PORT, the other blocks get them in their text.
// `make run` stays in the foreground, so it runs in the background here until
// /healthz answers; the report block is read again until the aggregator has folded
// the hit.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ROOT, freePort, sleep, waitFor } from '../lib/harness.mjs';

const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const BLOCKS = [...README.matchAll(/^```sh runnable\n([\s\S]*?)^```/gm)].map((m) => m[1].trim());

// A copy of the working tree as git sees it, node_modules linked.
function copyRepository() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fs-readme-'));
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'],
    { cwd: ROOT, encoding: 'utf8' }).split('\0');
  for (const f of files) {
    if (!f || f === 'node_modules' || !fs.existsSync(path.join(ROOT, f))) continue;
    fs.mkdirSync(path.join(dir, path.dirname(f)), { recursive: true });
    fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
    fs.chmodSync(path.join(dir, f), fs.statSync(path.join(ROOT, f)).mode);
  }
  fs.symlinkSync(fs.realpathSync(path.join(ROOT, 'node_modules')), path.join(dir, 'node_modules'));
  return dir;
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

describe('README', () => {
  let repo, port, redisPort, env, run, runOutput = '';
  let next = 0;   // index of the next block to run
  const sh = (block) => new Promise((resolve) => {
    execFile('sh', ['-ec', block], { cwd: repo, env, timeout: 120000 }, (err, stdout, stderr) =>
      resolve({ code: err ? err.code : 0, stdout, stderr }));
  });
  // The next runnable block, with the demo's addresses replaced by the test's.
  const take = (what) => {
    const block = BLOCKS[next++];
    assert.ok(block !== undefined, `a runnable block for ${what}`);
    return block.replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`)
      .replaceAll('localhost:8080', `localhost:${port}`);
  };

  before(async () => {
    repo = copyRepository();
    port = await freePort();
    redisPort = await freePort();
    env = { ...process.env, LISTEN: `127.0.0.1:${port}`, REDIS_PORT: String(redisPort) };
    // The make that runs this test must not hand its job server to the copy's.
    for (const k of ['MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKEOVERRIDES']) delete env[k];
  });
  after(() => {
    if (run && run.exitCode === null) process.kill(-run.pid, 'SIGKILL');
    if (repo) fs.rmSync(repo, { recursive: true, force: true });
  });

  test('make run builds a fresh copy and starts the demo', { timeout: 300000 }, async () => {
    const block = take('make run');
    assert.equal(block, 'make run');
    run = spawn('sh', ['-c', block], { cwd: repo, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    run.stdout.on('data', (d) => { runOutput += d; });
    run.stderr.on('data', (d) => { runOutput += d; });
    const healthy = () => fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.status === 200, () => false);
    const end = Date.now() + 280000;   // the copy is built first
    while (!(await healthy())) {
      assert.equal(run.exitCode, null, `make run exited:\n${runOutput}`);
      assert.ok(Date.now() < end, `no /healthz after 280 s:\n${runOutput}`);
      await sleep(100);
    }
    await waitFor('the report command line', async () => runOutput.includes('run: report with:'));
    assert.match(runOutput, /run: report with: bin\/fairstat-aggregator -c var\/fairstat\.conf report --site localhost\n/);
    assert.match(fs.readFileSync(path.join(repo, 'var/fairstat.conf'), 'utf8'), /^\[site localhost\]$/m);
  });

  test('a visit from a public address, through the trusted proxy header, is stored', async () => {
    const r = await sh(take('the visit'));
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0], /"analytics":true/, 'the consent receipt');
    assert.equal(lines.at(-1), '202', 'the beacon was stored');
  });

  test('the report command shows the page with the visitor\'s country', async () => {
    const block = take('the report');
    let r;
    await waitFor('the aggregator to fold the hit', async () => {
      r = await sh(block);
      return r.code === 0 && r.stdout.includes('/demo/pricing.html');
    }, 20000);
    assert.match(r.stdout, /^Countries\n\s+country\s+visits\n\s+US\s+1$/m);
  });

  test('make stop stops everything make run started', async () => {
    const r = await sh(take('make stop'));
    assert.equal(r.code, 0, r.stderr);
    const code = run.exitCode ?? await new Promise((resolve) => run.once('exit', resolve));
    assert.equal(code, 0, runOutput);
    assert.equal(await portOpen(port), false, 'the collector is gone');
    assert.equal(await portOpen(redisPort), false, 'Redis is gone');
    assert.equal(fs.existsSync(path.join(repo, 'var/run.pid')), false);
  });

  test('every runnable block of the README ran', () => {
    assert.equal(next, BLOCKS.length);
  });
});
