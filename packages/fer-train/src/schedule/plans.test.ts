import {
  esrFineTunePlan,
  esrGrowthPlan,
  learningRatesAt,
  manetPlan,
  referencePlan,
  REFERENCE_SCRIPTS,
  totalEpochs,
} from './plans';
import { stepLrFactor, TorchStepLr } from './step-lr';

/** Replays the reference loop: StepLR built per stage, `step()` before (ESR) or after (MA-Net) each epoch. */
function replay(
  baseLr: number,
  stepSize: number,
  gamma: number,
  epochs: number,
  timing: 'epochStart' | 'epochEnd',
): number[] {
  const s = new TorchStepLr(baseLr, stepSize, gamma);
  const out: number[] = [];
  for (let e = 0; e < epochs; e++) {
    if (timing === 'epochStart') s.step();
    out.push(s.lr);
    if (timing === 'epochEnd') s.step();
  }
  return out;
}

describe('StepLR timing', () => {
  it('ESR steps at epoch start: 9 epochs at the base rate, then 10 per level (docs/method.md#lr-schedule example)', () => {
    const lrs = Array.from(
      { length: 29 },
      (_, e) => 0.1 * stepLrFactor(e, { stepSize: 10, gamma: 0.5, timing: 'epochStart' }),
    );
    expect(lrs.slice(0, 9).every((x) => x === 0.1)).toBe(true);
    expect(lrs.slice(9, 19).every((x) => x === 0.05)).toBe(true);
    expect(lrs.slice(19, 29).every((x) => x === 0.025)).toBe(true);
  });

  it('MA-Net steps at epoch end: AffectNet 0.01 (0–4), 1e-3 (5–9), 1e-4 (10–14), 1e-5 (15–19)', () => {
    const plan = manetPlan({ dataset: 'affectnet' });
    const lrs = Array.from({ length: 20 }, (_, e) => learningRatesAt(plan, 1, e).all);
    const want = [0.01, 1e-3, 1e-4, 1e-5].flatMap((x) => Array(5).fill(x));
    lrs.forEach((x, i) => expect(x).toBeCloseTo(want[i], 12));
  });

  it('matches a literal replay of torch StepLR for every stage and group of every reference script', () => {
    for (const script of REFERENCE_SCRIPTS) {
      const plan = referencePlan(script);
      for (const st of plan.stages) {
        for (const [group, base] of Object.entries(st.baseLrs)) {
          const want = replay(base, st.lrSchedule.stepSize, st.lrSchedule.gamma, st.epochs, st.lrSchedule.timing);
          for (let e = 0; e < st.epochs; e++) {
            const got = learningRatesAt(plan, st.stage, e)[group];
            if (Math.abs(got - want[e]) > 1e-12 * want[e])
              throw new Error(`${script} stage ${st.stage} ${group} epoch ${e}: ${got} vs ${want[e]}`);
          }
        }
      }
    }
  });
});

