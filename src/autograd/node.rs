//! What the tape records per op: the value handle ([`Var`]), the saved state
//! each op's backward needs ([`Op`]) and the node holding both. Shared by the
//! forward ops, the CPU and GPU backward passes and the tape, which import it
//! and not each other.

use super::params::ParamId;
use crate::cpu;
use crate::cpu::dropout::DropoutDims;
use crate::cpu::losses::LossKind;
use crate::cuda::exec::GpuBuffer;
use crate::float::Float;
use crate::ops::pool::PoolDims;
use crate::ops::unary::Unary;
use crate::tensor::Tensor;

/// A value recorded on a tape: an index, cheap to copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(pub(crate) usize);

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
        dims: cpu::MatmulDims,
    },
    /// `relu`: the node holds relu of the product (`Tape::linear_relu`).
    Linear {
        x: Var,
        w: Var,
        b: Option<Var>,
        dims: cpu::LinearDims,
        relu: bool,
    },
    /// `relu`: the node holds relu of the convolution (`Tape::conv1d_relu`);
    /// `channels_last`: x and the node are [B, L, C] (CPU only; a GPU composes
    /// permutes around the channels-first kernel).
    Conv1d {
        x: Var,
        w: Var,
        b: Option<Var>,
        dims: cpu::Conv1dDims,
        relu: bool,
        channels_last: bool,
    },
    LayerNorm {
        x: Var,
        w: Var,
        b: Var,
        dims: cpu::LayerNormDims,
        mean: Vec<T>,
        rstd: Vec<T>,
    },
    /// Backward uses the node's own output.
    Softmax(Var),
    Unary(Var, Unary),
    Attention {
        q: Var,
        k: Var,
        v: Var,
        dims: cpu::AttentionDims,
        layout: cpu::HeadLayout,
        probs: Vec<T>,
    },
    /// Layer norm on a GPU: the saved statistics stay in device memory.
    LayerNormGpu {
        x: Var,
        w: Var,
        b: Var,
        dims: cpu::LayerNormDims,
        mean: Tensor<T>,
        rstd: Tensor<T>,
    },
    /// Attention on a GPU saves the log-sum-exp of each query row (the
    /// backward recomputes the probabilities) and the uploaded key mask.
    AttentionGpu {
        q: Var,
        k: Var,
        v: Var,
        dims: cpu::AttentionDims,
        key_mask: Option<GpuBuffer>,
        lse: Tensor<T>,
    },
    /// On the CPU the forward's mask (a byte per element) is kept; a GPU
    /// backward redraws it from (seed, call) and `keep` is empty.
    Dropout {
        x: Var,
        dims: DropoutDims,
        keep: Vec<u8>,
    },
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
            | Op::Dropout { x: a, .. }
            | Op::MeanPool(a, _)
            | Op::Permute(a, _) => [Some(*a), None, None],
            Op::Add(a, b) | Op::Mul(a, b) | Op::AddBias(a, b) | Op::Matmul { a, b, .. } => {
                [Some(*a), Some(*b), None]
            }
            Op::Loss { pred, target, .. } => [Some(*pred), Some(*target), None],
            Op::Linear { x, w, b, .. } | Op::Conv1d { x, w, b, .. } => [Some(*x), Some(*w), *b],
            Op::LayerNorm { x, w, b, .. } | Op::LayerNormGpu { x, w, b, .. } => {
                [Some(*x), Some(*w), Some(*b)]
            }
            Op::Attention { q, k, v, .. } | Op::AttentionGpu { q, k, v, .. } => {
                [Some(*q), Some(*k), Some(*v)]
            }
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
