/**
 * face-api's unbundled ESM build imports the `@tensorflow/tfjs` umbrella package. It only uses tfjs-core's ops and
 * the chained-op methods (`x.as3D()`), so the build maps that name to this module: face-api then runs on the page's
 * one tfjs-core engine and backend instead of a second copy of tfjs.
 */
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';
export * from '@tensorflow/tfjs-core';
