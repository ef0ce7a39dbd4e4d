//! The convolution descriptor, its padding, and the state its tape node keeps.

use crate::autograd::Var;

/// conv1d padding: `Same` keeps the length (odd kernels pad (k-1)/2 each side,
/// even kernels pad one more on the right, as Keras), `Valid` pads nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Padding {
    Same,
    Valid,
}

/// x [batch, c_in, len], w [c_out, c_in, kernel], bias [c_out],
/// y [batch, c_out, out_len()].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dDims {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub len: usize,
    pub kernel: usize,
    pub padding: Padding,
}

impl Conv1dDims {
    /// Zeros added before the sequence: (k−1)/2 for `Same` (the extra one of an
    /// even kernel goes on the right), 0 for `Valid`.
    pub fn pad_left(&self) -> usize {
        match self.padding {
            Padding::Same => (self.kernel - 1) / 2,
            Padding::Valid => 0,
        }
    }

    /// Output length: `len` for `Same`, len − k + 1 for `Valid` (0 when the
    /// kernel is longer than the sequence; the launches reject an empty output).
    pub fn out_len(&self) -> usize {
        match self.padding {
            Padding::Same => self.len,
            Padding::Valid => (self.len + 1).saturating_sub(self.kernel),
        }
    }

    pub fn x_len(&self) -> usize {
        self.batch * self.c_in * self.len
    }
    pub fn w_len(&self) -> usize {
        self.c_out * self.c_in * self.kernel
    }
    pub fn y_len(&self) -> usize {
        self.batch * self.c_out * self.out_len()
    }
}

/// What a convolution node keeps for its backward.
#[derive(Debug)]
pub(crate) struct Conv1dSaved {
    pub x: Var,
    pub w: Var,
    pub b: Option<Var>,
    pub dims: Conv1dDims,
    /// The node holds relu of the convolution (`Tape::conv1d_relu`).
    pub relu: bool,
    /// x and the node are [B, L, C] (recorded on the CPU only: a GPU composes
    /// permutes around the channels-first kernel).
    pub channels_last: bool,
}
