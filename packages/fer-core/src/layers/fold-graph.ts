import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { FerInputError } from '../errors';
import { FoldedConv2d, type FoldActivation } from './fold';
import { TorchBatchNorm } from './torch-batch-norm';

type Sym = tfl.SymbolicTensor;
type Kwargs = { [key: string]: unknown };

/** The parts of a tfjs-layers `Node` (one call of a layer in the graph) this module reads. */
interface GraphNode {
  outboundLayer: tfl.layers.Layer;
  inputTensors: Sym[];
  outputTensors: Sym[];
  callArgs?: Kwargs;
}

/** One step of the folded graph: a layer call, or a conv → BN (→ ReLU) run as one fused conv. */
type Step =
  | { kind: 'layer'; node: GraphNode }
  | { kind: 'fold'; input: Sym; output: Sym; fold: FoldedConv2d; conv: tfl.layers.Layer; bn: TorchBatchNorm };

const nodesOf = (layer: tfl.layers.Layer) => (layer as unknown as { inboundNodes: GraphNode[] }).inboundNodes;

/**
 * A functional tfjs-layers model run eagerly in inference mode, with every `Conv2D` whose only reader is a
 * `TorchBatchNorm` folded into one fused conv (fer-core's `FoldedConv2d`), the ReLU after it fused too when the batch
 * norm's only reader is a plain ReLU or the batch norm applies its own (`relu: true`). Every other layer runs as the
 * model's own, once per call (tfjs-layers' executor would call a multi-output layer once per fetched output), with
 * `training: false`.
 *
 * Owns the folded tensors (`dispose()`); reads, never writes, the model's weights, and folds again when they change
 * (see `FoldedConv2d`). Throws a `FerInputError` naming the layer when a batch norm has no usable statistics.
 */
export class FoldedGraph {
  /** Conv → BN pairs folded (for tests and reports). */
  readonly folded: { conv: string; bn: string; activation: FoldActivation }[] = [];
  private readonly steps: Step[] = [];

  /** @param where context for error messages, e.g. ` in MA-Net` */
  constructor(
    readonly model: tfl.LayersModel,
    where = '',
  ) {
    const inputs = new Set(model.inputs.map((s) => s.id));
    const producer = new Map<number, GraphNode>();
    for (const layer of model.layers)
      for (const node of nodesOf(layer)) for (const out of node.outputTensors) producer.set(out.id, node);
    // Topological order: depth-first from the outputs, each node once.
    const order: GraphNode[] = [];
    const seen = new Set<GraphNode>();
    const visit = (s: Sym): void => {
      if (inputs.has(s.id)) return;
      const node = producer.get(s.id);
      if (!node) throw new Error(`FoldedGraph: no layer of '${model.name}' produces tensor '${s.name}'.`);
      if (seen.has(node)) return;
      seen.add(node);
      node.inputTensors.forEach(visit);
      order.push(node);
    };
    model.outputs.forEach(visit);
    // Who reads each tensor: a conv/BN output read by anything else (or returned) stays unfolded.
    const readers = new Map<number, GraphNode[]>();
    for (const node of order)
      for (const s of node.inputTensors) readers.set(s.id, [...(readers.get(s.id) ?? []), node]);
    const returned = new Set(model.outputs.map((s) => s.id));
    const only = (s: Sym): GraphNode | null => {
      const r = readers.get(s.id) ?? [];
      return r.length === 1 && !returned.has(s.id) ? r[0] : null;
    };
    const skip = new Set<GraphNode>();
    try {
      for (const node of order) {
        if (skip.has(node)) continue;
        const layer = node.outboundLayer;
        const bnNode = layer.getClassName() === 'Conv2D' ? only(node.outputTensors[0]) : null;
        if (!bnNode || !(bnNode.outboundLayer instanceof TorchBatchNorm)) {
          this.steps.push({ kind: 'layer', node });
          continue;
        }
        const bn = bnNode.outboundLayer;
        // A batch norm built with `relu: true` ends in its ReLU; otherwise a plain ReLU that is its only reader.
        const reluNode = bn.relu ? null : only(bnNode.outputTensors[0]);
        const reluLayer = reluNode !== null && isPlainRelu(reluNode.outboundLayer);
        const relu = bn.relu || reluLayer;
        const activation: FoldActivation = relu ? 'relu' : 'linear';
        const fold = new FoldedConv2d(layer, bn, activation, where);
        this.steps.push({
          kind: 'fold',
          input: node.inputTensors[0],
          output: (reluLayer ? reluNode! : bnNode).outputTensors[0],
          fold,
          conv: layer,
          bn,
        });
        this.folded.push({ conv: layer.name, bn: bn.name, activation });
        skip.add(bnNode);
        if (reluLayer) skip.add(reluNode!);
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  /** The model's outputs, in order, for `inputs` (one per model input). Owned by the caller. */
  apply(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor[] {
    const xs = Array.isArray(inputs) ? inputs : [inputs];
    if (xs.length !== this.model.inputs.length)
      throw new FerInputError(`Expected ${this.model.inputs.length} input tensor(s), but got ${xs.length}.`);
    return tf.tidy(() => {
      const values = new Map<number, tf.Tensor>(this.model.inputs.map((s, i) => [s.id, xs[i]]));
      const get = (s: Sym) => values.get(s.id)!;
      for (const step of this.steps) {
        if (step.kind === 'fold') {
          values.set(step.output.id, step.fold.apply(get(step.input) as tf.Tensor4D));
          continue;
        }
        const { node } = step;
        const ins = node.inputTensors.map(get);
        const out = node.outboundLayer.apply(ins.length === 1 ? ins[0] : ins, {
          ...(node.callArgs ?? {}),
          training: false,
        }) as tf.Tensor | tf.Tensor[];
        const outs = Array.isArray(out) ? out : [out];
        node.outputTensors.forEach((s, i) => values.set(s.id, outs[i]));
      }
      return this.model.outputs.map(get);
    });
  }

  /** Frees the folded tensors; the model is untouched. */
  dispose(): void {
    for (const s of this.steps) if (s.kind === 'fold') s.fold.dispose();
    this.steps.length = 0;
  }
}

/** A tfjs-layers `ReLU` layer without a cap or slope (what both models use). */
function isPlainRelu(layer: tfl.layers.Layer): boolean {
  if (layer.getClassName() !== 'ReLU') return false;
  const cfg = layer.getConfig() as { maxValue?: number | null };
  return cfg.maxValue == null;
}
