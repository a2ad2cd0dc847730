/**
 * The manet fixture's analytic weight rule (../shared/reference/manet/manifest.json `weights.rule`), regenerated
 * from our own enumeration of the reference's state dict (`manetTorchEntries`):
 *   s = sin(0.37·i + 1.3·k) in double (k = state-dict position, i = C-order flat index);
 *   conv/linear weights and linear biases (1/√fan_in)·s; BN weight 1 + 0.1·s, bias 0.1·s, running_mean 0.05·s,
 *   running_var 1 + 0.25·(1 + s); num_batches_tracked 0; every value rounded once to float32.
 * Test-only: the 202 MB state dict is too big to ship, so the fixture gives the rule and per-entry checksums.
 */
import type { RawTensor } from 'fer-torch';
import { manetTorchEntries, type ManetTorchEntry } from 'fer-models-manet/internal';

export interface AnalyticEntry {
  entry: ManetTorchEntry;
  /** float32 values in PyTorch layout; empty for num_batches_tracked (an int64 0). */
  values: Float32Array;
}

export function analyticValue(entry: ManetTorchEntry, i: number): number {
  const s = Math.sin(0.37 * i + 1.3 * entry.index);
  switch (entry.role) {
    case 'conv':
    case 'linear_weight':
    case 'linear_bias':
      return (1 / Math.sqrt(entry.fanIn!)) * s;
    case 'bn_weight':
      return 1 + 0.1 * s;
    case 'bn_bias':
      return 0.1 * s;
    case 'bn_running_mean':
      return 0.05 * s;
    case 'bn_running_var':
      return 1 + 0.25 * (1 + s);
    case 'bn_count':
      return 0;
  }
}

/** Every entry of the 7-class (or `numClasses`) model, in state-dict order. */
export function analyticEntries(numClasses = 7): AnalyticEntry[] {
  return manetTorchEntries({ numClasses }).map((entry) => {
    if (entry.role === 'bn_count') return { entry, values: new Float32Array(0) };
    const n = entry.shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(n); // storing rounds to float32 once, as Math.fround would
    for (let i = 0; i < n; i++) values[i] = analyticValue(entry, i);
    return { entry, values };
  });
}

/** The analytic weights as a PyTorch-named state dict (views, no copy); counts are int64 zeros. */
export function analyticStateDict(entries: AnalyticEntry[], prefix = ''): Map<string, RawTensor> {
  return new Map(
    entries.map(({ entry, values }) => [
      prefix + entry.key,
      entry.role === 'bn_count'
        ? { dtype: 'int64', shape: [], data: new Uint8Array(8) }
        : {
            dtype: 'float32',
            shape: [...entry.shape],
            data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength),
          },
    ]),
  );
}

/** float64 sum and sum of squares of the float32 values, as analytic_weights.json records them. */
export function checksum(values: Float32Array): { sum: number; sumsq: number } {
  let sum = 0;
  let sumsq = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    sumsq += values[i] * values[i];
  }
  return { sum, sumsq };
}
