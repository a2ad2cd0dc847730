/**
 * Each browser-safe entry bundles for the browser (esbuild, platform browser) with no Node built-in and no Node-only
 * package (sharp, fast-glob): the models (create, load from URLs / tf.io handlers / checkpoint bytes, predict,
 * attention), the loss, the PyTorch reader, the backend selection and fer-datasets' image preprocessing. File I/O
 * lives behind the `/node` subpaths. So does the web demo's page script, which is built with no Node stub.
 */
import { BROWSER_PACKAGES, WEB_DEMO_ENTRY, bundleForBrowser } from '../../../scripts/browser-bundle';

describe('browser bundles', () => {
  it.each(BROWSER_PACKAGES)('%s bundles for the browser without Node built-ins', async (pkg) => {
    const r = await bundleForBrowser(pkg);
    expect({ pkg, errors: r.errors, nodeImports: r.nodeImports }).toEqual({ pkg, errors: [], nodeImports: [] });
    expect(r.minified).toBeGreaterThan(0);
  });

  it('the web demo bundles for the browser without Node built-ins, sharp or fast-glob', async () => {
    const r = await bundleForBrowser(WEB_DEMO_ENTRY);
    expect({ errors: r.errors, nodeImports: r.nodeImports }).toEqual({ errors: [], nodeImports: [] });
    expect(r.minified).toBeGreaterThan(0);
  });

  it('the check catches what it guards against: fer-datasets main entry pulls sharp, fast-glob and Node built-ins', async () => {
    const r = await bundleForBrowser('fer-datasets');
    const pulled = r.nodeImports.map((s) => s.split(' ')[0]);
    expect(pulled).toEqual(expect.arrayContaining(['sharp', 'fast-glob', 'node:fs']));
  });
});
