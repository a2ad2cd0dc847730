// The part of @vladmandic/face-api's unbundled ESM build the page uses (its own types pull in @tensorflow/tfjs).
declare module '@vladmandic/face-api/dist/face-api.esm-nobundle.js' {
  import type * as tf from '@tensorflow/tfjs-core';
  export const nets: { tinyFaceDetector: { loadFromUri(url: string): Promise<void>; isLoaded: boolean } };
  export class TinyFaceDetectorOptions {
    constructor(o: { inputSize: number; scoreThreshold: number });
  }
  export function detectAllFaces(
    input: tf.Tensor3D,
    opts: TinyFaceDetectorOptions,
  ): Promise<{ score: number; box: { x: number; y: number; width: number; height: number } }[]>;
}
