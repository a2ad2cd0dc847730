import { planShards } from './engine';

describe('planShards', () => {
  it('splits into contiguous shards (larger first), then micro-batches weighted by their share of the batch', () => {
    expect(planShards(7, 2, 3)).toEqual([
      [
        { start: 0, count: 3, weight: 3 / 7 },
        { start: 3, count: 1, weight: 1 / 7 },
      ],
      [{ start: 4, count: 3, weight: 3 / 7 }],
    ]);
    expect(planShards(1, 2, 4)).toEqual([[{ start: 0, count: 1, weight: 1 }], []]);
    const plan = planShards(32, 2, 8).flat();
    expect(plan.map((c) => c.start)).toEqual([0, 8, 16, 24]);
    expect(plan.reduce((a, c) => a + c.weight, 0)).toBeCloseTo(1, 12);
  });
});
