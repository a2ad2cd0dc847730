#!/usr/bin/env node
/**
 * Builds build/fer_native.node from every native/*.cc with one plain g++ call (no node-gyp: it would download
 * headers). Runs as the package's `install` script, so it must never fail an install: when a piece is missing it
 * prints one line naming it and the apt command, and exits 0. Skips the build when sources and flags are unchanged.
 *
 * Flags: --force rebuilds; --quiet prints nothing on success; --strict exits 1 when the build fails (for CI/dev).
 * FER_NATIVE_SKIP_BUILD=1 skips the build entirely. CXX overrides the compiler.
 */
'use strict';
const { spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const srcDir = path.join(root, 'native');
const outDir = path.join(root, 'build');
const out = path.join(outDir, 'fer_native.node');
const stampFile = path.join(outDir, 'fer_native.stamp');
const args = new Set(process.argv.slice(2));
const strict = args.has('--strict');
const APT = 'apt-get install -y g++ libdnnl-dev';

function done(code, msg) {
  if (msg) console.log(`[fer-native] ${msg}`);
  process.exit(strict ? code : 0);
}

if (process.env.FER_NATIVE_SKIP_BUILD === '1') done(0, 'FER_NATIVE_SKIP_BUILD=1: native kernels not built.');
if (process.platform !== 'linux' || process.arch !== 'x64') {
  done(0, `native kernels are built on linux-x64 only (this is ${process.platform}-${process.arch}); using wasm.`);
}

const cxx = process.env.CXX || 'g++';
const nodeInclude = [
  path.join(path.dirname(process.execPath), '..', 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
].find((d) => fs.existsSync(path.join(d, 'node_api.h')));
const dnnlInclude = ['/usr/include', '/usr/local/include'].find((d) =>
  fs.existsSync(path.join(d, 'oneapi', 'dnnl', 'dnnl.hpp')),
);
const missing = [];
if (spawnSync(cxx, ['--version'], { stdio: 'ignore' }).status !== 0) missing.push(`a C++ compiler (${cxx})`);
if (!dnnlInclude) missing.push('oneDNN headers (oneapi/dnnl/dnnl.hpp)');
if (!nodeInclude) missing.push(`Node's headers (node_api.h for node ${process.version})`);
if (missing.length) {
  done(
    1,
    `native kernels not built: missing ${missing.join(', ')}. For the fast path run: ${APT} (then pnpm install again); using wasm meanwhile.`,
  );
}

const sources = fs
  .readdirSync(srcDir)
  .filter((f) => f.endsWith('.cc'))
  .sort()
  .map((f) => path.join(srcDir, f));
const headers = fs
  .readdirSync(srcDir)
  .filter((f) => f.endsWith('.h'))
  .sort()
  .map((f) => path.join(srcDir, f));
// -O3 and OpenMP without -march=native: the binary runs on any x86-64; oneDNN picks AVX2/AVX-512 kernels at run time.
const flags = [
  '-std=c++17',
  '-O3',
  '-fopenmp',
  '-shared',
  '-fPIC',
  '-fvisibility=hidden',
  '-Wall',
  '-Wno-unused-parameter',
];
const cmd = [...flags, `-I${nodeInclude}`, ...sources, '-o', out, '-ldnnl'];

const hash = crypto.createHash('sha256');
hash.update(JSON.stringify([cxx, cmd, process.versions.napi]));
for (const f of [...sources, ...headers, path.join(srcDir, 'env', 'env.cc')]) hash.update(f).update(fs.readFileSync(f));
const stamp = hash.digest('hex');
if (
  !args.has('--force') &&
  fs.existsSync(out) &&
  fs.existsSync(stampFile) &&
  fs.readFileSync(stampFile, 'utf8') === stamp
) {
  fs.writeFileSync(path.join(outDir, 'fer_native.sources'), sourcesDigest(srcDir)); // builds older than the record
  done(0, args.has('--quiet') ? '' : 'native kernels up to date (build/fer_native.node).');
}

fs.mkdirSync(outDir, { recursive: true });
const t0 = Date.now();
const tmp = `${out}.tmp-${process.pid}`;
const res = spawnSync(
  cxx,
  cmd.map((a) => (a === out ? tmp : a)),
  { encoding: 'utf8' },
);
if (res.status !== 0) {
  fs.rmSync(tmp, { force: true });
  const err = String(res.stderr || res.error || '').trim();
  const firstErr = err.split('\n').find((l) => /error/i.test(l)) || err.split('\n')[0] || 'unknown error';
  if (/dnnl/.test(firstErr) && /cannot find|No such file/.test(firstErr)) {
    done(
      1,
      `native kernels not built: oneDNN is missing (${firstErr.trim()}). For the fast path run: ${APT}; using wasm meanwhile.`,
    );
  }
  if (strict) console.error(err);
  done(
    1,
    `native kernels failed to compile (${firstErr.trim()}); using wasm. Rebuild with: node ${path.relative(process.cwd(), __filename)} --force --strict`,
  );
}
// build/fer_env.node: native/env/env.cc alone, without OpenMP (src/addon.ts sets libgomp's settings through it).
const envOut = path.join(outDir, 'fer_env.node');
const envTmp = `${envOut}.tmp-${process.pid}`;
const envRes = spawnSync(
  cxx,
  ['-std=c++17', '-O2', '-shared', '-fPIC', `-I${nodeInclude}`, path.join(srcDir, 'env', 'env.cc'), '-o', envTmp],
  { encoding: 'utf8' },
);
if (envRes.status === 0) fs.renameSync(envTmp, envOut);
else fs.rmSync(envTmp, { force: true }); // optional: the addon then loads with libgomp's defaults in worker threads
fs.renameSync(tmp, out); // atomic: a concurrently running process never loads a half-written addon
fs.writeFileSync(stampFile, stamp);
// What the loader compares with the shipped sources, so a stale addon (sources changed since) is never used.
fs.writeFileSync(path.join(outDir, 'fer_native.sources'), sourcesDigest(srcDir));
done(
  0,
  args.has('--quiet')
    ? ''
    : `native kernels built in ${((Date.now() - t0) / 1000).toFixed(1)} s: build/fer_native.node`,
);

/** sha256 over native/*.cc and *.h (names and contents, sorted): src/addon.ts computes the same. */
function sourcesDigest(dir) {
  const h = crypto.createHash('sha256');
  for (const f of fs
    .readdirSync(dir)
    .filter((n) => /\.(cc|h)$/.test(n))
    .sort())
    h.update(f).update(fs.readFileSync(path.join(dir, f)));
  return h.digest('hex');
}
