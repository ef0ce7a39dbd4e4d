//! The one set of naive f64 references for the kernels, shared by the CPU
//! kernel tests (tests/ops_reference.rs) and the emulated and real GPU tests
//! (tests/cuda_emu.rs). Straight loops over the definitions; nothing clever.

use convformer::autograd::LossKind;

/// C[b] = op(A[b]) op(B[b]) (+ bias, act): op transposes when asked.
#[allow(clippy::too_many_arguments)]
pub fn gemm<E: Copy + Into<f64>>(
    a: &[E],
    b: &[E],
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    share_b: bool,
) -> Vec<f64> {
    let mut c = vec![0.0; batch * m * n];
    for bi in 0..batch {
        let ab = &a[bi * m * k..];
        let bb = if share_b { b } else { &b[bi * k * n..] };
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let av = if ta { ab[p * m + i] } else { ab[i * k + p] };
                    let bv = if tb { bb[j * k + p] } else { bb[p * n + j] };
                    s += av.into() * bv.into();
                }
                c[bi * m * n + i * n + j] = s;
            }
        }
    }
    c
}

pub fn gelu(x: f64) -> f64 {
    let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    0.5 * x * (1.0 + u.tanh())
}

pub fn gelu_grad(x: f64) -> f64 {
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let u = c * (x + 0.044715 * x * x * x);
    let t = u.tanh();
    0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x)
}

/// y[b, co, t] = bias[co] + sum w[co, ci, k] x[b, ci, t + k - pad].
#[allow(clippy::too_many_arguments)]
pub fn conv1d(
    x: &[f64],
    w: &[f64],
    bias: Option<&[f64]>,
    b: usize,
    cin: usize,
    l: usize,
    cout: usize,
    k: usize,
    lout: usize,
    pad: usize,
) -> Vec<f64> {
    let mut y = vec![0.0; b * cout * lout];
    for bi in 0..b {
        for co in 0..cout {
            for t in 0..lout {
                let mut s = bias.map_or(0.0, |bb| bb[co]);
                for ci in 0..cin {
                    for kk in 0..k {
                        let src = t as isize + kk as isize - pad as isize;
                        if src >= 0 && (src as usize) < l {
                            s +=
                                w[(co * cin + ci) * k + kk] * x[(bi * cin + ci) * l + src as usize];
                        }
                    }
                }
                y[(bi * cout + co) * lout + t] = s;
            }
        }
    }
    y
}

/// Layer norm of rows of length c; returns (y, mean, rstd).
pub fn layernorm(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    c: usize,
    eps: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let rows = x.len() / c;
    let (mut y, mut mean, mut rstd) = (vec![0.0; x.len()], vec![0.0; rows], vec![0.0; rows]);
    for r in 0..rows {
        let xr = &x[r * c..(r + 1) * c];
        let mu = xr.iter().sum::<f64>() / c as f64;
        let var = xr.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / c as f64;
        let rs = 1.0 / (var + eps).sqrt();
        for j in 0..c {
            y[r * c + j] = (xr[j] - mu) * rs * w[j] + b[j];
        }
        mean[r] = mu;
        rstd[r] = rs;
    }
    (y, mean, rstd)
}

/// Softmax of rows of length c; a row of -inf (every key masked) is all zeros.
pub fn softmax(x: &[f64], c: usize) -> Vec<f64> {
    let mut y = vec![0.0; x.len()];
    for (yr, xr) in y.chunks_mut(c).zip(x.chunks(c)) {
        let mx = xr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if mx == f64::NEG_INFINITY {
            continue;
        }
        let s: f64 = xr.iter().map(|v| (v - mx).exp()).sum();
        for (o, v) in yr.iter_mut().zip(xr) {
            *o = (v - mx).exp() / s;
        }
    }
    y
}

