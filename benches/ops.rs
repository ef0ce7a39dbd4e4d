//! Forward + backward of each CPU kernel at the model's shapes (f32):
//! batch 256, sequence 16 and 64, width 48, 6 heads of 8, feed-forward 243,
//! conv kernel 3; plus one transformer block through the tape.
//! Buffers are allocated once; each iteration runs forward then backward.

use convformer::autograd::{LossKind, Padding};
use convformer::ops::attention::{self, AttentionDims};
use convformer::ops::conv1d::{self, Conv1dDims};
use convformer::ops::dropout::{self, DropoutDims};
use convformer::ops::elementwise;
use convformer::ops::layer_norm::{self, LayerNormDims};
use convformer::ops::losses;
use convformer::ops::matmul::{self, LinearDims};
use convformer::ops::permute;
use convformer::ops::pool::{self, PoolDims};
use convformer::ops::softmax;
use convformer::ops::unary::{self, Unary};
use convformer::{ParamStore, Tape, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;

const BATCH: usize = 256;
const WIDTH: usize = 48;
const HEADS: usize = 6;
const FF: usize = 243;
const KERNEL: usize = 3;
const SEQS: [usize; 2] = [16, 64];

fn data(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + salt * 104729) % 2001) as f32 / 1000.0) - 1.0)
        .collect()
}

