//! Inverted dropout with the Philox mask of [`crate::rng`]: kept elements are
//! scaled by 1/(1−p). The mask is recomputed in the backward from (seed, call),
//! so nothing is saved.

use crate::float::Float;
use crate::rng::{dropout_block, dropout_blocks, dropout_threshold};
use rayon::prelude::*;

/// Which dropout draw: the tape's seed and its dropout call counter, and the
/// index of the slice's first element in the whole batch (non-zero on a tape
/// that holds a shard of the batch), so a shard draws its rows' mask of the
/// whole batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutDims {
    pub p: f64,
    pub seed: u64,
    pub call: u64,
    pub offset: u64,
}

/// Elements per task.
const ELEMS_PER_TASK: usize = 1 << 14;
/// Philox blocks drawn together (vectorised), i.e. 4·LANES elements.
const LANES: usize = 16;

/// out[i] = x[i] · keep(offset + i) / (1 − p). Used by forward (x) and backward (g).
pub fn dropout_apply<T: Float>(d: &DropoutDims, x: &[T], out: &mut [T]) {
    assert_eq!(x.len(), out.len());
    assert!((0.0..1.0).contains(&d.p), "dropout p must be in [0, 1)");
    out.par_chunks_mut(ELEMS_PER_TASK)
        .zip(x.par_chunks(ELEMS_PER_TASK))
        .enumerate()
        .for_each(|(task, (oc, xc))| {
            apply_run(d, d.offset + (task * ELEMS_PER_TASK) as u64, xc, oc);
        });
}

/// Dropout of one contiguous run whose first element has global index `first`:
/// single elements up to a Philox block boundary, then LANES blocks at a time,
/// then the tail block by block.
fn apply_run<T: Float>(d: &DropoutDims, first: u64, x: &[T], out: &mut [T]) {
    let threshold = dropout_threshold(d.p);
    let scale = T::from_f64(1.0 / (1.0 - d.p));
    let apply = |o: &mut T, v: T, r: u32| *o = if r >= threshold { v * scale } else { T::ZERO };
    let head = (((4 - first % 4) % 4) as usize).min(x.len());
    let draws = dropout_block(d.seed, d.call, first / 4);
    for i in 0..head {
        apply(&mut out[i], x[i], draws[(first % 4) as usize + i]);
    }
    let (x, out) = (&x[head..], &mut out[head..]);
    let mut block = (first + head as u64) / 4;
    let mut groups = out
        .chunks_exact_mut(4 * LANES)
        .zip(x.chunks_exact(4 * LANES));
    for (o, x) in &mut groups {
        let draws = dropout_blocks::<LANES>(d.seed, d.call, block);
        for (j, (o4, x4)) in o.chunks_exact_mut(4).zip(x.chunks_exact(4)).enumerate() {
            for w in 0..4 {
                apply(&mut o4[w], x4[w], draws[w][j]);
            }
        }
        block += LANES as u64;
    }
    let done = x.len() / (4 * LANES) * (4 * LANES);
    for (o4, x4) in out[done..].chunks_mut(4).zip(x[done..].chunks(4)) {
        let draws = dropout_block(d.seed, d.call, block);
        for ((o, &v), &r) in o4.iter_mut().zip(x4).zip(&draws) {
            apply(o, v, r);
        }
        block += 1;
    }
}

pub fn dropout_forward<T: Float>(d: &DropoutDims, x: &[T], y: &mut [T]) {
    dropout_apply(d, x, y);
}

/// dx = g · keep / (1 − p), the same mask as the forward.
pub fn dropout_backward<T: Float>(d: &DropoutDims, g: &[T], dx: &mut [T]) {
    dropout_apply(d, g, dx);
}