describe('reference plans', () => {
  it('esr_affectnet grows 1..9 branches: 50 + 8×20 = 210 epochs, base/newest/older rates per stage', () => {
    const p = esrGrowthPlan();
    expect(p.stages.map((s) => s.ensembleSize)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(totalEpochs(p)).toBe(210);
    expect(p.stages[0].baseLrs).toEqual({ base: 0.1, branch_1: 0.1 });
    expect(p.stages[0]).toMatchObject({ addBranch: false, reloadBest: false, diversityBranches: [] });
    expect(p.stages[2].baseLrs).toEqual({ base: 0.01, branch_1: 0.01, branch_2: 0.01, branch_3: 0.1 });
    expect(p.stages[2]).toMatchObject({
      addBranch: true,
      reloadBest: true,
      freshSubset: true,
      ceBranches: [0, 1, 2],
      diversityBranches: [0, 1, 2],
      momentum: 0.9,
      weightDecay: 0,
    });
    // every existing branch keeps training at every stage; the newest one is the focus
    for (const s of p.stages) {
      expect(Object.keys(s.baseLrs)).toEqual([
        'base',
        ...Array.from({ length: s.ensembleSize }, (_, i) => `branch_${i + 1}`),
      ]);
      expect(Object.values(s.baseLrs).every((x) => x > 0)).toBe(true);
      expect(s.focusBranch).toBe(s.ensembleSize - 1);
    }
    // stage 2 epoch 9: first decay
    expect(learningRatesAt(p, 2, 9)).toEqual({ base: 0.005, branch_1: 0.005, branch_2: 0.05 });
    expect(p.batchSize).toBe(32);
    expect(p.bestIsTie).toBe(true);
  });

  it('esr_ferplus / esr_rafdb: 9 loaded branches, CE of branches 0..k−1, focus k−1, 100 + 8×60 = 580 epochs', () => {
    const p = esrFineTunePlan({ dataset: 'ferplus' });
    expect(p.script).toBe('esr_ferplus');
    expect(totalEpochs(p)).toBe(580);
    expect(p.stages[0].baseLrs).toEqual({
      base: 0.1,
      branch_1: 0.1,
      branch_2: 0.02,
      branch_3: 0.02,
      branch_4: 0.02,
      branch_5: 0.02,
      branch_6: 0.02,
      branch_7: 0.02,
      branch_8: 0.02,
      branch_9: 0.02,
    });
    expect(p.stages[3].baseLrs.base).toBe(0.02);
    expect(p.stages[3].baseLrs.branch_4).toBe(0.1);
    expect(p.stages[3].baseLrs.branch_1).toBe(0.02);
    expect(p.stages[3].ceBranches).toEqual([0, 1, 2, 3]);
    expect(p.stages[3].evalBranches).toEqual([0, 1, 2, 3]);
    // reference: diversity over all 9 at every stage (docs/method.md#defect-13); 'trained' scope restricts it
    expect(p.stages[0].diversityBranches).toHaveLength(9);
    expect(esrFineTunePlan({ dataset: 'rafdb', diversityScope: 'trained' }).stages[0].diversityBranches).toEqual([]);
    expect(esrFineTunePlan({ dataset: 'rafdb', diversityScope: 'trained' }).stages[2].diversityBranches).toEqual([
      0, 1, 2,
    ]);
    expect(p.stages.every((s) => !s.addBranch && s.ensembleSize === 9)).toBe(true);
    expect(p.stages.map((s) => s.reloadBest)).toEqual([false, true, true, true, true, true, true, true, true]);
    // StepLR(10, 0.75): epoch 9 of stage 1
    expect(learningRatesAt(p, 1, 9).base).toBeCloseTo(0.075, 12);
  });

  it('manet plans: one group, wd 1e-4, StepLR 5 (AffectNet, 20 epochs) or 15 (FER+, RAF-DB, 100 epochs), batch 128/32', () => {
    const a = manetPlan({ dataset: 'affectnet' });
    const f = manetPlan({ dataset: 'ferplus' });
    const r = manetPlan({ dataset: 'rafdb' });
    expect([a.stages[0].epochs, f.stages[0].epochs, r.stages[0].epochs]).toEqual([20, 100, 100]);
    expect([a.batchSize, f.batchSize, r.batchSize]).toEqual([128, 32, 128]);
    expect(r.stages[0]).toMatchObject({
      baseLrs: { all: 0.01 },
      momentum: 0.9,
      weightDecay: 1e-4,
      lrSchedule: { stepSize: 15, gamma: 0.1, timing: 'epochEnd' },
    });
    expect(learningRatesAt(r, 1, 99).all).toBeCloseTo(1e-8, 20);
    expect(a.bestIsTie).toBe(false);
  });

  it('rejects out-of-range stages and epochs with a clear message', () => {
    expect(() => learningRatesAt(esrGrowthPlan(), 10, 0)).toThrow(/stage in 1..9/);
    expect(() => learningRatesAt(esrGrowthPlan(), 2, 20)).toThrow(/epoch in 0..19/);
    expect(() => esrGrowthPlan({ branches: 0 })).toThrow(/branches/);
  });
});
