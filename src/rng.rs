//! Counter-based random numbers: Philox 4x32-10 (Salmon et al., "Parallel random
//! numbers: as easy as 1, 2, 3", SC'11), and the dropout mask rule built on it.
//!
//! The mask of element `i` depends only on (seed, call, i), so the CPU and the
//! CUDA kernels draw the same mask bit-for-bit, in any order, on any thread count:
//! counter = [lo32(i/4), hi32(i/4), lo32(call), hi32(call)], key = [lo32(seed),
//! hi32(seed)], r = philox4x32_10(counter, key)[i % 4], keep iff r >= threshold.
//!
//! Also [`splitmix64`], the one sequential generator behind the seeded
//! streams elsewhere (initialisation, the tuner's seeding, test inputs).

const MUL0: u32 = 0xD251_1F53;
const MUL1: u32 = 0xCD9E_8D57;
/// Weyl increments of the key schedule (golden ratio, sqrt(3) - 1).
const WEYL0: u32 = 0x9E37_79B9;
const WEYL1: u32 = 0xBB67_AE85;

#[inline(always)]
fn mul_hi_lo(a: u32, b: u32) -> (u32, u32) {
    let p = u64::from(a) * u64::from(b);
    ((p >> 32) as u32, p as u32)
}

#[inline(always)]
fn round(c: [u32; 4], k: [u32; 2]) -> [u32; 4] {
    let (hi0, lo0) = mul_hi_lo(MUL0, c[0]);
    let (hi1, lo1) = mul_hi_lo(MUL1, c[2]);
    [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0]
}

/// Philox 4x32 with 10 rounds: four random words per (counter, key).
#[inline]
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for r in 0..10 {
        if r > 0 {
            k = [k[0].wrapping_add(WEYL0), k[1].wrapping_add(WEYL1)];
        }
        c = round(c, k);
    }
    c
}

/// Philox 4x32-10 on `L` counters at once that share one key, laid out as
/// structure-of-arrays (`words[w][lane]`) so that the rounds vectorise.
#[inline]
pub fn philox4x32_10_lanes<const L: usize>(words: &mut [[u32; L]; 4], key: [u32; 2]) {
    #[cfg(target_arch = "x86_64")]
    {
        if L >= 16 && crate::cpu::fastmath::has_avx512f() {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { philox_lanes_avx512(words, key) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { philox_lanes_avx2(words, key) };
        }
    }
    philox_lanes(words, key)
}

/// Defines `$name`: the Philox rounds on `$lanes` lanes per SIMD register.
/// `mul` (`_mul_epu32`) gives the 64-bit products of the even lanes, a
/// shifted copy those of the odd ones, and `odd_lanes` (a blend) sorts them
/// into high and low halves. Two registers of lanes go through the rounds
/// together (one alone waits on its multiplies; four spilled registers).
/// Lanes past the last whole register take `$tail`. Each lane computes the
/// scalar generator's bits.
macro_rules! philox_simd {
    ($name:ident, $features:literal, $lanes:literal, $reg:ty, $tail:ident,
     zero: $zero:ident, splat: $splat:ident, load: $load:ident, store: $store:ident,
     mul: $mul:ident, shr: $shr:ident, shl: $shl:ident, xor: $xor:ident,
     odd_lanes: $odd:expr) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name<const L: usize>(words: &mut [[u32; L]; 4], key: [u32; 2]) {
            use std::arch::x86_64::*;
            /// (high, low) halves of the 32×32-bit products m·x, lane by lane.
            #[inline(always)]
            unsafe fn mul_hi_lo(m: $reg, x: $reg) -> ($reg, $reg) {
                let even = $mul(x, m);
                let odd = $mul($shr::<32>(x), m);
                ($odd($shr::<32>(even), odd), $odd(even, $shl::<32>(odd)))
            }
            let (m0, m1) = ($splat(MUL0 as i32), $splat(MUL1 as i32));
            const GROUPS: usize = 2;
            let full = L / $lanes * $lanes;
            for start in (0..full).step_by($lanes * GROUPS) {
                let groups = ((full - start) / $lanes).min(GROUPS);
                let mut c = [[$zero(); 4]; GROUPS];
                for (g, cg) in c.iter_mut().enumerate().take(groups) {
                    for (v, w) in cg.iter_mut().zip(words.iter()) {
                        *v = $load(w[start + $lanes * g..].as_ptr().cast());
                    }
                }
                let mut k = key;
                for r in 0..10 {
                    if r > 0 {
                        k = [k[0].wrapping_add(WEYL0), k[1].wrapping_add(WEYL1)];
                    }
                    let (k0, k1) = ($splat(k[0] as i32), $splat(k[1] as i32));
                    for cg in c.iter_mut().take(groups) {
                        let (hi0, lo0) = mul_hi_lo(m0, cg[0]);
                        let (hi1, lo1) = mul_hi_lo(m1, cg[2]);
                        *cg = [
                            $xor($xor(hi1, cg[1]), k0),
                            lo1,
                            $xor($xor(hi0, cg[3]), k1),
                            lo0,
                        ];
                    }
                }
                for (g, cg) in c.iter().enumerate().take(groups) {
                    for (w, &v) in words.iter_mut().zip(cg) {
                        $store(w[start + $lanes * g..].as_mut_ptr().cast(), v);
                    }
                }
            }
            if full < L {
                let mut tail = [[0u32; $lanes]; 4];
                for (t, w) in tail.iter_mut().zip(words.iter()) {
                    t[..L - full].copy_from_slice(&w[full..]);
                }
                $tail(&mut tail, key);
                for (w, t) in words.iter_mut().zip(&tail) {
                    w[full..].copy_from_slice(&t[..L - full]);
                }
            }
        }
    };
}

