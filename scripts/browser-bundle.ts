/**
 * Bundles each browser-safe entry for the browser with esbuild, from sources, and reports its size.
 * `tsx scripts/browser-bundle.ts` prints a table; the test (packages/fer-models/test/browser-bundle.test.ts) asserts
 * that every bundle, and the web demo's, builds with no Node built-in and no Node-only package (sharp, fast-glob).
 * tfjs packages are peer dependencies: left out of the bundle (and the sizes); everything else an entry imports,
 * fflate included, is in.
 */
import { builtinModules } from 'node:module';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { build, type Plugin } from 'esbuild';

const ROOT = path.join(__dirname, '..');

/**
 * Entries that must run in a page: packages' main entries, and fer-datasets' `image` subpath (fer-datasets' main
 * entry, fer-train and fer-parallel are Node-only; see README).
 */
export const BROWSER_PACKAGES = [
  'fer-core',
  'fer-backend',
  'fer-torch',
  'fer-diversity-loss',
  'fer-models-esr',
  'fer-models-manet',
  'fer-models',
  'fer-datasets/image',
] as const;

/** The web demo's page script (examples/web/src/app.ts). */
export const WEB_DEMO_ENTRY = path.join(ROOT, 'examples/web/src/app.ts');

export interface BundleResult {
  pkg: string;
  /** Node built-ins and Node-only packages the bundle tried to import (must be empty). */
  nodeImports: string[];
  errors: string[];
  minified: number;
  gzipped: number;
}

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
/** Packages that only work in Node (native addon, file system walks). */
const NODE_ONLY = /^(sharp|fast-glob)(\/|$)/;

/**
 * Workspace packages from sources (`fer-x` → src/index.ts, `fer-x/node` → src/node.ts); Node built-ins and Node-only
 * packages recorded (and left out).
 */
function workspace(nodeImports: Set<string>): Plugin {
  return {
    name: 'workspace',
    setup(b) {
      b.onResolve({ filter: /^fer-[a-z-]+(\/(node|internal|image))?$/ }, (a) => {
        const [pkg, sub = 'index'] = a.path.split('/');
        return { path: path.join(ROOT, 'packages', pkg, 'src', `${sub}.ts`) };
      });
      b.onResolve({ filter: /.*/ }, (a) => {
        if (BUILTINS.has(a.path) || NODE_ONLY.test(a.path)) {
          nodeImports.add(`${a.path} (from ${path.relative(ROOT, a.importer)})`);
          return { path: a.path, external: true };
        }
        return undefined;
      });
    },
  };
}

/** `pkg` is a package (`fer-core`), a subpath entry (`fer-datasets/image`) or a file path (the web demo's script). */
export async function bundleForBrowser(pkg: string): Promise<BundleResult> {
  const nodeImports = new Set<string>();
  const [name, sub = 'index'] = pkg.split('/');
  const entry = path.isAbsolute(pkg) ? pkg : path.join(ROOT, 'packages', name, 'src', `${sub}.ts`);
  const res = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    minify: true,
    write: false,
    logLevel: 'silent',
    // The page's third-party browser libraries are not ours to check (and their size is not ours to report).
    external: ['@tensorflow/*', '@vladmandic/*'],
    plugins: [workspace(nodeImports)],
  }).catch((e: { errors?: { text: string }[] }) => ({ errors: e.errors ?? [{ text: String(e) }], outputFiles: [] }));
  const out = res.outputFiles?.[0]?.contents ?? new Uint8Array(0);
  return {
    pkg,
    nodeImports: [...nodeImports].sort(),
    errors: res.errors.map((e) => e.text),
    minified: out.byteLength,
    gzipped: out.byteLength ? gzipSync(out).byteLength : 0,
  };
}

if (require.main === module) {
  void (async () => {
    console.log('| package | minified | gzipped | Node built-ins |\n|---|---:|---:|---|');
    for (const pkg of BROWSER_PACKAGES) {
      const r = await bundleForBrowser(pkg);
      const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
      console.log(
        `| ${pkg} | ${kb(r.minified)} | ${kb(r.gzipped)} | ${[...r.nodeImports, ...r.errors].join(', ') || 'none'} |`,
      );
    }
  })();
}
