//! Every CPU kernel against a naive reference kept here:
//! - f64 kernel vs naive f64: |k − r| ≤ 1e-12 · max(1, |r|);
//! - f32 kernel vs naive f64 on the same (f32-rounded) inputs: |k − r| ≤ 1e-5 · max(1, |r|).
//!
//! Output buffers are poisoned with NaN first, so an element a kernel forgets to
//! write shows up. Backward kernels are checked for the same (they must
//! overwrite, never accumulate); their values are proven by the gradient checks.

use convformer::autograd::{LossKind, Padding};
use convformer::ops::attention::{self, AttentionDims};
use convformer::ops::conv1d::{self, Conv1dDims};
use convformer::ops::dropout::{self, DropoutDims};
use convformer::ops::elementwise;
use convformer::ops::layer_norm::{self, LayerNormDims};
use convformer::ops::losses;
use convformer::ops::matmul::{self, LinearDims, MatmulDims};
use convformer::ops::permute;
use convformer::ops::pool::{self, PoolDims};
use convformer::ops::{softmax, unary};
use convformer::rng;
use convformer::Float;
use proptest::prelude::*;

mod support;
use support::{mismatch, reference, unit_stream};

fn uniform(seed: u64, n: usize) -> Vec<f64> {
    // Rounded to f32 so that the f32 and f64 kernels see the same inputs.
    unit_stream(seed)
        .take(n)
        .map(|u| (3.0 * u - 1.5) as f32 as f64)
        .collect()
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn poison<T: Float>(n: usize) -> Vec<T> {
    vec![T::from_f64(f64::NAN); n]
}

fn assert_close<T: Float>(
    what: &str,
    got: &[T],
    want: &[f64],
    tol: f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "{} length", what);
    let what = format!("{what} [{} {tol}] (relative to max(1, |want|))", T::NAME);
    match mismatch(&what, got.iter().map(|g| g.to_f64()), want, |w| {
        tol * 1f64.max(w.abs())
    }) {
        Some(m) => Err(TestCaseError::fail(m)),
        None => Ok(()),
    }
}

/// Runs `kernel` in f64 and in f32 on the same inputs and checks both against `want`.
fn both_precisions(
    what: &str,
    inputs: &[Vec<f64>],
    want: &[f64],
    kernel64: impl Fn(&[Vec<f64>]) -> Vec<f64>,
    kernel32: impl Fn(&[Vec<f32>]) -> Vec<f32>,
) -> Result<(), TestCaseError> {
    assert_close(what, &kernel64(inputs), want, 1e-12)?;
    let inputs32: Vec<Vec<f32>> = inputs.iter().map(|v| to_f32(v)).collect();
    assert_close(what, &kernel32(&inputs32), want, 1e-5)
}

