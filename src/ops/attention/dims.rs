//! The attention descriptor, the head layouts, and the state its tape node keeps.

use crate::autograd::Var;
use crate::cuda::exec::GpuBuffer;
use crate::float::Float;
use crate::tensor::Tensor;

/// q [batch, heads, tq, d], k [batch, heads, tk, d], v [batch, heads, tk, dv],
/// out [batch, heads, tq, dv] (or token-major, see [`HeadLayout`]),
/// probs [batch, heads, tq, tk]; key_mask [batch, tk] (true = attend).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionDims {
    pub batch: usize,
    pub heads: usize,
    pub tq: usize,
    pub tk: usize,
    pub d: usize,
    pub dv: usize,
}

impl AttentionDims {
    pub fn q_len(&self) -> usize {
        self.batch * self.heads * self.tq * self.d
    }
    pub fn k_len(&self) -> usize {
        self.batch * self.heads * self.tk * self.d
    }
    pub fn v_len(&self) -> usize {
        self.batch * self.heads * self.tk * self.dv
    }
    pub fn out_len(&self) -> usize {
        self.batch * self.heads * self.tq * self.dv
    }
    pub fn probs_len(&self) -> usize {
        self.batch * self.heads * self.tq * self.tk
    }
}

/// Where a head's rows lie within one batch entry of q, k, v or out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadLayout {
    /// [batch, heads, t, width]: each head's rows are one block.
    HeadMajor,
    /// [batch, t, heads, width]: a head's rows are `width` values every heads·width.
    TokenMajor,
}

/// What an attention node keeps for its backward.
#[derive(Debug)]
pub(crate) struct AttentionSaved<T: Float> {
    pub q: Var,
    pub k: Var,
    pub v: Var,
    pub dims: AttentionDims,
    pub layout: HeadLayout,
    /// The softmax state of the forward on the device of q: the CPU keeps the
    /// probabilities [B, H, Tq, Tk], a GPU the log-sum-exp of each query row
    /// (its backward recomputes the probabilities).
    pub softmax: Tensor<T>,
    /// The key mask as the GPU kernels read it (the CPU's probabilities
    /// already hold it).
    pub key_mask: Option<GpuBuffer>,
}
