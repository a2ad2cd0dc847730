import { existsSync } from 'node:fs';
import { FerInputError, type FerModel } from 'fer-core';
import { predictImage, type FacePrediction } from '../../predict/predict';
import { loadAnyEsr, loadManetDir, modelKind } from '../models';
import type { Output } from '../output';

export interface PredictCommandOptions {
  model: string;
  detect: boolean;
  minScore: number;
}

/** `fer predict`: one line per face with the ensemble's emotion and each branch's vote. */
export async function runPredict(
  images: string[],
  o: PredictCommandOptions,
  out: Output,
): Promise<{ image: string; faces: FacePrediction[] }[]> {
  if (!existsSync(o.model)) {
    throw new FerInputError(
      `No model at ${o.model}.`,
      'Train one first (`pnpm demo` writes runs/demo/model) or pass --model <dir>.',
    );
  }
  const kind = modelKind(o.model);
  const model: FerModel = kind === 'esr' ? await loadAnyEsr(o.model) : await loadManetDir(o.model);
  const cfg =
    (
      model as {
        config?: {
          inputSize?: number;
          colorOrder?: 'rgb' | 'bgr';
          normalization?: { mean: number[]; std: number[] } | null;
        };
      }
    ).config ?? {};
  const results: { image: string; faces: FacePrediction[] }[] = [];
  try {
    for (const image of images) {
      const faces = await predictImage(model, image, {
        detect: o.detect,
        minScore: o.minScore,
        inputSize: cfg.inputSize ?? (kind === 'esr' ? 96 : 224),
        colorOrder: cfg.colorOrder ?? 'rgb',
        normalization: cfg.normalization ?? null,
        combine: kind === 'esr' ? { kind: 'vote' } : { kind: 'weighted', weights: [0.6, 0.4] },
      });
      results.push({ image, faces });
      if (faces.length === 0)
        out.result(`${image}: no face found (try --min-score 0.2, or --no-detect for a cropped face)`, {
          type: 'prediction',
          image,
          faces: [],
        });
      faces.forEach((f, i) => {
        const where = f.box
          ? `face ${i + 1} at [${f.box.left}, ${f.box.top}, ${f.box.width}x${f.box.height}] (score ${f.box.score.toFixed(2)})`
          : 'whole image';
        const counts = new Map<string, number>();
        f.votes.forEach((v) => counts.set(v, (counts.get(v) ?? 0) + 1));
        const votes = [...counts].map(([e, c]) => `${e}×${c}`).join(', ');
        out.result(`${image}: ${where}: ${f.emotion}  (votes: ${votes}; p=${f.probabilities[f.emotion].toFixed(2)})`, {
          type: 'prediction',
          image,
          face: i + 1,
          ...f,
        });
      });
    }
  } finally {
    model.dispose();
  }
  return results;
}
