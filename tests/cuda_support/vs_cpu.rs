//! The CUDA kernels against the engine's CPU kernels (`convformer::cpu`),
//! f32 against f32, generic over the executor: tests/cuda_vs_cpu.rs runs them
//! in the emulator, tests/cuda_gpu.rs on a GPU when there is one. Shapes: the
//! model's layers with a small batch (batch 3, sequence 16, width 48, 6 heads,
//! feed-forward 243, conv kernel 5) plus ragged ones. Tolerance
//! |cuda - cpu| <= 1e-4 + 1e-3 |cpu|; dropout masks, which must be the same
//! Philox stream, are compared bit for bit.

/// Calls `$apply!` with the name of every check below, so each suite that
/// runs them (the emulator's, the GPU's) lists them from this one place.
/// Other suites share this module without running the checks, hence the allows.
#[allow(unused_macros)]
macro_rules! every_check {
    ($apply:ident) => {
        $apply!(
            matmul_matches_cpu,
            linear_forward_and_backward_match_cpu,
            conv1d_matches_cpu,
            layer_norm_matches_cpu,
            attention_matches_cpu,
            softmax_activations_bias_pool_match_cpu,
            dropout_masks_are_bit_identical_to_cpu,
            losses_match_cpu,
            adamw_matches_cpu_optimizer,
        );
    };
}
#[allow(unused_imports)]
pub(crate) use every_check;

use convformer::autograd::{LossKind, Padding};
use convformer::cuda::Backend;
use convformer::ops::adamw;
use convformer::ops::attention::{self, cuda::AttentionPath, AttentionDims};
use convformer::ops::conv1d::{self, Conv1dDims};
use convformer::ops::dropout::{self, DropoutDims};
use convformer::ops::elementwise::{self, Binary};
use convformer::ops::layer_norm::{self, LayerNormDims};
use convformer::ops::losses;
use convformer::ops::matmul::{self, Epilogue, Gemm, LinearDims, MatmulDims};
use convformer::ops::pool;
use convformer::ops::softmax;
use convformer::ops::unary::{self, Unary};

use crate::support::{to64, TestRng};

const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-3;

fn up<B: Backend>(be: &B, v: &[f32]) -> B::Buffer {
    be.upload_f32(v).unwrap()
}
/// An output buffer (NaN-poisoned in the emulator).
fn out<B: Backend>(be: &B, n: usize) -> B::Buffer {
    be.alloc(n * 4).unwrap()
}
fn down<B: Backend>(be: &B, b: &B::Buffer, n: usize) -> Vec<f32> {
    be.download_f32(b, n).unwrap()
}
fn close(what: &str, cuda: &[f32], cpu: &[f32]) {
    crate::support::assert_close(what, cuda, &to64(cpu), ATOL, RTOL);
    MAX_ERROR.with(|m| {
        let (mut abs, mut of_tol) = m.get();
        for (&g, &w) in cuda.iter().zip(cpu) {
            let err = (g as f64 - w as f64).abs();
            abs = abs.max(err);
            of_tol = of_tol.max(err / (ATOL + RTOL * (w as f64).abs()));
        }
        m.set((abs, of_tol));
    });
}

thread_local! {
    /// The largest |cuda - cpu| of this thread's comparisons, and the largest
    /// as a fraction of its tolerance, since the last [`take_max_error`].
    static MAX_ERROR: std::cell::Cell<(f64, f64)> = const { std::cell::Cell::new((0.0, 0.0)) };
}

/// (max |cuda - cpu|, max fraction of the tolerance `ATOL + RTOL·|cpu|`) of
/// the checks this thread ran since the last call (comparisons that must be
/// bit-identical are not counted: they pass only at 0).
pub fn take_max_error() -> (f64, f64) {
    MAX_ERROR.with(|m| m.replace((0.0, 0.0)))
}

