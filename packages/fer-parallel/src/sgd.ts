import { FerInputError } from 'fer-core';
import type { VariableInfo } from './types';

/** One parameter group's hyper-parameters, as `torch.optim.SGD` takes them. */
export interface SgdGroupOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/**
 * `torch.optim.SGD` on host Float32Arrays (the engine's master weights), per variable group:
 * d = g + wd·p; buf = d on the first step, else momentum·buf + (1 − dampening)·d; d = nesterov ? d + momentum·buf :
 * buf; p −= lr·d. Cheap next to a training step (one pass over the parameters); keeps one momentum buffer per variable.
 */
export class FlatSgd {
  private readonly groups: Map<string, Required<SgdGroupOptions>>;
  private readonly buffers: (Float32Array | null)[];

  /**
   * @param variables the engine's `variables` (their `group` selects the options)
   * @param groups options per group name, or one set for all
   */
  constructor(
    readonly variables: readonly VariableInfo[],
    groups: SgdGroupOptions | Record<string, SgdGroupOptions>,
  ) {
    const named =
      typeof (groups as SgdGroupOptions).lr === 'number' ? null : (groups as Record<string, SgdGroupOptions>);
    this.groups = new Map();
    for (const g of new Set(variables.map((v) => v.group))) {
      const o = named ? named[g] : (groups as SgdGroupOptions);
      if (!o)
        throw new FerInputError(
          `Expected SGD options for group '${g}', but got none. Groups: ${Object.keys(named ?? {}).join(', ')}.`,
        );
      this.groups.set(g, resolve(g, o));
    }
    this.buffers = variables.map(() => null);
  }

  /** Changes a group's learning rate (a schedule step). */
  setLr(group: string, lr: number): void {
    const g = this.groups.get(group);
    if (!g) throw new FerInputError(`Unknown SGD group '${group}'. Valid: ${[...this.groups.keys()].join(', ')}.`);
    if (!(lr >= 0)) throw new FerInputError(`Expected lr ≥ 0, but got ${lr}.`);
    g.lr = lr;
  }

  /** Updates `weights` in place from `grads` (one array per variable, in `variables` order). */
  step(weights: Float32Array[], grads: Float32Array[]): void {
    if (weights.length !== this.variables.length || grads.length !== this.variables.length) {
      throw new FerInputError(
        `Expected ${this.variables.length} weight and gradient arrays, but got ${weights.length} and ${grads.length}.`,
      );
    }
    this.variables.forEach((info, i) => {
      const o = this.groups.get(info.group)!;
      const p = weights[i];
      const g = grads[i];
      const n = p.length;
      let buf = this.buffers[i];
      const first = buf === null;
      if (o.momentum !== 0 && buf === null) buf = this.buffers[i] = new Float32Array(n);
      for (let e = 0; e < n; e++) {
        let d = Math.fround(g[e] + Math.fround(o.weightDecay * p[e]));
        if (buf) {
          buf[e] = first ? d : Math.fround(Math.fround(o.momentum * buf[e]) + Math.fround((1 - o.dampening) * d));
          d = o.nesterov ? Math.fround(d + Math.fround(o.momentum * buf[e])) : buf[e];
        }
        p[e] = p[e] - Math.fround(o.lr * d);
      }
    });
  }
}

function resolve(name: string, o: SgdGroupOptions): Required<SgdGroupOptions> {
  const r = {
    lr: o.lr,
    momentum: o.momentum ?? 0,
    dampening: o.dampening ?? 0,
    weightDecay: o.weightDecay ?? 0,
    nesterov: o.nesterov ?? false,
  };
  for (const k of ['lr', 'momentum', 'dampening', 'weightDecay'] as const) {
    if (!(typeof r[k] === 'number' && r[k] >= 0 && Number.isFinite(r[k])))
      throw new FerInputError(`Expected ${k} of SGD group '${name}' to be a finite number ≥ 0, but got ${r[k]}.`);
  }
  if (r.nesterov && (r.momentum <= 0 || r.dampening !== 0))
    throw new FerInputError(
      `Nesterov momentum (group '${name}') requires momentum > 0 and dampening 0, as in PyTorch.`,
    );
  return r;
}
