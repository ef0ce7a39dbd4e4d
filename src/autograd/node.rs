//! What the tape records per op: the saved state each op's backward needs
//! ([`Op`], each family's own in `crate::ops`) and the node holding it with
//! its value.

use super::params::ParamId;
pub use super::var::Var;
use crate::float::Float;
use crate::ops::attention::dims::AttentionSaved;
use crate::ops::conv1d::dims::Conv1dSaved;
use crate::ops::dropout::dims::DropoutSaved;
use crate::ops::layer_norm::dims::LayerNormSaved;
use crate::ops::losses::LossKind;
use crate::ops::matmul::LinearDims;
use crate::ops::matmul::MatmulDims;
use crate::ops::pool::PoolDims;
use crate::ops::unary::Unary;
use crate::tensor::Tensor;

/// What a node remembers for its backward pass.
#[derive(Debug)]
pub(crate) enum Op<T: Float> {
    /// An input or constant: gradients are kept for it, nothing flows further.
    Leaf,
    Param(ParamId),
    Add(Var, Var),
    Mul(Var, Var),
    Scale(Var, T),
    Reshape(Var),
    Matmul {
        a: Var,
        b: Var,
        dims: MatmulDims,
    },
    /// `relu`: the node holds relu of the product (`Tape::linear_relu`).
    Linear {
        x: Var,
        w: Var,
        b: Option<Var>,
        dims: LinearDims,
        relu: bool,
    },
    Conv1d(Conv1dSaved),
    LayerNorm(LayerNormSaved<T>),
    /// Backward uses the node's own output.
    Softmax(Var),
    Unary(Var, Unary),
    Attention(AttentionSaved<T>),
    Dropout(DropoutSaved),
    AddBias(Var, Var),
    MeanPool(Var, PoolDims),
    Permute(Var, Vec<usize>),
    Loss {
        pred: Var,
        target: Var,
        kind: LossKind,
    },
}

impl<T: Float> Op<T> {
    /// The values this op was computed from (at most three; no allocation,
    /// as every op on the tape asks).
    pub(super) fn parents(&self) -> [Option<Var>; 3] {
        match self {
            Op::Leaf | Op::Param(_) => [None; 3],
            Op::Scale(a, _)
            | Op::Reshape(a)
            | Op::Softmax(a)
            | Op::Unary(a, _)
            | Op::Dropout(DropoutSaved { x: a, .. })
            | Op::MeanPool(a, _)
            | Op::Permute(a, _) => [Some(*a), None, None],
            Op::Add(a, b) | Op::Mul(a, b) | Op::AddBias(a, b) | Op::Matmul { a, b, .. } => {
                [Some(*a), Some(*b), None]
            }
            Op::Loss { pred, target, .. } => [Some(*pred), Some(*target), None],
            Op::Linear { x, w, b, .. } | Op::Conv1d(Conv1dSaved { x, w, b, .. }) => {
                [Some(*x), Some(*w), *b]
            }
            Op::LayerNorm(LayerNormSaved { x, w, b, .. }) => [Some(*x), Some(*w), Some(*b)],
            Op::Attention(AttentionSaved { q, k, v, .. }) => [Some(*q), Some(*k), Some(*v)],
        }
    }
}

pub(super) struct Node<T: Float> {
    pub(super) value: Tensor<T>,
    pub(super) op: Op<T>,
    /// Whether a parameter or an input is upstream: if not (a constant and what
    /// is computed from constants only), backward computes no gradient for it.
    pub(super) needs_grad: bool,
}
