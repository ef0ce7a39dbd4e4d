//! Inverted dropout with the Philox mask of [`crate::rng`]: kept elements are
//! scaled by 1/(1−p). The forward returns the mask (a byte per element) for the
//! backward, which would otherwise redraw it: Philox costs about as much as the
//! rest of the op.

use super::DropoutDims;
use crate::cpu::fastmath::avx2_kernel;
use crate::float::Float;
use crate::rng::{dropout_block, dropout_blocks, dropout_threshold};
use rayon::prelude::*;

/// Elements per task.
const ELEMS_PER_TASK: usize = 1 << 14;
/// Philox blocks drawn together (two AVX-512 registers), i.e. 4·LANES elements.
const LANES: usize = 32;

/// keep[i] = whether element offset + i survives; true and false as 1 and 0.
pub fn dropout_mask(d: &DropoutDims, keep: &mut [u8]) {
    assert!((0.0..1.0).contains(&d.p), "dropout p must be in [0, 1)");
    keep.par_chunks_mut(ELEMS_PER_TASK)
        .enumerate()
        .for_each(|(task, kc)| {
            mask_run(d, d.offset + (task * ELEMS_PER_TASK) as u64, kc);
        });
}

/// The mask of one contiguous run whose first element has global index
/// `first`: single elements up to a Philox block boundary, then LANES blocks at
/// a time, then the tail block by block.
fn mask_run(d: &DropoutDims, first: u64, keep: &mut [u8]) {
    let threshold = dropout_threshold(d.p);
    let head = (((4 - first % 4) % 4) as usize).min(keep.len());
    let draws = dropout_block(d.seed, d.call, first / 4);
    for (i, k) in keep[..head].iter_mut().enumerate() {
        *k = u8::from(draws[(first % 4) as usize + i] >= threshold);
    }
    let keep = &mut keep[head..];
    let mut block = (first + head as u64) / 4;
    let mut groups = keep.chunks_exact_mut(4 * LANES);
    for k in &mut groups {
        let draws = dropout_blocks::<LANES>(d.seed, d.call, block);
        for (j, k4) in k.chunks_exact_mut(4).enumerate() {
            for (w, k) in k4.iter_mut().enumerate() {
                *k = u8::from(draws[w][j] >= threshold);
            }
        }
        block += LANES as u64;
    }
    for k4 in groups.into_remainder().chunks_mut(4) {
        let draws = dropout_block(d.seed, d.call, block);
        for (k, &r) in k4.iter_mut().zip(&draws) {
            *k = u8::from(r >= threshold);
        }
        block += 1;
    }
}

/// y = x · keep / (1 − p); returns the mask for [`dropout_backward`].
pub fn dropout_forward<T: Float>(d: &DropoutDims, x: &[T], y: &mut [T]) -> Vec<u8> {
    assert_eq!(x.len(), y.len());
    let mut keep = vec![0u8; x.len()];
    dropout_mask(d, &mut keep);
    apply_mask(d.p, &keep, x, y);
    keep
}

/// dx = g · keep / (1 − p), with the forward's mask.
pub fn dropout_backward<T: Float>(p: f64, keep: &[u8], g: &[T], dx: &mut [T]) {
    assert_eq!((keep.len(), g.len()), (dx.len(), dx.len()));
    apply_mask(p, keep, g, dx);
}

fn apply_mask<T: Float>(p: f64, keep: &[u8], x: &[T], out: &mut [T]) {
    let scale = T::from_f64(1.0 / (1.0 - p));
    out.par_chunks_mut(ELEMS_PER_TASK)
        .zip(
            x.par_chunks(ELEMS_PER_TASK)
                .zip(keep.par_chunks(ELEMS_PER_TASK)),
        )
        .for_each(|(oc, (xc, kc))| scale_kept(scale, kc, xc, oc));
}

avx2_kernel! {
/// out = x · scale where keep, else 0.
fn scale_kept<T: Float>(scale: T, keep: &[u8], x: &[T], out: &mut [T]) {
    for ((o, &v), &k) in out.iter_mut().zip(x).zip(keep) {
        *o = if k != 0 { v * scale } else { T::ZERO };
    }
}
}
