//! Regression losses, averaged over all elements: MSE, MAE, Huber, pinball.
//! Each depends on the residual d = pred − target only, so the gradient to the
//! target is the negated gradient to the prediction.

use super::LossKind;
use crate::cpu::{partial_sums, reduce_in_order, ELEMS_PER_TASK};
use crate::float::Float;
use rayon::prelude::*;

/// The loss of one residual d = pred − target.
#[inline]
pub fn loss_of_residual(kind: LossKind, d: f64) -> f64 {
    match kind {
        LossKind::Mse => d * d,
        LossKind::Mae => d.abs(),
        LossKind::Huber(delta) if d.abs() <= delta => 0.5 * d * d,
        LossKind::Huber(delta) => delta * (d.abs() - 0.5 * delta),
        // Pinball on r = target − pred: q·r when under-predicting, (q − 1)·r over.
        LossKind::Quantile(q) => {
            let r = -d;
            (q * r).max((q - 1.0) * r)
        }
    }
}

/// d loss / d pred of one residual (a subgradient at the kinks: 0 for MAE,
/// 1 − q for the pinball loss).
#[inline]
pub fn loss_grad_of_residual(kind: LossKind, d: f64) -> f64 {
    match kind {
        LossKind::Mse => 2.0 * d,
        LossKind::Mae if d > 0.0 => 1.0,
        LossKind::Mae if d < 0.0 => -1.0,
        LossKind::Mae => 0.0,
        LossKind::Huber(delta) => d.clamp(-delta, delta),
        LossKind::Quantile(q) if d < 0.0 => -q,
        LossKind::Quantile(q) => 1.0 - q,
    }
}

/// mean over i of loss(pred[i] − target[i]); summed over a fixed partition.
pub fn loss_forward<T: Float>(kind: LossKind, pred: &[T], target: &[T]) -> T {
    assert_eq!(pred.len(), target.len());
    let n = pred.len();
    let partials = partial_sums(n, 1, |i0, i1, acc: &mut [T]| {
        let s: f64 = pred[i0..i1]
            .iter()
            .zip(&target[i0..i1])
            .map(|(&p, &t)| loss_of_residual(kind, (p - t).to_f64()))
            .sum();
        acc[0] = T::from_f64(s);
    });
    let mut total = [T::ZERO];
    reduce_in_order(&partials, &mut total);
    total[0] / T::from_usize(n.max(1))
}

/// dpred ← g · d loss / d pred (overwritten); g is the gradient of the mean loss.
pub fn loss_backward<T: Float>(kind: LossKind, pred: &[T], target: &[T], g: T, dpred: &mut [T]) {
    assert!(pred.len() == target.len() && pred.len() == dpred.len());
    let scale = g.to_f64() / pred.len().max(1) as f64;
    dpred
        .par_chunks_mut(ELEMS_PER_TASK)
        .zip(
            pred.par_chunks(ELEMS_PER_TASK)
                .zip(target.par_chunks(ELEMS_PER_TASK)),
        )
        .for_each(|(dc, (pc, tc))| {
            for ((o, &p), &t) in dc.iter_mut().zip(pc).zip(tc) {
                *o = T::from_f64(scale * loss_grad_of_residual(kind, (p - t).to_f64()));
            }
        });
}
