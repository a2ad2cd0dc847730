/**
 * Bundles each browser-safe package's main entry for the browser with esbuild, from sources, and reports its size.
 * `tsx scripts/browser-bundle.ts` prints a table; the test (packages/fer-models/test/browser-bundle.test.ts) asserts
 * that every bundle builds with no Node built-in. tfjs packages are peer dependencies: left out of the bundle (and the
 * sizes); everything else a package imports, fflate included, is in.
 */
import { builtinModules } from 'node:module';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { build, type Plugin } from 'esbuild';

const ROOT = path.join(__dirname, '..');

/** Packages whose main entry must run in a page. Node-only: fer-datasets, fer-train, fer-parallel (see README). */
export const BROWSER_PACKAGES = [
  'fer-core',
  'fer-backend',
  'fer-torch',
  'fer-diversity-loss',
  'fer-models-esr',
  'fer-models-manet',
  'fer-models',
] as const;

export interface BundleResult {
  pkg: string;
  /** Node built-ins the bundle tried to import (must be empty). */
  nodeImports: string[];
  errors: string[];
  minified: number;
  gzipped: number;
}

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Workspace packages from sources (`fer-x` → src/index.ts, `fer-x/node` → src/node.ts); built-ins recorded. */
function workspace(nodeImports: Set<string>): Plugin {
  return {
    name: 'workspace',
    setup(b) {
      b.onResolve({ filter: /^fer-[a-z-]+(\/(node|internal))?$/ }, (a) => {
        const [pkg, sub = 'index'] = a.path.split('/');
        return { path: path.join(ROOT, 'packages', pkg, 'src', `${sub}.ts`) };
      });
      b.onResolve({ filter: /.*/ }, (a) => {
        if (BUILTINS.has(a.path)) {
          nodeImports.add(`${a.path} (from ${path.relative(ROOT, a.importer)})`);
          return { path: a.path, external: true };
        }
        return undefined;
      });
    },
  };
}

export async function bundleForBrowser(pkg: string): Promise<BundleResult> {
  const nodeImports = new Set<string>();
  const res = await build({
    entryPoints: [path.join(ROOT, 'packages', pkg, 'src', 'index.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    minify: true,
    write: false,
    logLevel: 'silent',
    external: ['@tensorflow/*'],
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
