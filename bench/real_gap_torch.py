#!/usr/bin/env python3
"""The real-faces gap, controlled (issue #14): replays in PyTorch 1.13 the stage that `bench/real-gap.ts` ran.

From the folder real-gap.ts wrote (--dir), with the restatement of bench/real_torch.py (imported, not copied):
  1. pixels: this side's decode + resize (PIL 'L', F.interpolate bilinear) of the same faces vs the tensors the TS
     pipeline fed its model (pixels.f32): max / mean |diff|;
  2. augmentation: per-image mean, std and zero fraction of real_torch.augment on the first faces vs aug.json
     (the random draws differ; the distributions should not);
  3. training: the same initial weights (init/*.safetensors), the same faces in the same order (--pixels ts: the TS
     tensors themselves; --pixels torch: this side's own decode), no augmentation, stage 1 of the measured plan
     (SGD momentum 0.9, base and branch at 0.1 x lr-scale, loss = CE), one step per batch of 32;
     the per-step losses against steps.json, and the weights after the epoch against final/*.safetensors.
Writes <dir>/torch-<pixels>.json and prints a summary.

    /usr/bin/python3 bench/real_gap_torch.py --dir <dir> [--pixels ts|torch] [--data <shared data>] [--threads 2]
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.dont_write_bytecode = True  # importing real_torch must not leave bench/__pycache__ behind
sys.path.insert(0, str(Path(__file__).resolve().parent))
import real_torch as RT  # noqa: E402  (after the path tweak)

TB = RT.TB


def load_part(module, file):
    tensors = TB.read_safetensors(file)
    module.load_state_dict({TB.esr_key(k): torch.from_numpy(v) for k, v in tensors.items()}, strict=True)


def flat_params(file):
    return {k: v.astype(np.float64) for k, v in TB.read_safetensors(file).items()}


def aug_stats(x):
    """Per image: mean, std, fraction of exact zeros (x [N, 1, S, S])."""
    flat = x.reshape(x.shape[0], -1)
    return {'mean': flat.mean(1).numpy(), 'std': flat.std(1, unbiased=False).numpy(),
            'zero': (flat == 0).float().mean(1).numpy()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--dir', required=True, help='folder written by bench/real-gap.ts')
    p.add_argument('--data', help='shared data folder (default: ../shared/data next to the repository)')
    p.add_argument('--pixels', choices=['ts', 'torch'], default='ts', help='train on the TS tensors or on our decode')
    p.add_argument('--lr-scale', type=float,
                   help="multiplies the reference's 0.1 (default: the rate real-gap.ts trained at, from steps.json)")
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--perturb', type=float, default=0.0,
                   help='control for float chaos: scale every initial weight by (1 + PERTURB·N(0, 1)), seeded')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    d = Path(a.dir)
    data_dir = Path(a.data) if a.data else Path(__file__).resolve().parent.parent.parent / 'shared' / 'data'
    if not (data_dir / 'fer2013-test').is_dir():
        print(f'skipped: no fer2013-test/ under {data_dir} (pass --data <shared data folder>)')
        return 0
    order = json.loads((d / 'order.json').read_text())
    size, items = order['imageSize'], order['items']
    ts_steps = json.loads((d / 'steps.json').read_text())
    x_torch, y = RT.load_split(data_dir, items, size)
    x_ts = torch.from_numpy(np.fromfile(d / 'pixels.f32', dtype=np.float32).reshape(-1, 1, size, size))
    n = min(x_ts.shape[0], x_torch.shape[0])
    diff = (x_ts[:n] - x_torch[:n]).abs()
    res = {'pixels': a.pixels, 'perturb': a.perturb, 'faces': int(n),
           'pixelDiff': {'max': float(diff.max()), 'mean': float(diff.mean()),
                         'fractionOver1Grey': float((diff > 1.0 / 255 + 1e-6).float().mean()),
                         'maxFirst8': float(diff[:8].max())}}
    print(f'pixels ({n} faces): max |ts - torch| {res["pixelDiff"]["max"] * 255:.3f} grey levels, '
          f'mean {res["pixelDiff"]["mean"] * 255:.4f}, fraction > 1 grey level {res["pixelDiff"]["fractionOver1Grey"]:.2e}')

    # Augmentation: distributions of simple image statistics, same faces, independent draws.
    ts_aug = json.loads((d / 'aug.json').read_text())
    k = len(ts_aug)
    gen = torch.Generator().manual_seed(order['seed'])
    ours = aug_stats(torch.cat([RT.augment(x_torch[i:i + 64], gen) for i in range(0, k, 64)]))
    res['augmentation'] = {}
    for key in ('mean', 'std', 'zero'):
        t = np.array([s[key] for s in ts_aug])
        res['augmentation'][key] = {'ts': [float(t.mean()), float(t.std())],
                                    'torch': [float(ours[key].mean()), float(ours[key].std())]}
        print(f'augmentation {key:>4} per image over {k} faces: ts {t.mean():.4f} ± {t.std():.4f}, '
              f'torch {ours[key].mean():.4f} ± {ours[key].std():.4f}')

    # Training from the same weights, same order, no augmentation.
    x = x_ts if a.pixels == 'ts' else x_torch
    model = TB.DiversifiedESR(num_branches=1, num_classes=7)
    load_part(model.base, d / 'init' / 'base.safetensors')
    load_part(model.branches[0], d / 'init' / 'branch_1.safetensors')
    if a.perturb:
        g = torch.Generator().manual_seed(12345)
        with torch.no_grad():
            for prm in model.parameters():
                prm.mul_(1 + a.perturb * torch.randn(prm.shape, generator=g))
    lr = 0.1 * a.lr_scale if a.lr_scale is not None else float(ts_steps['lrs']['base'])
    opt = torch.optim.SGD([{'params': list(model.base.parameters()), 'lr': lr},
                           {'params': list(model.branches[0].parameters()), 'lr': lr}], lr=lr, momentum=0.9)
    model.train()
    steps = []
    t0 = time.time()
    max_steps = len(ts_steps['steps'])
    for i in range(0, x.shape[0], 32):
        if len(steps) >= max_steps:
            break
        logits, att_sp, att_ch = model(RT.rgb(x[i:i + 32]))
        loss = RT.loss_fn(logits, att_sp, att_ch, y[i:i + 32], 'none')
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps.append({'loss': float(loss), 'correct': int((logits[0].argmax(-1) == y[i:i + 32]).sum())})
    print(f'{len(steps)} steps in {time.time() - t0:.0f} s')
    ts_l = np.array([s['loss'] for s in ts_steps['steps']])
    pt_l = np.array([s['loss'] for s in steps])
    rel = np.abs(ts_l - pt_l) / np.abs(pt_l)
    first = {str(t): int(np.argmax(rel > t)) + 1 if (rel > t).any() else None for t in (1e-5, 1e-4, 1e-3, 1e-2)}
    res['steps'] = {'ts': ts_l.tolist(), 'torch': pt_l.tolist(), 'relDiff': rel.tolist(),
                    'firstStepOver': first, 'meanLoss': {'ts': float(ts_l.mean()), 'torch': float(pt_l.mean())},
                    'correct': {'ts': sum(s['correct'] for s in ts_steps['steps']),
                                'torch': sum(s['correct'] for s in steps)}}
    print('step   ts loss    torch loss  rel. diff')
    for s in sorted({1, 2, 3, 5, 10, 20, 30, 50, 75, len(steps)}):
        if s <= len(steps):
            print(f'{s:4d}  {ts_l[s - 1]:.6f}  {pt_l[s - 1]:.6f}  {rel[s - 1]:.2e}')
    print(f'mean loss over the epoch: ts {ts_l.mean():.5f}, torch {pt_l.mean():.5f}; first step with rel. diff over '
          + ', '.join(f'{t}: {v}' for t, v in first.items()))
    print(f'train correct over the epoch: ts {res["steps"]["correct"]["ts"]}, torch {res["steps"]["correct"]["torch"]}')
    base_run = d / f'torch-{a.pixels}.json'
    if a.perturb and base_run.exists():  # the float-chaos control: this run against the unperturbed one
        ref = np.array(json.loads(base_run.read_text())['steps']['torch'][:len(pt_l)])
        rel_p = np.abs(ref - pt_l) / np.abs(ref)
        res['steps']['vsUnperturbed'] = {'relDiff': rel_p.tolist(), 'meanLoss': float(ref.mean()),
                                         'firstStepOver': {str(t): int(np.argmax(rel_p > t)) + 1 if (rel_p > t).any()
                                                           else None for t in (1e-5, 1e-4, 1e-3, 1e-2)}}
        print('step   torch loss  perturbed   rel. diff  (ts vs torch)')
        for s in sorted({1, 2, 3, 5, 10, 20, 30, 50, 75, len(steps)}):
            if s <= len(steps):
                print(f'{s:4d}  {ref[s - 1]:.6f}  {pt_l[s - 1]:.6f}  {rel_p[s - 1]:.2e}  ({rel[s - 1]:.2e})')
        print(f'mean loss: unperturbed {ref.mean():.5f}, perturbed {pt_l.mean():.5f}, ts {ts_l.mean():.5f}')

    # Weights after the epoch.
    if (d / 'final' / 'base.safetensors').exists() and len(steps) == len(ts_steps['steps']):
        res['weights'] = {}
        for part, module in (('base', model.base), ('branch_1', model.branches[0])):
            theirs = flat_params(d / 'final' / f'{part}.safetensors')
            init = flat_params(d / 'init' / f'{part}.safetensors')
            mine = {k: v.detach().numpy().astype(np.float64) for k, v in module.state_dict().items()}
            num, den, moved = 0.0, 0.0, 0.0
            for k_ref, v in theirs.items():
                if 'running_' in k_ref or k_ref.endswith('num_batches_tracked'):
                    continue  # trainable weights only
                m = mine[TB.esr_key(k_ref)].reshape(v.shape)
                num += float(((m - v) ** 2).sum())
                den += float((m ** 2).sum())
                moved += float(((m - init[k_ref]) ** 2).sum())
            res['weights'][part] = {'relDiff': (num / den) ** 0.5, 'relMoved': (moved / den) ** 0.5}
            # Per tensor: how far apart the two sides' changes are, relative to the change (catches a tensor that
            # one side leaves out of the update or moves differently, e.g. a BN's running statistics).
            per = []
            for k_ref, v in theirs.items():
                if k_ref.endswith('num_batches_tracked'):
                    continue
                m = mine[TB.esr_key(k_ref)].reshape(v.shape)
                d_pt, d_ts = m - init[k_ref], v - init[k_ref]
                scale = float(np.sqrt((d_pt ** 2).sum()))
                per.append((float(np.sqrt(((d_ts - d_pt) ** 2).sum())) / scale if scale > 0 else float('nan'), k_ref))
            per.sort(key=lambda t: -t[0] if t[0] == t[0] else -1e9)
            res['weights'][part]['updateRelDiff'] = {k: r for r, k in per}
            print(f'  {part}: ‖Δts − Δtorch‖/‖Δtorch‖ per tensor, largest: '
                  + ', '.join(f'{k} {r:.1e}' for r, k in per[:4]) + f'; median {np.nanmedian([r for r, _ in per]):.1e}')
            print(f'trainable weights after the epoch, {part}: ‖ts − torch‖/‖torch‖ = {(num / den) ** 0.5:.2e}; '
                  f'training moved them by ‖torch − init‖/‖torch‖ = {(moved / den) ** 0.5:.2e}')
    (d / f'torch-{a.pixels}{"-perturb" if a.perturb else ""}.json').write_text(json.dumps(res, indent=1) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
