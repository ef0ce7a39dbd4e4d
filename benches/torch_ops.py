"""PyTorch eager peer of benches/ops.rs: the same ops, shapes and block, forward
+ backward, f32, on 2 threads. Prints median milliseconds per op and sequence.

    /work/.venv-torch/bin/python benches/torch_ops.py
"""
import statistics
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
B, W, H, FF, K = 256, 48, 6, 243, 3
SEQS = (16, 64)


def timed(fn, reps=10):
    fn()
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples)


def leaf(*shape):
    return torch.randn(*shape, requires_grad=True)


def fwd_bwd(make):
    def run():
        out, grad = make()
        out.backward(grad)
    return run


def ops(seq):
    rows = B * seq
    x48, x243 = leaf(rows, W), leaf(rows, FF)
    w1, b1, w2, b2 = leaf(FF, W), leaf(FF), leaf(W, FF), leaf(W)
    g243, g48 = torch.randn(rows, FF), torch.randn(rows, W)
    xc, wc, bc = leaf(B, W, seq), leaf(W, W, K), leaf(W)
    gc = torch.randn(B, W, seq)
    lw, lb = leaf(W), leaf(W)
    q, k, v = leaf(B, H, seq, W // H), leaf(B, H, seq, W // H), leaf(B, H, seq, W // H)
    mask = (torch.arange(B * seq) % 7 != 3).reshape(B, 1, 1, seq)
    ga = torch.randn(B, H, seq, W // H)
    xs, gs = leaf(B * H * seq, seq), torch.randn(B * H * seq, seq)
    xp, gp = leaf(B, seq, W), torch.randn(B, W)
    xh = leaf(B, seq, H, W // H)
    pr, tg = leaf(B), torch.randn(B)
    return {
        "linear_48x243": fwd_bwd(lambda: (F.linear(x48, w1, b1), g243)),
        "linear_243x48": fwd_bwd(lambda: (F.linear(x243, w2, b2), g48)),
        "conv1d_48x48_k3": fwd_bwd(lambda: (F.conv1d(xc, wc, bc, padding="same"), gc)),
        "layer_norm_48": fwd_bwd(lambda: (F.layer_norm(x48, (W,), lw, lb, 1e-5), g48)),
        "attention_6x8": fwd_bwd(lambda: (F.scaled_dot_product_attention(q, k, v, attn_mask=mask), ga)),
        "softmax_seq": fwd_bwd(lambda: (torch.softmax(xs, -1), gs)),
        "gelu_243": fwd_bwd(lambda: (F.gelu(x243, approximate="tanh"), g243)),
        "relu_243": fwd_bwd(lambda: (F.relu(x243), g243)),
        "dropout_243": fwd_bwd(lambda: (F.dropout(x243, 0.1, training=True), g243)),
        "add_bias_48": fwd_bwd(lambda: (x48 + lb, g48)),
        "mean_pool_seq": fwd_bwd(lambda: (xp.mean(1), gp)),
        "permute_heads": fwd_bwd(lambda: (xh.permute(0, 2, 1, 3).contiguous(), torch.randn(B, H, seq, W // H))),
        "loss_huber": fwd_bwd(lambda: (F.huber_loss(pr, tg, delta=1.0), torch.tensor(1.0))),
    }


class Block(torch.nn.Module):
    """The block of benches/ops.rs `tape_conv_transformer_block`."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(W, W, K, padding="same")
        self.ln1, self.ln2 = torch.nn.LayerNorm(W), torch.nn.LayerNorm(W)
        self.qkv = torch.nn.Linear(W, 3 * W)
        self.o = torch.nn.Linear(W, W, bias=False)
        self.ff1, self.ff2 = torch.nn.Linear(W, FF), torch.nn.Linear(FF, W, bias=False)
        self.head = torch.nn.Linear(W, 1, bias=False)

    def forward(self, x, y):
        seq = x.shape[2]
        h = self.conv(x).permute(0, 2, 1)
        qkv = self.qkv(self.ln1(h)).reshape(B, seq, 3 * H, W // H).permute(0, 2, 1, 3)
        qkv = qkv.reshape(B * 3, H, seq, W // H)
        att = F.scaled_dot_product_attention(qkv, qkv, qkv)
        att = att.reshape(B, 3, seq, W).mean(1)
        h = h + self.o(att)
        f = F.dropout(F.gelu(self.ff1(self.ln2(h)), approximate="tanh"), 0.1, training=True)
        h = h + self.ff2(f)
        return F.mse_loss(self.head(h.mean(1)), y)


def main():
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    for seq in SEQS:
        for name, run in ops(seq).items():
            print(f"{name}_fwd_bwd/seq{seq}\t{timed(run):.3f} ms")
        block = Block()
        x, y = torch.randn(B, W, seq), torch.randn(B, 1)

        def step():
            block.zero_grad(set_to_none=True)
            block(x, y).backward()

        print(f"tape_conv_transformer_block_fwd_bwd/seq{seq}\t{timed(step):.3f} ms")


if __name__ == "__main__":
    main()
