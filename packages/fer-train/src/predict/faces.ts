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

interface FaceApi {
  nets: { tinyFaceDetector: { loadFromDisk(dir: string): Promise<void>; isLoaded: boolean } };
  TinyFaceDetectorOptions: new (o: { inputSize: number; scoreThreshold: number }) => unknown;
  detectAllFaces(input: tf.Tensor3D, opts: unknown): Promise<{ score: number; box: { x: number; y: number; width: number; height: number } }[]>;
}

let faceapi: FaceApi | undefined;

/**
 * Loads @vladmandic/face-api's Node wasm build on the tfjs-core this process already uses (its weights ship inside
 * the package, so it works offline). The build requires the `@tensorflow/tfjs` umbrella package; it only needs
 * tfjs-core's API, so that one name is resolved to tfjs-core while the module loads, and tfjs' chained-op methods
 * (`x.as3D()`), which face-api calls, are registered.
 */
async function loadFaceApi(): Promise<FaceApi> {
  if (faceapi) return faceapi;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  require('@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops');
  const M = Module as unknown as { _resolveFilename: (req: string, ...rest: unknown[]) => string };
  const original = M._resolveFilename;
  const core = require.resolve('@tensorflow/tfjs-core');
  M._resolveFilename = function (this: unknown, req: string, ...rest: unknown[]) {
    return req === '@tensorflow/tfjs' ? core : original.call(this, req, ...rest);
  };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js') as FaceApi;
  } finally {
    M._resolveFilename = original;
  }
  const dir = path.join(path.dirname(require.resolve('@vladmandic/face-api/package.json')), 'model');
  if (!faceapi.nets.tinyFaceDetector.isLoaded) await faceapi.nets.tinyFaceDetector.loadFromDisk(dir);
  return faceapi;
}

export interface DetectOptions {
  /** Detector input size (multiple of 32). Default 416. */
  inputSize?: number;
  /** Minimum detection score. Default 0.4. */
  minScore?: number;
}

/** Faces in an 8-bit RGB image (face-api's tiny face detector), largest first. */
export async function detectFaces(img: RawImage, o: DetectOptions = {}): Promise<FaceBox[]> {
  const api = await loadFaceApi();
  const t = tf.tensor3d(img.data, [img.height, img.width, 3], 'int32');
  try {
    const dets = await api.detectAllFaces(t, new api.TinyFaceDetectorOptions({ inputSize: o.inputSize ?? 416, scoreThreshold: o.minScore ?? 0.4 }));
    return dets
      .map((d) => ({ left: Math.max(0, Math.round(d.box.x)), top: Math.max(0, Math.round(d.box.y)), width: Math.round(d.box.width), height: Math.round(d.box.height), score: d.score }))
      .map((b) => ({ ...b, width: Math.min(b.width, img.width - b.left), height: Math.min(b.height, img.height - b.top) }))
      .filter((b) => b.width > 4 && b.height > 4)
      .sort((a, b) => b.width * b.height - a.width * a.height);
  } finally {
    t.dispose();
  }
}
