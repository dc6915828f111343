#!/usr/bin/env node
// npm-check.mjs -- tells scripts/deps.sh whether node_modules holds what
// package-lock.json pins for one part of the work, so that `npm ci` runs only then.
//
//   node scripts/npm-check.mjs run|bench|test
//
// `run` and `bench` need the "dependencies", `test` needs the devDependencies too.
// Exits 0 when each of those is installed at its locked version. Otherwise names
// the missing ones on stderr, exits 1 and prints the option for `npm ci`:
// --omit=dev when the dependencies are enough and no devDependency is installed
// (npm ci --omit=dev would delete them).
import { readFileSync } from 'node:fs';

const part = process.argv[2];
const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));

function installedVersion(dir) {
  try {
    return JSON.parse(readFileSync(`${dir}/package.json`, 'utf8')).version;
  } catch {
    return null;
  }
}

// Optional packages for other platforms (esbuild's binaries) are never installed here.
const forThisMachine = (e) => !e.optional ||
  ((!e.os || e.os.includes(process.platform)) && (!e.cpu || e.cpu.includes(process.arch)));

const missing = [];
let devInstalled = false;
for (const [dir, e] of Object.entries(lock.packages)) {
  if (dir === '' || !forThisMachine(e)) continue;   // '' is this project
  const version = installedVersion(dir);
  if (e.dev && version) devInstalled = true;
  if (e.dev && part !== 'test') continue;
  if (version !== e.version) missing.push(`${dir.replace(/^.*node_modules\//, '')}@${e.version}`);
}
if (missing.length) {
  console.error(`deps: npm packages to install: ${missing.join(' ')}`);
  if (part !== 'test' && !devInstalled) console.log('--omit=dev');
  process.exit(1);
}
