/**
 * Parity with ../shared/reference/diversity: the paper's BranchDiversity on 56 input cases × γ ∈ {10, 1, 0.1},
 * values of snm and the three reductions, and every stored input gradient, including the NaN/±inf cases.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as path from 'node:path';
import { describeIfExists, loadFixture, REFERENCE_DIR } from 'fer-test-utils';
import { diversityLoss, similarityMatrix, type DiversityReduction } from '../src';
import { compareArrays, maxAbsFinite, type Check } from './compare';

const BACKEND = process.env.FER_BACKEND === 'cpu' ? 'cpu' : 'wasm';
const REDUCTIONS: [string, DiversityReduction][] = [
  ['direct', 'sum'],
  ['neg_det', 'negDet'],
  ['neg_logdet', 'negLogDet'],
];
const FILE = 'diversity.safetensors';

/** One input case of the fixture: per γ tag (`g10`, `g1`, `g0.1`), the check to use and each reduction's values. */
interface DiversityCase {
  case: string;
  gammas: Record<
    string,
    { recommended_check: Check } & Record<string, { f32: number | string; grad_stored?: boolean }>
  >;
}

describeIfExists(path.join(REFERENCE_DIR, 'diversity'), `diversity fixture parity (${BACKEND})`, () => {
  const fx = loadFixture('diversity');
  const cases = fx.manifest.cases as DiversityCase[];
  const tolerances = new Map<string, { rtol: number; atol?: number; atol_rel_max?: number }>(
    fx.manifest.tensors.map((t) => [t.name, t.tolerance]),
  );

  const read = async (name: string): Promise<Float32Array> => {
    const t = await fx.tensor(FILE, name);
    const v = t.dataSync() as Float32Array;
    t.dispose();
    return v;
  };

  beforeAll(async () => {
    await tf.setBackend(BACKEND);
    await tf.ready();
  });

  it('covers every case, gamma and reduction of the manifest', () => {
    expect(cases.length).toBe(56);
    for (const c of cases) expect(Object.keys(c.gammas).sort()).toEqual(['g0.1', 'g1', 'g10']);
  });

  for (const c of cases) {
    it(`${c.case}`, async () => {
      const x = await fx.tensor(FILE, `${c.case}/x`);
      const failures: string[] = [];
      let nonFinite = 0;
      try {
        for (const [tag, g] of Object.entries(c.gammas)) {
          const gamma = Number(tag.slice(1));
          const check: Check = g.recommended_check;
          const prefix = `${c.case}/${tag}`;
          const loose = check !== 'strict';
          const snmRef = await read(`${prefix}/snm`);
          const snm = similarityMatrix(x, { gamma });
          const snmTol = tolerances.get(`${prefix}/snm`)!;
          failures.push(
            ...compareArrays(
              snm.dataSync(),
              snmRef,
              { check: check === 'edge' ? 'edge' : 'strict', rtol: snmTol.rtol, atol: snmTol.atol! },
              `${prefix}/snm`,
            ),
          );
          snm.dispose();
          for (const [name, reduction] of REDUCTIONS) {
            const opts = { preset: 'reference' as const, gamma, reduction };
            const ref = (await read(`${prefix}/${name}`))[0];
            if (!Number.isFinite(ref)) nonFinite++;
            const vt = tolerances.get(`${prefix}/${name}`)!;
            const valueRule = {
              check,
              rtol: loose ? 1e-2 : vt.rtol,
              atol: loose ? 1e-30 : vt.atol!,
              zeroPattern: check === 'edge',
            };
            if (!g[name].grad_stored) {
              const v = diversityLoss(x, opts);
              failures.push(...compareArrays(v.dataSync(), [ref], valueRule, `${prefix}/${name}`));
              v.dispose();
              continue;
            }
            const { value: v, grad } = tf.valueAndGrad((h: tf.Tensor) => diversityLoss(h, opts))(x);
            failures.push(...compareArrays(v.dataSync(), [ref], valueRule, `${prefix}/${name}`));
            v.dispose();
            const gref = await read(`${prefix}/${name}_grad`);
            const gt = tolerances.get(`${prefix}/${name}_grad`)!;
            const scale = maxAbsFinite(gref);
            failures.push(
              ...compareArrays(
                grad.dataSync(),
                gref,
                {
                  check,
                  rtol: loose ? 1e-2 : gt.rtol,
                  atol: (loose ? 1e-3 : gt.atol_rel_max!) * scale,
                  zeroPattern: true,
                },
                `${prefix}/${name}_grad`,
              ),
            );
            grad.dispose();
          }
        }
      } finally {
        x.dispose();
      }
      expect(failures).toEqual([]);
      // NaN/±inf reference values are asserted like any other (counted so a silent skip would show).
      expect(nonFinite).toBe(
        Object.values(c.gammas).reduce(
          (k, g) => k + ['direct', 'neg_det', 'neg_logdet'].filter((r) => typeof g[r].f32 === 'string').length,
          0,
        ),
      );
    });
  }
});
