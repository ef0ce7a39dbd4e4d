//! Every CUDA kernel, run by the CPU emulator of the CUDA execution model
//! (kernels/emu/cuda_emu.h) through the same typed launch wrappers the GPU uses,
//! on random inputs with ragged shapes, against naive f64 references.
//! Outputs start poisoned (NaN), so an element a kernel forgets to write fails.
//! Backward references are central finite differences of the f64 forward
//! reference of L = sum(y * dy), independent of the kernels' formulas.
//! Tolerance: |got - want| <= ATOL + RTOL |want|, with ATOL = 1e-4, RTOL = 1e-3
//! (f32 accumulation over at most a few hundred terms of magnitude <= 1).

mod support;

use convformer::cuda::{Arg, Backend, DeviceBuffer, EmuBackend, LaunchCfg};
use convformer::ops::adamw;
use convformer::ops::attention::{self, cuda::AttentionPath, AttentionDims};
use convformer::ops::conv1d::{self, Conv1dDims, Padding};
use convformer::ops::dropout::{self, DropoutDims};
use convformer::ops::elementwise::{self, Binary};
use convformer::ops::layer_norm::{self, LayerNormDims};
use convformer::ops::losses::{self, LossKind};
use convformer::ops::matmul::{self, Epilogue, Gemm};
use convformer::ops::pool::{self, PoolDims};
use convformer::ops::softmax;
use convformer::ops::unary::{self, Unary};
use proptest::prelude::*;
use support::reference::*;
use support::*;

type ScalarFn = fn(f64) -> f64;

const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-3;

type Buf = <EmuBackend as Backend>::Buffer;

