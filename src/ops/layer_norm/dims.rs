//! The layer-norm descriptor and the state its tape node keeps.

use crate::autograd::Var;
use crate::float::Float;
use crate::tensor::Tensor;

/// x, y: [rows, dim]; weight, bias: [dim]; mean, rstd: [rows].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LayerNormDims {
    pub rows: usize,
    pub dim: usize,
    pub eps: f64,
}

/// What a layer-norm node keeps for its backward.
#[derive(Debug)]
pub(crate) struct LayerNormSaved<T: Float> {
    pub x: Var,
    pub w: Var,
    pub b: Var,
    pub dims: LayerNormDims,
    /// Per-row statistics of the forward, on the device of x.
    pub mean: Tensor<T>,
    pub rstd: Tensor<T>,
}
