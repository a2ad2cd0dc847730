// Serves the built page (dist/) on 127.0.0.1, and a saved ESR model folder under /model/.
// Usage: node serve.mjs [--port 8080] [--model <folder with model.json>]   (default model: <repo>/runs/demo/model)
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.wasm': 'application/wasm',
  '.bin': 'application/octet-stream',
  '.jpg': 'image/jpeg',
  '.png': 'image/png',
};

/** Maps a URL path into `root` (null when it escapes it or is not a file). */
function fileIn(root, rel) {
  const file = path.resolve(root, '.' + path.posix.normalize('/' + rel));
  if (file !== root && !file.startsWith(root + path.sep)) return null;
  return existsSync(file) && statSync(file).isFile() ? file : null;
}

/**
 * Starts the server. `mounts` maps URL prefixes to extra folders (the test mounts sample photos). Resolves to
 * `{ url, close }` once listening. Cross-origin isolation headers let the wasm backend use its threaded build.
 */
export function startServer({ root = path.join(here, 'dist'), model, port = 8080, mounts = {} } = {}) {
  const table = [...Object.entries(mounts), ...(model ? [['/model/', model]] : []), ['/', root]].map(([p, d]) => [
    p,
    path.resolve(d),
  ]);
  const server = createServer((req, res) => {
    const pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    let file = null;
    for (const [prefix, dir] of table) {
      if (!pathname.startsWith(prefix)) continue;
      const rel = pathname.slice(prefix.length) || (prefix === '/' ? 'index.html' : '');
      file = fileIn(dir, rel);
      if (file) break;
    }
    if (!file || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${pathname}\n`);
      return;
    }
    res.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
      'cache-control': 'no-store',
    });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: p } = server.address();
      resolve({ url: `http://127.0.0.1:${p}/`, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const dist = path.join(here, 'dist');
  if (!existsSync(path.join(dist, 'index.html'))) {
    console.error(`No built page in ${dist}: run \`pnpm --filter fer-web-demo build\` first.`);
    process.exit(1);
  }
  const fallback = path.resolve(here, '../../runs/demo/model');
  const model = arg('--model') ?? (existsSync(path.join(fallback, 'model.json')) ? fallback : undefined);
  const { url } = await startServer({ model, port: Number(arg('--port') ?? 8080) });
  console.log(
    `serving ${url}  (model: ${model ?? 'none: run `pnpm demo` first, pass --model <dir>, or drop a .pt checkpoint in the page'})`,
  );
}
