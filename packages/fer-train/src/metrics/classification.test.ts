import { argmax, classificationReport, confusionMatrix, pluralityVote } from './classification';

describe('classification metrics', () => {
  it('votes by plurality with ties to the lowest class index', () => {
    expect(pluralityVote([2, 2, 1], 4)).toBe(2);
    expect(pluralityVote([3, 1], 4)).toBe(1); // 1-1 tie -> lowest index
    expect(pluralityVote([3, 1, 3, 1, 0], 4)).toBe(1);
    expect(pluralityVote([0], 4)).toBe(0);
    expect(argmax([0.2, 0.7, 0.7, 0.1])).toBe(1);
    expect(argmax([9, 1, 5, 6, 2], 2, 3)).toBe(1);
  });

  it('builds the confusion matrix and derives per-class and macro F1 (hand-computed)', () => {
    // truth:     0 0 0 1 1 2
    // predicted: 0 0 1 1 2 2
    const cm = confusionMatrix([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], 4);
    expect(cm).toEqual([
      [2, 1, 0, 0],
      [0, 1, 1, 0],
      [0, 0, 1, 0],
      [0, 0, 0, 0],
    ]);
    const r = classificationReport(cm);
    expect(r.accuracy).toBeCloseTo(4 / 6, 12);
    // class 0: P 2/2, R 2/3 -> F1 0.8; class 1: P 1/2, R 1/2 -> 0.5; class 2: P 1/2, R 1 -> 2/3
    expect(r.perClass[0]).toEqual({ precision: 1, recall: 2 / 3, f1: 0.8, support: 3 });
    expect(r.perClass[1].f1).toBeCloseTo(0.5, 12);
    expect(r.perClass[2].f1).toBeCloseTo(2 / 3, 12);
    expect(r.perClass[3]).toEqual({ precision: 0, recall: 0, f1: 0, support: 0 });
    expect(r.macroF1).toBeCloseTo((0.8 + 0.5 + 2 / 3) / 3, 12); // class 3 has no support
  });
});
