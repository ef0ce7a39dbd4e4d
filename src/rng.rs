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

/// [`philox_lanes_avx2`] with sixteen lanes per register (the same bits:
/// each lane is the scalar generator); lanes past the last multiple of 16
/// take the AVX2 code.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
unsafe fn philox_lanes_avx512<const L: usize>(words: &mut [[u32; L]; 4], key: [u32; 2]) {
    use std::arch::x86_64::*;
    /// (high, low) halves of the 32×32-bit products m·x, lane by lane.
    #[inline(always)]
    unsafe fn mul_hi_lo16(m: __m512i, x: __m512i) -> (__m512i, __m512i) {
        let even = _mm512_mul_epu32(x, m);
        let odd = _mm512_mul_epu32(_mm512_srli_epi64::<32>(x), m);
        let hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64::<32>(even), odd);
        let lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64::<32>(odd));
        (hi, lo)
    }
    let (m0, m1) = (
        _mm512_set1_epi32(MUL0 as i32),
        _mm512_set1_epi32(MUL1 as i32),
    );
    // Two registers of lanes through the rounds together, as in the AVX2 code.
    const GROUPS: usize = 2;
    let full = L / 16 * 16;
    for start in (0..full).step_by(16 * GROUPS) {
        let groups = ((full - start) / 16).min(GROUPS);
        let mut c = [[_mm512_setzero_si512(); 4]; GROUPS];
        for (g, cg) in c.iter_mut().enumerate().take(groups) {
            for (v, w) in cg.iter_mut().zip(words.iter()) {
                *v = _mm512_loadu_si512(w[start + 16 * g..].as_ptr().cast());
            }
        }
        let mut k = key;
        for r in 0..10 {
            if r > 0 {
                k = [k[0].wrapping_add(WEYL0), k[1].wrapping_add(WEYL1)];
            }
            let (k0, k1) = (
                _mm512_set1_epi32(k[0] as i32),
                _mm512_set1_epi32(k[1] as i32),
            );
            for cg in c.iter_mut().take(groups) {
                let (hi0, lo0) = mul_hi_lo16(m0, cg[0]);
                let (hi1, lo1) = mul_hi_lo16(m1, cg[2]);
                *cg = [
                    _mm512_xor_si512(_mm512_xor_si512(hi1, cg[1]), k0),
                    lo1,
                    _mm512_xor_si512(_mm512_xor_si512(hi0, cg[3]), k1),
                    lo0,
                ];
            }
        }
        for (g, cg) in c.iter().enumerate().take(groups) {
            for (w, &v) in words.iter_mut().zip(cg) {
                _mm512_storeu_si512(w[start + 16 * g..].as_mut_ptr().cast(), v);
            }
        }
    }
    if full < L {
        let mut tail = [[0u32; 16]; 4];
        for (t, w) in tail.iter_mut().zip(words.iter()) {
            t[..L - full].copy_from_slice(&w[full..]);
        }
        philox_lanes_avx2(&mut tail, key);
        for (w, t) in words.iter_mut().zip(&tail) {
            w[full..].copy_from_slice(&t[..L - full]);
        }
    }
}

/// The rounds in AVX2, eight lanes per register: `_mm256_mul_epu32` gives
/// the 64-bit products of the even lanes, a shifted copy those of the odd
/// ones, and blends sort them into high and low halves. Lanes past the last
/// multiple of 8 take the portable code.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn philox_lanes_avx2<const L: usize>(words: &mut [[u32; L]; 4], key: [u32; 2]) {
    use std::arch::x86_64::*;
    /// (high, low) halves of the 32×32-bit products m·x, lane by lane.
    #[inline(always)]
    unsafe fn mul_hi_lo8(m: __m256i, x: __m256i) -> (__m256i, __m256i) {
        let even = _mm256_mul_epu32(x, m);
        let odd = _mm256_mul_epu32(_mm256_srli_epi64::<32>(x), m);
        let hi = _mm256_blend_epi32::<0b1010_1010>(_mm256_srli_epi64::<32>(even), odd);
        let lo = _mm256_blend_epi32::<0b1010_1010>(even, _mm256_slli_epi64::<32>(odd));
        (hi, lo)
    }
    let (m0, m1) = (
        _mm256_set1_epi32(MUL0 as i32),
        _mm256_set1_epi32(MUL1 as i32),
    );
    // Two registers of lanes go through the rounds together: one alone
    // waits on its multiplies; four ran slower again (registers spill).
    const GROUPS: usize = 2;
    let full = L / 8 * 8;
    for start in (0..full).step_by(8 * GROUPS) {
        let groups = ((full - start) / 8).min(GROUPS);
        let mut c = [[_mm256_setzero_si256(); 4]; GROUPS];
        for (g, cg) in c.iter_mut().enumerate().take(groups) {
            for (v, w) in cg.iter_mut().zip(words.iter()) {
                *v = _mm256_loadu_si256(w[start + 8 * g..].as_ptr().cast());
            }
        }
        let mut k = key;
        for r in 0..10 {
            if r > 0 {
                k = [k[0].wrapping_add(WEYL0), k[1].wrapping_add(WEYL1)];
            }
            let (k0, k1) = (
                _mm256_set1_epi32(k[0] as i32),
                _mm256_set1_epi32(k[1] as i32),
            );
            for cg in c.iter_mut().take(groups) {
                let (hi0, lo0) = mul_hi_lo8(m0, cg[0]);
                let (hi1, lo1) = mul_hi_lo8(m1, cg[2]);
                *cg = [
                    _mm256_xor_si256(_mm256_xor_si256(hi1, cg[1]), k0),
                    lo1,
                    _mm256_xor_si256(_mm256_xor_si256(hi0, cg[3]), k1),
                    lo0,
                ];
            }
        }
        for (g, cg) in c.iter().enumerate().take(groups) {
            for (w, &v) in words.iter_mut().zip(cg) {
                _mm256_storeu_si256(w[start + 8 * g..].as_mut_ptr().cast(), v);
            }
        }
    }
    if full < L {
        let mut tail = [[0u32; 8]; 4];
        for (t, w) in tail.iter_mut().zip(words.iter()) {
            t[..L - full].copy_from_slice(&w[full..]);
        }
        philox_lanes(&mut tail, key);
        for (w, t) in words.iter_mut().zip(&tail) {
            w[full..].copy_from_slice(&t[..L - full]);
        }
    }
}

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