/// A backward kernel run on poisoned and on zeroed outputs must give the same
/// finite result.
fn overwrites(what: &str, run: impl Fn(f64) -> Vec<Vec<f64>>) -> Result<(), TestCaseError> {
    let (poisoned, zeroed) = (run(f64::NAN), run(0.0));
    for (i, (p, z)) in poisoned.iter().zip(&zeroed).enumerate() {
        prop_assert!(
            p.iter().all(|v| v.is_finite()),
            "{} output {} left unwritten elements",
            what,
            i
        );
        prop_assert_eq!(
            p,
            z,
            "{} output {} depends on its initial contents",
            what,
            i
        );
    }
    Ok(())
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), Just(3), Just(7), Just(13), 1usize..=17]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn matmul_matches_naive(batch in 1usize..=3, m in size(), k in size(), n in size(),
                            trans_a: bool, trans_b: bool, b_shared: bool, seed: u64) {
        let d = MatmulDims { batch, m, k, n, trans_a, trans_b, b_shared };
        let (a, b) = (uniform(seed, d.a_len()), uniform(seed ^ 1, d.b_len()));
        let want = reference::gemm(&a, &b, d.batch, d.m, d.n, d.k, d.trans_a, d.trans_b, d.b_shared);
        both_precisions("matmul", &[a, b], &want,
            |v| { let mut c = poison(d.c_len()); matmul::cpu::matmul_forward(&d, &v[0], &v[1], &mut c); c },
            |v| { let mut c = poison(d.c_len()); matmul::cpu::matmul_forward(&d, &v[0], &v[1], &mut c); c })?;
        let g = uniform(seed ^ 2, d.c_len());
        let (a, b) = (uniform(seed, d.a_len()), uniform(seed ^ 1, d.b_len()));
        overwrites("matmul_backward", |init| {
            let (mut da, mut db) = (vec![init; d.a_len()], vec![init; d.b_len()]);
            matmul::cpu::matmul_backward(&d, &a, &b, &g, &mut da, &mut db);
            vec![da, db]
        })?;
    }

    #[test]
    fn linear_matches_naive(rows in size(), d_in in size(), d_out in size(), seed: u64) {
        let d = LinearDims { rows, d_in, d_out };
        let (x, w, b) = (uniform(seed, rows * d_in), uniform(seed ^ 1, d_out * d_in), uniform(seed ^ 2, d_out));
        let mm = MatmulDims { batch: 1, m: rows, k: d_in, n: d_out, trans_a: false, trans_b: true, b_shared: true };
        let mut want = reference::gemm(&x, &w, mm.batch, mm.m, mm.n, mm.k, mm.trans_a, mm.trans_b, mm.b_shared);
        for row in want.chunks_mut(d_out) {
            row.iter_mut().zip(&b).for_each(|(y, b)| *y += b);
        }
        both_precisions("linear", &[x.clone(), w.clone(), b], &want,
            |v| { let mut y = poison(rows * d_out); matmul::cpu::linear_forward(&d, &v[0], &v[1], Some(&v[2]), &mut y); y },
            |v| { let mut y = poison(rows * d_out); matmul::cpu::linear_forward(&d, &v[0], &v[1], Some(&v[2]), &mut y); y })?;
        let g = uniform(seed ^ 3, rows * d_out);
        overwrites("linear_backward", |init| {
            let (mut dx, mut dw, mut db) = (vec![init; x.len()], vec![init; w.len()], vec![init; d_out]);
            matmul::cpu::linear_backward(&d, &x, &w, &g, &mut dx, &mut dw, Some(&mut db));
            vec![dx, dw, db]
        })?;
    }

    #[test]
    fn conv1d_matches_naive(batch in prop_oneof![Just(1usize), Just(17), 1usize..=20], c_in in 1usize..=7, c_out in 1usize..=7,
                            kernel in 1usize..=6, extra in 0usize..=13, same: bool, seed: u64) {
        let padding = if same { Padding::Same } else { Padding::Valid };
        let d = Conv1dDims { batch, c_in, c_out, len: kernel + extra, kernel, padding };
        let (x, w, b) = (uniform(seed, d.x_len()), uniform(seed ^ 1, d.w_len()), uniform(seed ^ 2, c_out));
        let want = reference::conv1d(&x, &w, Some(&b), d.batch, d.c_in, d.len, d.c_out, d.kernel, d.out_len(), d.pad_left());
        both_precisions("conv1d", &[x.clone(), w.clone(), b], &want,
            |v| { let mut y = poison(d.y_len()); conv1d::cpu::conv1d_forward(&d, &v[0], &v[1], Some(&v[2]), &mut y); y },
            |v| { let mut y = poison(d.y_len()); conv1d::cpu::conv1d_forward(&d, &v[0], &v[1], Some(&v[2]), &mut y); y })?;
        let g = uniform(seed ^ 3, d.y_len());
        overwrites("conv1d_backward", |init| {
            let (mut dx, mut dw, mut db) = (vec![init; x.len()], vec![init; w.len()], vec![init; c_out]);
            conv1d::cpu::conv1d_backward(&d, &x, &w, &g, Some(&mut dx), &mut dw, Some(&mut db));
            vec![dx, dw, db]
        })?;
    }

    #[test]
    fn channels_last_conv1d_is_channels_first_on_permuted_operands(
        batch in prop_oneof![Just(1usize), Just(5), 1usize..=4], c_in in size(), c_out in 1usize..=7,
        kernel in 1usize..=5, extra in 0usize..=11, same: bool, seed: u64,
    ) {
        // The channels-last kernel against the (naive-checked) channels-first
        // one on [B, L, C] ↔ [B, C, L] copies of the same data, outputs poisoned.
        let padding = if same { Padding::Same } else { Padding::Valid };
        let d = Conv1dDims { batch, c_in, c_out, len: kernel + extra, kernel, padding };
        let lo = d.out_len();
        let swap = |v: &[f64], (a, b): (usize, usize)| {
            let mut out = vec![0.0; v.len()];
            permute::cpu::permute(&[batch, a, b], &[0, 2, 1], v, &mut out);
            out
        };
        let (x, w, b) = (uniform(seed, d.x_len()), uniform(seed ^ 1, d.w_len()), uniform(seed ^ 2, c_out));
        let x_nwc = swap(&x, (c_in, d.len));
        let mut want = poison(d.y_len());
        conv1d::cpu::conv1d_forward(&d, &x, &w, Some(&b), &mut want);
        let mut y = poison(d.y_len());
        conv1d::cpu_nwc::conv1d_forward_nwc(&d, &x_nwc, &w, Some(&b), &mut y);
        let close = |what: &str, want: &[f64], got: &[f64]| -> Result<(), TestCaseError> {
            prop_assert_eq!(want.len(), got.len());
            for (i, (a, b)) in want.iter().zip(got).enumerate() {
                prop_assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()), "{}[{}]: channels-first {}, channels-last {}", what, i, a, b);
            }
            Ok(())
        };
        close("y", &swap(&want, (c_out, lo)), &y)?;
        let g = uniform(seed ^ 3, d.y_len());
        let (mut dx, mut dw, mut db) = (poison(x.len()), poison(w.len()), poison(c_out));
        conv1d::cpu::conv1d_backward(&d, &x, &w, &g, Some(&mut dx), &mut dw, Some(&mut db));
        let (mut dx_l, mut dw_l, mut db_l) = (poison(x.len()), poison(w.len()), poison(c_out));
        let g_nwc = swap(&g, (c_out, lo));
        conv1d::cpu_nwc::conv1d_backward_nwc(&d, &x_nwc, &w, &g_nwc, Some(&mut dx_l), &mut dw_l, Some(&mut db_l));
        close("dx", &swap(&dx, (c_in, d.len)), &dx_l)?;
        close("dw", &dw, &dw_l)?;
        close("db", &db, &db_l)?;
        // Without dx, the weight and bias gradients are the same bits.
        let (mut dw_n, mut db_n) = (poison(w.len()), poison(c_out));
        conv1d::cpu_nwc::conv1d_backward_nwc(&d, &x_nwc, &w, &g_nwc, None, &mut dw_n, Some(&mut db_n));
        prop_assert_eq!((dw_n, db_n), (dw_l, db_l));
    }

    #[test]
    fn layer_norm_matches_naive(rows in prop_oneof![Just(1usize), Just(300), 1usize..=40], dim in 3usize..=50, seed: u64) {
        let d = LayerNormDims { rows, dim, eps: 1e-5 };
        // Alternating ±2 offsets keep every row's spread ≥ 2: a row of three
        // close values has a huge rstd, which magnifies f32's rounding of
        // x − mean past any fixed tolerance (rows = 300, dim = 3 found one).
        let x: Vec<f64> = uniform(seed, rows * dim).iter().enumerate()
            .map(|(i, v)| v + if i % 2 == 0 { 2.0 } else { -2.0 }).collect();
        let (w, b) = (uniform(seed ^ 1, dim), uniform(seed ^ 2, dim));
        let want = reference::layernorm(&x, &w, &b, dim, 1e-5).0;
        both_precisions("layer_norm", &[x.clone(), w.clone(), b.clone()], &want,
            |v| { let (mut y, mut m, mut r) = (poison(rows * dim), poison(rows), poison(rows));
                  layer_norm::cpu::layer_norm_forward(&d, &v[0], &v[1], &v[2], &mut y, &mut m, &mut r); y },
            |v| { let (mut y, mut m, mut r) = (poison(rows * dim), poison(rows), poison(rows));
                  layer_norm::cpu::layer_norm_forward(&d, &v[0], &v[1], &v[2], &mut y, &mut m, &mut r); y })?;
        let (mut y, mut mean, mut rstd) = (vec![0.0; rows * dim], vec![0.0; rows], vec![0.0; rows]);
        layer_norm::cpu::layer_norm_forward(&d, &x, &w, &b, &mut y, &mut mean, &mut rstd);
        let g = uniform(seed ^ 3, rows * dim);
        overwrites("layer_norm_backward", |init| {
            let (mut dx, mut dw, mut db) = (vec![init; x.len()], vec![init; dim], vec![init; dim]);
            layer_norm::cpu::layer_norm_backward(&d, &x, &w, &mean, &rstd, &g, &mut dx, &mut dw, &mut db);
            vec![dx, dw, db]
        })?;
    }

    #[test]
    fn attention_matches_naive(batch in 1usize..=3, heads in 1usize..=4, tq in size(), tk in size(),
                               d in 1usize..=9, dv in 1usize..=9, masked: bool, seed: u64) {
        let a = AttentionDims { batch, heads, tq, tk, d, dv };
        let (q, k, v) = (uniform(seed, a.q_len()), uniform(seed ^ 1, a.k_len()), uniform(seed ^ 2, a.v_len()));
        // Some batches keep no key at all: their outputs must be 0, not NaN.
        let mask: Vec<bool> = uniform(seed ^ 3, batch * tk).iter().map(|&u| u < 0.5).collect();
        let mask = masked.then_some(mask.as_slice());
        let want = reference::attention(&q, &k, &v, mask, a.batch, a.heads, a.tq, a.tk, a.d, a.dv);
        both_precisions("attention", &[q.clone(), k.clone(), v.clone()], &want,
            |x| { let (mut o, mut p) = (poison(a.out_len()), poison(a.probs_len()));
                  attention::cpu::attention_forward(&a, &x[0], &x[1], &x[2], mask, &mut o, &mut p); o },
            |x| { let (mut o, mut p) = (poison(a.out_len()), poison(a.probs_len()));
                  attention::cpu::attention_forward(&a, &x[0], &x[1], &x[2], mask, &mut o, &mut p); o })?;
        let (mut o, mut p) = (vec![0.0; a.out_len()], vec![0.0; a.probs_len()]);
        attention::cpu::attention_forward(&a, &q, &k, &v, mask, &mut o, &mut p);
        let g = uniform(seed ^ 4, a.out_len());
        overwrites("attention_backward", |init| {
            let (mut dq, mut dk, mut dvv) = (vec![init; q.len()], vec![init; k.len()], vec![init; v.len()]);
            attention::cpu::attention_backward(&a, &q, &k, &v, &p, &g, &mut dq, &mut dk, &mut dvv);
            vec![dq, dk, dvv]
        })?;
    }

    #[test]
    fn token_major_attention_is_head_major_on_permuted_operands(
        batch in 1usize..=3, heads in 1usize..=4, tq in size(), tk in size(),
        d in 1usize..=9, dv in 1usize..=9, seed: u64,
    ) {
        use attention::cpu::{attention_backward_in, attention_forward_in};
        use attention::HeadLayout::{HeadMajor, TokenMajor};
        let a = AttentionDims { batch, heads, tq, tk, d, dv };
        // [B, H, T, W] <-> [B, T, H, W]
        let swap = |x: &[f64], t: usize, w: usize, to_tokens: bool| {
            let (shape, perm) = if to_tokens { ([batch, heads, t, w], [0, 2, 1, 3]) } else { ([batch, t, heads, w], [0, 2, 1, 3]) };
            let mut y = vec![0.0; x.len()];
            permute::cpu::permute(&shape, &perm, x, &mut y);
            y
        };
        let (q, k, v) = (uniform(seed, a.q_len()), uniform(seed ^ 1, a.k_len()), uniform(seed ^ 2, a.v_len()));
        let g = uniform(seed ^ 4, a.out_len());
        let mask: Vec<bool> = uniform(seed ^ 3, batch * tk).iter().map(|&u| u < 0.6).collect();
        let run = |layout, q: &[f64], k: &[f64], v: &[f64], g: &[f64]| {
            let (mut o, mut p) = (poison(a.out_len()), poison(a.probs_len()));
            attention_forward_in(layout, &a, q, k, v, Some(&mask), &mut o, &mut p);
            let (mut dq, mut dk, mut dvv) = (poison(q.len()), poison(k.len()), poison(v.len()));
            attention_backward_in(layout, &a, q, k, v, &p, g, [&mut dq, &mut dk, &mut dvv]);
            [o, dq, dk, dvv]
        };
        let heads_first = run(HeadMajor, &q, &k, &v, &g);
        let tokens = run(
            TokenMajor,
            &swap(&q, tq, d, true),
            &swap(&k, tk, d, true),
            &swap(&v, tk, dv, true),
            &swap(&g, tq, dv, true),
        );
        let widths = [(tq, dv), (tq, d), (tk, d), (tk, dv)];
        for ((name, (t, w)), (want, got)) in ["out", "dq", "dk", "dv"].iter().zip(widths).zip(heads_first.iter().zip(&tokens)) {
            let got = swap(got, t, w, false);
            for (i, (x, y)) in want.iter().zip(&got).enumerate() {
                prop_assert!((x - y).abs() <= 1e-12 * (1.0 + x.abs()), "{name}[{i}]: head-major {x}, token-major {y}");
            }
        }
    }

    #[test]
    fn softmax_relu_gelu_match_naive(rows in size(), dim in size(), seed: u64) {
        let x = uniform(seed, rows * dim);
        let n = x.len();
        both_precisions("softmax", std::slice::from_ref(&x), &reference::softmax(&x, dim),
            |v| { let mut y = poison(n); softmax::cpu::softmax_forward(dim, &v[0], &mut y); y },
            |v| { let mut y = poison(n); softmax::cpu::softmax_forward(dim, &v[0], &mut y); y })?;
        let relu: Vec<f64> = x.iter().map(|&v| v.max(0.0)).collect();
        both_precisions("relu", std::slice::from_ref(&x), &relu,
            |v| { let mut y = poison(n); unary::cpu::relu_forward(&v[0], &mut y); y },
            |v| { let mut y = poison(n); unary::cpu::relu_forward(&v[0], &mut y); y })?;
        let gelu: Vec<f64> = x.iter().map(|&v| reference::gelu(v)).collect();
        both_precisions("gelu", std::slice::from_ref(&x), &gelu,
            |v| { let mut y = poison(n); unary::cpu::gelu_forward(&v[0], &mut y); y },
            |v| { let mut y = poison(n); unary::cpu::gelu_forward(&v[0], &mut y); y })?;
        let g = uniform(seed ^ 1, n);
        let mut y = vec![0.0; n];
        softmax::cpu::softmax_forward(dim, &x, &mut y);
        overwrites("softmax/relu/gelu backward", |init| {
            let (mut a, mut b, mut c) = (vec![init; n], vec![init; n], vec![init; n]);
            softmax::cpu::softmax_backward(dim, &y, &g, &mut a);
            unary::cpu::relu_backward(&x, &g, &mut b);
            unary::cpu::gelu_backward(&x, &g, &mut c);
            vec![a, b, c]
        })?;
    }

    #[test]
    fn inplace_relu_kernels_equal_the_out_of_place_ones(n in size(), seed: u64) {
        // The f32 path is hand-written AVX2 with a scalar tail: ragged n, and a
        // NaN and signed zeros among the values (relu(NaN) = 0, relu(-0) = +0).
        let mut x = uniform(seed, n);
        x[0] = f64::NAN;
        if n > 2 {
            (x[1], x[n - 1]) = (-0.0, 0.0);
        }
        let g = uniform(seed ^ 1, n);
        fn check<T: Float>(x: &[T], g: &[T]) -> Result<(), TestCaseError> {
            let n = x.len();
            let bits = |v: &[T]| v.iter().map(|v| v.to_f64().to_bits()).collect::<Vec<_>>();
            let mut want = poison::<T>(n);
            unary::cpu::relu_forward(x, &mut want);
            let mut y = x.to_vec();
            unary::cpu::relu_inplace(&mut y);
            prop_assert_eq!(bits(&y), bits(&want), "relu_inplace [{}]", T::NAME);
            let mut want_dx = poison::<T>(n);
            unary::cpu::relu_backward(x, g, &mut want_dx);
            let mut dx = g.to_vec();
            unary::cpu::relu_backward_inplace(&y, &mut dx);
            prop_assert_eq!(bits(&dx), bits(&want_dx), "relu_backward_inplace [{}]", T::NAME);
            Ok(())
        }
        check(&x, &g)?;
        check(&to_f32(&x), &to_f32(&g))?;
    }

    #[test]
    fn dropout_matches_philox_rule(n in 1usize..=40_000, p in 0.0f64..0.95, seed: u64, call in 0u64..1000, offset in 0u64..100) {
        // Offset: a shard's mask is its rows' mask of the whole batch, even
        // when its first element is not on a Philox block boundary.
        let d = DropoutDims { p, seed, call, offset };
        let x = uniform(seed ^ 1, n);
        let thr = rng::dropout_threshold(p);
        let want: Vec<f64> = x.iter().enumerate()
            .map(|(i, &v)| if rng::dropout_keep(seed, call, offset + i as u64, thr) { v / (1.0 - p) } else { 0.0 })
            .collect();
        both_precisions("dropout", std::slice::from_ref(&x), &want,
            |v| { let mut y = poison(n); dropout::cpu::dropout_forward(&d, &v[0], &mut y); y },
            |v| { let mut y = poison(n); dropout::cpu::dropout_forward(&d, &v[0], &mut y); y })?;
        // The saved mask follows the same rule, and the backward applies it.
        let mut y = poison(n);
        let keep = dropout::cpu::dropout_forward(&d, &x, &mut y);
        let want_keep: Vec<u8> = (0..n as u64).map(|i| u8::from(rng::dropout_keep(seed, call, offset + i, thr))).collect();
        prop_assert_eq!(&keep, &want_keep);
        let mut dx = poison(n);
        dropout::cpu::dropout_backward(p, &keep, &x, &mut dx);
        prop_assert_eq!(dx, y);
    }

    #[test]
    fn pool_permute_bias_match_naive(shape in prop::collection::vec(1usize..=7, 1..=4), axis in 0usize..4, seed: u64) {
        let axis = axis % shape.len();
        let x = uniform(seed, shape.iter().product());
        let pd = PoolDims::around(&shape, axis);
        let mut want = vec![0.0; pd.outer * pd.inner];
        for o in 0..pd.outer {
            for j in 0..pd.n {
                for i in 0..pd.inner {
                    want[o * pd.inner + i] += x[(o * pd.n + j) * pd.inner + i] / pd.n as f64;
                }
            }
        }
        both_precisions("mean_pool", std::slice::from_ref(&x), &want,
            |v| { let mut y = poison(want.len()); pool::cpu::mean_pool_forward(&pd, &v[0], &mut y); y },
            |v| { let mut y = poison(want.len()); pool::cpu::mean_pool_forward(&pd, &v[0], &mut y); y })?;
        // A rotation of the axes exercises every rank.
        let perm: Vec<usize> = (0..shape.len()).map(|i| (i + 1) % shape.len()).collect();
        let want = reference::permute(&shape, &perm, &x);
        both_precisions("permute", std::slice::from_ref(&x), &want,
            |v| { let mut y = poison(x.len()); permute::cpu::permute(&shape, &perm, &v[0], &mut y); y },
            |v| { let mut y = poison(x.len()); permute::cpu::permute(&shape, &perm, &v[0], &mut y); y })?;
        let c = *shape.last().unwrap();
        let bias = uniform(seed ^ 1, c);
        let want: Vec<f64> = x.iter().enumerate().map(|(i, v)| v + bias[i % c]).collect();
        both_precisions("add_bias", &[x.clone(), bias], &want,
            |v| { let mut y = poison(x.len()); elementwise::cpu::add_bias_forward(&v[0], &v[1], &mut y); y },
            |v| { let mut y = poison(x.len()); elementwise::cpu::add_bias_forward(&v[0], &v[1], &mut y); y })?;
    }

    #[test]
    fn losses_match_naive(n in 1usize..=700, delta in 0.1f64..2.0, q in 0.05f64..0.95, seed: u64) {
        let (p, t) = (uniform(seed, n), uniform(seed ^ 1, n));
        for kind in [LossKind::Mse, LossKind::Mae, LossKind::Huber(delta), LossKind::Quantile(q)] {
            let want = [reference::loss(kind, &p, &t)];
            both_precisions(&format!("{kind:?}"), &[p.clone(), t.clone()], &want,
                |v| vec![losses::cpu::loss_forward(kind, &v[0], &v[1])],
                |v| vec![losses::cpu::loss_forward(kind, &v[0], &v[1])])?;
        }
    }
}