philox_simd!(philox_lanes_avx2, "avx2", 8, __m256i, philox_lanes,
    zero: _mm256_setzero_si256, splat: _mm256_set1_epi32,
    load: _mm256_loadu_si256, store: _mm256_storeu_si256,
    mul: _mm256_mul_epu32, shr: _mm256_srli_epi64, shl: _mm256_slli_epi64,
    xor: _mm256_xor_si256, odd_lanes: _mm256_blend_epi32::<0b1010_1010>);

philox_simd!(philox_lanes_avx512, "avx512f,avx2", 16, __m512i, philox_lanes_avx2,
    zero: _mm512_setzero_si512, splat: _mm512_set1_epi32,
    load: _mm512_loadu_si512, store: _mm512_storeu_si512,
    mul: _mm512_mul_epu32, shr: _mm512_srli_epi64, shl: _mm512_slli_epi64,
    xor: _mm512_xor_si512, odd_lanes: |a, b| _mm512_mask_blend_epi32(0xAAAA, a, b));

// Indexing by lane keeps all four words of a lane in one loop body, which is
// what the vectoriser needs.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn philox_lanes<const L: usize>(words: &mut [[u32; L]; 4], key: [u32; 2]) {
    let mut k = key;
    for r in 0..10 {
        if r > 0 {
            k = [k[0].wrapping_add(WEYL0), k[1].wrapping_add(WEYL1)];
        }
        for lane in 0..L {
            let (hi0, lo0) = mul_hi_lo(MUL0, words[0][lane]);
            let (hi1, lo1) = mul_hi_lo(MUL1, words[2][lane]);
            let (c1, c3) = (words[1][lane], words[3][lane]);
            words[0][lane] = hi1 ^ c1 ^ k[0];
            words[1][lane] = lo1;
            words[2][lane] = hi0 ^ c3 ^ k[1];
            words[3][lane] = lo0;
        }
    }
}

/// The draws of `L` consecutive blocks starting at `first_block`:
/// `draws[w][j]` decides element 4·(first_block + j) + w.
#[allow(clippy::needless_range_loop)]
#[inline]
pub fn dropout_blocks<const L: usize>(seed: u64, call: u64, first_block: u64) -> [[u32; L]; 4] {
    let mut words = [[0u32; L]; 4];
    for j in 0..L {
        let block = first_block + j as u64;
        words[0][j] = block as u32;
        words[1][j] = (block >> 32) as u32;
        words[2][j] = call as u32;
        words[3][j] = (call >> 32) as u32;
    }
    philox4x32_10_lanes(&mut words, [seed as u32, (seed >> 32) as u32]);
    words
}

