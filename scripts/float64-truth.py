#!/usr/bin/env python3
"""Float64 truth for the train-mode parity fixtures (issues 5 and 6).

Reruns a fixture's train-mode computation (same float32 weights and batches, same loss, same SGD steps and parameter
groups) in float64 or float32 with PyTorch, and writes every tensor the fixture stores (gradients, parameters after
the SGD steps, train-mode outputs, BN buffers after one forward) to one safetensors file, all as F64, under the
fixture's own names. The parity tests then measure, per tensor, how far the fixture (PyTorch float32 on the
machine that made it), PyTorch float32 here and our tfjs port each are from the float64 result.

The models come from ../shared/bench/torch_bench.py (an independent PyTorch restatement, verified value by value
against these fixtures), imported at run time from --bench; nothing of it is copied here.

With --routing (ESR), the float64 run replays another implementation's discrete choices (ReLU masks, 2x2 max-pool
cells, CBAM's two maxima; see `Routing`) and also writes, per choice set, how many differ from float64's own and by
how much (`routing/<step>/<part>/<kind><i>/{count,margin}`). A train-mode gradient jumps where such a choice flips,
so this separates "a near-tie decided the other way" from "a wrong computation".

Usage (Debian's python3-torch, PyTorch 1.13):
    /usr/bin/python3 scripts/float64-truth.py --model esr   --dtype float64 --out /tmp/truth
    /usr/bin/python3 scripts/float64-truth.py --model manet --dtype float32 --out /tmp/truth --threads 2
    /usr/bin/python3 scripts/float64-truth.py --model esr --routing choices.safetensors --out /tmp/truth
    -> /tmp/truth/<model>-<dtype>[-routed].safetensors; prints a one-line JSON summary on stdout.
    --all-grads (ESR) adds every parameter's step-1 gradient as all_grad/<part>/<torch_bench name>, for diagnosis.
Defaults: --reference and --bench are ../shared/{reference,bench} next to the repo (env FER_SHARED_DIR overrides).
"""
import argparse
import json
import os
import struct
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SHARED = Path(os.environ.get('FER_SHARED_DIR', Path(__file__).resolve().parents[2] / 'shared'))
SAMPLE_STRIDE = 31  # esr_cbam after_sgd.safetensors: `sample/` = C-order flat tensor [::31]


