import {
  argmax,
  classificationReport,
  confusionMatrix,
  meanProbabilityVote,
  pluralityVote,
  pluralityVoteProbTies,
} from './classification';

describe('classification metrics', () => {
  it('votes by plurality with ties to the lowest class index', () => {
    expect(pluralityVote([2, 2, 1], 4)).toBe(2);
    expect(pluralityVote([3, 1], 4)).toBe(1); // 1-1 tie -> lowest index
    expect(pluralityVote([3, 1, 3, 1, 0], 4)).toBe(1);
    expect(pluralityVote([0], 4)).toBe(0);
    expect(argmax([0.2, 0.7, 0.7, 0.1])).toBe(1);
    expect(argmax([9, 1, 5, 6, 2], 2, 3)).toBe(1);
  });

  it("breaks vote ties by the tied classes' summed probabilities; soft takes the mean probability", () => {
    // Two branches split 2 vs 0: upstream's vote gives 0 (lowest); class 2 holds 0.6 + 0.3 = 0.9 against
    // class 0's 0.1 + 0.5 = 0.6, so the probability tie-break gives 2.
    const split = [
      [0.1, 0.1, 0.6, 0.2],
      [0.5, 0.1, 0.3, 0.1],
    ];
    expect(pluralityVote([2, 0], 4)).toBe(0);
    expect(pluralityVoteProbTies([2, 0], split, 4)).toBe(2);
    // Only the tied classes compete, and an exact tie of their sums goes to the lowest: votes 2, 0; classes 0 and 2
    // hold 0.5 + 0.05 each; class 1 holds the most (0.9) but has no vote, so only soft picks it.
    const untied = [
      [0.05, 0.45, 0.5, 0],
      [0.5, 0.45, 0.05, 0],
    ];
    expect(pluralityVoteProbTies([2, 0], untied, 4)).toBe(0);
    expect(meanProbabilityVote(untied, 4)).toBe(1);
    // Without a tie the tie-break is the plain vote, even where soft disagrees: votes 1, 1, 3; class 3 holds
    // 0.35 + 0.35 + 0.95 = 1.65 against class 1's 0.4 + 0.4 + 0.01 = 0.81.
    const confident = [
      [0.1, 0.4, 0.15, 0.35],
      [0.1, 0.4, 0.15, 0.35],
      [0.02, 0.01, 0.02, 0.95],
    ];
    expect(pluralityVote([1, 1, 3], 4)).toBe(1);
    expect(pluralityVoteProbTies([1, 1, 3], confident, 4)).toBe(1);
    expect(meanProbabilityVote(confident, 4)).toBe(3);
    // A three-way tie 0, 1, 2 with masses 0.6, 1.05, 0.65 -> class 1.
    const three = [
      [0.4, 0.35, 0.05, 0.2],
      [0.1, 0.6, 0.1, 0.2],
      [0.1, 0.1, 0.5, 0.3],
    ];
    expect(pluralityVoteProbTies([0, 1, 2], three, 4)).toBe(1);
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
