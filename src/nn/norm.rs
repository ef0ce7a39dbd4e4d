//! Layer normalisation over the last dimension, as PyTorch's `nn.LayerNorm`.

use crate::autograd::{ParamId, ParamStore, Tape, Var};
use crate::error::Result;
use crate::float::Float;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub weight: ParamId,
    pub bias: ParamId,
    pub eps: f64,
}

impl LayerNorm {
    /// Registers `{name}.weight` (ones) and `{name}.bias` (zeros), both [dim].
    pub fn new<T: Float>(
        store: &mut ParamStore<T>,
        name: &str,
        dim: usize,
        eps: f64,
    ) -> Result<Self> {
        Ok(LayerNorm {
            weight: store.add(format!("{name}.weight"), Tensor::full(T::ONE, &[dim])?)?,
            bias: store.add(format!("{name}.bias"), Tensor::zeros(&[dim])?)?,
            eps,
        })
    }

    pub fn forward<T: Float>(&self, tape: &mut Tape<'_, T>, x: Var) -> Result<Var> {
        let w = tape.param(self.weight);
        let b = tape.param(self.bias);
        tape.layer_norm(x, w, b, self.eps)
    }
}