fn bench(c: &mut Criterion, op: &str, mut run: impl FnMut(usize) -> Box<dyn FnMut()>) {
    let mut group = c.benchmark_group(format!("{op}_fwd_bwd"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    for seq in SEQS {
        let mut step = run(seq);
        group.bench_function(BenchmarkId::from_parameter(format!("seq{seq}")), |b| {
            b.iter(&mut step)
        });
    }
    group.finish();
}

fn linear(c: &mut Criterion) {
    for (name, d_in, d_out) in [("linear_48x243", WIDTH, FF), ("linear_243x48", FF, WIDTH)] {
        bench(c, name, |seq| {
            let d = LinearDims {
                rows: BATCH * seq,
                d_in,
                d_out,
            };
            let (x, w, b, g) = (
                data(d.rows * d_in, 1),
                data(d_out * d_in, 2),
                data(d_out, 3),
                data(d.rows * d_out, 4),
            );
            let (mut y, mut dx, mut dw, mut db) = (
                vec![0.0; d.rows * d_out],
                vec![0.0; x.len()],
                vec![0.0; w.len()],
                vec![0.0; d_out],
            );
            Box::new(move || {
                matmul::cpu::linear_forward(&d, &x, &w, Some(&b), &mut y);
                matmul::cpu::linear_backward(&d, &x, &w, &g, &mut dx, &mut dw, Some(&mut db));
            })
        });
    }
}

fn conv1d(c: &mut Criterion) {
    bench(c, "conv1d_48x48_k3", |seq| {
        let d = Conv1dDims {
            batch: BATCH,
            c_in: WIDTH,
            c_out: WIDTH,
            len: seq,
            kernel: KERNEL,
            padding: Padding::Same,
        };
        let (x, w, b, g) = (
            data(d.x_len(), 1),
            data(d.w_len(), 2),
            data(WIDTH, 3),
            data(d.y_len(), 4),
        );
        let (mut y, mut dx, mut dw, mut db) = (
            vec![0.0; d.y_len()],
            vec![0.0; x.len()],
            vec![0.0; w.len()],
            vec![0.0; WIDTH],
        );
        Box::new(move || {
            conv1d::cpu::conv1d_forward(&d, &x, &w, Some(&b), &mut y);
            conv1d::cpu::conv1d_backward(&d, &x, &w, &g, Some(&mut dx), &mut dw, Some(&mut db));
        })
    });
}

fn layer_norm(c: &mut Criterion) {
    bench(c, "layer_norm_48", |seq| {
        let d = LayerNormDims {
            rows: BATCH * seq,
            dim: WIDTH,
            eps: 1e-5,
        };
        let n = d.rows * WIDTH;
        let (x, w, b, g) = (data(n, 1), data(WIDTH, 2), data(WIDTH, 3), data(n, 4));
        let (mut y, mut mean, mut rstd) = (vec![0.0; n], vec![0.0; d.rows], vec![0.0; d.rows]);
        let (mut dx, mut dw, mut db) = (vec![0.0; n], vec![0.0; WIDTH], vec![0.0; WIDTH]);
        Box::new(move || {
            layer_norm::cpu::layer_norm_forward(&d, &x, &w, &b, &mut y, &mut mean, &mut rstd);
            layer_norm::cpu::layer_norm_backward(
                &d, &x, &w, &mean, &rstd, &g, &mut dx, &mut dw, &mut db,
            );
        })
    });
}

fn attention(c: &mut Criterion) {
    bench(c, "attention_6x8", |seq| {
        let a = AttentionDims {
            batch: BATCH,
            heads: HEADS,
            tq: seq,
            tk: seq,
            d: WIDTH / HEADS,
            dv: WIDTH / HEADS,
        };
        let (q, k, v, g) = (
            data(a.q_len(), 1),
            data(a.k_len(), 2),
            data(a.v_len(), 3),
            data(a.out_len(), 4),
        );
        let mask: Vec<bool> = (0..BATCH * seq).map(|i| i % 7 != 3).collect();
        let (mut o, mut p) = (vec![0.0; a.out_len()], vec![0.0; a.probs_len()]);
        let (mut dq, mut dk, mut dv) = (vec![0.0; q.len()], vec![0.0; k.len()], vec![0.0; v.len()]);
        Box::new(move || {
            attention::cpu::attention_forward(&a, &q, &k, &v, Some(&mask), &mut o, &mut p);
            attention::cpu::attention_backward(&a, &q, &k, &v, &p, &g, &mut dq, &mut dk, &mut dv);
        })
    });
}

fn pointwise(c: &mut Criterion) {
    bench(c, "softmax_seq", |seq| {
        let n = BATCH * HEADS * seq * seq;
        let (x, g) = (data(n, 1), data(n, 2));
        let (mut y, mut dx) = (vec![0.0; n], vec![0.0; n]);
        Box::new(move || {
            softmax::cpu::softmax_forward(seq, &x, &mut y);
            softmax::cpu::softmax_backward(seq, &y, &g, &mut dx);
        })
    });
    for (name, op) in [("gelu_243", Unary::Gelu), ("relu_243", Unary::Relu)] {
        bench(c, name, |seq| {
            let n = BATCH * seq * FF;
            let (x, g) = (data(n, 1), data(n, 2));
            let (mut y, mut dx) = (vec![0.0; n], vec![0.0; n]);
            Box::new(move || {
                unary::cpu::forward(op, &x, &mut y);
                unary::cpu::backward(op, &x, &g, &mut dx);
            })
        });
    }
    bench(c, "dropout_243", |seq| {
        let n = BATCH * seq * FF;
        let d = DropoutDims {
            p: 0.1,
            seed: 7,
            call: 3,
            offset: 0,
        };
        let (x, g) = (data(n, 1), data(n, 2));
        let (mut y, mut dx) = (vec![0.0; n], vec![0.0; n]);
        Box::new(move || {
            let keep = dropout::cpu::dropout_forward(&d, &x, &mut y);
            dropout::cpu::dropout_backward(d.p, &keep, &g, &mut dx);
        })
    });
    bench(c, "add_bias_48", |seq| {
        let n = BATCH * seq * WIDTH;
        let (x, b, g) = (data(n, 1), data(WIDTH, 2), data(n, 3));
        let (mut y, mut db) = (vec![0.0; n], vec![0.0; WIDTH]);
        Box::new(move || {
            elementwise::cpu::add_bias_forward(&x, &b, &mut y);
            elementwise::cpu::add_bias_backward(&g, WIDTH, &mut db);
        })
    });
    bench(c, "mean_pool_seq", |seq| {
        let d = PoolDims {
            outer: BATCH,
            n: seq,
            inner: WIDTH,
        };
        let (x, g) = (data(BATCH * seq * WIDTH, 1), data(BATCH * WIDTH, 2));
        let (mut y, mut dx) = (vec![0.0; BATCH * WIDTH], vec![0.0; x.len()]);
        Box::new(move || {
            pool::cpu::mean_pool_forward(&d, &x, &mut y);
            pool::cpu::mean_pool_backward(&d, &g, &mut dx);
        })
    });
    bench(c, "permute_heads", |seq| {
        let shape = [BATCH, seq, HEADS, WIDTH / HEADS];
        let x = data(BATCH * seq * WIDTH, 1);
        let (mut y, mut back) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        Box::new(move || {
            permute::cpu::permute(&shape, &[0, 2, 1, 3], &x, &mut y);
            permute::cpu::permute(
                &[BATCH, HEADS, seq, WIDTH / HEADS],
                &[0, 2, 1, 3],
                &y,
                &mut back,
            );
        })
    });
    bench(c, "loss_huber", |_seq| {
        let (p, t) = (data(BATCH, 1), data(BATCH, 2));
        let mut dp = vec![0.0; BATCH];
        Box::new(move || {
            std::hint::black_box(losses::cpu::loss_forward(LossKind::Huber(1.0), &p, &t));
            losses::cpu::loss_backward(LossKind::Huber(1.0), &p, &t, 1.0, &mut dp);
        })
    });
}

/// A pre-norm transformer block plus a conv front end, through the tape:
/// what one layer of ConvFormerNet costs per training step, tape overhead included.
fn tape_block(c: &mut Criterion) {
    bench(c, "tape_conv_transformer_block", |seq| {
        let mut store = ParamStore::new();
        let dh = WIDTH / HEADS;
        let mut add = |name: &str, shape: &[usize], salt: usize| {
            let n = shape.iter().product();
            let v = data(n, salt).iter().map(|v| v * 0.2).collect();
            store
                .add(name, Tensor::from_vec(v, shape).unwrap())
                .unwrap()
        };
        let ids = [
            add("conv.w", &[WIDTH, WIDTH, KERNEL], 1),
            add("conv.b", &[WIDTH], 2),
            add("ln1.w", &[WIDTH], 3),
            add("ln1.b", &[WIDTH], 4),
            add("qkv.w", &[3 * WIDTH, WIDTH], 5),
            add("qkv.b", &[3 * WIDTH], 6),
            add("o.w", &[WIDTH, WIDTH], 7),
            add("ln2.w", &[WIDTH], 8),
            add("ln2.b", &[WIDTH], 9),
            add("ff1.w", &[FF, WIDTH], 10),
            add("ff1.b", &[FF], 11),
            add("ff2.w", &[WIDTH, FF], 12),
            add("head.w", &[1, WIDTH], 13),
        ];
        let x = Tensor::from_vec(data(BATCH * WIDTH * seq, 20), &[BATCH, WIDTH, seq]).unwrap();
        let y = Tensor::from_vec(data(BATCH, 21), &[BATCH, 1]).unwrap();
        Box::new(move || {
            let mut t = Tape::new(&store).training(5);
            let p: Vec<_> = ids.iter().map(|&id| t.param(id)).collect();
            let xv = t.input(x.clone());
            let h = t.conv1d(xv, p[0], Some(p[1]), Padding::Same).unwrap();
            let h = t.permute(h, &[0, 2, 1]).unwrap();
            let n1 = t.layer_norm(h, p[2], p[3], 1e-5).unwrap();
            let qkv = t.linear(n1, p[4], Some(p[5])).unwrap();
            let qkv = t.reshape(qkv, &[BATCH, seq, 3 * HEADS, dh]).unwrap();
            let qkv = t.permute(qkv, &[0, 2, 1, 3]).unwrap();
            let qkv = t.reshape(qkv, &[BATCH * 3, HEADS, seq, dh]).unwrap();
            // q, k, v are the three head groups; the bench uses the same tensor
            // for the three to keep the op count equal to the model's.
            let att = t.attention(qkv, qkv, qkv, None).unwrap();
            let att = t.reshape(att, &[BATCH, 3, seq, WIDTH]).unwrap();
            let att = t.mean_pool(att, 1).unwrap();
            let o = t.linear(att, p[6], None).unwrap();
            let h = t.add(h, o).unwrap();
            let n2 = t.layer_norm(h, p[7], p[8], 1e-5).unwrap();
            let f = t.linear(n2, p[9], Some(p[10])).unwrap();
            let f = t.gelu(f).unwrap();
            let f = t.dropout(f, 0.1).unwrap();
            let f = t.linear(f, p[11], None).unwrap();
            let h = t.add(h, f).unwrap();
            let pooled = t.mean_pool(h, 1).unwrap();
            let pred = t.linear(pooled, p[12], None).unwrap();
            let target = t.input(y.clone());
            let loss = t.loss(pred, target, LossKind::Mse).unwrap();
            std::hint::black_box(t.backward(loss).unwrap());
        })
    });
}

criterion_group!(benches, linear, conv1d, layer_norm, attention, pointwise, tape_block);
criterion_main!(benches);
