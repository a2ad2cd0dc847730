/**
 * Parity with ../shared/reference/esr_cbam: BranchDiversity on the real ESR attention stacks (eval and train mode,
 * spatial [3, 4, 6, 6] and channel [3, 4, 512]), all three reductions, values and input gradients.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as path from 'node:path';
import { describeIfExists, loadFixture, REFERENCE_DIR } from 'fer-test-utils';
import { diversityLoss, esrChannelHeads, esrSpatialHeads, type DiversityReduction } from '../src';
import { compareArrays, maxAbsFinite } from './compare';

const BACKEND = process.env.FER_BACKEND === 'cpu' ? 'cpu' : 'wasm';
const FILE = 'data.safetensors';
const REDUCTIONS: [string, DiversityReduction][] = [
  ['direct', 'sum'],
  ['neg_det', 'negDet'],
  ['neg_logdet', 'negLogDet'],
];

describeIfExists(path.join(REFERENCE_DIR, 'esr_cbam'), `ESR attention diversity parity (${BACKEND})`, () => {
  const fx = loadFixture('esr_cbam');
  const tol = new Map(fx.manifest.tensors.map((t) => [t.name, t.tolerance]));
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

  for (const mode of ['eval', 'train']) {
    for (const [kind, key] of [
      ['spatial', 'attn_sp'],
      ['channel', 'attn_ch'],
    ] as const) {
      it(`${mode}/div_${kind}_*: values and gradients`, async () => {
        const attn = await fx.tensor(FILE, `${mode}/${key}`);
        const heads = kind === 'spatial' ? esrSpatialHeads(attn) : esrChannelHeads(attn);
        const failures: string[] = [];
        const nonFinite: string[] = [];
        try {
          for (const [name, reduction] of REDUCTIONS) {
            const base = `${mode}/div_${kind}_${name}`;
            const opts = { preset: 'reference' as const, reduction };
            const ref = (await read(base))[0];
            if (!Number.isFinite(ref)) nonFinite.push(`${base}=${ref}`);
            const underflow = Math.abs(ref) < 1e-30;
            const v = diversityLoss(heads, opts);
            const t = tol.get(base)!;
            // Below 1e-30 the manifest asks for magnitude and sign only (checked as 'edge': factor 2, same sign).
            failures.push(
              ...compareArrays(
                v.dataSync(),
                [ref],
                { check: underflow ? 'edge' : 'strict', rtol: t.rtol, atol: t.atol, zeroPattern: true },
                base,
              ),
            );
            v.dispose();
            const gref = await read(`${base}_grad`);
            const grad = tf.grad((h: tf.Tensor) => diversityLoss(h, opts))(heads);
            const gt = tol.get(`${base}_grad`)!;
            failures.push(
              ...compareArrays(
                grad.dataSync(),
                gref,
                {
                  check: 'strict',
                  rtol: gt.rtol,
                  atol: underflow ? 1e-30 : gt.atol_rel_max! * maxAbsFinite(gref),
                  zeroPattern: true,
                },
                `${base}_grad`,
              ),
            );
            grad.dispose();
          }
          if (mode === 'train') {
            const lossKey = kind === 'spatial' ? 'train/loss_div_sp_det' : 'train/loss_div_ch_det';
            const ref = (await read(lossKey))[0];
            const v = diversityLoss(heads, { preset: 'reference' });
            const t = tol.get(lossKey)!;
            failures.push(
              ...compareArrays(
                v.dataSync(),
                [ref],
                { check: Math.abs(ref) < 1e-30 ? 'edge' : 'strict', rtol: t.rtol, atol: t.atol },
                lossKey,
              ),
            );
            v.dispose();
          }
        } finally {
          tf.dispose([attn, heads]);
        }
        expect(failures).toEqual([]);
        // The one non-finite reference value (train channel −logdet = +inf) is compared above, not skipped.
        expect(nonFinite).toEqual(
          mode === 'train' && kind === 'channel' ? ['train/div_channel_neg_logdet=Infinity'] : [],
        );
      });
    }
  }
});
