/**
 * The fields of a tfjs-layers `Conv2D` that our layer code reads (tfjs-layers keeps them protected); `V` is how the
 * reader holds a weight.
 */
export interface Conv2dFields<V> {
  name: string;
  kernel: V;
  bias: V | null;
  useBias: boolean;
  strides: number[];
  padding: 'valid' | 'same' | 'causal';
  dataFormat: string;
  dilationRate: number[];
  activation: { getClassName(): string };
}