pub fn matmul_matches_cpu<B: Backend>(be: &B) {
    let mut rng = TestRng::new(1);
    for (batch, m, k, n, ta, tb, shared) in [
        (18, 16, 8, 16, false, true, false), // attention scores per (batch, head)
        (18, 16, 16, 8, false, false, false),
        (3, 7, 13, 5, true, false, false),
        (4, 16, 48, 243, false, true, true), // x · Wᵀ with a shared weight
    ] {
        let d = MatmulDims {
            batch,
            m,
            k,
            n,
            trans_a: ta,
            trans_b: tb,
            b_shared: shared,
        };
        let (a, b) = (rng.vec(d.a_len()), rng.vec(d.b_len()));
        let mut want = vec![f32::NAN; d.c_len()];
        matmul::cpu::matmul_forward(&d, &a, &b, &mut want);
        let g = Gemm {
            batch,
            trans_a: ta,
            trans_b: tb,
            batch_b: !shared,
            ..Gemm::new(m, n, k)
        };
        let c = out(be, d.c_len());
        matmul::cuda::sgemm(be, &g, &up(be, &a), &up(be, &b), None, &c).unwrap();
        close(&format!("matmul {d:?}"), &down(be, &c, d.c_len()), &want);
    }
}

/// The linear layer as the GPU runs it: forward = one SGEMM with the bias (and
/// activation) fused; backward = dx by SGEMM, dW by SGEMM with A transposed,
/// dbias by column sums.
pub fn linear_forward_and_backward_match_cpu<B: Backend>(be: &B) {
    let mut rng = TestRng::new(2);
    let d = LinearDims {
        rows: 3 * 16,
        d_in: 48,
        d_out: 243,
    };
    let (x, w, bias, g) = (
        rng.vec(d.rows * d.d_in),
        rng.vec(d.d_out * d.d_in),
        rng.vec(d.d_out),
        rng.vec(d.rows * d.d_out),
    );
    let mut want = vec![f32::NAN; d.rows * d.d_out];
    matmul::cpu::linear_forward(&d, &x, &w, Some(&bias), &mut want);
    let (xb, wb, bb, gb) = (up(be, &x), up(be, &w), up(be, &bias), up(be, &g));
    let y = out(be, want.len());
    let fwd = Gemm {
        trans_b: true,
        ..Gemm::new(d.rows, d.d_out, d.d_in)
    };
    matmul::cuda::sgemm(be, &fwd, &xb, &wb, Some(&bb), &y).unwrap();
    close("linear y", &down(be, &y, want.len()), &want);

    // Fused GELU epilogue against the CPU GELU of the CPU linear output.
    let mut act = vec![f32::NAN; want.len()];
    unary::cpu::gelu_forward(&want, &mut act);
    matmul::cuda::sgemm(
        be,
        &Gemm {
            epilogue: Epilogue::Gelu,
            ..fwd
        },
        &xb,
        &wb,
        Some(&bb),
        &y,
    )
    .unwrap();
    close("linear+gelu y", &down(be, &y, want.len()), &act);

    let (mut dx, mut dw, mut db) = (
        vec![f32::NAN; x.len()],
        vec![f32::NAN; w.len()],
        vec![f32::NAN; d.d_out],
    );
    matmul::cpu::linear_backward(&d, &x, &w, &g, &mut dx, &mut dw, Some(&mut db));
    let (dxb, dwb, dbb) = (out(be, x.len()), out(be, w.len()), out(be, d.d_out));
    matmul::cuda::sgemm(
        be,
        &Gemm::new(d.rows, d.d_in, d.d_out),
        &gb,
        &wb,
        None,
        &dxb,
    )
    .unwrap();
    matmul::cuda::sgemm(
        be,
        &Gemm {
            trans_a: true,
            ..Gemm::new(d.d_out, d.d_in, d.rows)
        },
        &gb,
        &xb,
        None,
        &dwb,
    )
    .unwrap();
    elementwise::cuda::column_sum(be, d.rows, d.d_out, &gb, &dbb).unwrap();
    close("linear dx", &down(be, &dxb, x.len()), &dx);
    close("linear dw", &down(be, &dwb, w.len()), &dw);
    close("linear db", &down(be, &dbb, d.d_out), &db);
}

