// build.mjs -- bundles and minifies js-snippet/src into dist/fs.js with esbuild,
// or with --cmp into dist/fs-cmp.js: the same source with __CMP__ true, the
// external-CMP snippet without banner (src/fs.js, src/cmp.js).
// Called by js-snippet/build.mk; the size check and gzip live there.
//   node js-snippet/build.mjs OUTFILE [--cmp]
import { build, transform } from 'esbuild';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] || path.join(here, 'dist', 'fs.js');
const cmp = process.argv[3] == '--cmp';

// The banner's CSS is written readable in banner.css and inlined minified.
const css = await transform(readFileSync(path.join(here, 'src', 'banner.css'), 'utf8'),
  { loader: 'css', minify: true });

await build({
  entryPoints: [path.join(here, 'src', 'fs.js')],
  outfile: out,
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  charset: 'utf8',
  legalComments: 'none',
  define: { __CSS__: JSON.stringify(css.code.trim()), __CMP__: String(cmp) },
  logLevel: 'warning',
});
