//! The engine's f32 GEMM (`cpu::sgemm`) against a naive f64 product: every
//! operand layout, ragged sizes (1, primes, past the 6×16 tile and the
//! 256-deep K block), alpha and beta, and C poisoned with NaN where beta = 0
//! (it must then be written, never read).

use convformer::cpu::sgemm::sgemm;
use proptest::prelude::*;

fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// Row and column strides of a rows×cols matrix stored as [rows, cols] or,
/// transposed, as [cols, rows].
fn strides(rows: usize, cols: usize, transposed: bool) -> (isize, isize) {
    if transposed {
        (1, rows as isize)
    } else {
        (cols as isize, 1)
    }
}

/// A strided matrix's element (i, j) from its row and column strides.
fn at(s: &[f32], i: usize, j: usize, (rs, cs): (isize, isize)) -> f32 {
    s[(i as isize * rs + j as isize * cs) as usize]
}

/// Σ_p A(i, p)·B(p, j) in f64, the reference every check compares against.
fn naive_dot(
    a: &[f32],
    sa: (isize, isize),
    b: &[f32],
    sb: (isize, isize),
    k: usize,
    i: usize,
    j: usize,
) -> f64 {
    (0..k)
        .map(|p| at(a, i, p, sa) as f64 * at(b, p, j, sb) as f64)
        .sum()
}

/// The tolerance of an f32 sum of k products of magnitude ≤ 1.
fn tolerance(k: usize) -> f64 {
    1e-6 * (k as f64 + 2.0)
}

/// What the guard zone after C holds.
const SENTINEL: f32 = -12345.5;

#[allow(clippy::too_many_arguments)]
fn check(
    m: usize,
    k: usize,
    n: usize,
    a_t: bool,
    b_t: bool,
    c_t: bool,
    alpha: f32,
    beta: f32,
    seed: u64,
) -> Result<(), TestCaseError> {
    let (a, b) = (values(seed, m * k), values(seed ^ 0x9E37, k * n));
    let c0 = if beta == 0.0 {
        vec![f32::NAN; m * n]
    } else {
        values(seed ^ 0x51, m * n)
    };
    let ((rsa, csa), (rsb, csb), (rsc, csc)) =
        (strides(m, k, a_t), strides(k, n, b_t), strides(m, n, c_t));
    // A guard zone after C: a store past its last element shows there.
    const GUARD: usize = 32;
    let mut c = c0.clone();
    c.extend([SENTINEL; GUARD]);
    // SAFETY: the strides describe the three buffers, C is distinct.
    unsafe {
        sgemm(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            rsc,
            csc,
        );
    }
    prop_assert!(
        c[m * n..].iter().all(|&v| v == SENTINEL),
        "sgemm wrote past C (m {m} k {k} n {n})"
    );
    for i in 0..m {
        for j in 0..n {
            let dot = naive_dot(&a, (rsa, csa), &b, (rsb, csb), k, i, j);
            let prior = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * at(&c0, i, j, (rsc, csc)) as f64
            };
            let want = alpha as f64 * dot + prior;
            let got = at(&c, i, j, (rsc, csc)) as f64;
            prop_assert!(
                (got - want).abs() <= tolerance(k),
                "C[{i},{j}] = {got}, want {want} (m {m} k {k} n {n})"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn matches_the_naive_product(
        m in prop::sample::select(vec![1usize, 2, 5, 6, 7, 13, 31, 97, 101]),
        k in prop::sample::select(vec![1usize, 3, 8, 17, 48, 255, 256, 257, 600]),
        n in prop::sample::select(vec![1usize, 7, 8, 15, 16, 17, 33, 243]),
        a_t: bool, b_t: bool, c_t: bool,
        scale in prop::sample::select(vec![(1.0f32, 0.0f32), (1.0, 1.0), (-0.75, 0.5)]),
        seed: u64,
    ) {
        check(m, k, n, a_t, b_t, c_t, scale.0, scale.1, seed)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// With B's rows contiguous, n ≤ 16 and k ≤ 256 the kernel reads B in
    /// place (attention's per-head products); with the same B stored
    /// transposed it packs B. Both must give the same bits.
    #[test]
    fn narrow_products_read_in_place_have_the_packed_bits(
        m in prop::sample::select(vec![1usize, 2, 5, 6, 7, 13, 16, 31]),
        k in prop::sample::select(vec![1usize, 3, 8, 16, 17, 64, 256]),
        n in 1usize..=16,
        a_t: bool,
        scale in prop::sample::select(vec![(1.0f32, 0.0f32), (1.0, 1.0), (-0.75, 0.5)]),
        seed: u64,
    ) {
        let (a, b) = (values(seed, m * k), values(seed ^ 0x9E37, k * n));
        let b_t: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let (rsa, csa) = strides(m, k, a_t);
        let c0 = values(seed ^ 0x51, m * n);
        let run = |b: &[f32], (rsb, csb): (isize, isize)| {
            let mut c = c0.clone();
            // SAFETY: the strides describe the buffers; C is distinct.
            unsafe {
                sgemm(m, k, n, scale.0, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, scale.1, c.as_mut_ptr(), n as isize, 1);
            }
            c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        prop_assert_eq!(run(&b, strides(k, n, false)), run(&b_t, strides(k, n, true)));
    }
}

#[test]
fn k_zero_scales_c_by_beta() {
    let mut c = vec![2.0f32; 6];
    // SAFETY: A and B are empty (k = 0); C is 2×3.
    unsafe {
        sgemm(
            2,
            0,
            3,
            1.0,
            [].as_ptr(),
            0,
            1,
            [].as_ptr(),
            3,
            1,
            0.5,
            c.as_mut_ptr(),
            3,
            1,
        );
    }
    assert_eq!(c, vec![1.0; 6]);
}

/// Products large enough for `cpu::gemm` to cut into rayon tasks (a tall one,
/// and a wide one it computes as its transpose): the same bits on 1 and 3
/// threads, and the naive values.
#[test]
fn split_products_are_thread_count_independent() {
    use convformer::ops::matmul::{cpu::matmul_forward, MatmulDims};
    for (m, k, n, trans_a, trans_b) in [(301, 70, 53, false, true), (41, 67, 397, true, false)] {
        let dims = MatmulDims {
            batch: 1,
            m,
            k,
            n,
            trans_a,
            trans_b,
            b_shared: false,
        };
        let (a, b) = (values(3, m * k), values(4, k * n));
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = vec![f32::NAN; m * n];
            pool.install(|| matmul_forward(&dims, &a, &b, &mut c));
            c
        };
        let one = on(1);
        let three = on(3);
        assert!(
            one.iter()
                .zip(&three)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{m}x{k}x{n}: 1 and 3 threads differ"
        );
        let (sa, sb) = (strides(m, k, trans_a), strides(k, n, trans_b));
        for i in 0..m {
            for j in 0..n {
                let want = naive_dot(&a, sa, &b, sb, k, i, j);
                let got = one[i * n + j] as f64;
                assert!(
                    (got - want).abs() <= tolerance(k),
                    "C[{i},{j}] = {got}, want {want}"
                );
            }
        }
    }
}
