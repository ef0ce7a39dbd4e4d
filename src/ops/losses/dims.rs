//! The losses the tape and the CUDA kernels know.

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LossKind {
    Mse,
    Mae,
    /// Huber with threshold delta.
    Huber(f64),
    /// Pinball loss for quantile q in (0, 1).
    Quantile(f64),
}