/// The threshold below which a 32-bit draw drops an element: floor(p * 2^32),
/// saturated at 2^32 - 1; p = 0 drops nothing.
pub fn dropout_threshold(p: f64) -> u32 {
    let scaled = (p.clamp(0.0, 1.0) * 4_294_967_296.0).floor();
    scaled.min(u32::MAX as f64) as u32
}

/// The four draws that decide elements 4j..4j+3 of dropout call `call`.
#[inline]
pub fn dropout_block(seed: u64, call: u64, block: u64) -> [u32; 4] {
    philox4x32_10(
        [
            block as u32,
            (block >> 32) as u32,
            call as u32,
            (call >> 32) as u32,
        ],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// Whether element `i` survives dropout call `call` (keep iff draw >= threshold).
#[inline]
pub fn dropout_keep(seed: u64, call: u64, i: u64, threshold: u32) -> bool {
    dropout_block(seed, call, i / 4)[(i % 4) as usize] >= threshold
}

/// SplitMix64 (Steele, Lea & Flood): advances `state` by the golden-ratio
/// Weyl step and returns its mix. The whole state is one `u64`, so a
/// checkpoint can store it and a resumed stream continues exactly.
#[inline]
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors of Random123 (kat_vectors, philox4x32 10 rounds).
    #[test]
    fn philox_matches_random123_known_answers() {
        let cases: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
            (
                [0, 0, 0, 0],
                [0, 0],
                [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
            ),
            (
                [u32::MAX; 4],
                [u32::MAX; 2],
                [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
            ),
            (
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0],
                [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
            ),
        ];
        for (counter, key, expected) in cases {
            assert_eq!(
                philox4x32_10(counter, key),
                expected,
                "counter {counter:x?}"
            );
        }
    }

    #[test]
    fn lanes_match_the_scalar_generator() {
        fn check<const L: usize>() {
            let draws = dropout_blocks::<L>(0xDEAD_BEEF_1234, 77, (1 << 32) - 3);
            for j in 0..L as u64 {
                let scalar = dropout_block(0xDEAD_BEEF_1234, 77, (1 << 32) - 3 + j);
                for w in 0..4 {
                    assert_eq!(draws[w][j as usize], scalar[w], "L {L}, lane {j}, word {w}");
                }
            }
        }
        // Whole registers of 8 and 16 lanes (AVX2, AVX-512), and tails past them.
        check::<8>();
        check::<16>();
        check::<32>();
        check::<3>();
        check::<13>();
        check::<29>();
        check::<48>();
    }

    #[test]
    fn threshold_edges() {
        assert_eq!(dropout_threshold(0.0), 0);
        assert_eq!(dropout_threshold(0.5), 1 << 31);
        assert_eq!(dropout_threshold(1.0), u32::MAX);
        assert_eq!(dropout_threshold(0.25), 1 << 30);
    }

    #[test]
    fn keep_rate_follows_p() {
        let thr = dropout_threshold(0.3);
        let kept = (0..100_000u64)
            .filter(|&i| dropout_keep(42, 7, i, thr))
            .count();
        let rate = kept as f64 / 100_000.0;
        assert!((rate - 0.7).abs() < 0.01, "keep rate {rate}");
    }

    #[test]
    fn mask_uses_all_four_words_and_the_call_counter() {
        let thr = dropout_threshold(0.5);
        let a: Vec<bool> = (0..64).map(|i| dropout_keep(1, 0, i, thr)).collect();
        let b: Vec<bool> = (0..64).map(|i| dropout_keep(1, 1, i, thr)).collect();
        assert_ne!(a, b);
        let words = dropout_block(1, 0, 3);
        for j in 0..4 {
            assert_eq!(dropout_keep(1, 0, 12 + j, thr), words[j as usize] >= thr);
        }
    }
}
