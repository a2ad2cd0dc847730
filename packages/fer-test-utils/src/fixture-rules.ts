import { fromFloat32, toFloat32, type RawTensor } from 'fer-torch';

/**
 * train_esr2's `near_duplicate` branch 2 (its manifest's rule): float32(b1 + 0.1·(b2 − b1)) computed in float64 per
 * float tensor; integer buffers (num_batches_tracked) are b1's.
 */
export function nearDuplicateStateDict(b1: Map<string, RawTensor>, b2: Map<string, RawTensor>): Map<string, RawTensor> {
  const out = new Map<string, RawTensor>();
  for (const [k, t1] of b1) {
    if (t1.dtype !== 'float32') {
      out.set(k, t1);
      continue;
    }
    const v1 = toFloat32(t1);
    const v2 = toFloat32(b2.get(k)!);
    out.set(
      k,
      fromFloat32(
        Float32Array.from(v1, (a, i) => a + 0.1 * (v2[i] - a)),
        t1.shape,
      ),
    );
  }
  return out;
}