fn up(v: &[f32]) -> Buf {
    EmuBackend.upload_f32(v).unwrap()
}
/// An output buffer: the emulator fills fresh allocations with NaN.
fn out(n: usize) -> Buf {
    EmuBackend.alloc(n * 4).unwrap()
}
fn down(b: &Buf, n: usize) -> Vec<f32> {
    EmuBackend.download_f32(b, n).unwrap()
}
/// The raw `scale` kernel (y = 2 x) with `len` as its length argument, bypassing
/// the typed wrapper's checks: what the emulator itself must catch.
fn raw_scale(x: &Buf, y: &Buf, len: Arg, cfg: LaunchCfg) -> String {
    let args = [Arg::Ptr(x.addr()), Arg::Ptr(y.addr()), Arg::F32(2.0), len];
    match EmuBackend.launch("scale", cfg, &args) {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}
/// The buffer holds the gradient of `loss` at `at` (central differences).
fn assert_grad(what: &str, got: &Buf, at: &[f64], loss: impl Fn(&[f64]) -> f64) {
    assert_close(
        what,
        &down(got, at.len()),
        &numeric_grad(at, loss),
        ATOL,
        RTOL,
    );
}
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn cases() -> ProptestConfig {
    ProptestConfig {
        cases: 6,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- emulator itself

#[test]
fn emulator_fresh_buffers_are_poisoned() {
    let b = out(5);
    assert!(down(&b, 5).iter().all(|v| v.is_nan()));
}

#[test]
fn out_of_bounds_write_is_an_error() {
    // `scale` told to write 70 elements into a buffer of 64.
    let x = up(&TestRng::new(1).vec(80));
    let y = out(64);
    let err = raw_scale(&x, &y, Arg::I64(70), LaunchCfg::linear(1, 256));
    assert!(
        err.contains("out of bounds") && err.contains("past the end"),
        "{err}"
    );
}

#[test]
fn out_of_bounds_reads_are_nan_and_far_writes_are_caught() {
    // Reads 70 elements of a 64-element buffer: the last 6 come from the guard (NaN).
    let (x, y) = (up(&[1.0; 64]), out(80));
    let err = raw_scale(&x, &y, Arg::I64(70), LaunchCfg::linear(1, 256));
    assert!(err.is_empty(), "{err}");
    let got = down(&y, 70);
    assert!(
        got[..64].iter().all(|&v| v == 2.0) && got[64..].iter().all(|v| v.is_nan()),
        "{got:?}"
    );
    // Writes 3000 elements into 64: the damage reaches ~12 KB past the end.
    let (x, y) = (up(&[1.0; 3000]), out(64));
    let err = raw_scale(&x, &y, Arg::I64(3000), LaunchCfg::linear(4, 256));
    assert!(
        err.contains("past the end of a buffer of 256 bytes"),
        "{err}"
    );
}

#[test]
fn wrong_argument_types_are_an_error() {
    let x = up(&[1.0; 4]);
    let err = raw_scale(&x, &x, Arg::I32(4), LaunchCfg::linear(1, 32));
    assert!(err.contains("'ppfi'") && err.contains("'ppfl'"), "{err}");
}

#[test]
fn typed_wrappers_reject_short_buffers() {
    let (a, b, c) = (up(&[0.0; 6]), up(&[0.0; 6]), out(3));
    let err = matmul::cuda::sgemm(&EmuBackend, &Gemm::new(2, 2, 3), &a, &b, None, &c).unwrap_err();
    assert!(err.to_string().contains("sgemm"), "{err}");
}

// ---------------------------------------------------------------- sgemm

#[allow(clippy::too_many_arguments)]
fn check_gemm(
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    share_b: bool,
    bias: bool,
    epi: Epilogue,
    seed: u64,
) {
    let mut rng = TestRng::new(seed);
    let a = rng.vec(batch * m * k);
    let b = rng.vec(if share_b { k * n } else { batch * k * n });
    let bias_v = rng.vec(n);
    let g = Gemm {
        batch,
        m,
        n,
        k,
        trans_a: ta,
        trans_b: tb,
        batch_a: true,
        batch_b: !share_b,
        alpha: 1.0,
        beta: 0.0,
        epilogue: epi,
    };
    let c = out(batch * m * n);
    let bias_b = up(&bias_v);
    matmul::cuda::sgemm(
        &EmuBackend,
        &g,
        &up(&a),
        &up(&b),
        bias.then_some(&bias_b),
        &c,
    )
    .unwrap();
    let mut want = gemm(&a, &b, batch, m, n, k, ta, tb, share_b);
    for (i, w) in want.iter_mut().enumerate() {
        if bias {
            *w += bias_v[i % n] as f64;
        }
        *w = match epi {
            Epilogue::None => *w,
            Epilogue::Relu => w.max(0.0),
            Epilogue::Gelu => gelu(*w),
        };
    }
    assert_close(
        &format!("sgemm b{batch} {m}x{n}x{k} ta{ta} tb{tb}"),
        &down(&c, batch * m * n),
        &want,
        ATOL,
        RTOL,
    );
}

#[test]
fn sgemm_edge_shapes() {
    check_gemm(1, 1, 1, 1, false, false, false, false, Epilogue::None, 1);
    check_gemm(
        1,
        128,
        128,
        8,
        false,
        false,
        false,
        false,
        Epilogue::None,
        2,
    ); // exactly one tile
    check_gemm(1, 129, 131, 17, true, true, false, true, Epilogue::Relu, 3); // one past the tile
    check_gemm(2, 70, 200, 9, true, false, false, false, Epilogue::None, 5);
    check_gemm(3, 13, 70, 33, false, true, true, true, Epilogue::Gelu, 4);
}

#[test]
fn sgemm_alpha_beta_accumulates() {
    let (m, n, k) = (5, 7, 3);
    let mut rng = TestRng::new(9);
    let (a, b, c0) = (rng.vec(m * k), rng.vec(k * n), rng.vec(m * n));
    let c = up(&c0);
    let g = Gemm {
        alpha: 0.5,
        beta: 2.0,
        ..Gemm::new(m, n, k)
    };
    matmul::cuda::sgemm(&EmuBackend, &g, &up(&a), &up(&b), None, &c).unwrap();
    let want: Vec<f64> = gemm(&a, &b, 1, m, n, k, false, false, false)
        .iter()
        .zip(&c0)
        .map(|(p, c)| 0.5 * p + 2.0 * *c as f64)
        .collect();
    assert_close("sgemm alpha/beta", &down(&c, m * n), &want, ATOL, RTOL);
}

proptest! {
    #![proptest_config(cases())]
    #[test]
    fn sgemm_random(batch in 1usize..3, m in 1usize..150, n in 1usize..150, k in 1usize..40, ta: bool, tb: bool, share_b: bool, seed: u64) {
        check_gemm(batch, m, n, k, ta, tb, share_b, false, Epilogue::None, seed);
    }
}

// ---------------------------------------------------------------- conv1d

fn check_conv(
    batch: usize,
    cin: usize,
    len: usize,
    cout: usize,
    k: usize,
    padding: Padding,
    seed: u64,
) {
    let s = Conv1dDims {
        batch,
        c_in: cin,
        len,
        c_out: cout,
        kernel: k,
        padding,
    };
    let (lout, pad) = (s.out_len(), s.pad_left());
    if lout == 0 {
        return;
    }
    let mut rng = TestRng::new(seed);
    let (x, w, bias, dy) = (
        rng.vec(batch * cin * len),
        rng.vec(cout * cin * k),
        rng.vec(cout),
        rng.vec(batch * cout * lout),
    );
    let (xb, wb, bb, dyb) = (up(&x), up(&w), up(&bias), up(&dy));
    let y = out(batch * cout * lout);
    conv1d::cuda::conv1d_fwd(&EmuBackend, &s, &xb, &wb, Some(&bb), &y).unwrap();
    let (x64, w64, b64, dy64) = (to64(&x), to64(&w), to64(&bias), to64(&dy));
    let want = conv1d(&x64, &w64, Some(&b64), batch, cin, len, cout, k, lout, pad);
    let tag = format!("conv1d B{batch} Cin{cin} L{len} Cout{cout} K{k} {padding:?}");
    assert_close(
        &format!("{tag} y"),
        &down(&y, want.len()),
        &want,
        ATOL,
        RTOL,
    );

    let (dx, dw, db) = (out(x.len()), out(w.len()), out(cout));
    conv1d::cuda::conv1d_bwd(
        &EmuBackend,
        &s,
        &xb,
        &wb,
        &dyb,
        Some(&dx),
        Some(&dw),
        Some(&db),
    )
    .unwrap();
    let loss_x = |xv: &[f64]| {
        dot(
            &conv1d(xv, &w64, Some(&b64), batch, cin, len, cout, k, lout, pad),
            &dy64,
        )
    };
    let loss_w = |wv: &[f64]| {
        dot(
            &conv1d(&x64, wv, Some(&b64), batch, cin, len, cout, k, lout, pad),
            &dy64,
        )
    };
    let loss_b = |bv: &[f64]| {
        dot(
            &conv1d(&x64, &w64, Some(bv), batch, cin, len, cout, k, lout, pad),
            &dy64,
        )
    };
    assert_grad(&format!("{tag} dx"), &dx, &x64, loss_x);
    assert_grad(&format!("{tag} dw"), &dw, &w64, loss_w);
    assert_grad(&format!("{tag} db"), &db, &b64, loss_b);
}

#[test]
fn conv1d_edge_shapes() {
    check_conv(1, 1, 1, 1, 1, Padding::Same, 1);
    check_conv(2, 1, 131, 7, 5, Padding::Same, 2); // one input channel: the cin1 path, two tiles
    check_conv(2, 17, 13, 3, 4, Padding::Same, 3); // Cin over one staging chunk, even K
    check_conv(1, 3, 9, 2, 9, Padding::Valid, 4); // a single output position
    check_conv(2, 1, 20, 3, 3, Padding::Valid, 5);
}

proptest! {
    #![proptest_config(cases())]
    #[test]
    fn conv1d_random(batch in 1usize..3, cin in 1usize..20, len in 1usize..40, cout in 1usize..6, k in 1usize..7, same: bool, seed: u64) {
        check_conv(batch, cin, len, cout, k, if same { Padding::Same } else { Padding::Valid }, seed);
    }
}

// ---------------------------------------------------------------- layernorm

fn check_layernorm(rows: usize, c: usize, seed: u64) {
    let eps = 1e-5;
    let mut rng = TestRng::new(seed);
    let (x, w, b, dy) = (rng.vec(rows * c), rng.vec(c), rng.vec(c), rng.vec(rows * c));
    let (xb, wb, bb, dyb) = (up(&x), up(&w), up(&b), up(&dy));
    let (y, mean, rstd) = (out(rows * c), out(rows), out(rows));
    let d = LayerNormDims { rows, dim: c, eps };
    layer_norm::cuda::layernorm_fwd(&EmuBackend, &d, &xb, &wb, &bb, &y, &mean, &rstd).unwrap();
    let (x64, w64, b64, dy64) = (to64(&x), to64(&w), to64(&b), to64(&dy));
    let (want, want_mean, want_rstd) = layernorm(&x64, &w64, &b64, c, eps);
    let tag = format!("layernorm {rows}x{c}");
    assert_close(&format!("{tag} y"), &down(&y, rows * c), &want, ATOL, RTOL);
    assert_close(
        &format!("{tag} mean"),
        &down(&mean, rows),
        &want_mean,
        ATOL,
        RTOL,
    );
    assert_close(
        &format!("{tag} rstd"),
        &down(&rstd, rows),
        &want_rstd,
        ATOL,
        RTOL,
    );

    let (dx, dw, db) = (out(rows * c), out(c), out(c));
    layer_norm::cuda::layernorm_bwd(&EmuBackend, &d, &xb, &wb, &mean, &rstd, &dyb, &dx, &dw, &db)
        .unwrap();
    let gx = numeric_grad(&x64, |xv| dot(&layernorm(xv, &w64, &b64, c, eps).0, &dy64));
    let gw = numeric_grad(&w64, |wv| dot(&layernorm(&x64, wv, &b64, c, eps).0, &dy64));
    let gb = numeric_grad(&b64, |bv| dot(&layernorm(&x64, &w64, bv, c, eps).0, &dy64));
    // dx involves rstd (up to 1/sqrt(eps) for short rows), hence the wider atol.
    assert_close(&format!("{tag} dx"), &down(&dx, rows * c), &gx, 1e-3, RTOL);
    assert_close(&format!("{tag} dw"), &down(&dw, c), &gw, ATOL, RTOL);
    assert_close(&format!("{tag} db"), &down(&db, c), &gb, ATOL, RTOL);
}

#[test]
fn layernorm_edge_shapes() {
    check_layernorm(1, 2, 1);
    check_layernorm(9, 48, 2); // two row blocks, model width
    check_layernorm(37, 33, 3); // rows over the 16-row stride, two column strips
}

#[test]
fn tall_column_reductions_sum_chunks_then_chunks() {
    // Over 512 rows the weight/bias gradients and column sums go through
    // per-chunk partial sums and a second pass.
    check_layernorm(1100, 3, 4);
    let (rows, c) = (1300, 37);
    let x = TestRng::new(5).vec(rows * c);
    let sums = out(c);
    elementwise::cuda::column_sum(&EmuBackend, rows, c, &up(&x), &sums).unwrap();
    let want: Vec<f64> = (0..c)
        .map(|j| (0..rows).map(|r| x[r * c + j] as f64).sum())
        .collect();
    assert_close("column_sum 1300 rows", &down(&sums, c), &want, 1e-3, RTOL);
}

proptest! {
    #![proptest_config(cases())]
    #[test]
    fn layernorm_random(rows in 1usize..40, c in 2usize..70, seed: u64) {
        check_layernorm(rows, c, seed);
    }
}

// ---------------------------------------------------------------- softmax

fn check_softmax(rows: usize, c: usize, seed: u64) {
    let mut rng = TestRng::new(seed);
    let x: Vec<f32> = rng.vec(rows * c).iter().map(|v| v * 4.0).collect();
    let dy = rng.vec(rows * c);
    let y = out(rows * c);
    softmax::cuda::softmax_fwd(&EmuBackend, rows, c, &up(&x), &y).unwrap();
    let (x64, dy64) = (to64(&x), to64(&dy));
    assert_close(
        "softmax y",
        &down(&y, rows * c),
        &softmax(&x64, c),
        ATOL,
        RTOL,
    );
    let dx = out(rows * c);
    softmax::cuda::softmax_bwd(&EmuBackend, rows, c, &y, &up(&dy), &dx).unwrap();
    let want = numeric_grad(&x64, |xv| dot(&softmax(xv, c), &dy64));
    assert_close("softmax dx", &down(&dx, rows * c), &want, ATOL, RTOL);
}

proptest! {
    #![proptest_config(cases())]
    #[test]
    fn softmax_random(rows in 1usize..20, c in 1usize..100, seed: u64) {
        check_softmax(rows, c, seed);
    }
}

// ---------------------------------------------------------------- pointwise

proptest! {
    #![proptest_config(cases())]
    #[test]
    fn pointwise_random(n in 1usize..700, rows in 1usize..20, c in 1usize..40, s in -3.0f32..3.0, seed: u64) {
        let mut rng = TestRng::new(seed);
        let (a, b, dy) = (rng.vec(n), rng.vec(n), rng.vec(n));
        let (ab, bb, dyb) = (up(&a), up(&b), up(&dy));
        for op in [Unary::Relu, Unary::Gelu] {
            let (y, dx) = (out(n), out(n));
            unary::cuda::unary_fwd(&EmuBackend, op, n, &ab, &y).unwrap();
            unary::cuda::unary_bwd(&EmuBackend, op, n, &ab, &dyb, &dx).unwrap();
            let (f, g): (ScalarFn, ScalarFn) = match op {
                Unary::Relu => (|x| x.max(0.0), |x| if x > 0.0 { 1.0 } else { 0.0 }),
                Unary::Gelu => (gelu, gelu_grad),
            };
            let want: Vec<f64> = a.iter().map(|&x| f(x as f64)).collect();
            assert_close(&format!("{op:?} fwd"), &down(&y, n), &want, ATOL, RTOL);
            let want: Vec<f64> = a.iter().zip(&dy).map(|(&x, &d)| d as f64 * g(x as f64)).collect();
            assert_close(&format!("{op:?} bwd"), &down(&dx, n), &want, ATOL, RTOL);
        }
        // gelu' against a finite difference of gelu, so the two formulas agree.
        let fd: Vec<f64> = a.iter().map(|&x| (gelu(x as f64 + 1e-6) - gelu(x as f64 - 1e-6)) / 2e-6).collect();
        let analytic: Vec<f32> = a.iter().map(|&x| gelu_grad(x as f64) as f32).collect();
        assert_close("gelu' vs finite difference", &analytic, &fd, 1e-6, 1e-5);
        for op in [Binary::Add, Binary::Mul] {
            let y = out(n);
            elementwise::cuda::binary(&EmuBackend, op, n, &ab, &bb, &y).unwrap();
            let want: Vec<f64> = a.iter().zip(&b).map(|(&x, &z)| if op == Binary::Add { x as f64 + z as f64 } else { x as f64 * z as f64 }).collect();
            assert_close(&format!("{op:?}"), &down(&y, n), &want, ATOL, RTOL);
        }
        let y = out(n);
        elementwise::cuda::scale(&EmuBackend, n, s, &ab, &y).unwrap();
        let want: Vec<f64> = a.iter().map(|&x| s as f64 * x as f64).collect();
        assert_close("scale", &down(&y, n), &want, ATOL, RTOL);

        let (x, bias) = (rng.vec(rows * c), rng.vec(c));
        let (xb, y, sums) = (up(&x), out(rows * c), out(c));
        elementwise::cuda::add_bias(&EmuBackend, rows, c, &xb, &up(&bias), &y).unwrap();
        let want: Vec<f64> = x.iter().enumerate().map(|(i, &v)| v as f64 + bias[i % c] as f64).collect();
        assert_close("add_bias", &down(&y, rows * c), &want, ATOL, RTOL);
        elementwise::cuda::column_sum(&EmuBackend, rows, c, &xb, &sums).unwrap();
        let want: Vec<f64> = (0..c).map(|j| (0..rows).map(|r| x[r * c + j] as f64).sum()).collect();
        assert_close("column_sum", &down(&sums, c), &want, ATOL, RTOL);
    }
}

// ---------------------------------------------------------------- attention

#[allow(clippy::too_many_arguments)]
fn check_attention(
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
    dv: usize,
    masked: bool,
    seed: u64,
) {
    let s = AttentionDims {
        batch: b,
        heads: h,
        tq,
        tk,
        d,
        dv,
    };
    let mut rng = TestRng::new(seed);
    let (q, k, v, dout) = (
        rng.vec(b * h * tq * d),
        rng.vec(b * h * tk * d),
        rng.vec(b * h * tk * dv),
        rng.vec(b * h * tq * dv),
    );
    // Random mask; batch 0 keeps at least one key, the last batch (if > 1) masks all.
    let mask: Vec<bool> = (0..b * tk)
        .map(|i| (i / tk == 0 && i % tk == 0) || (i / tk + 1 < b.max(2) && rng.uniform() > -0.4))
        .collect();
    let mask = masked.then_some(mask);
    let (qb, kb, vb, dob) = (up(&q), up(&k), up(&v), up(&dout));
    let mask_b = mask.as_ref().map(|m| EmuBackend.upload_mask(m).unwrap());
    let (q64, k64, v64, do64) = (to64(&q), to64(&k), to64(&v), to64(&dout));
    let m = mask.as_deref();
    let want = attention(&q64, &k64, &v64, m, b, h, tq, tk, d, dv);
    let tag = format!("attention B{b} H{h} Tq{tq} Tk{tk} D{d} Dv{dv} mask{masked}");
    let (o, lse) = (out(b * h * tq * dv), out(b * h * tq));
    for path in [AttentionPath::SharedRow, AttentionPath::Online] {
        let (o2, lse2) = (out(b * h * tq * dv), out(b * h * tq));
        attention::cuda::attention_fwd(
            &EmuBackend,
            &s,
            path,
            &qb,
            &kb,
            &vb,
            mask_b.as_ref(),
            &o2,
            &lse2,
        )
        .unwrap();
        assert_close(
            &format!("{tag} {path:?} out"),
            &down(&o2, want.len()),
            &want,
            ATOL,
            RTOL,
        );
    }
    attention::cuda::attention_fwd(
        &EmuBackend,
        &s,
        AttentionPath::Auto,
        &qb,
        &kb,
        &vb,
        mask_b.as_ref(),
        &o,
        &lse,
    )
    .unwrap();
    let (dq, dk, dvb, delta) = (out(q.len()), out(k.len()), out(v.len()), out(b * h * tq));
    attention::cuda::attention_bwd(
        &EmuBackend,
        &s,
        &qb,
        &kb,
        &vb,
        mask_b.as_ref(),
        &o,
        &dob,
        &lse,
        &delta,
        &dq,
        &dk,
        &dvb,
    )
    .unwrap();
    let gq = numeric_grad(&q64, |x| {
        dot(&attention(x, &k64, &v64, m, b, h, tq, tk, d, dv), &do64)
    });
    let gk = numeric_grad(&k64, |x| {
        dot(&attention(&q64, x, &v64, m, b, h, tq, tk, d, dv), &do64)
    });
    let gv = numeric_grad(&v64, |x| {
        dot(&attention(&q64, &k64, x, m, b, h, tq, tk, d, dv), &do64)
    });
    assert_close(&format!("{tag} dq"), &down(&dq, q.len()), &gq, ATOL, RTOL);
    assert_close(&format!("{tag} dk"), &down(&dk, k.len()), &gk, ATOL, RTOL);
    assert_close(&format!("{tag} dv"), &down(&dvb, v.len()), &gv, ATOL, RTOL);
}

#[test]
fn attention_edge_shapes() {
    check_attention(1, 1, 1, 1, 1, 1, false, 1);
    check_attention(2, 3, 5, 37, 8, 8, true, 2); // keys over one warp; a fully masked batch
    check_attention(1, 2, 9, 7, 33, 40, false, 3); // head dims over 32 lanes
    check_attention(1, 1, 3, 70, 64, 64, true, 4);
}

proptest! {
    #![proptest_config(cases())]
    #[test]
    fn attention_random(b in 1usize..3, h in 1usize..3, tq in 1usize..12, tk in 1usize..40, d in 1usize..12, dv in 1usize..12, masked: bool, seed: u64) {
        check_attention(b, h, tq, tk, d, dv, masked, seed);
    }
}

// ---------------------------------------------------------------- dropout

#[test]
fn philox_reference_matches_random123_known_answers() {
    assert_eq!(
        philox4x32_10([0; 4], [0; 2]),
        [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]
    );
    assert_eq!(
        philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
        [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
    );
    assert_eq!(
        philox4x32_10(
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0]
        ),
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
    );
}

proptest! {
    #![proptest_config(cases())]
    #[test]
    fn dropout_mask_is_the_shared_philox_stream(n in 1usize..600, p in 0.0f64..0.9, seed: u64, call in 0u64..(1 << 40)) {
        let x: Vec<f32> = TestRng::new(seed).vec(n).iter().map(|v| v.abs() + 0.5).collect(); // never 0
        let y = out(n);
        dropout::cuda::dropout(&EmuBackend, &DropoutDims { p, seed, call, offset: 0 }, n, &up(&x), &y).unwrap();
        let thr = convformer::rng::dropout_threshold(p);
        let scale = 1.0 / (1.0 - p);
        let got = down(&y, n);
        for i in 0..n {
            let keep = dropout_keep(seed, call, i as u64, thr);
            prop_assert_eq!(got[i] != 0.0, keep, "element {} of call {}", i, call);
            if keep {
                prop_assert!((got[i] as f64 - x[i] as f64 * scale).abs() <= 1e-5 * x[i] as f64 * scale);
            }
        }
    }
}

#[test]
fn dropout_rate_and_edge_probabilities() {
    let n = 4000;
    let x = up(&vec![1.0; n]);
    let y = out(n);
    // One mask (seed 42, call 7) at three drop probabilities.
    let drop = |p: f64| {
        let d = DropoutDims {
            p,
            seed: 42,
            call: 7,
            offset: 0,
        };
        dropout::cuda::dropout(&EmuBackend, &d, n, &x, &y).unwrap();
    };
    drop(0.25);
    let dropped = down(&y, n).iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
    assert!((dropped - 0.25).abs() < 0.03, "dropped fraction {dropped}");
    drop(0.0);
    assert!(
        down(&y, n).iter().all(|&v| v == 1.0),
        "p = 0 keeps everything unscaled"
    );
    drop(1.0);
    assert!(
        down(&y, n).iter().all(|&v| v == 0.0),
        "p = 1 drops everything"
    );
}

// ---------------------------------------------------------------- pooling

proptest! {
    #![proptest_config(cases())]
    #[test]
    fn mean_pool_random(outer in 1usize..6, a in 1usize..20, inner in 1usize..30, seed: u64) {
        let mut rng = TestRng::new(seed);
        let (x, dy) = (rng.vec(outer * a * inner), rng.vec(outer * inner));
        let (y, dx) = (out(outer * inner), out(x.len()));
        let d = PoolDims { outer, n: a, inner };
        pool::cuda::mean_pool_fwd(&EmuBackend, &d, &up(&x), &y).unwrap();
        pool::cuda::mean_pool_bwd(&EmuBackend, &d, &up(&dy), &dx).unwrap();
        let pool = |xv: &[f64]| -> Vec<f64> {
            (0..outer * inner).map(|e| (0..a).map(|j| xv[(e / inner * a + j) * inner + e % inner]).sum::<f64>() / a as f64).collect()
        };
        let (x64, dy64) = (to64(&x), to64(&dy));
        assert_close("mean_pool y", &down(&y, outer * inner), &pool(&x64), ATOL, RTOL);
        assert_close("mean_pool dx", &down(&dx, x.len()), &numeric_grad(&x64, |xv| dot(&pool(xv), &dy64)), ATOL, RTOL);
    }
}

// ---------------------------------------------------------------- losses

fn loss_ref(kind: LossKind, p: &[f64], t: &[f64]) -> f64 {
    let per = |p: f64, t: f64| match kind {
        LossKind::Mse => (p - t) * (p - t),
        LossKind::Mae => (p - t).abs(),
        LossKind::Huber(d) => {
            let a = (p - t).abs();
            if a <= d {
                0.5 * a * a
            } else {
                d * (a - 0.5 * d)
            }
        }
        LossKind::Quantile(q) => {
            let e = t - p;
            (q * e).max((q - 1.0) * e)
        }
    };
    p.iter().zip(t).map(|(&a, &b)| per(a, b)).sum::<f64>() / p.len() as f64
}

proptest! {
    #![proptest_config(cases())]
    #[test]
    fn losses_random(n in 1usize..700, delta in 0.05f32..1.0, q in 0.05f32..0.95, g in 0.1f32..3.0, seed: u64) {
        let mut rng = TestRng::new(seed);
        let (p, t) = (rng.vec(n), rng.vec(n));
        let (pb, tb, gb) = (up(&p), up(&t), up(&[g]));
        let (p64, t64) = (to64(&p), to64(&t));
        for kind in [LossKind::Mse, LossKind::Mae, LossKind::Huber(delta as f64), LossKind::Quantile(q as f64)] {
            let (l, dp) = (out(1), out(n));
            losses::cuda::loss_fwd(&EmuBackend, kind, n, &pb, &tb, &l).unwrap();
            losses::cuda::loss_bwd(&EmuBackend, kind, n, &pb, &tb, &gb, &dp).unwrap();
            assert_close(&format!("{kind:?} loss"), &down(&l, 1), &[loss_ref(kind, &p64, &t64)], ATOL, RTOL);
            let want: Vec<f64> = numeric_grad(&p64, |x| loss_ref(kind, x, &t64)).iter().map(|v| v * g as f64).collect();
            assert_close(&format!("{kind:?} dpred"), &down(&dp, n), &want, ATOL, RTOL);
        }
    }
}

// ---------------------------------------------------------------- optimizer

proptest! {
    #![proptest_config(cases())]
    #[test]
    fn adamw_and_norm_random(n in 1usize..900, t in 1u32..20, wd in 0.0f32..0.1, seed: u64) {
        let mut rng = TestRng::new(seed);
        let (p, g, m, v) = (rng.vec(n), rng.vec(n), rng.vec(n), rng.vec(n).iter().map(|x| x.abs()).collect::<Vec<_>>());
        let (pb, gb, mb, vb) = (up(&p), up(&g), up(&m), up(&v));
        let s = adamw::cuda::AdamStep { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: wd, t };
        adamw::cuda::adamw_step(&EmuBackend, n, &s, &pb, &gb, &mb, &vb).unwrap();
        let (b1, b2) = (0.9f64, 0.999f64);
        let (mut wp, mut wm, mut wv) = (vec![], vec![], vec![]);
        for i in 0..n {
            let mi = b1 * m[i] as f64 + (1.0 - b1) * g[i] as f64;
            let vi = b2 * v[i] as f64 + (1.0 - b2) * (g[i] as f64).powi(2);
            let mhat = mi / (1.0 - b1.powi(t as i32));
            let vhat = vi / (1.0 - b2.powi(t as i32));
            wp.push(p[i] as f64 - 1e-2 * (mhat / (vhat.sqrt() + 1e-8) + wd as f64 * p[i] as f64));
            wm.push(mi);
            wv.push(vi);
        }
        assert_close("adamw params", &down(&pb, n), &wp, ATOL, RTOL);
        assert_close("adamw m", &down(&mb, n), &wm, 1e-6, 1e-5);
        assert_close("adamw v", &down(&vb, n), &wv, 1e-6, 1e-5);
        let norm = adamw::cuda::l2_norm(&EmuBackend, n, &gb).unwrap();
        let want = g.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
        prop_assert!((norm - want).abs() <= 1e-5 * want.max(1.0), "norm {} vs {}", norm, want);
    }
}

// ---------------------------------------------------------------- emulator semantics

fn launch_selftest(
    kernel: &'static str,
    threads: u32,
    blocks: u32,
    shared: u32,
    args: &[Arg],
) -> convformer::Result<()> {
    let cfg = LaunchCfg {
        grid: [blocks, 1, 1],
        block: [threads, 1, 1],
        shared_bytes: shared,
    };
    EmuBackend.launch(kernel, cfg, args)
}

#[test]
fn emulator_warp_shuffles_and_votes() {
    let buf = out(64 * 8);
    launch_selftest("selftest_warp_ops", 64, 1, 0, &[Arg::Ptr(buf.addr())]).unwrap();
    let mut bytes = vec![0u8; 64 * 8 * 4];
    EmuBackend.read(&buf, &mut bytes).unwrap();
    let got: Vec<i32> = bytes
        .chunks(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let ballot = (0..32).filter(|l| l % 3 == 0).fold(0u32, |m, l| m | 1 << l) as i32;
    for tid in 0..64i32 {
        let (lane, base) = (tid % 32, tid / 32 * 32);
        let want = [
            if lane + 3 < 32 { tid + 3 } else { tid },
            if lane < 2 { tid } else { tid - 2 },
            base + (lane ^ 5),
            base + 7,
            ballot,
            (tid >= 32) as i32,
            0,
            496,
        ];
        assert_eq!(&got[tid as usize * 8..][..8], &want, "thread {tid}");
    }
}

#[test]
fn emulator_atomics_count_every_thread() {
    let buf = up(&[0.0; 4]);
    launch_selftest("selftest_atomics", 96, 3, 0, &[Arg::Ptr(buf.addr())]).unwrap();
    assert_eq!(down(&buf, 4), vec![288.0, 96.0, 96.0, 96.0]);
}

#[test]
fn emulator_missing_barrier_reads_poisoned_shared_memory() {
    let buf = out(64);
    launch_selftest(
        "selftest_neighbour",
        32,
        2,
        0,
        &[Arg::Ptr(buf.addr()), Arg::I32(1)],
    )
    .unwrap();
    let want: Vec<f32> = (0..64)
        .map(|i| ((i % 32 + 1) % 32 + 100 * (i / 32)) as f32)
        .collect();
    assert_eq!(
        down(&buf, 64),
        want,
        "with the barrier every thread sees its neighbour"
    );
    let err = launch_selftest(
        "selftest_neighbour",
        32,
        2,
        0,
        &[Arg::Ptr(buf.addr()), Arg::I32(0)],
    )
    .unwrap_err()
    .to_string();
    // Without it, thread 0 reads s[1] before thread 1 writes it (it reads the
    // NaN poison); the race checker stops the launch at thread 1's write.
    assert!(
        err.contains("selftest_neighbour: thread (1,0,0) of block (0,0,0): warp-level race: writes static shared memory")
            && err.contains("which thread (0,0,0) of the same warp read"),
        "{err}"
    );
}

#[test]
fn emulator_reports_misused_collectives_and_poisoned_dynamic_shared() {
    let buf = out(32);
    let err = launch_selftest("selftest_exited_lane", 32, 1, 0, &[Arg::Ptr(buf.addr())])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("lane 5") && err.contains("did not take part"),
        "{err}"
    );
    let err = launch_selftest(
        "selftest_divergent_barrier",
        32,
        1,
        0,
        &[Arg::Ptr(buf.addr())],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("deadlock"), "{err}");
    launch_selftest(
        "selftest_unwritten_shared",
        32,
        1,
        128,
        &[Arg::Ptr(buf.addr())],
    )
    .unwrap();
    assert!(down(&buf, 32).iter().all(|v| v.is_nan()));
}
