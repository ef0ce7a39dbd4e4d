//! 1-D convolution, stride 1, weight [out, in, kernel] as PyTorch's `nn.Conv1d`.

use super::init::{glorot_uniform, SeedRng};
use crate::autograd::{Padding, ParamId, ParamStore, Tape, Var};
use crate::error::Result;
use crate::float::Float;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct Conv1d {
    pub weight: ParamId,
    pub bias: ParamId,
    pub padding: Padding,
}

impl Conv1d {
    /// Registers `{name}.weight` [out, in, k] and `{name}.bias` [out]. Glorot fans
    /// count the receptive field as Keras does: in·k and out·k.
    pub fn new<T: Float>(
        store: &mut ParamStore<T>,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        padding: Padding,
        rng: &mut SeedRng,
    ) -> Result<Self> {
        let w = glorot_uniform(
            &[out_channels, in_channels, kernel],
            in_channels * kernel,
            out_channels * kernel,
            rng,
        )?;
        Ok(Conv1d {
            weight: store.add(format!("{name}.weight"), w)?,
            bias: store.add(format!("{name}.bias"), Tensor::zeros(&[out_channels])?)?,
            padding,
        })
    }

    /// x [B, in, L] -> [B, out, L'] (L' = L with `Same`).
    pub fn forward<T: Float>(&self, tape: &mut Tape<'_, T>, x: Var) -> Result<Var> {
        let w = tape.param(self.weight);
        let b = tape.param(self.bias);
        tape.conv1d(x, w, Some(b), self.padding)
    }

    /// relu(forward(x)) as one tape node (see [`Tape::conv1d_relu`]).
    pub fn forward_relu<T: Float>(&self, tape: &mut Tape<'_, T>, x: Var) -> Result<Var> {
        let w = tape.param(self.weight);
        let b = tape.param(self.bias);
        tape.conv1d_relu(x, w, Some(b), self.padding)
    }

    /// Channels-last: x [B, L, in] -> [B, L', out], with relu if `relu` (see
    /// [`Tape::conv1d_channels_last`]).
    pub fn forward_channels_last<T: Float>(
        &self,
        tape: &mut Tape<'_, T>,
        x: Var,
        relu: bool,
    ) -> Result<Var> {
        let w = tape.param(self.weight);
        let b = tape.param(self.bias);
        tape.conv1d_channels_last(x, w, Some(b), self.padding, relu)
    }
}
