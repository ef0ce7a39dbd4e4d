//! The dropout descriptor (which Philox draw) and the state its tape node keeps.

use crate::autograd::Var;

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

/// What a dropout node keeps for its backward.
#[derive(Debug)]
pub(crate) struct DropoutSaved {
    pub x: Var,
    pub dims: DropoutDims,
    /// The CPU forward's mask, a byte per element; empty on a GPU, whose
    /// backward redraws it from (seed, call).
    pub keep: Vec<u8>,
}