pub fn conv1d_matches_cpu<B: Backend>(be: &B) {
    let mut rng = TestRng::new(3);
    for (batch, c_in, c_out, len, kernel, padding) in [
        (3, 1, 48, 16, 5, Padding::Same), // the first layer: one input channel
        (2, 48, 6, 16, 5, Padding::Same), // model width in, a few channels out (emulation cost)
        (2, 5, 7, 19, 4, Padding::Same),
        (2, 3, 2, 11, 3, Padding::Valid),
    ] {
        let d = Conv1dDims {
            batch,
            c_in,
            c_out,
            len,
            kernel,
            padding,
        };
        let (x, w, bias, g) = (
            rng.vec(d.x_len()),
            rng.vec(d.w_len()),
            rng.vec(c_out),
            rng.vec(d.y_len()),
        );
        let mut y = vec![f32::NAN; d.y_len()];
        conv1d::cpu::conv1d_forward(&d, &x, &w, Some(&bias), &mut y);
        let (mut dx, mut dw, mut db) = (
            vec![f32::NAN; x.len()],
            vec![f32::NAN; w.len()],
            vec![f32::NAN; c_out],
        );
        conv1d::cpu::conv1d_backward(&d, &x, &w, &g, Some(&mut dx), &mut dw, Some(&mut db));

        let (xb, wb, bb, gb) = (up(be, &x), up(be, &w), up(be, &bias), up(be, &g));
        let (yb, dxb, dwb, dbb) = (
            out(be, y.len()),
            out(be, x.len()),
            out(be, w.len()),
            out(be, c_out),
        );
        conv1d::cuda::conv1d_fwd(be, &d, &xb, &wb, Some(&bb), &yb).unwrap();
        conv1d::cuda::conv1d_bwd(be, &d, &xb, &wb, &gb, Some(&dxb), Some(&dwb), Some(&dbb))
            .unwrap();
        close(&format!("conv1d {d:?} y"), &down(be, &yb, y.len()), &y);
        close(&format!("conv1d {d:?} dx"), &down(be, &dxb, x.len()), &dx);
        close(&format!("conv1d {d:?} dw"), &down(be, &dwb, w.len()), &dw);
        close(&format!("conv1d {d:?} db"), &down(be, &dbb, c_out), &db);
    }
}

pub fn layer_norm_matches_cpu<B: Backend>(be: &B) {
    let mut rng = TestRng::new(4);
    for (rows, dim) in [(3 * 16, 48), (7, 5), (1, 243)] {
        let d = LayerNormDims {
            rows,
            dim,
            eps: 1e-5,
        };
        let (x, w, b, g) = (
            rng.vec(rows * dim),
            rng.vec(dim),
            rng.vec(dim),
            rng.vec(rows * dim),
        );
        let (mut y, mut mean, mut rstd) = (
            vec![f32::NAN; x.len()],
            vec![f32::NAN; rows],
            vec![f32::NAN; rows],
        );
        layer_norm::cpu::layer_norm_forward(&d, &x, &w, &b, &mut y, &mut mean, &mut rstd);
        let (mut dx, mut dw, mut db) = (
            vec![f32::NAN; x.len()],
            vec![f32::NAN; dim],
            vec![f32::NAN; dim],
        );
        layer_norm::cpu::layer_norm_backward(
            &d, &x, &w, &mean, &rstd, &g, &mut dx, &mut dw, &mut db,
        );

        let (xb, wb, bb, gb) = (up(be, &x), up(be, &w), up(be, &b), up(be, &g));
        let (yb, mb, rb) = (out(be, x.len()), out(be, rows), out(be, rows));
        layer_norm::cuda::layernorm_fwd(be, &d, &xb, &wb, &bb, &yb, &mb, &rb).unwrap();
        let (dxb, dwb, dbb) = (out(be, x.len()), out(be, dim), out(be, dim));
        layer_norm::cuda::layernorm_bwd(be, &d, &xb, &wb, &mb, &rb, &gb, &dxb, &dwb, &dbb).unwrap();
        close("layernorm y", &down(be, &yb, x.len()), &y);
        close("layernorm mean", &down(be, &mb, rows), &mean);
        close("layernorm rstd", &down(be, &rb, rows), &rstd);
        close("layernorm dx", &down(be, &dxb, x.len()), &dx);
        close("layernorm dw", &down(be, &dwb, dim), &dw);
        close("layernorm db", &down(be, &dbb, dim), &db);
    }
}

