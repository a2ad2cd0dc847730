/**
 * The real-faces experiment's pure parts: scoring against hand-counted votes, the schedule, the summary table and
 * the stratified subsets. The data-dependent parts are in real-faces-data.slow.test.ts.
 */
import {
  markdownTable,
  realFacesPlan,
  REAL_FACES_DEFAULTS,
  scoreOf,
  stratifiedPart,
  summarise,
  type RunResult,
} from '../src/experiments/real-faces';

describe('real-faces scoring and schedule (no data)', () => {
  it('scores the plurality vote (ties to the lowest class), branches, disagreement and a relabelled subset', () => {
    // 3 branches, 4 samples; classes by BASIC7 index.
    const p = {
      truth: [0, 1, 2, 3],
      preds: [
        [0, 1, 2, 0],
        [0, 2, 1, 3],
        [1, 1, 0, 5],
      ],
      pairDistance: [3, 0, 6, 3],
    };
    const s = scoreOf(p);
    // Votes: [0,0,1] -> 0 ✓; [1,2,1] -> 1 ✓; [2,1,0] all tie -> 0 ✗; [0,3,5] tie -> 0 ✗.
    expect(s.accuracy).toBe(0.5);
    expect(s.branchAccuracy).toEqual([3 / 4, 2 / 4, 1 / 4]);
    // Disagreeing pairs: 2 + 2 + 3 + 3 = 10 of 3·4.
    expect(s.disagreement).toBeCloseTo(10 / 12, 12);
    expect(s.attentionDistance).toBeCloseTo(12 / 12, 12);
    expect(s.confusion[2][0]).toBe(1);
    // Relabel sample 2 as class 0 and drop sample 3: votes 0,1,0 against 0,1,0.
    const r = scoreOf(p, [0, 1, 0, -1], [true, true, true, false]);
    expect(r.size).toBe(3);
    expect(r.accuracy).toBe(1);
  });

  it('reports the probability tie-break and the soft ensemble beside the faithful vote, and the tie rate', () => {
    // 2 branches, 3 faces, 7 classes. Face 0: votes 2 vs 0 (tie): vote -> 0 ✗; class 2 holds 0.6 + 0.3 = 0.9 against
    // class 0's 0.6, so the tie-break and soft -> 2 ✓. Face 1: both vote 1 ✓ (with two branches, unanimity is soft's
    // answer too: 0.8 vs 0.77). Face 2: votes 5 vs 3 (tie): vote -> 3 ✓; class 5 holds 0.8 against class 3's 0.7, so
    // the tie-break and soft -> 5 ✗.
    const row = (m: Record<number, number>) => Array.from({ length: 7 }, (_, c) => m[c] ?? 0);
    const probs = [
      [row({ 2: 0.6, 0: 0.1, 6: 0.3 }), row({ 1: 0.4, 4: 0.38, 6: 0.22 }), row({ 5: 0.7, 3: 0.2, 6: 0.1 })],
      [row({ 0: 0.5, 2: 0.3, 6: 0.2 }), row({ 1: 0.4, 4: 0.39, 6: 0.21 }), row({ 3: 0.5, 5: 0.1, 6: 0.4 })],
    ];
    const p = {
      truth: [2, 1, 3],
      preds: [
        [2, 1, 5],
        [0, 1, 3],
      ],
      probs: probs.map((rows) => Float32Array.from(rows.flat())),
      pairDistance: [0, 0, 0],
    };
    const s = scoreOf(p);
    expect(s.accuracy).toBeCloseTo(2 / 3, 12); // faces 1 and 2
    expect(s.tieRate).toBeCloseTo(2 / 3, 12);
    expect(s.rules!.voteProbTies.accuracy).toBeCloseTo(2 / 3, 12); // faces 0 and 1
    expect(s.rules!.soft.accuracy).toBeCloseTo(2 / 3, 12);
    // Relabel face 2 as class 5: vote keeps face 1 only; the tie-break and soft get all three.
    const r = scoreOf(p, [2, 1, 5]);
    expect(r.accuracy).toBeCloseTo(1 / 3, 12);
    expect(r.rules!.voteProbTies.accuracy).toBe(1);
    expect(r.rules!.soft.accuracy).toBe(1);
    // Without probabilities: the faithful vote alone.
    expect(scoreOf({ ...p, probs: undefined }).rules).toBeUndefined();
  });

  it('grows with the esr_ferplus rates: focus branch 0.1·s, base 0.1·s then 0.02·s, others 0.02·s', () => {
    const plan = realFacesPlan({ ...REAL_FACES_DEFAULTS, branches: 3, lrScale: 0.5 });
    expect(plan.stages.map((s) => s.ensembleSize)).toEqual([1, 2, 3]);
    expect(plan.stages[0].baseLrs).toEqual({ base: 0.05, branch_1: 0.05 });
    expect(plan.stages[2].baseLrs).toEqual({ base: 0.01, branch_1: 0.01, branch_2: 0.01, branch_3: 0.05 });
    expect(plan.stages[2].diversityBranches).toEqual([0, 1, 2]);
    expect(plan.stages[0].diversityBranches).toEqual([]);
  });

  it('summarises mean ± sample std over seeds and writes one table row per variant', () => {
    const run = (variant: 'none' | 'dpp', seed: number, acc: number): RunResult => ({
      variant,
      seed,
      test: { size: 10, accuracy: acc, macroF1: acc / 2, branchAccuracy: [acc], confusion: [] },
      holdout: { size: 5, accuracy: 0.5, macroF1: 0.4, branchAccuracy: [0.5], confusion: [] },
      selection: [0.5],
      trainSeconds: 10,
      totalSeconds: 12,
      cpuSeconds: 9,
      trainImages: 100,
      imagesPerSecond: 10,
      curves: { trainLoss: [1], holdoutAccuracy: [0.5], stageStarts: [0] },
    });
    const s = summarise([run('none', 1, 0.4), run('none', 2, 0.6), run('dpp', 1, 0.5)]);
    expect(s.map((v) => v.variant)).toEqual(['none', 'dpp']);
    expect(s[0].mean.testAccuracy).toBeCloseTo(0.5, 12);
    expect(s[0].std.testAccuracy).toBeCloseTo(Math.sqrt(0.02), 12);
    expect(s[1].std.testAccuracy).toBe(0);
    const md = markdownTable({ summary: s, majorityRate: 0.245 });
    expect(md).toContain('| ours, `none` | 2 | 50.0 ± 14.1 |');
    expect(md).toContain('24.5%');
  });

  it('takes a stratified part of each class, spread over the list', () => {
    const items = [
      ...Array.from({ length: 10 }, (_, i) => ({ file: `a${i}`, label: 'happy' as const })),
      ...Array.from({ length: 4 }, (_, i) => ({ file: `b${i}`, label: 'sad' as const })),
    ];
    const p = stratifiedPart(items, 0.5);
    expect(p.filter((x) => x.label === 'happy').map((x) => x.file)).toEqual(['a0', 'a2', 'a4', 'a6', 'a8']);
    expect(p.filter((x) => x.label === 'sad')).toHaveLength(2);
    expect(stratifiedPart(items, 1, 3)).toHaveLength(6);
  });
});
