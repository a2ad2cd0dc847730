/** The input convention a dataset feeds (saved with the model so `fer predict` prepares faces the same way). */
export interface DatasetInput {
  colorOrder: 'rgb' | 'bgr';
  normalization: { mean: [number, number, number]; std: [number, number, number] } | null;
}

/** Reads the channel order and normalisation of a fer-datasets `ImageDataset` (evaluation transform). */
export function inputConvention(ds: unknown): DatasetInput {
  const cfg = (
    ds as {
      config?: { channelOrder?: 'rgb' | 'bgr'; transform?: { ops: { op: string; mean?: number[]; std?: number[] }[] } };
    }
  ).config;
  const norm = cfg?.transform?.ops.find((o) => o.op === 'normalize');
  return {
    colorOrder: cfg?.channelOrder ?? 'rgb',
    normalization: norm
      ? { mean: norm.mean as [number, number, number], std: norm.std as [number, number, number] }
      : null,
  };
}
