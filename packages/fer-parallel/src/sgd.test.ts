import { FlatSgd } from './sgd';
import type { VariableInfo } from './types';

const info = (group: string, size = 1): VariableInfo => ({ name: group, group, shape: [size], size, offset: 0 });

describe('FlatSgd (torch.optim.SGD semantics)', () => {
  it('momentum + weight decay: buf starts as d, then m·buf + d; p −= lr·buf (hand-derived)', () => {
    const sgd = new FlatSgd([info('a')], { lr: 0.1, momentum: 0.9, weightDecay: 0.01 });
    const p = [Float32Array.of(1)];
    sgd.step(p, [Float32Array.of(0.5)]);
    // d = 0.5 + 0.01·1 = 0.51; buf = 0.51; p = 1 − 0.051
    expect(p[0][0]).toBeCloseTo(0.949, 6);
    sgd.step(p, [Float32Array.of(0.5)]);
    // d = 0.5 + 0.00949 = 0.50949; buf = 0.9·0.51 + 0.50949 = 0.96849; p = 0.949 − 0.096849
    expect(p[0][0]).toBeCloseTo(0.852151, 6);
  });

  it('per-group learning rates, dampening, nesterov and setLr', () => {
    const sgd = new FlatSgd([info('base'), info('head')], {
      base: { lr: 0.01 },
      head: { lr: 0.1, momentum: 0.5, nesterov: true },
    });
    const p = [Float32Array.of(1), Float32Array.of(1)];
    sgd.step(p, [Float32Array.of(2), Float32Array.of(2)]);
    expect(p[0][0]).toBeCloseTo(1 - 0.02, 6);
    // nesterov: buf = 2; d = 2 + 0.5·2 = 3
    expect(p[1][0]).toBeCloseTo(1 - 0.3, 6);
    sgd.setLr('base', 0);
    sgd.step(p, [Float32Array.of(2), Float32Array.of(0)]);
    expect(p[0][0]).toBeCloseTo(0.98, 6);
    // buf = 0.5·2 + 0 = 1; d = 0 + 0.5·1 = 0.5
    expect(p[1][0]).toBeCloseTo(0.7 - 0.05, 6);
    const damp = new FlatSgd([info('a')], { lr: 1, momentum: 0.5, dampening: 0.5 });
    const q = [Float32Array.of(0)];
    damp.step(q, [Float32Array.of(1)]); // buf = 1 (no dampening on the first step, as PyTorch)
    damp.step(q, [Float32Array.of(1)]); // buf = 0.5 + 0.5 = 1
    expect(q[0][0]).toBeCloseTo(-2, 6);
  });

  it('names what is missing or invalid', () => {
    expect(() => new FlatSgd([info('base')], { head: { lr: 1 } })).toThrow("Expected SGD options for group 'base'");
    expect(() => new FlatSgd([info('a')], { lr: -1 })).toThrow(
      "Expected lr of SGD group 'a' to be a finite number ≥ 0, but got -1.",
    );
    expect(() => new FlatSgd([info('a')], { lr: 1, nesterov: true })).toThrow('Nesterov');
    expect(() => new FlatSgd([info('a')], { lr: 1 }).setLr('b', 1)).toThrow("Unknown SGD group 'b'. Valid: a.");
  });
});
