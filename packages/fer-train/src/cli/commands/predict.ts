import { existsSync } from 'node:fs';
import { FerInputError, isFerError, type FerModel } from 'fer-core';
import { assertFiniteWeights } from '../../guards';
import { stateVariables } from '../../state';
import { predictImage, type FacePrediction } from '../../predict/predict';
import { loadModel } from 'fer-models/node';
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
  const model = await loadModel(o.model);
  const results: { image: string; faces: FacePrediction[] }[] = [];
  const failed: string[] = [];
  let infer: FerModel | null = null;
  try {
    await assertFiniteWeights(stateVariables(model), o.model);
    // Pure inference: batch norms folded into the convs (same values up to float32 rounding, fewer ops).
    infer = model.fold();
    for (const image of images) {
      let faces: FacePrediction[];
      try {
        faces = await predictImage(infer, image, {
          detect: o.detect,
          minScore: o.minScore,
          inputSize: model.input.size,
          colorOrder: model.input.colorOrder,
          normalization: model.input.normalization,
          combine: model.kind === 'esr' ? { kind: 'vote' } : { kind: 'weighted', weights: [0.6, 0.4] },
        });
      } catch (e) {
        // One bad file (missing, a folder, truncated) is reported on one line; the others are still predicted.
        if (!isFerError(e) && !(e as NodeJS.ErrnoException).code) throw e;
        failed.push(image);
        const message = (e as Error).message.replace(/\s+/g, ' ');
        out.result(`${image}: error: ${message}`, { type: 'prediction-error', image, message });
        continue;
      }
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
    infer?.dispose();
    model.dispose();
  }
  if (failed.length > 0)
    throw new FerInputError(
      `${failed.length} of ${images.length} image(s) could not be read: ${failed.slice(0, 3).join(', ')}${failed.length > 3 ? ', ...' : ''}.`,
      'Each is reported above; the other images were predicted.',
    );
  return results;
}
