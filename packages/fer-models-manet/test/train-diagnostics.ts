/**
 * Diagnostic (not a test): `npx tsx packages/fer-models-manet/test/train-diagnostics.ts` runs one train-mode step on
 * the manet fixture (wasm) and prints, for every stored output, BN buffer and gradient, the max error, max|ref|, how
 * many entries meet the manifest tolerance and the correlation with PyTorch. See parity-train.slow.test.ts for why
 * train mode is ill-conditioned.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from 'fer-backend';
import { crossEntropy } from 'fer-core';
import { loadFixture } from 'fer-test-utils';
import { createManet } from 'fer-models-manet';
import { loadTorchStateDict, tfjsToTorch, torchParameter } from 'fer-models-manet/internal';
import { analyticEntries, analyticStateDict } from './analytic-weights';
(async () => {
  await initBackend({ backend: 'wasm' });
  const fx = loadFixture('manet');
  const m = createManet({ numClasses: 7, convInit: 'zeros' });
  loadTorchStateDict(m, analyticStateDict(analyticEntries(7)));
  const x = tf.transpose(await fx.tensor('data.safetensors', 'input/x'), [0, 2, 3, 1]) as tf.Tensor4D;
  const labels = tf.cast(await fx.tensor('data.safetensors', 'input/labels'), 'int32') as tf.Tensor1D;
  const tolOf = (n: string) => fx.manifest.tensors.find((t) => t.name === n)!.tolerance;
  const stat = async (ours: tf.Tensor, n: string) => {
    const r = (await fx.tensor('data.safetensors', n)).dataSync();
    const a = ours.dataSync();
    const tol = tolOf(n);
    let mx = 0;
    for (const v of r) mx = Math.max(mx, Math.abs(v));
    const atol = tol.atol_rel_max !== undefined ? tol.atol_rel_max * mx : tol.atol;
    let e = 0,
      ok = 0,
      sa = 0,
      sb = 0,
      sab = 0,
      saa = 0,
      sbb = 0;
    const N = a.length;
    for (let i = 0; i < N; i++) {
      const d = Math.abs(a[i] - r[i]);
      e = Math.max(e, d);
      if (d <= atol + tol.rtol * Math.abs(r[i])) ok++;
      sa += a[i];
      sb += r[i];
    }
    const ma = sa / N,
      mb = sb / N;
    for (let i = 0; i < N; i++) {
      sab += (a[i] - ma) * (r[i] - mb);
      saa += (a[i] - ma) ** 2;
      sbb += (r[i] - mb) ** 2;
    }
    console.log(
      n.padEnd(60),
      'maxerr',
      e.toExponential(2),
      'max|ref|',
      mx.toExponential(2),
      'within',
      `${ok}/${N}`,
      'corr',
      (sab / Math.sqrt(saa * sbb)).toFixed(5),
    );
  };
  const vars = m.trainableVariables();
  const kept: Record<string, tf.Tensor> = {};
  const t0 = Date.now();
  const { value, grads } = tf.variableGrads(() => {
    const out = m.forward(x, { training: true });
    const c1 = crossEntropy(out.logits[0], labels),
      c2 = crossEntropy(out.logits[1], labels);
    kept.o1 = tf.keep(out.logits[0]);
    kept.o2 = tf.keep(out.logits[1]);
    kept.g = tf.keep(out.heads.globalFeatures);
    kept.c1 = tf.keep(c1);
    kept.c2 = tf.keep(c2);
    return tf.add(tf.mul(0.6, c1), tf.mul(0.4, c2)) as tf.Scalar;
  }, vars);
  console.log('fwd+bwd ms', Date.now() - t0);
  await stat(kept.o1, 'train/out1');
  await stat(kept.o2, 'train/out2');
  await stat(kept.g, 'train/global_feat');
  await stat(kept.c1, 'train/loss_ce_1');
  await stat(kept.c2, 'train/loss_ce_2');
  await stat(value, 'train/loss_total');
  for (const n of (await fx.names('data.safetensors')).filter((n) => n.startsWith('train/bn_after'))) {
    const { variable, entry } = torchParameter(m, n.slice(23));
    await stat(tfjsToTorch(variable, entry.transform), n);
  }
  for (const n of (await fx.names('data.safetensors')).filter((n) => n.startsWith('grad/'))) {
    const { variable, entry } = torchParameter(m, n.slice(5));
    await stat(tfjsToTorch(grads[variable.name], entry.transform), n);
  }
})();
