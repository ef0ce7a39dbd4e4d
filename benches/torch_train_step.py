#!/usr/bin/env python3
"""One ConvFormerNet training step (forward, MSE loss, backward, AdamW) in PyTorch
eager, float32, timed: the peer of benches/train_step.rs.

Usage: torch_train_step.py BATCH SEQ CHANNELS THREADS STEPS
Prints one line: `torch ms_per_step=<median ms> samples_per_s=<B / median>`.
"""

import pathlib
import statistics
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "scripts"))
from torch_reference import ConvFormerNet  # noqa: E402

BEST = dict(conv_filters=48, conv_layers=2, conv_kernel=3, num_heads=6, key_dim=None, ff_dim=243,
            dropout_rate=0.05, num_blocks=1, dense_units=64, activation="relu", norm_first=False,
            layer_norm_eps=1e-6)


def main():
    batch, seq, channels, threads, steps = map(int, sys.argv[1:6])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = ConvFormerNet(dict(BEST, seq_len=seq, in_channels=channels)).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    x = torch.randn(batch, seq, channels)
    y = torch.randn(batch)
    times = []
    for i in range(steps + 3):  # 3 warm-up steps
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1e3
    print(f"torch ms_per_step={ms:.4f} samples_per_s={batch / (ms / 1e3):.1f}")


if __name__ == "__main__":
    main()
