// Builds the static page into dist/: one esbuild bundle, the page, the tfjs wasm binaries and face-api's tiny face
// detector weights (MIT, shipped in the npm package), so the served folder works offline. Usage: node build.mjs
import { build } from 'esbuild';
import { copyFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, 'dist');
const require = createRequire(import.meta.url);
const pkgDir = (name) => path.dirname(require.resolve(`${name}/package.json`));

/**
 * Builds the page. Node built-ins are not stubbed: the page imports only browser-safe entries, and esbuild fails on
 * any Node built-in, as a browser bundle must (packages/fer-models/test/browser-bundle.test.ts checks the same).
 */
export async function buildPage({ minify = true, quiet = false } = {}) {
  const t0 = Date.now();
  await rm(out, { recursive: true, force: true });
  await mkdir(path.join(out, 'wasm'), { recursive: true });
  await mkdir(path.join(out, 'face-api'), { recursive: true });
  const faceApi = pkgDir('@vladmandic/face-api');
  const result = await build({
    entryPoints: [path.join(here, 'src/app.ts')],
    outfile: path.join(out, 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify,
    absWorkingDir: here,
    sourcemap: true,
    metafile: true,
    logLevel: quiet ? 'error' : 'warning',
    alias: {
      // face-api's unbundled build imports these three; the page's own tfjs serves them.
      '@tensorflow/tfjs/dist/index.js': path.join(here, 'src/tfjs-shim.ts'),
      '@tensorflow/tfjs-backend-webgl/dist/index.js': '@tensorflow/tfjs-backend-webgl',
      '@tensorflow/tfjs-backend-wasm/dist/index.js': '@tensorflow/tfjs-backend-wasm',
    },
  });
  const wasmDir = path.join(pkgDir('@tensorflow/tfjs-backend-wasm'), 'dist');
  for (const f of await readdir(wasmDir))
    if (f.endsWith('.wasm')) await copyFile(path.join(wasmDir, f), path.join(out, 'wasm', f));
  for (const f of ['tiny_face_detector_model-weights_manifest.json', 'tiny_face_detector_model.bin'])
    await copyFile(path.join(faceApi, 'model', f), path.join(out, 'face-api', f));
  for (const f of ['index.html', 'style.css']) await copyFile(path.join(here, f), path.join(out, f));
  const size = (await stat(path.join(out, 'app.js'))).size;
  if (!quiet)
    console.log(
      `built ${path.relative(process.cwd(), out)}/ in ${Date.now() - t0} ms (app.js ${(size / 1e6).toFixed(2)} MB)`,
    );
  return { outDir: out, metafile: result.metafile };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  buildPage({ minify: !process.argv.includes('--no-minify') }).catch((e) => {
    console.error(e.message ?? e);
    process.exit(1);
  });
}
