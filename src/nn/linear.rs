//! Dense layer: y = x·Wᵀ + b, weight stored [out, in] as PyTorch's `nn.Linear`.

use super::init::{glorot_uniform, SeedRng};
use crate::autograd::{ParamId, ParamStore, Tape, Var};
use crate::error::Result;
use crate::float::Float;
use crate::tensor::Tensor;

#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: ParamId,
    pub bias: Option<ParamId>,
    pub in_features: usize,
    pub out_features: usize,
}

impl Linear {
    /// Registers `{name}.weight` [out, in] (Glorot uniform) and `{name}.bias` [out] (zeros).
    pub fn new<T: Float>(
        store: &mut ParamStore<T>,
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
        rng: &mut SeedRng,
    ) -> Result<Self> {
        let w = glorot_uniform(&[out_features, in_features], in_features, out_features, rng)?;
        let weight = store.add(format!("{name}.weight"), w)?;
        let bias = if bias {
            Some(store.add(format!("{name}.bias"), Tensor::zeros(&[out_features])?)?)
        } else {
            None
        };
        Ok(Linear {
            weight,
            bias,
            in_features,
            out_features,
        })
    }

    /// x [..., in] -> [..., out]
    pub fn forward<T: Float>(&self, tape: &mut Tape<'_, T>, x: Var) -> Result<Var> {
        let w = tape.param(self.weight);
        let b = self.bias.map(|b| tape.param(b));
        tape.linear(x, w, b)
    }

    /// relu(forward(x)) as one tape node (see [`Tape::linear_relu`]).
    pub fn forward_relu<T: Float>(&self, tape: &mut Tape<'_, T>, x: Var) -> Result<Var> {
        let w = tape.param(self.weight);
        let b = self.bias.map(|b| tape.param(b));
        tape.linear_relu(x, w, b)
    }
}
