//! CPU kernels of mean pooling over one axis.

use super::PoolDims;
use crate::float::Float;
use rayon::prelude::*;

/// y[o, i] ← mean over j of x[o, j, i].
pub fn mean_pool_forward<T: Float>(d: &PoolDims, x: &[T], y: &mut [T]) {
    let PoolDims { outer, n, inner } = *d;
    assert_eq!((x.len(), y.len()), (outer * n * inner, outer * inner));
    if n == 0 {
        // Nothing to average (x is empty, so the zip below would write nothing).
        y.fill(T::ZERO);
        return;
    }
    let inv = T::ONE / T::from_usize(n);
    y.par_chunks_mut(inner.max(1))
        .zip(x.par_chunks((n * inner).max(1)))
        .for_each(|(yo, xo)| {
            yo.fill(T::ZERO);
            for row in xo.chunks_exact(inner) {
                for (acc, &v) in yo.iter_mut().zip(row) {
                    *acc += v;
                }
            }
            yo.iter_mut().for_each(|v| *v *= inv);
        });
}

/// dx[o, j, i] ← g[o, i] / n.
pub fn mean_pool_backward<T: Float>(d: &PoolDims, g: &[T], dx: &mut [T]) {
    let PoolDims { outer, n, inner } = *d;
    assert_eq!((dx.len(), g.len()), (outer * n * inner, outer * inner));
    let inv = T::ONE / T::from_usize(n);
    dx.par_chunks_mut((n * inner).max(1))
        .zip(g.par_chunks(inner.max(1)))
        .for_each(|(dxo, go)| {
            for row in dxo.chunks_exact_mut(inner) {
                for (d, &v) in row.iter_mut().zip(go) {
                    *d = v * inv;
                }
            }
        });
}