pub fn attention_matches_cpu<B: Backend>(be: &B) {
    let mut rng = TestRng::new(5);
    for (batch, heads, tq, tk, d, dv, masked) in [
        (3, 6, 16, 16, 8, 8, true),
        (2, 1, 5, 37, 3, 7, false),
        (2, 2, 4, 9, 33, 2, true),
    ] {
        let a = AttentionDims {
            batch,
            heads,
            tq,
            tk,
            d,
            dv,
        };
        let (q, k, v, g) = (
            rng.vec(a.q_len()),
            rng.vec(a.k_len()),
            rng.vec(a.v_len()),
            rng.vec(a.out_len()),
        );
        // Padding-style mask: each sequence keeps a prefix; the last one keeps nothing.
        let mask: Vec<bool> = (0..batch * tk)
            .map(|i| i % tk < tk * (batch - 1 - i / tk) / batch + (i / tk + 1 < batch) as usize)
            .collect();
        let mask = masked.then_some(mask);
        let (mut o, mut probs) = (vec![f32::NAN; a.out_len()], vec![f32::NAN; a.probs_len()]);
        attention::cpu::attention_forward(&a, &q, &k, &v, mask.as_deref(), &mut o, &mut probs);
        let (mut dq, mut dk, mut dv_) = (
            vec![f32::NAN; q.len()],
            vec![f32::NAN; k.len()],
            vec![f32::NAN; v.len()],
        );
        attention::cpu::attention_backward(&a, &q, &k, &v, &probs, &g, &mut dq, &mut dk, &mut dv_);

        let (qb, kb, vb, gb) = (up(be, &q), up(be, &k), up(be, &v), up(be, &g));
        let mb = mask.as_ref().map(|m| be.upload_mask(m).unwrap());
        for path in [AttentionPath::SharedRow, AttentionPath::Online] {
            let (ob, lse) = (out(be, o.len()), out(be, batch * heads * tq));
            attention::cuda::attention_fwd(be, &a, path, &qb, &kb, &vb, mb.as_ref(), &ob, &lse)
                .unwrap();
            close(
                &format!("attention {a:?} {path:?} out"),
                &down(be, &ob, o.len()),
                &o,
            );
            let (dqb, dkb, dvb, delta) = (
                out(be, q.len()),
                out(be, k.len()),
                out(be, v.len()),
                out(be, batch * heads * tq),
            );
            attention::cuda::attention_bwd(
                be,
                &a,
                &qb,
                &kb,
                &vb,
                mb.as_ref(),
                &ob,
                &gb,
                &lse,
                &delta,
                &dqb,
                &dkb,
                &dvb,
            )
            .unwrap();
            close(
                &format!("attention {a:?} dq"),
                &down(be, &dqb, q.len()),
                &dq,
            );
            close(
                &format!("attention {a:?} dk"),
                &down(be, &dkb, k.len()),
                &dk,
            );
            close(
                &format!("attention {a:?} dv"),
                &down(be, &dvb, v.len()),
                &dv_,
            );
        }
    }
}

