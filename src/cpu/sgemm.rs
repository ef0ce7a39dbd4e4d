//! f32 GEMM for the model's shapes: tall, thin products (thousands of rows,
//! K and N of a few dozen to a few hundred), where a general BLAS spends much of
//! its time packing A.
//!
//! Layout of the work (BLIS's loops, cut down):
//! - K is cut into blocks of `KC` (256); for each, B's block is packed once into
//!   panels of [`NR`] columns (`kc × 16` floats, zero-padded past column n).
//! - A is read in place: the 6×16 micro-kernel broadcasts A(i, p) for its six
//!   rows straight from A's storage (row-major or transposed), so A is never
//!   copied.
//! - The micro-kernel keeps a 6×16 tile of C in twelve AVX registers and
//!   performs 12 FMAs per step of p.
//!
//! Each element of C sums its products over p in increasing order, block by
//! block, whatever m and n are, so a product cut into blocks of rows or columns
//! gives the same bits. CPUs with AVX-512F run the same loops with a wider
//! tile ([`super::sgemm_avx512`]), again with the same bits;
//! `CONVFORMER_SIMD=avx2` keeps them on the AVX2 kernel (for A/B
//! measurements). CPUs without AVX2/FMA take matrixmultiply.

use std::cell::RefCell;

#[cfg(target_arch = "x86_64")]
use super::sgemm_blocked::{Epilogue, Mats, KC};

/// Rows of C per micro-kernel call.
const MR: usize = 6;
/// Columns of C per micro-kernel call (two AVX registers).
const NR: usize = 16;

thread_local! {
    /// Packed B, reused between calls on the same thread.
    static PACKED_B: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// C ← alpha·A·B + beta·C, with matrixmultiply's contract: A is m×k at
/// (row, column) strides (rsa, csa), B is k×n at (rsb, csb), C is m×n at
/// (rsc, csc). With beta = 0, C is only written (it may hold NaN before).
///
/// # Safety
/// The pointers and strides must describe valid matrices, and C must not
/// alias A or B.
#[allow(clippy::too_many_arguments)]
pub unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    #[cfg(target_arch = "x86_64")]
    if super::fastmath::has_avx2_fma() && k > 0 {
        let mats = Mats {
            a,
            rsa,
            csa,
            b,
            rsb,
            csb,
            c,
            rsc,
            csc,
        };
        return simd(m, k, n, alpha, beta, mats, Epilogue::NONE);
    }
    matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
}

/// Whether [`sgemm_with_epilogue`] runs a product of depth k: on AVX2 and
/// FMA, k > 0, and a residual only over one block of K (a second block would
/// add to what the first wrote over the residual).
#[cfg(target_arch = "x86_64")]
pub(super) fn fuses_epilogue(k: usize, residual: bool) -> bool {
    super::fastmath::has_avx2_fma() && k > 0 && (!residual || k <= KC)
}

/// C ← A·B, then `ep`'s steps in the store (see [`Epilogue`]) on row-major C
/// (`x.csc` = 1): the bits of the plain product followed by separate passes.
/// Returns false, having written nothing, unless [`fuses_epilogue`].
///
/// # Safety
/// As [`sgemm`], and `ep.bias`, when not null, must hold n floats.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn sgemm_with_epilogue(
    m: usize,
    k: usize,
    n: usize,
    x: Mats,
    ep: Epilogue,
) -> bool {
    assert_eq!(x.csc, 1, "an epilogue needs row-major C");
    if !fuses_epilogue(k, ep.residual) {
        return false;
    }
    simd(m, k, n, 1.0, 0.0, x, ep);
    true
}

