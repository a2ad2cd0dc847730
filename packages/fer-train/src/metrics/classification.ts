/**
 * Plain-number classification metrics (no tensors): plurality vote and two probability-aware ensemble rules,
 * confusion matrix, per-class precision, recall and F1, macro-F1.
 */

/**
 * Plurality vote of per-branch predictions for one sample; ties go to the lowest class index (PyTorch's `max`
 * returns the first maximum, docs/method.md#esr-evaluation).
 */
export function pluralityVote(predictions: readonly number[], numClasses: number): number {
  const counts = new Array<number>(numClasses).fill(0);
  for (const p of predictions) counts[p]++;
  let best = 0;
  for (let k = 1; k < numClasses; k++) if (counts[k] > counts[best]) best = k;
  return best;
}

/**
 * Plurality vote whose ties are broken by probability (the real-faces experiment's `voteProbTies` rule, not
 * upstream's): among the classes with most votes, the one with the largest probability summed over the branches
 * wins; an exact tie of those sums goes to the lowest class index. Without a tie it equals `pluralityVote`.
 * @param probs per branch, `numClasses` probabilities of this sample (`probs[k][c]`)
 */
export function pluralityVoteProbTies(
  predictions: readonly number[],
  probs: readonly ArrayLike<number>[],
  numClasses: number,
): number {
  const counts = new Array<number>(numClasses).fill(0);
  for (const p of predictions) counts[p]++;
  const top = Math.max(...counts);
  let best = -1;
  let bestMass = -Infinity;
  for (let c = 0; c < numClasses; c++) {
    if (counts[c] !== top) continue;
    let mass = 0;
    for (const row of probs) mass += row[c];
    if (mass > bestMass) [best, bestMass] = [c, mass];
  }
  return best;
}

/**
 * Soft (mean-probability) ensemble: the argmax of the branches' summed (equivalently, mean) probabilities, ties to
 * the lowest class index.
 */
export function meanProbabilityVote(probs: readonly ArrayLike<number>[], numClasses: number): number {
  const sum = new Array<number>(numClasses).fill(0);
  for (const row of probs) for (let c = 0; c < numClasses; c++) sum[c] += row[c];
  return argmax(sum);
}

/** Index of the first maximum of `xs` (argmax, ties to the lowest index). */
export function argmax(xs: ArrayLike<number>, offset = 0, length = xs.length - offset): number {
  let best = 0;
  for (let k = 1; k < length; k++) if (xs[offset + k] > xs[offset + best]) best = k;
  return best;
}

/** `counts[t][p]`: samples of true class t predicted as p. */
export type ConfusionMatrix = number[][];

export function confusionMatrix(
  truth: ArrayLike<number>,
  predicted: ArrayLike<number>,
  numClasses: number,
): ConfusionMatrix {
  const m = Array.from({ length: numClasses }, () => new Array<number>(numClasses).fill(0));
  for (let i = 0; i < truth.length; i++) m[truth[i]][predicted[i]]++;
  return m;
}

export interface ClassReport {
  precision: number;
  recall: number;
  f1: number;
  /** Number of true samples of this class. */
  support: number;
}

export interface ClassificationReport {
  accuracy: number;
  perClass: ClassReport[];
  /** Mean F1 over classes with support > 0 (classes absent from the split are left out). */
  macroF1: number;
  confusion: ConfusionMatrix;
}

/** Accuracy, per-class precision/recall/F1 (0 where undefined) and macro-F1 from a confusion matrix. */
export function classificationReport(confusion: ConfusionMatrix): ClassificationReport {
  const k = confusion.length;
  let total = 0;
  let correct = 0;
  const perClass: ClassReport[] = [];
  for (let c = 0; c < k; c++) {
    const tp = confusion[c][c];
    let support = 0;
    let predicted = 0;
    for (let j = 0; j < k; j++) {
      support += confusion[c][j];
      predicted += confusion[j][c];
    }
    total += support;
    correct += tp;
    const precision = predicted > 0 ? tp / predicted : 0;
    const recall = support > 0 ? tp / support : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    perClass.push({ precision, recall, f1, support });
  }
  const present = perClass.filter((c) => c.support > 0);
  return {
    accuracy: total > 0 ? correct / total : 0,
    perClass,
    macroF1: present.length > 0 ? present.reduce((s, c) => s + c.f1, 0) / present.length : 0,
    confusion,
  };
}
