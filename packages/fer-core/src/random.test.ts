import { Rng, mixSeed } from './random';

describe('Rng', () => {
  it('is deterministic by seed and resumable from its state', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 5 }, () => a.nextU32());
    expect(Array.from({ length: 5 }, () => b.nextU32())).toEqual(xs);
    const state = a.getState();
    const next = [a.next(), a.next()];
    const c = new Rng(state);
    expect([c.next(), c.next()]).toEqual(next);
  });

  it('draws uniforms in [0, 1) with the right mean', () => {
    const r = new Rng(7);
    let s = 0;
    for (let i = 0; i < 20000; i++) {
      const x = r.next();
      expect(x >= 0 && x < 1).toBe(true);
      s += x;
    }
    expect(s / 20000).toBeCloseTo(0.5, 1);
  });

  it('shuffles to a permutation', () => {
    const xs = new Rng(3).shuffle([...Array(50).keys()]);
    expect([...xs].sort((p, q) => p - q)).toEqual([...Array(50).keys()]);
    expect(xs).not.toEqual([...Array(50).keys()]);
  });

  it('mixes seeds into distinct values', () => {
    expect(mixSeed(1, 0)).not.toBe(mixSeed(1, 1));
    expect(mixSeed(1, 2, 3)).toBe(mixSeed(1, 2, 3));
    // A plain `seed ^ part` start made seed 1 epoch 2 equal seed 2 epoch 1 (and run s's branch k+1 equal run s+1's k).
    expect(mixSeed(1, 2)).not.toBe(mixSeed(2, 1));
    expect(mixSeed(1, 2, 0x5eed)).not.toBe(mixSeed(3, 0, 0x5eed));
    const all = new Set<number>();
    for (let s = 0; s < 64; s++) for (let p = 0; p < 64; p++) all.add(mixSeed(s, p));
    expect(all.size).toBe(64 * 64);
  });
});
