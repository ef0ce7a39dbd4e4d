#!/usr/bin/env python3
"""PyTorch reference for ConvFormerNet: the golden forward/backward values.

The Rust side (`CONVFORMER_WRITE_GOLDEN=1 cargo test --release --test model_golden`)
writes `tests/golden/<case>_input.safetensors`: the weights under the Rust
parameter names, a batch `x` [B, T, C], targets `y` [B], and the model config and
loss in the metadata. This script builds the same network in PyTorch, loads those
weights with `load_state_dict(strict=True)` (so the names and shapes are PyTorch's),
runs it in float64 and writes `tests/golden/<case>_golden.safetensors` with the
prediction, the loss and the gradient of every parameter (`grad.<name>`).

Rerun with:  pip install torch safetensors numpy && python3 scripts/torch_reference.py
"""

import json
import math
import pathlib
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

GOLDEN = pathlib.Path(__file__).resolve().parent.parent / "tests" / "golden"


class MultiHeadAttention(nn.Module):
    """Keras semantics: num_heads heads of key_dim each, projected back to d_model."""

    def __init__(self, d_model, num_heads, key_dim):
        super().__init__()
        inner = num_heads * key_dim
        self.num_heads, self.key_dim = num_heads, key_dim
        self.q_proj = nn.Linear(d_model, inner)
        self.k_proj = nn.Linear(d_model, inner)
        self.v_proj = nn.Linear(d_model, inner)
        self.out_proj = nn.Linear(inner, d_model)

    def forward(self, x):
        b, t, _ = x.shape

        def heads(proj):
            return proj(x).reshape(b, t, self.num_heads, self.key_dim).transpose(1, 2)

        q, k, v = heads(self.q_proj), heads(self.k_proj), heads(self.v_proj)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.key_dim)
        out = torch.softmax(scores, dim=-1) @ v
        return self.out_proj(out.transpose(1, 2).reshape(b, t, -1))


class EncoderBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["conv_filters"]
        key_dim = cfg["key_dim"] or -(-d // cfg["num_heads"])
        self.attn = MultiHeadAttention(d, cfg["num_heads"], key_dim)
        self.norm1 = nn.LayerNorm(d, eps=cfg["layer_norm_eps"])
        self.ff1 = nn.Linear(d, cfg["ff_dim"])
        self.ff2 = nn.Linear(cfg["ff_dim"], d)
        self.norm2 = nn.LayerNorm(d, eps=cfg["layer_norm_eps"])
        self.drop = nn.Dropout(cfg["dropout_rate"])
        self.norm_first = cfg["norm_first"]
        self.act = (lambda h: F.gelu(h, approximate="tanh")) if cfg["activation"] == "gelu" else F.relu

    def ffn(self, x):
        return self.drop(self.ff2(self.act(self.ff1(x))))

    def forward(self, x):
        if self.norm_first:
            x = x + self.drop(self.attn(self.norm1(x)))
            return x + self.ffn(self.norm2(x))
        x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.ffn(x))


class ConvFormerNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        f = cfg["conv_filters"]
        self.convs = nn.ModuleList(
            nn.Conv1d(cfg["in_channels"] if i == 0 else f, f, cfg["conv_kernel"], padding="same")
            for i in range(cfg["conv_layers"])
        )
        self.blocks = nn.ModuleList(EncoderBlock(cfg) for _ in range(cfg["num_blocks"]))
        self.dense = nn.Linear(f, cfg["dense_units"])
        self.out = nn.Linear(cfg["dense_units"], 1)
        # Optional linear term of the whole window (`skip.*`; absent = off).
        self.skip = (
            nn.Linear(cfg["seq_len"] * cfg["in_channels"], 1) if cfg.get("linear_skip") else None
        )

    def forward(self, x):  # x [B, T, C]
        h = x.transpose(1, 2)
        for conv in self.convs:
            h = F.relu(conv(h))
        h = h.transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        y = self.out(F.relu(self.dense(h.mean(dim=1))))
        if self.skip is not None:
            y = y + self.skip(x.flatten(1))
        return y.squeeze(-1)


def loss_fn(kind, pred, y):
    if kind == "mse":
        return F.mse_loss(pred, y)
    if kind == "mae":
        return F.l1_loss(pred, y)
    if kind.startswith("huber:"):
        return F.huber_loss(pred, y, delta=float(kind.split(":")[1]))
    if kind.startswith("quantile:"):
        q = float(kind.split(":")[1])
        e = y - pred
        return torch.maximum(q * e, (q - 1.0) * e).mean()
    raise ValueError(f"unknown loss {kind}")


def run_case(path):
    # Imported here: the benches and scripts/gpu-check.sh import ConvFormerNet
    # on machines that have torch but not safetensors.
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path))
    with open(path, "rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        meta = json.loads(fh.read(header_len))["__metadata__"]
    cfg = json.loads(meta["config"])
    model = ConvFormerNet(cfg).double()
    weights = {k: v.double() for k, v in tensors.items() if k not in ("x", "y")}
    model.load_state_dict(weights, strict=True)
    model.eval()  # dropout off: the golden batch is compared without it
    pred = model(tensors["x"].double())
    loss = loss_fn(meta["loss"], pred, tensors["y"].double())
    loss.backward()
    out = {"pred": pred.detach(), "loss": loss.detach().reshape(1)}
    for name, p in model.named_parameters():
        out["grad." + name] = p.grad.detach()
    dest = path.with_name(path.name.replace("_input", "_golden"))
    save_file({k: v.contiguous() for k, v in out.items()}, str(dest), metadata={"torch": torch.__version__})
    print(f"{dest.name}: loss {loss.item():.10g}, {len(out) - 2} gradients")


def main():
    cases = sorted(GOLDEN.glob("*_input.safetensors"))
    if not cases:
        sys.exit(f"no *_input.safetensors in {GOLDEN}: run the Rust golden test with CONVFORMER_WRITE_GOLDEN=1 first")
    for case in cases:
        run_case(case)


if __name__ == "__main__":
    main()
