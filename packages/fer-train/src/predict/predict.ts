import * as tf from '@tensorflow/tfjs-core';
import type { FerModel } from 'fer-core';
import { decodeImage, rawToModelInput } from 'fer-datasets';
import { argmax, pluralityVote } from '../metrics/classification';
import { detectFaces, type DetectOptions, type FaceBox } from './faces';

export interface FacePrediction {
  box: FaceBox | null;
  /** The ensemble's class (plurality vote, ties to the lowest index; MA-Net: argmax of β·o1 + (1−β)·o2). */
  emotion: string;
  /** Each branch's (or head's) class. */
  votes: string[];
  /** Mean of the branches' softmax probabilities per class. */
  probabilities: Record<string, number>;
}

export interface PredictOptions extends DetectOptions {
  /** Skip detection: the whole image is one pre-cropped face. */
  detect?: boolean;
  /** Model input side (ESR 96, MA-Net 224). */
  inputSize: number;
  colorOrder?: 'rgb' | 'bgr';
  normalization?: { mean: readonly number[]; std: readonly number[] } | null;
  combine?: { kind: 'vote' } | { kind: 'weighted'; weights: number[] };
}

/** Detects the faces in an image file (unless `detect: false`) and classifies each with the model. */
export async function predictImage(model: FerModel, file: string, o: PredictOptions): Promise<FacePrediction[]> {
  const raw = await decodeImage(file);
  const boxes: (FaceBox | null)[] = o.detect === false ? [null] : await detectFaces(raw, o);
  if (boxes.length === 0) return [];
  const crops = await Promise.all(
    boxes.map((b) =>
      rawToModelInput(raw, {
        crop: b ? { left: b.left, top: b.top, width: b.width, height: b.height } : undefined,
        size: o.inputSize,
        channelOrder: o.colorOrder ?? 'rgb',
      }),
    ),
  );
  const n = crops.length;
  const px = new Float32Array(n * o.inputSize * o.inputSize * 3);
  crops.forEach((c, i) => px.set(c.data, i * c.data.length));
  const labels = model.labels as readonly string[];
  const K = labels.length;
  const out = tf.tidy(() => {
    let x: tf.Tensor = tf.tensor4d(px, [n, o.inputSize, o.inputSize, 3]);
    if (o.normalization)
      x = tf.div(tf.sub(x, tf.tensor1d([...o.normalization.mean])), tf.tensor1d([...o.normalization.std]));
    const r = model.forward(x as tf.Tensor4D, { training: false });
    return tf.concat([tf.stack(r.logits), tf.stack(r.logits.map((l) => tf.softmax(l)))], 2); // [m, n, 2K]
  });
  const v = await out.data();
  const m = out.shape[0];
  out.dispose();
  return boxes.map((box, i) => {
    const at = (k: number, c: number) => (k * n + i) * 2 * K + c;
    const preds = Array.from({ length: m }, (_, k) => argmax(v, at(k, 0), K));
    let cls: number;
    if (o.combine?.kind === 'weighted') {
      const w = o.combine.weights;
      const z = Array.from({ length: K }, (_, c) => w.reduce((s, wk, k) => s + wk * v[at(k, c)], 0));
      cls = argmax(z);
    } else cls = pluralityVote(preds, K);
    const probabilities = Object.fromEntries(
      labels.map((l, c) => [l, Array.from({ length: m }, (_, k) => v[at(k, K + c)]).reduce((a, b) => a + b, 0) / m]),
    );
    return { box, emotion: labels[cls], votes: preds.map((p) => labels[p]), probabilities };
  });
}
