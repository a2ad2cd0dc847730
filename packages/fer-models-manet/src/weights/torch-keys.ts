import { CBAM_TORCH_KEYS, TORCH_BN_KEYS, TORCH_LINEAR_KEYS, type TorchKeySpec, type TorchTransform } from 'fer-core';
import type { ResolvedManetConfig } from '../configs';

/** One entry of the reference's `MANet.state_dict()`, and where it lives in the tfjs model. */
export interface ManetTorchEntry {
  /** PyTorch key without `module.`, e.g. `layer3_1_p1.0.cbam.ChannelGate.mlp.1.weight`. */
  key: string;
  /** 0-based position in `state_dict()` order (the fixture's analytic rule uses it). */
  index: number;
  /** PyTorch shape (OIHW convs, [out, in] linears). */
  shape: number[];
  /** Fan-in of conv/linear weights and linear biases (in·kh·kw or in_features); undefined otherwise. */
  fanIn?: number;
  /** What the entry is (BN roles follow PyTorch's names). */
  role:
    | 'conv'
    | 'linear_weight'
    | 'linear_bias'
    | 'bn_weight'
    | 'bn_bias'
    | 'bn_running_mean'
    | 'bn_running_var'
    | 'bn_count';
  /** tfjs layer name (the PyTorch module path; CBAM's sub-modules live in one `Cbam` layer). */
  layer: string;
  /** tfjs weight suffix after `<layer>/`. */
  weight: string;
  transform: TorchTransform;
}

/**
 * The reference's state-dict entries in registration order (docs/method.md#manet; 692 entries for any class count):
 * conv1, bn1, layer1, layer2, then per patch layer3_1_pk + layer4_1_pk, then layer3_2, layer4_2, fc_1, fc_2. Inside a
 * block: conv1, bn1, conv2, bn2, downsample.{0,1}, cbam (attention blocks); multi-scale blocks hold conv1, bn1,
 * conv1_2_{1..4}/bn1_2_{1..4}, conv2_2_{1..4}/bn2_2_{1..4}, downsample.
 */
export function manetTorchEntries(config: Pick<ResolvedManetConfig, 'numClasses'>): ManetTorchEntry[] {
  const out: ManetTorchEntry[] = [];
  const push = (e: Omit<ManetTorchEntry, 'index'>) => out.push({ ...e, index: out.length });
  const conv = (name: string, cout: number, cin: number, k: number) =>
    push({
      key: `${name}.weight`,
      shape: [cout, cin, k, k],
      fanIn: cin * k * k,
      role: 'conv',
      layer: name,
      weight: 'kernel',
      transform: 'conv',
    });
  const bnRoles = ['bn_weight', 'bn_bias', 'bn_running_mean', 'bn_running_var', 'bn_count'] as const;
  const bnKeys = (layer: string, torchPrefix: string, specs: readonly TorchKeySpec[], c: number) =>
    specs.forEach((s, i) =>
      push({
        key: `${torchPrefix}${s.torch}`,
        shape: bnRoles[i] === 'bn_count' ? [] : [c],
        role: bnRoles[i],
        layer,
        weight: s.tfjs,
        transform: s.transform,
      }),
    );
  const bn = (name: string, c: number) => bnKeys(name, `${name}.`, TORCH_BN_KEYS, c);
  const downsample = (p: string, cin: number, cout: number, stride: number) => {
    if (stride === 1 && cin === cout) return;
    conv(`${p}.downsample.0`, cout, cin, 1);
    bn(`${p}.downsample.1`, cout);
  };
  const cbam = (p: string, c: number) => {
    const layer = `${p}.cbam`;
    const h = Math.floor(c / 16);
    const [m1w, m1b, m3w, m3b, sconv, ...sbn] = CBAM_TORCH_KEYS;
    const lin = (s: TorchKeySpec, shape: number[], fanIn: number, role: 'linear_weight' | 'linear_bias') =>
      push({ key: `${layer}.${s.torch}`, shape, fanIn, role, layer, weight: s.tfjs, transform: s.transform });
    lin(m1w, [h, c], c, 'linear_weight');
    lin(m1b, [h], c, 'linear_bias');
    lin(m3w, [c, h], h, 'linear_weight');
    lin(m3b, [c], h, 'linear_bias');
    push({
      key: `${layer}.${sconv.torch}`,
      shape: [1, 2, 7, 7],
      fanIn: 98,
      role: 'conv',
      layer,
      weight: sconv.tfjs,
      transform: sconv.transform,
    });
    bnKeys(layer, `${layer}.`, sbn, 1);
  };
  const basic = (p: string, cin: number, cout: number, stride: number, attention: boolean) => {
    conv(`${p}.conv1`, cout, cin, 3);
    bn(`${p}.bn1`, cout);
    conv(`${p}.conv2`, cout, cout, 3);
    bn(`${p}.bn2`, cout);
    downsample(p, cin, cout, stride);
    if (attention) cbam(p, cout);
  };
  const mulScale = (p: string, cin: number, cout: number, stride: number) => {
    conv(`${p}.conv1`, cout, cin, 3);
    bn(`${p}.bn1`, cout);
    const w = cout / 4;
    for (const path of [1, 2]) {
      for (let j = 1; j <= 4; j++) {
        conv(`${p}.conv${path}_2_${j}`, w, w, 3);
        bn(`${p}.bn${path}_2_${j}`, w);
      }
    }
    downsample(p, cin, cout, stride);
  };
  const stage = (
    name: string,
    cin: number,
    cout: number,
    stride: number,
    block: (p: string, cin: number, cout: number, stride: number) => void,
  ) => {
    block(`${name}.0`, cin, cout, stride);
    block(`${name}.1`, cout, cout, 1);
  };

  conv('conv1', 64, 3, 7);
  bn('bn1', 64);
  stage('layer1', 64, 64, 1, (p, a, b, s) => basic(p, a, b, s, false));
  stage('layer2', 64, 128, 2, (p, a, b, s) => basic(p, a, b, s, false));
  for (let k = 1; k <= 4; k++) {
    stage(`layer3_1_p${k}`, 128, 256, 2, (p, a, b, s) => basic(p, a, b, s, true));
    stage(`layer4_1_p${k}`, 256, 512, 1, (p, a, b, s) => basic(p, a, b, s, true));
  }
  stage('layer3_2', 128, 256, 2, mulScale);
  stage('layer4_2', 256, 512, 2, mulScale);
  for (const fc of ['fc_1', 'fc_2']) {
    const [w, b] = TORCH_LINEAR_KEYS;
    push({
      key: `${fc}.${w.torch}`,
      shape: [config.numClasses, 512],
      fanIn: 512,
      role: 'linear_weight',
      layer: fc,
      weight: w.tfjs,
      transform: w.transform,
    });
    push({
      key: `${fc}.${b.torch}`,
      shape: [config.numClasses],
      fanIn: 512,
      role: 'linear_bias',
      layer: fc,
      weight: b.tfjs,
      transform: b.transform,
    });
  }
  return out;
}

/** Keys of the two classification heads, which `fromMsCeleb` replaces. */
export const MANET_HEAD_KEYS = ['fc_1.weight', 'fc_1.bias', 'fc_2.weight', 'fc_2.bias'] as const;