pub fn softmax_activations_bias_pool_match_cpu<B: Backend>(be: &B) {
    let mut rng = TestRng::new(6);
    let (rows, c) = (23, 37);
    let (x, g) = (rng.vec(rows * c), rng.vec(rows * c));
    let (xb, gb) = (up(be, &x), up(be, &g));
    let n = rows * c;

    let mut y = vec![f32::NAN; n];
    softmax::cpu::softmax_forward(c, &x, &mut y);
    let mut dx = vec![f32::NAN; n];
    softmax::cpu::softmax_backward(c, &y, &g, &mut dx);
    let (yb, dxb) = (out(be, n), out(be, n));
    softmax::cuda::softmax_fwd(be, rows, c, &xb, &yb).unwrap();
    softmax::cuda::softmax_bwd(be, rows, c, &yb, &gb, &dxb).unwrap();
    close("softmax y", &down(be, &yb, n), &y);
    close("softmax dx", &down(be, &dxb, n), &dx);

    type CpuFwd = fn(&[f32], &mut [f32]);
    type CpuBwd = fn(&[f32], &[f32], &mut [f32]);
    let cases: [(Unary, CpuFwd, CpuBwd); 2] = [
        (
            Unary::Relu,
            unary::cpu::relu_forward,
            unary::cpu::relu_backward,
        ),
        (
            Unary::Gelu,
            unary::cpu::gelu_forward,
            unary::cpu::gelu_backward,
        ),
    ];
    for (op, fwd, bwd) in cases {
        let (mut y, mut dx) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        fwd(&x, &mut y);
        bwd(&x, &g, &mut dx);
        let (yb, dxb) = (out(be, n), out(be, n));
        unary::cuda::unary_fwd(be, op, n, &xb, &yb).unwrap();
        unary::cuda::unary_bwd(be, op, n, &xb, &gb, &dxb).unwrap();
        close(&format!("{op:?} y"), &down(be, &yb, n), &y);
        close(&format!("{op:?} dx"), &down(be, &dxb, n), &dx);
    }

    let bias = rng.vec(c);
    let mut y = vec![f32::NAN; n];
    elementwise::cpu::add_bias_forward(&x, &bias, &mut y);
    let mut db = vec![f32::NAN; c];
    elementwise::cpu::add_bias_backward(&g, c, &mut db);
    let (yb, dbb) = (out(be, n), out(be, c));
    elementwise::cuda::add_bias(be, rows, c, &xb, &up(be, &bias), &yb).unwrap();
    elementwise::cuda::column_sum(be, rows, c, &gb, &dbb).unwrap();
    close("add_bias y", &down(be, &yb, n), &y);
    close("add_bias dbias", &down(be, &dbb, c), &db);

    let ab = out(be, n);
    elementwise::cuda::binary(be, Binary::Add, n, &xb, &gb, &ab).unwrap();
    let sum: Vec<f32> = x.iter().zip(&g).map(|(a, b)| a + b).collect();
    close("residual add", &down(be, &ab, n), &sum);

    // Mean over the sequence axis of [batch 3, seq 16, width 48].
    let pd = pool::PoolDims::around(&[3, 16, 48], 1);
    let (px, pg) = (rng.vec(3 * 16 * 48), rng.vec(3 * 48));
    let (mut py, mut pdx) = (vec![f32::NAN; 3 * 48], vec![f32::NAN; px.len()]);
    pool::cpu::mean_pool_forward(&pd, &px, &mut py);
    pool::cpu::mean_pool_backward(&pd, &pg, &mut pdx);
    let (pyb, pdxb) = (out(be, py.len()), out(be, px.len()));
    pool::cuda::mean_pool_fwd(be, &pd, &up(be, &px), &pyb).unwrap();
    pool::cuda::mean_pool_bwd(be, &pd, &up(be, &pg), &pdxb).unwrap();
    close("mean_pool y", &down(be, &pyb, py.len()), &py);
    close("mean_pool dx", &down(be, &pdxb, px.len()), &pdx);
}