def write_safetensors(path, tensors):
    """{name: array} -> safetensors, every tensor as little-endian F64 (C order)."""
    header, blobs, offset = {}, [], 0
    for name, value in tensors.items():
        arr = np.ascontiguousarray(np.asarray(value, dtype='<f8'))
        blob = arr.tobytes()
        header[name] = {'dtype': 'F64', 'shape': list(arr.shape), 'data_offsets': [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(',', ':')).encode()
    text += b' ' * (-len(text) % 8)
    tmp = Path(str(path) + '.tmp')
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    tmp.replace(path)


def read_routing_safetensors(path):
    """{name: array} from a safetensors file of U8/I32 tensors (the routing decisions written by the parity test)."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack('<Q', raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop('__metadata__', None)
    out = {}
    for name, info in header.items():
        dtype = {'U8': np.uint8, 'I32': np.dtype('<i4')}.get(info['dtype'])
        if dtype is None:
            raise SystemExit(f'{path}: expected U8 or I32 routing tensors, got {info["dtype"]} for {name}')
        begin, end = info['data_offsets']
        out[name] = np.frombuffer(raw, dtype, (end - begin) // np.dtype(dtype).itemsize, 8 + n + begin).reshape(info['shape'])
    return out


class Routing:
    """Replays another implementation's discrete choices (every ReLU mask, 2x2 max-pool cell and CBAM maximum: the
    network's only discontinuities) in a stage's forward, and records how far each choice that differs from this
    run's own was from a tie: |BN output| for a ReLU and (max - chosen value) for a maximum, relative to the largest
    magnitude of the tensor the choice is made on. Choices, NHWC as tfjs keeps activations:
    `step<s>/<part>/relu<i>` [N,H,W,C] 0/1; `.../pool<i>` [N,H/2,W/2,C] 0..3 (row-major cell of each window);
    `.../gmax<i>` [N,C] int32 (flat h*W+w of CBAM's global max per channel); `.../cmax<i>` [N,H,W] int32 (channel of
    CBAM's max over channels of the channel-gated map)."""

    def __init__(self, masks):
        self.masks, self.step, self.flips = masks, 1, {}

    def stage_forward(self, part, index, stage, x):
        key = f'step{self.step}/{part}'
        z = stage.bn(stage.conv(x))
        scale = z.detach().abs().max()
        mask = torch.from_numpy(self.masks[f'{key}/relu{index}'].astype(bool)).permute(0, 3, 1, 2)
        differs = mask != (z.detach() > 0)
        self._note(f'{key}/relu{index}', int(differs.sum()), z.detach().abs()[differs].max() / scale if differs.any() else 0.0)
        y = z * mask.to(z.dtype)  # ReLU with the replayed mask (equal to relu(z) except at the differing entries)
        if stage.pool:
            n, c, h, w = y.shape
            h2, w2 = h // 2, w // 2  # floor, as max_pool2d
            cells = y[:, :, :2 * h2, :2 * w2].reshape(n, c, h2, 2, w2, 2).permute(0, 1, 2, 4, 3, 5).reshape(n, c, h2, w2, 4)
            choice = torch.from_numpy(self.masks[f'{key}/pool{index}'].astype(np.int64)).permute(0, 3, 1, 2)
            picked = cells.gather(4, choice.unsqueeze(4)).squeeze(4)
            top = cells.detach().max(4)
            differs = (choice != top.indices) & (top.values > picked.detach())  # tied cells: either choice is exact
            gap = (top.values - picked.detach())[differs]
            self._note(f'{key}/pool{index}', int(differs.sum()), gap.max() / scale if differs.any() else 0.0)
            y = picked
        return self.cbam_forward(f'{key}/', index, stage.cbam, y)

    def cbam_forward(self, key, index, cbam, x):
        """torch_bench's CBAM with the two maxima taken at the replayed positions."""
        n, c, h, w = x.shape
        avg = F.avg_pool2d(x, (h, w)).flatten(1)
        flat = x.flatten(2)                                                                        # [N,C,HW]
        where = torch.from_numpy(self.masks[f'{key}gmax{index}'].astype(np.int64))               # [N,C]
        peak = flat.gather(2, where.unsqueeze(2)).squeeze(2)
        self._note_max(f'{key}gmax{index}', flat.detach(), 2, where, peak.detach())
        att_ch = torch.sigmoid(cbam.mlp(avg) + cbam.mlp(peak))
        xc = x * att_ch[:, :, None, None]
        chan = torch.from_numpy(self.masks[f'{key}cmax{index}'].astype(np.int64)).unsqueeze(1)   # [N,1,H,W]
        cmax = xc.gather(1, chan)
        self._note_max(f'{key}cmax{index}', xc.detach(), 1, chan.squeeze(1), cmax.detach().squeeze(1))
        pooled = torch.cat([cmax, xc.mean(dim=1, keepdim=True)], dim=1)
        att_sp = torch.sigmoid(cbam.spatial_bn(cbam.spatial_conv(pooled)))
        return xc * att_sp, att_ch, att_sp

    def _note_max(self, name, values, dim, chosen, picked):
        top = values.max(dim)
        differs = (chosen != top.indices) & (top.values > picked)
        gap = (top.values - picked)[differs]
        self._note(name, int(differs.sum()), gap.max() / values.abs().max() if differs.any() else 0.0)

    def _note(self, name, count, margin):
        self.flips[name] = (count, float(margin))


def as_np(t):
    return t.detach().to(torch.float64, copy=True).cpu().numpy()  # a copy: buffers and params change in place later


def run_esr(tb, root, dtype, all_grads=False, routing=None):
    """esr_cbam: base + 3 CBAM branches, batch A then batch B, two SGD steps with esr_affectnet.py's groups."""
    data = tb.read_safetensors(root / 'data.safetensors')
    stored_after = tb.read_safetensors(root / 'after_sgd.safetensors')
    model = tb.DiversifiedESR(num_branches=3, num_classes=8)
    parts = {'base': model.base, **{f'branch_{k + 1}': b for k, b in enumerate(model.branches)}}
    for part, module in parts.items():
        tb.load_reference_state(module, tb.read_safetensors(root / 'weights_init' / f'{part}.safetensors'), tb.esr_key)
    model.to(dtype).train()
    out = {}
    if routing is not None:
        for part, module in parts.items():
            for index, stage in enumerate(module.stages, 1):
                stage.forward = (lambda x, part=part, index=index, stage=stage: routing.stage_forward(part, index, stage, x))

    def batch(xn, yn):
        return torch.from_numpy(data[xn]).to(dtype), torch.from_numpy(data[yn])

    # Group order as the fixture's optimizer: base 0.01, newest branch (branch_3) 0.1, then branch_1, branch_2 at 0.01.
    groups = [{'params': list(parts['base'].parameters()), 'lr': 0.01},
              {'params': list(parts['branch_3'].parameters()), 'lr': 0.1},
              {'params': list(parts['branch_1'].parameters()), 'lr': 0.01},
              {'params': list(parts['branch_2'].parameters()), 'lr': 0.01}]
    opt = torch.optim.SGD(groups, lr=0.01, momentum=0.9, dampening=0, weight_decay=0, nesterov=False)

    # Step 1 (batch A): outputs, loss terms, gradients, BN buffers after the forward.
    x, y = batch('input/x', 'input/labels')
    opt.zero_grad(set_to_none=True)
    logits, att_sp, att_ch = model(x)
    total, terms = tb.esr_loss(logits, att_sp, att_ch, y)
    out.update({'train/logits': as_np(logits), 'train/attn_sp': as_np(att_sp), 'train/attn_ch': as_np(att_ch)})
    out.update({f'train/loss_{k}': as_np(v) for k, v in terms.items()})
    for name in (n for n in data if n.startswith('train/bn_after_forward/')):
        part, key = name[len('train/bn_after_forward/'):].split('.', 1)
        out[name] = as_np(dict(parts[part].named_buffers())[tb.esr_key(key)])
    total.backward()
    for name in (n for n in data if n.startswith('grad/')):
        _, part, key = name.split('/')
        out[name] = as_np(dict(parts[part].named_parameters())[tb.esr_key(key)].grad)
    if all_grads:  # diagnosis: every parameter's step-1 gradient, under torch_bench's names
        for part, module in parts.items():
            out.update({f'all_grad/{part}/{k}': as_np(p.grad) for k, p in module.named_parameters()})
    out['sgd/loss_step1'] = as_np(total)
    opt.step()

    # Step 2 (batch B).
    if routing is not None:
        routing.step = 2
    x, y = batch('input/x_step2', 'input/labels_step2')
    opt.zero_grad(set_to_none=True)
    total, _ = tb.esr_loss(*model(x), y)
    total.backward()
    out['sgd/loss_step2'] = as_np(total)
    opt.step()

    # Parameters and buffers after the two steps, stored like the fixture (full, or every 31st flat entry).
    states = {part: module.state_dict() for part, module in parts.items()}
    for name in stored_after:
        kind, part, key = name.split('/')
        value = as_np(states[part][tb.esr_key(key)])
        out[name] = value.reshape(-1)[::SAMPLE_STRIDE] if kind == 'sample' else value
    if routing is not None:  # per replayed decision set: how many differ from this run's own, and the largest margin
        for name, (count, margin) in routing.flips.items():
            out[f'routing/{name}/count'], out[f'routing/{name}/margin'] = np.array(count), np.array(margin)
    return out


def run_manet(tb, root, dtype):
    """manet: 7-class MA-Net with the analytic weights, batch 2, one SGD step (lr 0.01, momentum 0.9, wd 1e-4)."""
    data = tb.read_safetensors(root / 'data.safetensors')
    entries = json.loads((root / 'analytic_weights.json').read_text())['entries']
    model = tb.DiversifiedMANet(num_classes=7)
    tb.load_reference_state(model, {e['name']: tb.analytic_tensor(e) for e in entries}, tb.manet_key)
    model.to(dtype).train()
    x, y = torch.from_numpy(data['input/x']).to(dtype), torch.from_numpy(data['input/labels'])
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    opt.zero_grad(set_to_none=True)
    outputs = model(x)
    total, terms = tb.manet_loss(*outputs, y)
    out = {f'train/{k}': as_np(v) for k, v in zip(['out1', 'out2', 'global_feat'], outputs)}
    out.update({f'train/loss_{k}': as_np(v) for k, v in terms.items()})
    buffers = dict(model.named_buffers())
    for name in (n for n in data if n.startswith('train/bn_after_forward/')):
        out[name] = as_np(buffers[tb.manet_key(name[len('train/bn_after_forward/'):])])
    total.backward()
    params = dict(model.named_parameters())
    for name in (n for n in data if n.startswith('grad/')):
        out[name] = as_np(params[tb.manet_key(name[len('grad/'):])].grad)
    opt.step()
    for name in (n for n in data if n.startswith('after_sgd1/')):
        out[name] = as_np(params[tb.manet_key(name[len('after_sgd1/'):])])
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--model', choices=['esr', 'manet'], required=True)
    p.add_argument('--dtype', choices=['float64', 'float32'], default='float64')
    p.add_argument('--out', required=True, help='output folder (created); writes <model>-<dtype>.safetensors')
    p.add_argument('--reference', default=str(SHARED / 'reference'), help='fixtures folder (holds esr_cbam/, manet/)')
    p.add_argument('--bench', default=str(SHARED / 'bench'), help='folder holding torch_bench.py')
    p.add_argument('--all-grads', action='store_true', help='ESR: also write every step-1 gradient as all_grad/<part>/<name>')
    p.add_argument('--routing', metavar='FILE', help='ESR: replay the ReLU, max-pool and CBAM-max choices in FILE (safetensors)')
    p.add_argument('--threads', type=int, default=1, help='torch.set_num_threads (default 1)')
    args = p.parse_args(argv)
    fixture = Path(args.reference) / ('esr_cbam' if args.model == 'esr' else 'manet')
    if not (fixture / 'manifest.json').is_file():
        p.error(f'No manifest.json in {fixture}. Pass the reference fixtures folder with --reference.')
    if not (Path(args.bench) / 'torch_bench.py').is_file():
        p.error(f'No torch_bench.py in {args.bench}. Pass the folder with --bench.')
    sys.path.insert(0, str(Path(args.bench)))
    import torch_bench as tb  # noqa: E402  (found at run time, never copied)

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    dtype = torch.float64 if args.dtype == 'float64' else torch.float32
    routing = Routing(read_routing_safetensors(args.routing)) if args.routing else None
    out = run_esr(tb, fixture, dtype, args.all_grads, routing) if args.model == 'esr' else run_manet(tb, fixture, dtype)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / f'{args.model}-{args.dtype}{"-routed" if routing else ""}.safetensors'
    write_safetensors(path, out)
    print(json.dumps({'file': str(path), 'tensors': len(out), 'seconds': round(time.perf_counter() - start, 2),
                      'torch': torch.__version__, 'threads': torch.get_num_threads()}))
    return 0


if __name__ == '__main__':
    sys.exit(main())