/// out = softmax(q kᵀ / sqrt(d)) v per (batch, head) with key mask [b, tk].
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f64],
    k: &[f64],
    v: &[f64],
    mask: Option<&[bool]>,
    b: usize,
    h: usize,
    tq: usize,
    tk: usize,
    d: usize,
    dv: usize,
) -> Vec<f64> {
    let scale = 1.0 / (d as f64).sqrt();
    let mut out = vec![0.0; b * h * tq * dv];
    for bh in 0..b * h {
        let bi = bh / h;
        for i in 0..tq {
            let mut s = vec![f64::NEG_INFINITY; tk];
            for (j, sj) in s.iter_mut().enumerate() {
                if mask.is_none_or(|m| m[bi * tk + j]) {
                    *sj = (0..d)
                        .map(|x| q[(bh * tq + i) * d + x] * k[(bh * tk + j) * d + x])
                        .sum::<f64>()
                        * scale;
                }
            }
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            if mx == f64::NEG_INFINITY {
                continue; // every key masked: the row stays 0
            }
            let p: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
            let z: f64 = p.iter().sum();
            for x in 0..dv {
                out[(bh * tq + i) * dv + x] = (0..tk)
                    .map(|j| p[j] * v[(bh * tk + j) * dv + x])
                    .sum::<f64>()
                    / z;
            }
        }
    }
    out
}

/// Philox 4x32-10 (Random123), written from the paper's round function.
pub fn philox4x32_10(mut c: [u32; 4], mut k: [u32; 2]) -> [u32; 4] {
    for _ in 0..10 {
        let p0 = 0xD2511F53u64 * c[0] as u64;
        let p1 = 0xCD9E8D57u64 * c[2] as u64;
        c = [
            (p1 >> 32) as u32 ^ c[1] ^ k[0],
            p1 as u32,
            (p0 >> 32) as u32 ^ c[3] ^ k[1],
            p0 as u32,
        ];
        k[0] = k[0].wrapping_add(0x9E3779B9);
        k[1] = k[1].wrapping_add(0xBB67AE85);
    }
    c
}

/// The project's dropout keep rule for element i (see src/rng.rs).
pub fn dropout_keep(seed: u64, call: u64, i: u64, threshold: u32) -> bool {
    let g = i / 4;
    let r = philox4x32_10(
        [g as u32, (g >> 32) as u32, call as u32, (call >> 32) as u32],
        [seed as u32, (seed >> 32) as u32],
    );
    r[(i % 4) as usize] >= threshold
}

/// Central finite difference of f at x along every coordinate, in f64.
pub fn numeric_grad(x: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-6;
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let orig = xp[i];
            xp[i] = orig + h;
            let up = f(&xp);
            xp[i] = orig - h;
            let down = f(&xp);
            xp[i] = orig;
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// y = x with its axes permuted: output axis a is input axis perm[a].
pub fn permute(shape: &[usize], perm: &[usize], x: &[f64]) -> Vec<f64> {
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let n = x.len();
    let mut y = vec![0.0; n];
    for (flat, yv) in y.iter_mut().enumerate() {
        // Decompose the output index, then map each output axis to its input axis.
        let mut rem = flat;
        let mut idx_in = vec![0; shape.len()];
        for a in (0..out_shape.len()).rev() {
            idx_in[perm[a]] = rem % out_shape[a];
            rem /= out_shape[a];
        }
        let src = idx_in
            .iter()
            .zip(shape)
            .fold(0, |acc, (&i, &s)| acc * s + i);
        *yv = x[src];
    }
    y
}

/// Mean loss over the elements.
pub fn loss(kind: LossKind, p: &[f64], t: &[f64]) -> f64 {
    let per: f64 = p
        .iter()
        .zip(t)
        .map(|(&p, &t)| {
            let d = p - t;
            match kind {
                LossKind::Mse => d * d,
                LossKind::Mae => d.abs(),
                LossKind::Huber(delta) => {
                    if d.abs() <= delta {
                        0.5 * d * d
                    } else {
                        delta * (d.abs() - 0.5 * delta)
                    }
                }
                LossKind::Quantile(q) => {
                    if t >= p {
                        q * (t - p)
                    } else {
                        (1.0 - q) * (p - t)
                    }
                }
            }
        })
        .sum();
    per / p.len() as f64
}