/// f32 bit patterns, so that a NaN compares equal to itself.
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The linear layer's epilogue (bias, relu, y's previous value added)
    /// fused into the GEMM's store gives the bits of the plain product
    /// followed by one pass per step: on every combination, past the 256-deep
    /// K block (where a residual is not fused), with m < n (run transposed,
    /// not fused) and with rows split across threads.
    #[test]
    fn fused_linear_epilogue_matches_separate_passes_bit_for_bit(
        rows in prop_oneof![Just(1usize), Just(6), Just(7), 1usize..=70, Just(300)],
        d_in in prop_oneof![Just(1usize), Just(16), 1usize..=40, Just(255), Just(256), Just(257), Just(600)],
        d_out in prop_oneof![Just(1usize), Just(16), Just(17), 1usize..=70],
        with_bias: bool, relu: bool, residual: bool, seed: u64,
    ) {
        let d = LinearDims { rows, d_in, d_out };
        let x = to_f32(&uniform(seed, rows * d_in));
        let w = to_f32(&uniform(seed ^ 1, d_out * d_in));
        let bias = to_f32(&uniform(seed ^ 2, d_out));
        let before = to_f32(&uniform(seed ^ 3, rows * d_out));
        let mm = MatmulDims { batch: 1, m: rows, k: d_in, n: d_out, trans_a: false, trans_b: true, b_shared: true };
        let mut want = poison::<f32>(rows * d_out);
        matmul::cpu::matmul_forward(&mm, &x, &w, &mut want);
        for row in want.chunks_mut(d_out) {
            for (v, b) in row.iter_mut().zip(&bias) {
                if with_bias {
                    *v += b;
                }
                if relu {
                    *v = if *v > 0.0 { *v } else { 0.0 };
                }
            }
        }
        if residual {
            want.iter_mut().zip(&before).for_each(|(v, b)| *v += b);
        }
        let mut y = if residual { before.clone() } else { poison(rows * d_out) };
        let ep = matmul::cpu::GemmEpilogue { bias: with_bias.then_some(&bias[..]), relu, residual };
        matmul::cpu::linear_forward_with(&d, &x, &w, ep, &mut y);
        prop_assert_eq!(bits(&y), bits(&want), "{:?} {:?}", d, ep);
    }

    /// The linear layer's outputs in new, unzeroed buffers hold the bits of
    /// the same products written over poisoned ones. The allocator's free
    /// memory is filled with NaN first, so a new buffer that reuses it shows
    /// any element the kernels left unwritten.
    #[test]
    fn linear_into_new_buffers_matches_overwritten_ones_bit_for_bit(
        rows in prop_oneof![Just(1usize), Just(7), 1usize..=70, Just(300)],
        d_in in prop_oneof![Just(1usize), 1usize..=40, Just(257)],
        d_out in prop_oneof![Just(1usize), Just(16), 1usize..=70],
        with_bias: bool, relu: bool, seed: u64,
    ) {
        let d = LinearDims { rows, d_in, d_out };
        let x = to_f32(&uniform(seed, rows * d_in));
        let w = to_f32(&uniform(seed ^ 1, d_out * d_in));
        let bias = to_f32(&uniform(seed ^ 2, d_out));
        let g = to_f32(&uniform(seed ^ 3, rows * d_out));
        let ep = matmul::cpu::GemmEpilogue { bias: with_bias.then_some(&bias[..]), relu, residual: false };
        let mut y = poison(rows * d_out);
        matmul::cpu::linear_forward_with(&d, &x, &w, ep, &mut y);
        let (mut dx, mut dw, mut db) = (poison(rows * d_in), poison(d_out * d_in), poison(d_out));
        matmul::cpu::linear_backward(&d, &x, &w, &g, &mut dx, &mut dw, Some(&mut db));
        drop(vec![f32::NAN; rows * d_out]);
        let y_new = matmul::cpu::linear_forward_new(&d, &x, &w, ep.bias, relu);
        prop_assert_eq!(bits(&y_new), bits(&y), "forward {:?} {:?}", d, ep);
        drop((vec![f32::NAN; rows * d_in], vec![f32::NAN; d_out * d_in]));
        let (dx_new, dw_new, db_new) = matmul::cpu::linear_backward_new(&d, &x, &w, &g, with_bias);
        prop_assert_eq!(bits(&dx_new), bits(&dx), "dx {:?}", d);
        prop_assert_eq!(bits(&dw_new), bits(&dw), "dw {:?}", d);
        prop_assert_eq!(db_new.map(|v| bits(&v)), with_bias.then(|| bits(&db)), "dbias {:?}", d);
    }
}

/// Kernels write their whole output even when an input axis is empty: an
/// attention with no keys and a mean over zero steps give zeros, not
/// whatever the output buffer held.
#[test]
fn empty_inputs_still_write_every_output() {
    let a = AttentionDims {
        batch: 2,
        heads: 3,
        tq: 4,
        tk: 0,
        d: 5,
        dv: 2,
    };
    let (q, empty) = (uniform(1, a.q_len()), Vec::<f64>::new());
    let (mut out, mut probs) = (poison::<f64>(a.out_len()), Vec::new());
    attention::cpu::attention_forward(&a, &q, &empty, &empty, None, &mut out, &mut probs);
    assert_eq!(out, vec![0.0; a.out_len()]);
    let pool = PoolDims {
        outer: 3,
        n: 0,
        inner: 4,
    };
    let mut y = poison::<f64>(12);
    pool::cpu::mean_pool_forward(&pool, &empty, &mut y);
    assert_eq!(y, vec![0.0; 12]);
}
