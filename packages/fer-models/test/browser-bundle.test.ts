/**
 * Each browser-safe package's main entry bundles for the browser (esbuild, platform browser) with no Node built-in:
 * the models (create, load from URLs / tf.io handlers / checkpoint bytes, predict, attention), the loss, the PyTorch
 * reader and the backend selection. File I/O lives behind the `/node` subpaths.
 */
import { BROWSER_PACKAGES, bundleForBrowser } from '../../../scripts/browser-bundle';

describe('browser bundles', () => {
  it.each(BROWSER_PACKAGES)('%s bundles for the browser without Node built-ins', async (pkg) => {
    const r = await bundleForBrowser(pkg);
    expect({ pkg, errors: r.errors, nodeImports: r.nodeImports }).toEqual({ pkg, errors: [], nodeImports: [] });
    expect(r.minified).toBeGreaterThan(0);
  });
});
