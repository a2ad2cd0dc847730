/**
 * The JS peer of the real-faces experiment: face-api.js's 7-class expression network (the weights of
 * `../shared/data/faceapi-expression/weights`, loaded by @vladmandic/face-api, the package `fer predict` uses for
 * face detection) scored on the same faces. Its own input convention: the face as 0-255 RGB (grey replicated), padded
 * to a square and resized to 112×112 inside face-api, mean-subtracted there.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import sharp from 'sharp';
import type { Emotion } from 'fer-core';
import { loadFaceApi } from '../predict/faces';
import { argmax, classificationReport, confusionMatrix } from '../metrics/classification';
import type { SplitItem } from './real-faces-data';

/** face-api's output order (`FaceExpressions`), as emotions. */
export const FACEAPI_LABELS: readonly Emotion[] = ['neutral', 'happy', 'sad', 'anger', 'fear', 'disgust', 'surprise'];

export interface PeerScore {
  size: number;
  accuracy: number;
  macroF1: number;
  /** Rows: truth in `FACEAPI_LABELS` order; columns: prediction. */
  confusion: number[][];
}

export interface PeerResult {
  model: string;
  test?: PeerScore;
  testFerPlus?: PeerScore;
  ckplus?: PeerScore;
  jaffe?: PeerScore;
  seconds: number;
}

interface ExpressionNet {
  isLoaded: boolean;
  loadFromDisk(dir: string): Promise<void>;
  forward(input: tf.Tensor3D[]): Promise<tf.Tensor2D>;
}

async function rgbBytes(file: string): Promise<{ data: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(file)
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  const rgb =
    info.channels === 3
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : Uint8Array.from({ length: info.width * info.height * 3 }, (_, i) => data[Math.floor(i / 3) * info.channels]);
  return { data: rgb, width: info.width, height: info.height };
}

/** Scores face-api's expression net on each split (same-size images are batched). */
export async function evaluatePeer(
  dataDir: string,
  splits: Partial<Record<'test' | 'ckplus' | 'jaffe', SplitItem[]>>,
  /** FER+ majority labels of PrivateTest faces by file: scored from the `test` pass (same faces, other labels). */
  ferPlus?: ReadonlyMap<string, Emotion>,
  batchSize = 64,
): Promise<PeerResult> {
  const t0 = Date.now();
  const weights = path.join(dataDir, 'faceapi-expression', 'weights');
  const result: PeerResult = { model: 'face-api.js face_expression_model (faceapi-expression/weights)', seconds: 0 };
  if (!existsSync(path.join(weights, 'face_expression_model-weights_manifest.json'))) return result;
  const api = (await loadFaceApi()) as unknown as { nets: { faceExpressionNet: ExpressionNet } };
  const net = api.nets.faceExpressionNet;
  if (!net.isLoaded) await net.loadFromDisk(weights);
  for (const [k, items] of Object.entries(splits) as [keyof typeof splits, SplitItem[]][]) {
    if (!items?.length) continue;
    const truth = items.map((it) => FACEAPI_LABELS.indexOf(it.label));
    const pred = new Array<number>(items.length).fill(-1);
    for (let i = 0; i < items.length; i += batchSize) {
      const chunk = items.slice(i, i + batchSize);
      const imgs = await Promise.all(chunk.map((it) => rgbBytes(path.join(dataDir, it.file))));
      // Group by size (a batch tensor needs one shape).
      const bySize = new Map<string, number[]>();
      imgs.forEach((im, j) => {
        const key = `${im.width}x${im.height}`;
        bySize.set(key, [...(bySize.get(key) ?? []), j]);
      });
      for (const idx of bySize.values()) {
        const { width, height } = imgs[idx[0]];
        const flat = new Float32Array(idx.length * width * height * 3);
        idx.forEach((j, n) => flat.set(imgs[j].data, n * width * height * 3));
        const x = tf.tensor4d(flat, [idx.length, height, width, 3]);
        const faces = tf.unstack(x) as tf.Tensor3D[]; // face-api batches an array of images, not a 4-D tensor
        let probs: tf.Tensor2D | undefined;
        try {
          probs = await net.forward(faces);
          const p = await probs.data();
          idx.forEach((j, n) => (pred[i + j] = argmax(p, n * 7, 7)));
        } finally {
          tf.dispose([x, ...faces]);
          probs?.dispose();
        }
      }
    }
    const rep = classificationReport(confusionMatrix(truth, pred, 7));
    result[k] = { size: truth.length, accuracy: rep.accuracy, macroF1: rep.macroF1, confusion: rep.confusion };
    if (k === 'test' && ferPlus?.size) {
      const keep = items.map((it, i) => [ferPlus.get(it.file), i] as const).filter(([e]) => e !== undefined);
      const fp = classificationReport(
        confusionMatrix(
          keep.map(([e]) => FACEAPI_LABELS.indexOf(e!)),
          keep.map(([, i]) => pred[i]),
          7,
        ),
      );
      result.testFerPlus = { size: keep.length, accuracy: fp.accuracy, macroF1: fp.macroF1, confusion: fp.confusion };
    }
  }
  result.seconds = (Date.now() - t0) / 1000;
  return result;
}