/// The AVX2 or AVX-512 kernels (the CPU has AVX2 and FMA, and k > 0).
#[cfg(target_arch = "x86_64")]
unsafe fn simd(m: usize, k: usize, n: usize, alpha: f32, beta: f32, x: Mats, ep: Epilogue) {
    if n <= NR && k <= KC && x.csb == 1 && x.csc == 1 {
        return avx2::sgemm_narrow(m, k, n, alpha, beta, x, ep);
    }
    PACKED_B.with(|buf| {
        let packed = &mut buf.borrow_mut();
        if super::fastmath::has_avx512f() {
            super::sgemm_avx512::sgemm(m, k, n, alpha, beta, x, packed, ep)
        } else {
            avx2::sgemm(m, k, n, alpha, beta, x, packed, ep)
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::sgemm_blocked::{blocked, Epilogue, Kernel};
    use super::{Mats, MR, NR};
    use std::arch::x86_64::*;

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
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
        blocked::<Avx2>(m, k, n, alpha, beta, x, packed, ep);
    }

    /// The 6×16 tile in twelve YMM registers.
    struct Avx2;

    impl Kernel for Avx2 {
        const MR: usize = MR;
        const NR: usize = NR;
        type Tile = [[__m256; 2]; MR];

        #[inline(always)]
        unsafe fn tile(
            rows: usize,
            _cols: usize,
            kc: usize,
            a: *const f32,
            rsa: isize,
            csa: isize,
            panel: *const f32,
        ) -> Self::Tile {
            match rows {
                6 => micro::<6>(kc, a, rsa, csa, panel),
                5 => micro::<5>(kc, a, rsa, csa, panel),
                4 => micro::<4>(kc, a, rsa, csa, panel),
                3 => micro::<3>(kc, a, rsa, csa, panel),
                2 => micro::<2>(kc, a, rsa, csa, panel),
                _ => micro::<1>(kc, a, rsa, csa, panel),
            }
        }

        #[inline(always)]
        unsafe fn store(
            tile: &Self::Tile,
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

    /// The product for n ≤ 16 (one panel) and k ≤ KC (one block) with B's
    /// rows contiguous: B is read in place, as the packed panel would hold it,
    /// so the result has the same bits as [`sgemm`]'s. For attention's small
    /// per-head products, where packing and its bookkeeping cost more than
    /// the arithmetic.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sgemm_narrow(
        m: usize,
        k: usize,
        n: usize,
        alpha: f32,
        beta: f32,
        x: Mats,
        ep: Epilogue,
    ) {
        let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let live = |from: usize| {
            _mm256_cmpgt_epi32(_mm256_set1_epi32(n.saturating_sub(from) as i32), lane)
        };
        let masks = [live(0), live(8)];
        for i0 in (0..m).step_by(MR) {
            let rows = MR.min(m - i0);
            let a = x.a.offset(i0 as isize * x.rsa);
            let (rsa, csa, b, rsb) = (x.rsa, x.csa, x.b, x.rsb);
            let tile = match (rows, n <= 8) {
                (6, false) => micro_in_place::<6, 2>(k, a, rsa, csa, b, rsb, masks),
                (5, false) => micro_in_place::<5, 2>(k, a, rsa, csa, b, rsb, masks),
                (4, false) => micro_in_place::<4, 2>(k, a, rsa, csa, b, rsb, masks),
                (3, false) => micro_in_place::<3, 2>(k, a, rsa, csa, b, rsb, masks),
                (2, false) => micro_in_place::<2, 2>(k, a, rsa, csa, b, rsb, masks),
                (_, false) => micro_in_place::<1, 2>(k, a, rsa, csa, b, rsb, masks),
                (6, true) => micro_in_place::<6, 1>(k, a, rsa, csa, b, rsb, masks),
                (5, true) => micro_in_place::<5, 1>(k, a, rsa, csa, b, rsb, masks),
                (4, true) => micro_in_place::<4, 1>(k, a, rsa, csa, b, rsb, masks),
                (3, true) => micro_in_place::<3, 1>(k, a, rsa, csa, b, rsb, masks),
                (2, true) => micro_in_place::<2, 1>(k, a, rsa, csa, b, rsb, masks),
                (_, true) => micro_in_place::<1, 1>(k, a, rsa, csa, b, rsb, masks),
            };
            let c = x.c.offset(i0 as isize * x.rsc);
            store(&tile, rows, n, alpha, beta, c, x.rsc, 1, ep);
        }
    }

    /// [`micro`] with B's row p read from B itself (V vectors of 8, masked to
    /// B's n columns; the lanes past n load as zero like a packed panel's).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn micro_in_place<const R: usize, const V: usize>(
        kc: usize,
        a: *const f32,
        rsa: isize,
        csa: isize,
        b: *const f32,
        rsb: isize,
        masks: [__m256i; 2],
    ) -> [[__m256; 2]; MR] {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for p in 0..kc {
            let row = b.offset(p as isize * rsb);
            let mut bv = [_mm256_setzero_ps(); 2];
            for (h, v) in bv.iter_mut().enumerate().take(V) {
                *v = _mm256_maskload_ps(row.add(8 * h), masks[h]);
            }
            let ap = a.offset(p as isize * csa);
            for (r, acc) in acc.iter_mut().enumerate().take(R) {
                let av = _mm256_broadcast_ss(&*ap.offset(r as isize * rsa));
                for (acc, &bv) in acc.iter_mut().zip(&bv).take(V) {
                    *acc = _mm256_fmadd_ps(av, bv, *acc);
                }
            }
        }
        acc
    }

    /// `ep`'s steps on the 8 columns from `col` (bias, relu, residual), each
    /// rounded as its own pass over C would round it; `live` masks the
    /// columns past n.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn finish(
        v: __m256,
        ep: Epilogue,
        col: usize,
        live: __m256i,
        dst: *const f32,
    ) -> __m256 {
        let mut v = v;
        if !ep.bias.is_null() {
            v = _mm256_add_ps(v, _mm256_maskload_ps(ep.bias.add(col), live));
        }
        if ep.relu {
            // max(v, +0): +0 for NaN and −0, as relu's `v > 0 ? v : 0`.
            v = _mm256_max_ps(v, _mm256_setzero_ps());
        }
        if ep.residual {
            v = _mm256_add_ps(_mm256_maskload_ps(dst, live), v);
        }
        v
    }

    /// a·b + c rounded once (the vector paths' FMA), as an instruction: a
    /// plain `mul_add` here may become a call to libm's software fmaf.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn fma(a: f32, b: f32, c: f32) -> f32 {
        _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)))
    }

    /// One R×16 tile of A·B over kc steps: A(r, p) is broadcast from A's own
    /// storage, B's row p comes from the packed panel.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn micro<const R: usize>(
        kc: usize,
        a: *const f32,
        rsa: isize,
        csa: isize,
        bp: *const f32,
    ) -> [[__m256; 2]; MR] {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for p in 0..kc {
            let b0 = _mm256_loadu_ps(bp.add(p * NR));
            let b1 = _mm256_loadu_ps(bp.add(p * NR + 8));
            let ap = a.offset(p as isize * csa);
            for (r, acc) in acc.iter_mut().enumerate().take(R) {
                let av = _mm256_broadcast_ss(&*ap.offset(r as isize * rsa));
                acc[0] = _mm256_fmadd_ps(av, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(av, b1, acc[1]);
            }
        }
        acc
    }

    /// C[rows, cols] ← alpha·tile + beta·C, then `ep`; C is not read when
    /// beta = 0 and there is no residual. Rounding is the same on every path:
    /// alpha·t, then one FMA with beta·C, then each step of `ep` (row-major C
    /// only).
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn store(
        tile: &[[__m256; 2]; MR],
        rows: usize,
        cols: usize,
        alpha: f32,
        beta: f32,
        c: *mut f32,
        rsc: isize,
        csc: isize,
        ep: Epilogue,
    ) {
        let (va, vb) = (_mm256_set1_ps(alpha), _mm256_set1_ps(beta));
        if csc == 1 {
            // Row-major C: each half of a row is one store, masked where the
            // tile runs past column n (masked lanes are neither read nor written).
            let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            for (r, t) in tile.iter().enumerate().take(rows) {
                let row = c.offset(r as isize * rsc);
                for (h, &v) in t.iter().enumerate().take(cols.div_ceil(8)) {
                    let dst = row.add(8 * h);
                    let v = _mm256_mul_ps(va, v);
                    let live = cols - 8 * h;
                    if live >= 8 {
                        let v = if beta == 0.0 {
                            v
                        } else {
                            _mm256_fmadd_ps(vb, _mm256_loadu_ps(dst), v)
                        };
                        let v = finish(v, ep, 8 * h, _mm256_set1_epi32(-1), dst);
                        _mm256_storeu_ps(dst, v);
                    } else {
                        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(live as i32), lane);
                        let v = if beta == 0.0 {
                            v
                        } else {
                            _mm256_fmadd_ps(vb, _mm256_maskload_ps(dst, mask), v)
                        };
                        let v = finish(v, ep, 8 * h, mask, dst);
                        _mm256_maskstore_ps(dst, mask, v);
                    }
                }
            }
            return;
        }
        let mut vals = [0f32; NR];
        for (r, t) in tile.iter().enumerate().take(rows) {
            _mm256_storeu_ps(vals.as_mut_ptr(), t[0]);
            _mm256_storeu_ps(vals.as_mut_ptr().add(8), t[1]);
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
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::{avx2, Epilogue, Mats, KC};
    use crate::cpu::sgemm_avx512;
    use crate::rng::splitmix64;
    use proptest::prelude::*;

    /// C from one kernel: m×k A and k×n B at the given layouts, C [m, n]
    /// (or [n, m] if `c_t`) preset to `c0` (NaN where beta = 0 must not read).
    #[allow(clippy::too_many_arguments)]
    fn run(
        wide: bool,
        (m, k, n): (usize, usize, usize),
        (a_t, b_t, c_t): (bool, bool, bool),
        a: &[f32],
        b: &[f32],
        c0: &[f32],
        alpha: f32,
        beta: f32,
    ) -> Vec<f32> {
        let (rsa, csa) = if a_t {
            (1, m as isize)
        } else {
            (k as isize, 1)
        };
        let (rsb, csb) = if b_t {
            (1, k as isize)
        } else {
            (n as isize, 1)
        };
        let (rsc, csc) = if c_t {
            (1, m as isize)
        } else {
            (n as isize, 1)
        };
        let mut c = c0.to_vec();
        let mats = Mats {
            a: a.as_ptr(),
            rsa,
            csa,
            b: b.as_ptr(),
            rsb,
            csb,
            c: c.as_mut_ptr(),
            rsc,
            csc,
        };
        let mut packed = Vec::new();
        // SAFETY: the strides describe a, b and c; the CPU was checked.
        unsafe {
            if wide {
                sgemm_avx512::sgemm(m, k, n, alpha, beta, mats, &mut packed, Epilogue::NONE);
            } else {
                avx2::sgemm(m, k, n, alpha, beta, mats, &mut packed, Epilogue::NONE);
            }
        }
        c
    }

    /// Uniform in [-1, 1), from the crate's SplitMix64.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| (splitmix64(&mut state) >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Same bits from the AVX-512 and the AVX2 kernel, on ragged shapes
        /// (tails of rows and of every vector count), every layout, K past
        /// one block, and with beta = 0 over a C full of NaN.
        #[test]
        fn avx512_kernel_gives_the_avx2_bits(
            m in 1usize..40,
            k in prop_oneof![1usize..40, (KC - 2)..(KC + 40)],
            n in 1usize..120,
            layout in any::<(bool, bool, bool)>(),
            scale in prop_oneof![Just((1.0f32, 0.0f32)), Just((0.5, 1.0)), Just((-1.5, 0.25))],
            seed in any::<u64>(),
        ) {
            if !(super::super::fastmath::has_avx512f() && super::super::fastmath::has_avx2_fma()) {
                eprintln!("SKIPPED: this CPU lacks AVX-512F or AVX2, one of the kernels compared");
                return Ok(());
            }
            let (a, b) = (values(m * k, seed), values(k * n, seed ^ 0xABCD));
            let c0 = if scale.1 == 0.0 { vec![f32::NAN; m * n] } else { values(m * n, seed ^ 7) };
            let run = |wide| run(wide, (m, k, n), layout, &a, &b, &c0, scale.0, scale.1);
            let (wide, narrow) = (run(true), run(false));
            prop_assert!(wide.iter().all(|v| v.is_finite()), "an element of C was not written");
            let differ = wide.iter().zip(&narrow).position(|(x, y)| x.to_bits() != y.to_bits());
            prop_assert!(differ.is_none(), "element {:?}: {:?}", differ, differ.map(|i| (wide[i], narrow[i])));
        }
    }
}
