import * as tf from '@tensorflow/tfjs-core';
import * as faceapi from '@vladmandic/face-api/dist/face-api.esm-nobundle.js';
import type { RawImage } from './pixels';

/** A detected face in image pixels (as `fer predict` reports it). */
export interface FaceBox {
  left: number;
  top: number;
  width: number;
  height: number;
  score: number;
}

/** Loads face-api's tiny face detector from `url` (the build copies its weights from the npm package). */
export async function loadDetector(url: string): Promise<void> {
  if (!faceapi.nets.tinyFaceDetector.isLoaded) await faceapi.nets.tinyFaceDetector.loadFromUri(url);
}

/**
 * Faces in an 8-bit RGB image, largest first: the tiny face detector at input 416 and score 0.3, boxes rounded
 * and clipped to the image, exactly as fer-train's `detectFaces` (what `fer predict` runs) does in Node.
 */
export async function detectFaces(img: RawImage, minScore = 0.3, inputSize = 416): Promise<FaceBox[]> {
  const t = tf.tensor3d(img.data, [img.height, img.width, 3], 'int32');
  try {
    const dets = await faceapi.detectAllFaces(
      t,
      new faceapi.TinyFaceDetectorOptions({ inputSize, scoreThreshold: minScore }),
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
