#!/usr/bin/env python3
"""The real-faces experiment (`fer experiment real`) restated in PyTorch 1.13, for a side-by-side comparison.

Same protocol as packages/fer-train/src/experiments/real-faces.ts:
  - data: the `splits.json` that `fer experiment real` writes (train = FER2013 PublicTest minus a stratified hold-out,
    hold-out for model selection, test = PrivateTest with FER2013 labels, PrivateTest with FER+ majority labels,
    zero-shot CK+48 and JAFFE); faces as grey replicated to 3 channels in [0, 1], bilinear resize to --image-size
    (F.interpolate, align_corners=False: OpenCV INTER_LINEAR, which the TS pipeline uses);
  - model: the diversified ESR (CBAM) of ../shared/bench/torch_bench.py (imported at run time, not copied), 7 classes;
    base convolutions and batch norms from upstream ESR-9's AffectNet base (esr9-affectnet/weights/base-extracted.*,
    the raw dump of Net-Base-Shared_Representations.pt); CBAM modules and branches fresh (PyTorch default init);
  - training: the esr_ferplus rates on a growing ensemble (stage k adds branch k; base and focus branch at 0.1, the
    others at 0.02 after stage 1, times --lr-scale), SGD momentum 0.9, StepLR(--lr-step, --lr-gamma) stepped at each
    epoch start, batch 32; the ESR augmentation (colour jitter 0.5/0.5, horizontal flip, affine ±30°, translation
    10 %, scale 1-1.25, bilinear, fill 0); loss Σ CE + the `reference` (−det, γ 10, zero diagonal) or `dpp`
    (−logdet(S + 1e-3 I), γ 1, unit diagonal, mean distance) terms on the last CBAM's spatial and channel attention;
  - selection: hold-out ensemble accuracy after each epoch with batch statistics, best per stage (ties: later epoch),
    reloaded before the next stage; at the end precise BN (every BN's running mean/variance = the average over
    --bn-batches unaugmented training batches), then inference-mode evaluation of every split: plurality vote of the
    branches (ties to the lowest class), macro-F1, per-branch accuracy, attention distance, disagreement, and the
    `voteProbTies` and `soft` rules; `--tta flip` averages each branch's probabilities over the face and its mirror
    in that final scoring (not in selection), as ours does.

What cannot be identical: the random streams (initialisation of the fresh parts, data order, augmentation draws)
come from torch/numpy here and from the project's seeded Rng in TS; the same seeds select them.

Run (after `pnpm experiment real ...` has written the splits, or with `--splits-only` there):
    /usr/bin/python3 bench/real_torch.py --splits runs/real-faces/splits.json --out runs/real-faces-torch
It re-executes itself under tcmalloc (as torch_bench.py does) and uses 2 threads by default.
"""
import argparse
import importlib.util
import json
import os
import resource
import sys
import time
from pathlib import Path

TCMALLOC = '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4'
if ('tcmalloc' not in os.environ.get('LD_PRELOAD', '') and os.path.exists(TCMALLOC)
        and os.environ.get('FER_TORCH_BENCH_ALLOCATOR', 'tcmalloc') != 'glibc' and __name__ == '__main__'):
    env = dict(os.environ, LD_PRELOAD=(TCMALLOC + ' ' + os.environ.get('LD_PRELOAD', '')).strip())
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

LABELS = ['neutral', 'happy', 'sad', 'surprise', 'fear', 'disgust', 'anger']  # BASIC7_LABELS


