#!/usr/bin/env python3
"""ConvFormerNet inference (forward only, eval mode, no autograd) in PyTorch,
float32, timed: the peer of benches/infer.rs.

Usage: torch_infer.py CONFIG_JSON BATCH THREADS PASSES eager|compile
CONFIG_JSON is convformer's ModelConfig (seq_len and in_channels filled in), so
both sides build the same network (scripts/torch_reference.py).
Prints one line: `torch ms_per_pass=<median ms> peak_mib=<max RSS MiB>`.
"""

import json
import pathlib
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "scripts"))
from torch_reference import ConvFormerNet  # noqa: E402


def main():
    cfg = json.loads(sys.argv[1])
    batch, threads, passes = map(int, sys.argv[2:5])
    mode = sys.argv[5]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ConvFormerNet(cfg).eval()
    if mode == "compile":
        model = torch.compile(model)
    x = torch.rand(batch, cfg["seq_len"], cfg["in_channels"])
    times = []
    with torch.inference_mode():
        for i in range(passes + 2):  # 2 warm-up passes (the compile happens in the first)
            t0 = time.perf_counter()
            model(x)
            if i >= 2:
                times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1e3
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"torch ms_per_pass={ms:.4f} peak_mib={peak:.1f}")


if __name__ == "__main__":
    main()
