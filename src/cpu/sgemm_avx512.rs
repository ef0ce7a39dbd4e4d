//! The AVX-512 form of [`super::sgemm`]'s packed kernel: the same loops with
//! an 8×48 tile of C in 24 ZMM registers (24 FMAs of 16 lanes per step of p,
//! against the AVX2 kernel's 12 of 8), and panels of B 48 columns wide. A
//! panel's last columns take only the vectors they need (masked past n).
//!
//! Each element of C is the same sequence of operations as on the AVX2 path
//! (products added by FMA from zero over p in increasing order, in the same
//! blocks of K, then alpha·t and one FMA with beta·C), so both paths give
//! the same bits; `tests` in `sgemm.rs` compare them.

use super::sgemm_blocked::{blocked, Epilogue, Kernel, Mats};
use std::arch::x86_64::*;

/// Rows of C per micro-kernel call.
const MR: usize = 8;
/// Vectors of 16 columns per micro-kernel call.
const VECS: usize = 3;
/// Columns of C per panel of packed B.
const NR: usize = 16 * VECS;

/// C ← alpha·A·B + beta·C (see [`super::sgemm::sgemm`]).
///
/// # Safety
/// As [`super::sgemm::sgemm`]; the CPU must have AVX-512F.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    beta: f32,
    x: Mats,
    packed: &mut Vec<f32>,
    ep: Epilogue,
) {
    blocked::<Avx512>(m, k, n, alpha, beta, x, packed, ep);
}

/// The 8×48 tile in 24 ZMM registers.
struct Avx512;

impl Kernel for Avx512 {
    const MR: usize = MR;
    const NR: usize = NR;
    type Tile = Tile;

    #[inline(always)]
    unsafe fn tile(
        rows: usize,
        cols: usize,
        kc: usize,
        a: *const f32,
        rsa: isize,
        csa: isize,
        panel: *const f32,
    ) -> Tile {
        tile(rows, cols.div_ceil(16), kc, a, rsa, csa, panel)
    }

    #[inline(always)]
    unsafe fn store(
        tile: &Tile,
        rows: usize,
        cols: usize,
        alpha: f32,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
        ep: Epilogue,
    ) {
        store(tile, rows, cols, alpha, beta, c, rsc, csc, ep);
    }
}

type Tile = [[__m512; VECS]; MR];

/// The rows×(16·vecs) tile over kc steps, dispatched to a kernel with both
/// counts fixed at compile time (so the accumulators stay in registers).
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile(
    rows: usize,
    vecs: usize,
    kc: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
) -> Tile {
    macro_rules! by_rows {
        ($v:literal) => {
            match rows {
                8 => micro::<8, $v>(kc, a, rsa, csa, b),
                7 => micro::<7, $v>(kc, a, rsa, csa, b),
                6 => micro::<6, $v>(kc, a, rsa, csa, b),
                5 => micro::<5, $v>(kc, a, rsa, csa, b),
                4 => micro::<4, $v>(kc, a, rsa, csa, b),
                3 => micro::<3, $v>(kc, a, rsa, csa, b),
                2 => micro::<2, $v>(kc, a, rsa, csa, b),
                _ => micro::<1, $v>(kc, a, rsa, csa, b),
            }
        };
    }
    match vecs {
        3 => by_rows!(3),
        2 => by_rows!(2),
        _ => by_rows!(1),
    }
}

/// One R×(16·V) tile of A·B over kc steps: A(r, p) is broadcast from A's own
/// storage, B's row p comes from the packed panel (NR floats a row).
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn micro<const R: usize, const V: usize>(
    kc: usize,
    a: *const f32,
    rsa: isize,
    csa: isize,
    panel: *const f32,
) -> Tile {
    let mut acc = [[_mm512_setzero_ps(); VECS]; MR];
    for p in 0..kc {
        let mut bv = [_mm512_setzero_ps(); VECS];
        for (h, v) in bv.iter_mut().enumerate().take(V) {
            *v = _mm512_loadu_ps(panel.add(p * NR + 16 * h));
        }
        let ap = a.offset(p as isize * csa);
        for (r, acc) in acc.iter_mut().enumerate().take(R) {
            let av = _mm512_set1_ps(*ap.offset(r as isize * rsa));
            for (acc, &bv) in acc.iter_mut().zip(&bv).take(V) {
                *acc = _mm512_fmadd_ps(av, bv, *acc);
            }
        }
    }
    acc
}

/// C[rows, cols] ← alpha·tile + beta·C, then `ep`; C is not read when beta =
/// 0 and there is no residual. Rounding as on the AVX2 path: alpha·t, then
/// one FMA with beta·C, then each step of `ep` (row-major C only).
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn store(
    tile: &Tile,
    rows: usize,
    cols: usize,
    alpha: f32,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
    ep: Epilogue,
) {
    let (va, vb) = (_mm512_set1_ps(alpha), _mm512_set1_ps(beta));
    if csc == 1 {
        // Row-major C: one store per vector, masked past column n (masked
        // lanes are neither read nor written).
        for (r, t) in tile.iter().enumerate().take(rows) {
            let row = c.offset(r as isize * rsc);
            for (h, &v) in t.iter().enumerate().take(cols.div_ceil(16)) {
                let dst = row.add(16 * h);
                let live = (cols - 16 * h).min(16);
                let mask: __mmask16 = if live == 16 { !0 } else { (1 << live) - 1 };
                let v = _mm512_mul_ps(va, v);
                let v = if beta == 0.0 {
                    v
                } else {
                    _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask, dst), v)
                };
                let v = finish(v, ep, 16 * h, mask, dst);
                _mm512_mask_storeu_ps(dst, mask, v);
            }
        }
        return;
    }
    let mut vals = [0f32; NR];
    for (r, t) in tile.iter().enumerate().take(rows) {
        for (h, &v) in t.iter().enumerate() {
            _mm512_storeu_ps(vals.as_mut_ptr().add(16 * h), v);
        }
        for (q, &v) in vals.iter().enumerate().take(cols) {
            let dst = c.offset(r as isize * rsc + q as isize * csc);
            *dst = if beta == 0.0 {
                alpha * v
            } else {
                fma(beta, *dst, alpha * v)
            };
        }
    }
}

/// `ep`'s steps on the 16 columns from `col` (bias, relu, residual), each
/// rounded as its own pass over C would round it.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn finish(v: __m512, ep: Epilogue, col: usize, mask: __mmask16, dst: *const f32) -> __m512 {
    let mut v = v;
    if !ep.bias.is_null() {
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, ep.bias.add(col)));
    }
    if ep.relu {
        // max(v, +0): +0 for NaN and −0, as relu's `v > 0 ? v : 0`.
        v = _mm512_max_ps(v, _mm512_setzero_ps());
    }
    if ep.residual {
        v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, dst), v);
    }
    v
}

/// a·b + c rounded once, as an instruction (see the AVX2 path's `fma`).
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn fma(a: f32, b: f32, c: f32) -> f32 {
    _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)))
}