def load_torch_bench():
    """Imports ../shared/bench/torch_bench.py (FER_TORCH_BENCH overrides the path)."""
    here = Path(__file__).resolve().parent
    path = Path(os.environ.get('FER_TORCH_BENCH', here.parent.parent / 'shared' / 'bench' / 'torch_bench.py'))
    if not path.is_file():
        sys.exit(f'torch_bench.py not found at {path}; set FER_TORCH_BENCH=/path/to/shared/bench/torch_bench.py')
    spec = importlib.util.spec_from_file_location('torch_bench', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


TB = load_torch_bench()


# --- data --------------------------------------------------------------------------------------------------------
def load_split(data_dir, items, size):
    """[N, 1, S, S] float32 in [0, 1] (grey) and labels [N] (LABELS order)."""
    xs, ys = [], []
    for it in items:
        img = np.asarray(Image.open(data_dir / it['file']).convert('L'), dtype=np.float32) / 255.0
        xs.append(torch.from_numpy(img)[None, None])
        ys.append(LABELS.index(it['label']))
    out = []
    for x in xs:  # per image: sizes differ between sets (48 px FER/CK+, 256 px JAFFE)
        out.append(F.interpolate(x, size=(size, size), mode='bilinear', align_corners=False) if x.shape[-1] != size else x)
    return torch.cat(out).clamp_(0, 1), torch.tensor(ys, dtype=torch.long)


def augment(x, gen):
    """ESR training augmentation on a grey batch [B, 1, S, S] (torchvision semantics, our own random draws)."""
    b = x.shape[0]
    r = lambda lo, hi, n=b: torch.rand(n, generator=gen) * (hi - lo) + lo
    bright, contrast, order = r(0.5, 1.5), r(0.5, 1.5), torch.rand(b, generator=gen) < 0.5
    out = x.clone()
    for i in range(b):
        img = out[i]
        for op in (('b', 'c') if order[i] else ('c', 'b')):
            if op == 'b':
                img = (img * bright[i]).clamp(0, 1)
            else:
                img = (contrast[i] * img + (1 - contrast[i]) * img.mean()).clamp(0, 1)
        out[i] = img
    flip = torch.rand(b, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    s = x.shape[-1]
    angle = r(-30, 30) * np.pi / 180
    tx, ty = torch.round(r(-0.1 * s, 0.1 * s)), torch.round(r(-0.1 * s, 0.1 * s))
    scale = r(1.0, 1.25)
    # Inverse map (output -> input) in normalised coordinates: x_in = R(-a) (x_out - t) / scale.
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos / scale, sin / scale
    theta[:, 1, 0], theta[:, 1, 1] = -sin / scale, cos / scale
    t = torch.stack([tx, ty], 1) * 2 / s
    theta[:, :, 2] = -(theta[:, :, :2] @ t[:, :, None])[:, :, 0]
    grid = F.affine_grid(theta, list(out.shape), align_corners=False)
    return F.grid_sample(out, grid, mode='bilinear', padding_mode='zeros', align_corners=False)


def rgb(x):
    return x.expand(-1, 3, -1, -1).contiguous()


# --- model -------------------------------------------------------------------------------------------------------
def upstream_base_state(data_dir):
    """Upstream ESR-9 base tensors from the raw dump (esr9-affectnet/weights/base-extracted.{json,bin})."""
    meta = json.loads((data_dir / 'esr9-affectnet' / 'weights' / 'base-extracted.json').read_text())
    raw = (data_dir / 'esr9-affectnet' / 'weights' / 'base-extracted.bin').read_bytes()
    out = {}
    for t in meta['tensors']:
        dtype = {'float32': np.float32, 'int64': np.int64}[t['dtype']]
        arr = np.frombuffer(raw, dtype=dtype, count=t['byteLength'] // np.dtype(dtype).itemsize, offset=t['byteOffset'])
        out[TB.esr_key(t['name'])] = torch.from_numpy(arr.reshape(t['shape']).copy())
    return out


def new_model(base_state, seed):
    torch.manual_seed(seed)
    model = TB.DiversifiedESR(num_branches=1, num_classes=7)
    report = None
    if base_state is not None:
        missing, unexpected = model.base.load_state_dict(base_state, strict=False)
        report = {'loaded': len(base_state) - len(unexpected), 'missing': len(missing), 'unexpected': list(unexpected)}
    return model, report


def bn_layers(model):
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


# --- loss --------------------------------------------------------------------------------------------------------
def dpp_term(heads, eps=1e-3):
    n, batch = heads.shape[:2]
    flat = heads.reshape(n, batch, -1)
    d = (flat[:, None] - flat[None, :]).pow(2).mean(dim=-1)          # mean distance, [n, n, B]
    s = torch.exp(-1.0 * d).mean(dim=-1)                              # γ 1; unit diagonal (d_ii = 0)
    return -torch.logdet(s + eps * torch.eye(n))


def loss_fn(logits, att_sp, att_ch, labels, variant):
    total = sum(F.cross_entropy(l, labels) for l in logits)
    if variant != 'none' and logits.shape[0] > 1:
        term = TB.neg_det_diversity if variant == 'reference' else dpp_term
        total = total + term(att_sp) + term(att_ch)
    return total


# --- evaluation --------------------------------------------------------------------------------------------------
def vote_counts(preds, k=7):
    """preds [n, N] -> votes per sample and class [N, K]."""
    return F.one_hot(preds, k).sum(0)


def vote(counts):
    """Plurality per sample, ties to the lowest class."""
    return counts.argmax(1)  # argmax returns the first maximum: the lowest class


def macro_f1(conf):
    f1s = []
    for c in range(conf.shape[0]):
        tp, sup, pred = conf[c, c], conf[c].sum(), conf[:, c].sum()
        if sup == 0:
            continue
        p = tp / pred if pred > 0 else 0.0
        r = tp / sup
        f1s.append(2 * p * r / (p + r) if p + r > 0 else 0.0)
    return float(np.mean(f1s))


def vote_prob_ties(counts, probs):
    """The plurality vote, a tie going to the tied class with the largest summed probability (then the lowest)."""
    tied = counts == counts.max(1, keepdim=True).values
    mass = torch.where(tied, probs.sum(0), torch.full_like(probs[0], -float('inf')))
    return mass.argmax(1)


def rule_score(pred, y):
    conf = np.zeros((7, 7), dtype=np.int64)
    np.add.at(conf, (y.numpy(), pred.numpy()), 1)
    return {'accuracy': float((pred == y).float().mean()), 'macroF1': macro_f1(conf)}


@torch.no_grad()
def evaluate(model, x, y, batch_statistics=False, batch=32, tta='none'):
    """Scores like ours: the faithful vote (headline), plus `voteProbTies` and `soft` from the branches'
    probabilities; `tta='flip'` averages each branch's probabilities over the face and its mirror first."""
    saved = None
    if batch_statistics:
        saved = {k: v.clone() for k, v in model.state_dict().items()}
        model.train()
    else:
        model.eval()
    probs, sp = [], []
    for i in range(0, x.shape[0], batch):
        xb = rgb(x[i:i + batch])
        logits, att_sp, _ = model(xb)
        p = logits.softmax(-1)
        if tta == 'flip':
            p = (p + model(xb.flip(-1))[0].softmax(-1)) / 2           # NCHW: the last axis is the width
        probs.append(p)
        sp.append(att_sp)
    if saved is not None:
        model.load_state_dict(saved)
    probs, sp = torch.cat(probs, 1), torch.cat(sp, 1)                  # [n, N, K], [n, N, h, w]
    preds = probs.argmax(-1)                                           # [n, N]
    counts = vote_counts(preds)
    ens = vote(counts)
    conf = np.zeros((7, 7), dtype=np.int64)
    np.add.at(conf, (y.numpy(), ens.numpy()), 1)
    n = preds.shape[0]
    out = {'size': int(x.shape[0]), 'accuracy': float((ens == y).float().mean()), 'macroF1': macro_f1(conf),
           'branchAccuracy': [float((p == y).float().mean()) for p in preds], 'confusion': conf.tolist(),
           'rules': {'voteProbTies': rule_score(vote_prob_ties(counts, probs), y),
                     'soft': rule_score(probs.sum(0).argmax(1), y)}}
    if n > 1:
        out['tieRate'] = float(((counts == counts.max(1, keepdim=True).values).sum(1) > 1).float().mean())
        flat = sp.reshape(n, sp.shape[1], -1)
        dist, dis, pairs = 0.0, 0.0, 0
        for a in range(n):
            for b in range(a + 1, n):
                dist += float((flat[a] - flat[b]).norm(dim=-1).mean())
                dis += float((preds[a] != preds[b]).float().mean())
                pairs += 1
        out['attentionDistance'], out['disagreement'] = dist / pairs, dis / pairs
    return out


@torch.no_grad()
def precise_bn(model, x, batches, batch, seed):
    """Every BN's running mean / unbiased variance = the average over `batches` batches (momentum None)."""
    layers = bn_layers(model)
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    for i in range(min(batches, x.shape[0] // batch)):
        model(rgb(x[order[i * batch:(i + 1) * batch]]))
    for m, mom in zip(layers, momenta):
        m.momentum = mom


# --- one run -----------------------------------------------------------------------------------------------------
def plan(a):
    stages = []
    for k in range(1, a.branches + 1):
        lrs = {'base': (0.1 if k == 1 else 0.02) * a.lr_scale}
        for b in range(1, k + 1):
            lrs[f'branch_{b}'] = (0.1 if b == k else 0.02) * a.lr_scale
        stages.append({'stage': k, 'epochs': a.first_epochs if k == 1 else a.later_epochs, 'lrs': lrs})
    return stages


def init_part(module, init_dir, part):
    """Loads `<init_dir>/<part>.safetensors` (reference key names, as bench/real-gap.ts writes them) strictly."""
    tensors = TB.read_safetensors(Path(init_dir) / f'{part}.safetensors')
    module.load_state_dict({TB.esr_key(k): torch.from_numpy(v) for k, v in tensors.items()}, strict=True)


def run(a, data, base_state, variant, seed):
    t0, c0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
    model, report = new_model(base_state, seed)
    init_dir = a.init_from.replace('{seed}', str(seed)) if a.init_from else None
    if init_dir:  # the TS side's initial weights (diagnostic): base and branch 1 now, branch k at stage k
        init_part(model.base, init_dir, 'base')
        init_part(model.branches[0], init_dir, 'branch_1')
    xtr, ytr = data['train']
    gen = torch.Generator().manual_seed(seed if a.data_seed is None else a.data_seed)
    curves = {'trainLoss': [], 'holdoutAccuracy': [], 'stageStarts': []}
    best_state, selection = None, []
    for st in plan(a):
        if st['stage'] > 1:
            model.load_state_dict(best_state)
            torch.manual_seed(seed * 1000 + st['stage'])
            model.branches.append(TB.EsrBranch(7))
            if init_dir:
                init_part(model.branches[-1], init_dir, f'branch_{st["stage"]}')
        groups = [{'params': list(model.base.parameters()), 'lr': st['lrs']['base']}]
        groups += [{'params': list(b.parameters()), 'lr': st['lrs'][f'branch_{i + 1}']} for i, b in enumerate(model.branches)]
        opt = torch.optim.SGD(groups, lr=0.01, momentum=0.9)
        base_lrs = [g['lr'] for g in groups]
        best_acc, best_state = -1.0, None
        curves['stageStarts'].append(len(curves['trainLoss']))
        for e in range(st['epochs']):
            factor = a.lr_gamma ** ((e + 1) // a.lr_step)  # StepLR stepped at epoch start (esr scripts)
            for g, lr in zip(opt.param_groups, base_lrs):
                g['lr'] = lr * factor
            model.train()
            order = torch.randperm(xtr.shape[0], generator=gen)
            losses = []
            for i in range(0, xtr.shape[0], a.batch):
                idx = order[i:i + a.batch]
                x = rgb(augment(xtr[idx], gen))
                logits, att_sp, att_ch = model(x)
                loss = loss_fn(logits, att_sp, att_ch, ytr[idx], variant)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss))
            acc = evaluate(model, *data['holdout'], batch_statistics=True)['accuracy']
            curves['trainLoss'].append(float(np.mean(losses)))
            curves['holdoutAccuracy'].append(acc)
            print(f'  {variant} seed {seed} stage {st["stage"]} epoch {e + 1}: loss {np.mean(losses):.4f} '
                  f'hold-out {100 * acc:.1f}% ({time.time() - t0:.0f} s)', flush=True)
            if acc >= best_acc:
                best_acc, best_state = acc, {k: v.clone() for k, v in model.state_dict().items()}
        selection.append(best_acc)
    model.load_state_dict(best_state)
    train_seconds = time.time() - t0
    if a.bn_batches > 0:
        precise_bn(model, xtr, a.bn_batches, a.batch, seed)
    res = {'variant': variant, 'seed': seed, 'selection': selection, 'baseLoad': report}
    if a.data_seed is not None:
        res['dataSeed'] = a.data_seed
    for k in ('test', 'testFerPlus', 'ckplus', 'jaffe', 'holdout'):
        if k in data:
            res[k] = evaluate(model, *data[k], tta=a.tta)
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    n_img = sum(st['epochs'] for st in plan(a)) * xtr.shape[0]
    res.update({'trainSeconds': train_seconds, 'totalSeconds': time.time() - t0,
                'cpuSeconds': (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime),
                'trainImages': n_img, 'imagesPerSecond': n_img / train_seconds, 'curves': curves})
    return res


def summarise(runs):
    out = []
    for v in dict.fromkeys(r['variant'] for r in runs):
        rs = [r for r in runs if r['variant'] == v]
        metrics = {}
        for r in rs:
            m = {'testAccuracy': r['test']['accuracy'], 'testMacroF1': r['test']['macroF1'],
                 'testBranchMeanAccuracy': float(np.mean(r['test']['branchAccuracy'])),
                 'holdoutAccuracy': r['holdout']['accuracy'], 'trainSeconds': r['trainSeconds'],
                 'cpuSeconds': r['cpuSeconds'], 'imagesPerSecond': r['imagesPerSecond'],
                 'testVoteProbTiesAccuracy': r['test']['rules']['voteProbTies']['accuracy'],
                 'testSoftAccuracy': r['test']['rules']['soft']['accuracy']}
            for k in ('attentionDistance', 'disagreement'):
                if k in r['test']:
                    m[k] = r['test'][k]
            for k in ('testFerPlus', 'ckplus', 'jaffe'):
                if k in r:
                    m[f'{k}Accuracy'], m[f'{k}MacroF1'] = r[k]['accuracy'], r[k]['macroF1']
            for k, val in m.items():
                metrics.setdefault(k, []).append(val)
        out.append({'variant': v, 'runs': len(rs),
                    'mean': {k: float(np.mean(x)) for k, x in metrics.items() if len(x) == len(rs)},
                    'std': {k: float(np.std(x, ddof=1)) if len(x) > 1 else 0.0 for k, x in metrics.items() if len(x) == len(rs)}})
    return out


def stratified_part(items, fraction, cap=None):
    if fraction >= 1 and cap is None:
        return items
    by = {}
    for it in items:
        by.setdefault(it['label'], []).append(it)
    out = []
    for cls in by.values():
        n = max(1, round(len(cls) * min(1, fraction)))
        if cap is not None:
            n = min(cap, n)
        out += [cls[(i * len(cls)) // n] for i in range(n)]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--splits', required=True, help='splits.json written by `fer experiment real`')
    p.add_argument('--data', help='shared data folder (default: ../shared/data next to the repository)')
    p.add_argument('--out', default='runs/real-faces-torch')
    p.add_argument('--variants', default='none,reference,dpp')
    p.add_argument('--seeds', default='1,2,3')
    p.add_argument('--image-size', type=int, default=64)
    p.add_argument('--branches', type=int, default=2)
    p.add_argument('--first-epochs', type=int, default=1)
    p.add_argument('--later-epochs', type=int, default=1)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--lr-scale', type=float, default=0.25)
    p.add_argument('--lr-step', type=int, default=10)
    p.add_argument('--lr-gamma', type=float, default=0.75)
    p.add_argument('--train-cap', type=int, help='training faces per class at most')
    p.add_argument('--test-fraction', type=float, default=0.5)
    p.add_argument('--bn-batches', type=int, default=20)
    p.add_argument('--no-pretrained', action='store_true')
    p.add_argument('--init-from', help='diagnostic: start from the initial weights `bench/real-gap.ts --init-only` '
                   'wrote (<out>/init: base, branch_1, branch_2, ...; "{seed}" in the path is replaced by each run\'s seed) '
                   'instead of torch-seeded ones; data order and augmentation stay torch-seeded')
    p.add_argument('--data-seed', type=int, help='diagnostic: seeds the data order and augmentation draws with this '
                   'instead of the run seed (which still seeds the fresh parts), to separate the two streams')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--tta', choices=['none', 'flip'], default='none',
                   help='test-time augmentation of the final scoring (flip: face and mirror averaged per branch)')
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    splits = json.loads(Path(a.splits).read_text())
    data_dir = Path(a.data) if a.data else Path(__file__).resolve().parent.parent.parent / 'shared' / 'data'
    if not (data_dir / 'fer2013-test').is_dir():
        print(f'skipped: no fer2013-test/ under {data_dir} (pass --data <shared data folder>)')
        return 0
    t0 = time.time()
    data = {'train': load_split(data_dir, stratified_part(splits['train'], 1, a.train_cap), a.image_size),
            'holdout': load_split(data_dir, splits['holdout'], a.image_size)}
    for k in ('test', 'testFerPlus', 'ckplus', 'jaffe'):
        if splits.get(k):
            data[k] = load_split(data_dir, stratified_part(splits[k], a.test_fraction), a.image_size)
    print(f'data loaded in {time.time() - t0:.0f} s: ' + ', '.join(f'{k} {v[0].shape[0]}' for k, v in data.items()),
          flush=True)
    base_state = None if a.no_pretrained else upstream_base_state(data_dir)
    runs = []
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(a).items()}
    settings.update(framework=f'torch {torch.__version__}', threads=torch.get_num_threads(),
                    allocator='tcmalloc' if 'tcmalloc' in os.environ.get('LD_PRELOAD', '') else 'glibc')
    for variant in a.variants.split(','):
        for seed in [int(s) for s in a.seeds.split(',')]:
            r = run(a, data, base_state, variant, seed)
            runs.append(r)
            print(f'run {variant} seed {seed}: PrivateTest {100 * r["test"]["accuracy"]:.1f}% '
                  f'(branches {" / ".join(f"{100 * b:.1f}" for b in r["test"]["branchAccuracy"])}), '
                  f'{r["trainSeconds"]:.0f} s training, {r["cpuSeconds"]:.0f} s CPU, {r["imagesPerSecond"]:.1f} img/s',
                  flush=True)
            rep = {'settings': settings, 'runs': runs, 'summary': summarise(runs)}
            (out / 'report.json').write_text(json.dumps(rep, indent=1) + '\n')
    for s in summarise(runs):
        m, sd = s['mean'], s['std']
        print(f"{s['variant']}: PrivateTest {100 * m['testAccuracy']:.1f} ± {100 * sd['testAccuracy']:.1f} over {s['runs']} seed(s), "
              f"train {m['trainSeconds']:.0f} s, {m['imagesPerSecond']:.1f} img/s")
    return 0


if __name__ == '__main__':
    sys.exit(main())