pub fn dropout_masks_are_bit_identical_to_cpu<B: Backend>(be: &B) {
    let mut rng = TestRng::new(7);
    for (n, p, seed, call) in [
        (3 * 16 * 48, 0.1, 42u64, 0u64),
        (1001, 0.5, u64::MAX - 3, 1 << 33),
        (5, 0.3, 7, 9),
    ] {
        let x: Vec<f32> = rng.vec(n);
        let mut want = vec![f32::NAN; n];
        dropout::cpu::dropout_forward(
            &dropout::DropoutDims {
                p,
                seed,
                call,
                offset: 0,
            },
            &x,
            &mut want,
        );
        let y = out(be, n);
        dropout::cuda::dropout(
            be,
            &DropoutDims {
                p,
                seed,
                call,
                offset: 0,
            },
            n,
            &up(be, &x),
            &y,
        )
        .unwrap();
        let got = down(be, &y, n);
        assert_eq!(
            convformer::rng::dropout_threshold(p),
            convformer::rng::dropout_threshold(p)
        );
        for i in 0..n {
            assert_eq!(
                got[i] == 0.0,
                want[i] == 0.0,
                "mask differs at element {i} (n {n}, seed {seed}, call {call})"
            );
        }
        close("dropout values", &got, &want);
    }
}

pub fn losses_match_cpu<B: Backend>(be: &B) {
    let mut rng = TestRng::new(8);
    let n = 3 * 7;
    let (p, t) = (rng.vec(n), rng.vec(n));
    let (pb, tb, gb) = (up(be, &p), up(be, &t), up(be, &[0.7]));
    for kind in [
        LossKind::Mse,
        LossKind::Mae,
        LossKind::Huber(0.3),
        LossKind::Quantile(0.9),
    ] {
        let want = losses::cpu::loss_forward(kind, &p, &t);
        let mut dp = vec![f32::NAN; n];
        losses::cpu::loss_backward(kind, &p, &t, 0.7, &mut dp);
        let (lb, dpb) = (out(be, 1), out(be, n));
        losses::cuda::loss_fwd(be, kind, n, &pb, &tb, &lb).unwrap();
        losses::cuda::loss_bwd(be, kind, n, &pb, &tb, &gb, &dpb).unwrap();
        close(&format!("{kind:?} loss"), &down(be, &lb, 1), &[want]);
        close(&format!("{kind:?} dpred"), &down(be, &dpb, n), &dp);
    }
}

/// Three AdamW steps of the fused kernel against `optim::AdamW`, with the
/// gradients of a small tape loss and the same learning rate and decay.
pub fn adamw_matches_cpu_optimizer<B: Backend>(be: &B) {
    use convformer::optim::{AdamConfig, AdamW};
    use convformer::{ParamStore, Tape, Tensor};
    let mut rng = TestRng::new(9);
    let n = 243;
    let mut store = ParamStore::<f32>::new();
    let id = store
        .add("w", Tensor::from_vec(rng.vec(n), &[n]).unwrap())
        .unwrap();
    let cfg = AdamConfig {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    };
    let mut opt = AdamW::new(cfg);
    let (pb, mb, vb) = (
        up(be, store.get(id).as_slice().unwrap()),
        up(be, &vec![0.0; n]),
        up(be, &vec![0.0; n]),
    );
    let target = rng.vec(n);
    for t in 1..=3u32 {
        let grads = {
            let mut tape = Tape::new(&store);
            let w = tape.param(id);
            let tgt = tape.input(Tensor::from_vec(target.clone(), &[n]).unwrap());
            let loss = tape.loss(w, tgt, LossKind::Mse).unwrap();
            tape.backward(loss).unwrap().params
        };
        let g = grads.get(id).unwrap().as_slice().unwrap().to_vec();
        opt.step(&mut store, &grads, 1e-2).unwrap();
        let step = adamw::cuda::AdamStep {
            lr: 1e-2,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            t,
        };
        adamw::cuda::adamw_step(be, n, &step, &pb, &up(be, &g), &mb, &vb).unwrap();
        close(
            &format!("adamw step {t}"),
            &down(be, &pb, n),
            store.get(id).as_slice().unwrap(),
        );
    }
}
