//! A branch-free f32 exp that the compiler vectorises (libm's `expf` is a call
//! per element), and the f32 fast paths of the kernels that need exp.
//!
//! Only f32 takes these paths; f64 (the gradient checks) keeps libm, so the
//! checks test the exact formulas. The f32 results stay within a few ulp of the
//! f64 reference (tested against it in `tests/ops_reference.rs`).

use crate::float::Float;
use std::any::TypeId;

/// exp(x) below which the result is flushed to 0 (exp(-87.3) ≈ 1.2e-38).
const EXP_MIN: f32 = -87.3;
/// exp(x) above which the result saturates (exp(88.3) ≈ 2.1e38 < f32::MAX).
const EXP_MAX: f32 = 88.3;
/// 1.5·2²³: adding and subtracting it rounds to the nearest integer, and the
/// integer can be read from the low bits of the sum.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// exp(x) for f32: x = n·ln2 + r with |r| ≤ ln2/2 (Cody–Waite split of ln2),
/// e^r from a degree-6 minimax polynomial (Cephes `expf`), times 2ⁿ built in the
/// exponent bits. Relative error about 2e-7; -inf and anything below -87.3 give 0.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let xc = x.clamp(EXP_MIN, EXP_MAX);
    let shifted = xc * std::f32::consts::LOG2_E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let n_bits = (shifted.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    let r = xc - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let scale = f32::from_bits(((n_bits + 127) << 23) as u32);
    if x < EXP_MIN {
        0.0
    } else {
        er * scale
    }
}

/// Whether the CPU has AVX2 and FMA (std caches the detection).
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Whether the CPU has AVX-512F, and `CONVFORMER_SIMD` does not say `avx2`
/// (read once: it keeps every kernel on its AVX2 path, for A/B runs).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512f() -> bool {
    static CHOICE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CHOICE.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::env::var("CONVFORMER_SIMD").map_or(true, |v| v != "avx2")
    })
}

/// Runs `f` in a function compiled for AVX2 + FMA when the CPU has them (the
/// default x86-64 target is SSE2 only); `f`, inlined there, vectorises 8 wide.
/// Results are identical either way: Rust never contracts a·b + c into an FMA
/// nor reorders reductions, so only the vector width changes.
#[inline(always)]
pub(crate) fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { run(f) };
    }
    f()
}

/// Defines a kernel generic over `T: Float` three times from one body: as
/// written, compiled for AVX2 + FMA and compiled for AVX-512F, and dispatches
/// to the widest the CPU has. For bodies too large for [`with_avx2`], whose
/// closure the compiler may then keep out of line (so compiled for the default
/// target after all). The results are the same on every path (see
/// [`with_avx2`]: only the vector width changes).
macro_rules! avx2_kernel {
    ($(#[$meta:meta])* $vis:vis fn $name:ident<T: Float>($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name<T: Float>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn with_avx512<T: Float>($($arg: $ty),*) $body
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn with_avx2_fma<T: Float>($($arg: $ty),*) $body
                if $crate::cpu::fastmath::has_avx512f() {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { with_avx512::<T>($($arg),*) };
                }
                if $crate::cpu::fastmath::has_avx2_fma() {
                    // SAFETY: the CPU has AVX2 and FMA (checked just above).
                    return unsafe { with_avx2_fma::<T>($($arg),*) };
                }
            }
            $body
        }
    };
}
pub(crate) use avx2_kernel;

/// The slice as f32 when T is f32 (a no-op view), else `None`.
pub(crate) fn as_f32<T: Float>(x: &[T]) -> Option<&[f32]> {
    (TypeId::of::<T>() == TypeId::of::<f32>())
        // SAFETY: T is f32, so the layout is identical.
        .then(|| unsafe { std::slice::from_raw_parts(x.as_ptr().cast::<f32>(), x.len()) })
}

/// Mutable version of [`as_f32`].
pub(crate) fn as_f32_mut<T: Float>(x: &mut [T]) -> Option<&mut [f32]> {
    (TypeId::of::<T>() == TypeId::of::<f32>())
        // SAFETY: T is f32, so the layout is identical.
        .then(|| unsafe { std::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<f32>(), x.len()) })
}

#[cfg(test)]
mod tests {
    use super::exp_f32;

    #[test]
    fn exp_f32_is_within_a_few_ulp_over_the_range() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let err = ((exp_f32(x) as f64) - want).abs() / want;
            worst = worst.max(err);
            x += 0.0137;
        }
        assert!(worst < 5e-7, "worst relative error {worst:e}");
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(100.0).is_finite());
    }
}
