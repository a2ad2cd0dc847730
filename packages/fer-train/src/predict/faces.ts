import Module from 'node:module';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { RawImage } from 'fer-datasets';

/** A detected face in image pixels. */
export interface FaceBox {
  left: number;
  top: number;
  width: number;
  height: number;
  score: number;
}

export interface FaceApi {
  nets: { tinyFaceDetector: { loadFromDisk(dir: string): Promise<void>; isLoaded: boolean } };
  TinyFaceDetectorOptions: new (o: { inputSize: number; scoreThreshold: number }) => unknown;
  detectAllFaces(
    input: tf.Tensor3D,
    opts: unknown,
  ): Promise<{ score: number; box: { x: number; y: number; width: number; height: number } }[]>;
}

let faceapi: FaceApi | undefined;

/**
 * tfjs' chained-op methods (`x.as3D()`, `x.expandDims()`), which face-api calls, live in ESM-only files of
 * tfjs-core; this defines the ones a tensor lacks as thin calls to the functional ops (no-op where present).
 */
function registerChainedOps(): void {
  const proto = tf.Tensor.prototype as unknown as Record<string, unknown>;
  const ops = tf as unknown as Record<string, unknown>;
  const define = (name: string, fn: (this: tf.Tensor, ...a: unknown[]) => unknown) => {
    if (typeof proto[name] !== 'function')
      Object.defineProperty(proto, name, { value: fn, configurable: true, writable: true });
  };
  for (const [name, rank] of [
    ['as1D', [-1]],
    ['as2D', null],
    ['as3D', null],
    ['as4D', null],
    ['as5D', null],
  ] as const) {
    define(name, function (this: tf.Tensor, ...dims: unknown[]) {
      return tf.reshape(this, (rank ?? dims) as number[]);
    });
  }
  define('asScalar', function (this: tf.Tensor) {
    return tf.reshape(this, []);
  });
  define('asType', function (this: tf.Tensor, dtype: unknown) {
    return tf.cast(this, dtype as tf.DataType);
  });
  define('toFloat', function (this: tf.Tensor) {
    return tf.cast(this, 'float32');
  });
  define('toInt', function (this: tf.Tensor) {
    return tf.cast(this, 'int32');
  });
  define('toBool', function (this: tf.Tensor) {
    return tf.cast(this, 'bool');
  });
  const methods = [
    'add',
    'sub',
    'mul',
    'div',
    'max',
    'min',
    'relu',
    'floor',
    'maxPool',
    'slice',
    'cast',
    'reshape',
    'conv2d',
    'abs',
    'transpose',
    'round',
    'exp',
    'avgPool',
    'sqrt',
    'softmax',
    'pad',
    'matMul',
    'expandDims',
    'clipByValue',
    'tile',
    'sigmoid',
    'resizeBilinear',
    'mean',
    'log',
    'depthwiseConv2d',
    'atan',
    'asin',
    'separableConv2d',
    'reverse',
    'split',
    'unstack',
    'all',
    'square',
    'sum',
    'neg',
    'squeeze',
    'argMax',
    'greater',
    'less',
    'equal',
    'gather',
  ];
  for (const name of methods) {
    const op = ops[name];
    if (typeof op === 'function') {
      define(name, function (this: tf.Tensor, ...args: unknown[]) {
        return (op as (...a: unknown[]) => unknown)(this, ...args);
      });
    }
  }
}

/**
 * face-api must be loaded through CommonJS `require`, not `import`: its Node build is CommonJS, the resolver hook below
 * only sees `require` calls, and under jest this is jest's `require`, which applies the tests' module mapping.
 */
const nodeRequire: NodeJS.Require = require;

/**
 * Loads @vladmandic/face-api's Node wasm build on the tfjs-core this process already uses (its weights ship inside
 * the package, so it works offline). The build requires the `@tensorflow/tfjs` umbrella package; it only needs
 * tfjs-core's API, so that one name is resolved to tfjs-core while the module loads, and tfjs' chained-op methods
 * (`x.as3D()`), which face-api calls, are registered.
 */
export async function loadFaceApi(): Promise<FaceApi> {
  if (faceapi) return faceapi;
  try {
    // tfjs' own registration (ESM files; loads under Node's require with tsx, not under every test transform)
    nodeRequire('@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops');
  } catch {
    registerChainedOps();
  }
  const M = Module as unknown as { _resolveFilename: (req: string, ...rest: unknown[]) => string };
  const original = M._resolveFilename;
  const core = require.resolve('@tensorflow/tfjs-core');
  M._resolveFilename = function (this: unknown, req: string, ...rest: unknown[]) {
    return req === '@tensorflow/tfjs' ? core : original.call(this, req, ...rest);
  };
  try {
    faceapi = nodeRequire('@vladmandic/face-api/dist/face-api.node-wasm.js') as FaceApi;
  } finally {
    M._resolveFilename = original;
  }
  const dir = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
  if (!faceapi.nets.tinyFaceDetector.isLoaded) await faceapi.nets.tinyFaceDetector.loadFromDisk(dir);
  return faceapi;
}

export interface DetectOptions {
  /** Detector input size (multiple of 32). Default 416. */
  detectorSize?: number;
  /** Minimum detection score. Default 0.3. */
  minScore?: number;
}

/** Faces in an 8-bit RGB image (face-api's tiny face detector), largest first. */
export async function detectFaces(img: RawImage, o: DetectOptions = {}): Promise<FaceBox[]> {
  const api = await loadFaceApi();
  const t = tf.tensor3d(img.data, [img.height, img.width, 3], 'int32');
  try {
    const dets = await api.detectAllFaces(
      t,
      new api.TinyFaceDetectorOptions({ inputSize: o.detectorSize ?? 416, scoreThreshold: o.minScore ?? 0.3 }),
    );
    return dets
      .map((d) => ({
        left: Math.max(0, Math.round(d.box.x)),
        top: Math.max(0, Math.round(d.box.y)),
        width: Math.round(d.box.width),
        height: Math.round(d.box.height),
        score: d.score,
      }))
      .map((b) => ({
        ...b,
        width: Math.min(b.width, img.width - b.left),
        height: Math.min(b.height, img.height - b.top),
      }))
      .filter((b) => b.width > 4 && b.height > 4)
      .sort((a, b) => b.width * b.height - a.width * a.height);
  } finally {
    t.dispose();
  }
}
