import * as tf from '@tensorflow/tfjs-core';
import { FerInputError } from 'fer-core';

/** One parameter group, as `torch.optim.SGD([{ params, lr, momentum, weight_decay }])`. */
export interface SgdGroup {
  name: string;
  variables: tf.Variable[];
  lr: number;
  /** Default 0. */
  momentum?: number;
  /** L2 penalty added to the gradient (PyTorch semantics, not decoupled). Default 0. */
  weightDecay?: number;
  /** Default 0 (the only value the reference uses). */
  dampening?: number;
  nesterov?: boolean;
}

/** Serialisable optimizer state: group settings and momentum buffers in the order of `variables()`. */
export interface SgdState {
  groups: {
    name: string;
    lr: number;
    momentum: number;
    weightDecay: number;
    dampening: number;
    nesterov: boolean;
    size: number;
  }[];
  /** One entry per variable (group order, then variable order); null where no buffer exists yet. */
  buffers: (Float32Array | null)[];
  steps: number;
}

/**
 * SGD with PyTorch 1.13 semantics (`torch/optim/sgd.py`, foreach=False):
 *
 *     d = g + wd·w;  b = d (first step) else μ·b + (1 − τ)·d;  d = nesterov ? d + μ·b : b;  w ← w − lr·d
 *
 * Variables with no gradient are skipped until they first receive one. After that they are stepped with a zero
 * gradient when one is missing, as PyTorch's default `zero_grad(set_to_none=False)` leaves zero-filled `.grad`
 * tensors behind (momentum and weight decay keep acting).
 *
 * The optimizer owns its momentum buffers; `dispose()` frees them.
 */
export class Sgd {
  readonly groups: Required<SgdGroup>[];
  private readonly buffers = new Map<tf.Variable, tf.Tensor>();
  private readonly seen = new Set<tf.Variable>();
  private steps = 0;

  constructor(groups: SgdGroup[]) {
    const all = new Set<tf.Variable>();
    this.groups = groups.map((g) => {
      if (!(g.lr >= 0))
        throw new FerInputError(`Expected the learning rate of group '${g.name}' to be ≥ 0, but got ${g.lr}.`);
      for (const v of g.variables) {
        if (all.has(v))
          throw new FerInputError(
            `Variable '${v.name}' appears in more than one parameter group ('${g.name}').`,
            'Each variable may belong to one group only, as in PyTorch.',
          );
        all.add(v);
      }
      return { momentum: 0, weightDecay: 0, dampening: 0, nesterov: false, ...g };
    });
  }

  /** Sets the learning rate of each named group (unnamed groups keep theirs). */
  setLearningRates(lrs: Record<string, number>): void {
    for (const g of this.groups) if (lrs[g.name] !== undefined) g.lr = lrs[g.name];
  }

  learningRates(): Record<string, number> {
    return Object.fromEntries(this.groups.map((g) => [g.name, g.lr]));
  }

  /** Every variable, group by group. */
  variables(): tf.Variable[] {
    return this.groups.flatMap((g) => g.variables);
  }

  get stepCount(): number {
    return this.steps;
  }

  /**
   * One update. `grads` maps variable names to gradients (as `tf.variableGrads` returns them). Does not dispose
   * `grads`.
   */
  applyGradients(grads: Record<string, tf.Tensor>): void {
    for (const g of this.groups) {
      for (const v of g.variables) {
        const grad = grads[v.name];
        if (grad === undefined) {
          if (!this.seen.has(v)) continue;
        } else {
          this.seen.add(v);
        }
        const old = this.buffers.get(v);
        const next = tf.tidy(() => {
          let d: tf.Tensor = grad ?? tf.zerosLike(v);
          if (g.weightDecay !== 0) d = tf.add(d, tf.mul(v, g.weightDecay));
          let buf: tf.Tensor | undefined;
          if (g.momentum !== 0) {
            buf =
              old === undefined
                ? tf.clone(d)
                : tf.add(tf.mul(old, g.momentum), g.dampening === 0 ? d : tf.mul(d, 1 - g.dampening));
            d = g.nesterov ? tf.add(d, tf.mul(buf, g.momentum)) : buf;
          }
          v.assign(tf.sub(v, tf.mul(d, g.lr)));
          return buf;
        });
        if (next !== undefined) {
          old?.dispose();
          this.buffers.set(v, next);
        }
      }
    }
    this.steps++;
  }

  /** A snapshot of the settings and momentum buffers (copied to the CPU). */
  async getState(): Promise<SgdState> {
    const buffers: (Float32Array | null)[] = [];
    for (const v of this.variables()) {
      const b = this.buffers.get(v);
      buffers.push(b ? ((await b.data()) as Float32Array).slice() : this.seen.has(v) ? new Float32Array(0) : null);
    }
    return {
      groups: this.groups.map((g) => ({
        name: g.name,
        lr: g.lr,
        momentum: g.momentum,
        weightDecay: g.weightDecay,
        dampening: g.dampening,
        nesterov: g.nesterov,
        size: g.variables.length,
      })),
      buffers,
      steps: this.steps,
    };
  }

  /** Restores a state taken from an optimizer with the same group layout. */
  setState(state: SgdState): void {
    const vars = this.variables();
    if (
      state.groups.length !== this.groups.length ||
      state.groups.some((g, i) => g.size !== this.groups[i].variables.length) ||
      state.buffers.length !== vars.length
    ) {
      throw new FerInputError(
        `Optimizer state does not fit: it has groups [${state.groups.map((g) => `${g.name}:${g.size}`).join(', ')}], ` +
          `this optimizer [${this.groups.map((g) => `${g.name}:${g.variables.length}`).join(', ')}].`,
        'Resume with the same model configuration and stage as the checkpoint.',
      );
    }
    state.groups.forEach((s, i) =>
      Object.assign(this.groups[i], {
        lr: s.lr,
        momentum: s.momentum,
        weightDecay: s.weightDecay,
        dampening: s.dampening,
        nesterov: s.nesterov,
      }),
    );
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
    this.seen.clear();
    vars.forEach((v, i) => {
      const b = state.buffers[i];
      if (b === null) return;
      this.seen.add(v);
      if (b.length === 0) return;
      if (b.length !== v.size)
        throw new FerInputError(`Momentum buffer ${i} has ${b.length} values but variable '${v.name}' has ${v.size}.`);
      this.buffers.set(v, tf.tensor(b, v.shape, 'float32'));
    });
    this.steps = state.steps;
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
  }
}
