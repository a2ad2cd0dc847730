#!/usr/bin/env python3
"""PyTorch twin of bench/conv-shapes.bench.ts: the same convolutions (NCHW, torch.nn.functional.conv2d and
aten.convolution_backward for the data and weight gradients separately), fastest of the repeats in ms.

Usage: conv_shapes_torch.py '{"shapes": [{"n":..,"h":..,"c":..,"o":..,"k":..,"s":..,"p":..}], "reps": 5,
"clock": "wall"|"cpu", "threads": 2}'. Prints a JSON list of {"fwd", "bwdData", "bwdWeights"} on stdout.
The TS side runs it under tcmalloc (LD_PRELOAD), as ../shared/bench/torch_bench.py runs itself.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F


def fastest(reps, clock, fn):
    now = time.process_time if clock == "cpu" else time.perf_counter
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = now()
        fn()
        best = min(best, now() - t0)
    return best * 1000


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(int(cfg["threads"]))
    assert torch.backends.mkldnn.is_available(), "PyTorch was built without oneDNN (mkldnn)"
    out = []
    with torch.no_grad():
        for s in cfg["shapes"]:
            stride, pad = [s["s"]] * 2, [s["p"]] * 2
            x = torch.randn(s["n"], s["c"], s["h"], s["h"])
            w = torch.randn(s["o"], s["c"], s["k"], s["k"])
            dy = torch.randn_like(F.conv2d(x, w, None, stride, pad))

            def grad(mask):
                return torch.ops.aten.convolution_backward(
                    dy, x, w, None, stride, pad, [1, 1], False, [0, 0], 1, mask
                )

            out.append(
                {
                    "fwd": fastest(cfg["reps"], cfg["clock"], lambda: F.conv2d(x, w, None, stride, pad)),
                    "bwdData": fastest(cfg["reps"], cfg["clock"], lambda: grad([True, False, False])),
                    "bwdWeights": fastest(cfg["reps"], cfg["clock"], lambda: grad([False, True, False])),
                }
            )
    print(json.dumps(out))


main()
