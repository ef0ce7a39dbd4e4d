//! Transformer encoder block: attention → dropout → residual → LayerNorm →
//! FFN → dropout → residual → LayerNorm (post-norm, as the original); pre-norm
//! normalises before each sub-layer instead.

use super::attention::MultiHeadAttention;
use super::init::SeedRng;
use super::linear::Linear;
use super::norm::LayerNorm;
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::Result;
use crate::float::Float;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    Relu,
    Gelu,
}

#[derive(Clone, Debug)]
pub struct EncoderOptions {
    pub d_model: usize,
    pub num_heads: usize,
    pub key_dim: Option<usize>,
    pub ff_dim: usize,
    pub dropout: f64,
    pub activation: Activation,
    pub norm_first: bool,
    pub eps: f64,
}

#[derive(Clone, Debug)]
pub struct TransformerEncoderBlock {
    pub attn: MultiHeadAttention,
    pub norm1: LayerNorm,
    pub ff1: Linear,
    pub ff2: Linear,
    pub norm2: LayerNorm,
    pub dropout: f64,
    pub activation: Activation,
    pub norm_first: bool,
}

impl TransformerEncoderBlock {
    pub fn new<T: Float>(
        store: &mut ParamStore<T>,
        name: &str,
        o: &EncoderOptions,
        rng: &mut SeedRng,
    ) -> Result<Self> {
        let d = o.d_model;
        Ok(TransformerEncoderBlock {
            attn: MultiHeadAttention::new(
                store,
                &format!("{name}.attn"),
                d,
                o.num_heads,
                o.key_dim,
                rng,
            )?,
            norm1: LayerNorm::new(store, &format!("{name}.norm1"), d, o.eps)?,
            ff1: Linear::new(store, &format!("{name}.ff1"), d, o.ff_dim, true, rng)?,
            ff2: Linear::new(store, &format!("{name}.ff2"), o.ff_dim, d, true, rng)?,
            norm2: LayerNorm::new(store, &format!("{name}.norm2"), d, o.eps)?,
            dropout: o.dropout,
            activation: o.activation,
            norm_first: o.norm_first,
        })
    }

    /// x [B, T, d_model] -> [B, T, d_model]
    pub fn forward<T: Float>(
        &self,
        tape: &mut Tape<'_, T>,
        x: Var,
        key_mask: Option<&[bool]>,
    ) -> Result<Var> {
        if self.norm_first {
            let h = self.norm1.forward(tape, x)?;
            let a = self.attention(tape, h, key_mask)?;
            let x = tape.add(x, a)?;
            let h = self.norm2.forward(tape, x)?;
            let f = self.feed_forward(tape, h)?;
            tape.add(x, f)
        } else {
            let a = self.attention(tape, x, key_mask)?;
            let x = tape.add(x, a)?;
            let x = self.norm1.forward(tape, x)?;
            let f = self.feed_forward(tape, x)?;
            let x = tape.add(x, f)?;
            self.norm2.forward(tape, x)
        }
    }

    fn attention<T: Float>(
        &self,
        tape: &mut Tape<'_, T>,
        x: Var,
        key_mask: Option<&[bool]>,
    ) -> Result<Var> {
        let a = self.attn.forward(tape, x, key_mask)?;
        tape.dropout(a, self.dropout)
    }

    fn feed_forward<T: Float>(&self, tape: &mut Tape<'_, T>, x: Var) -> Result<Var> {
        let h = match self.activation {
            Activation::Relu => self.ff1.forward_relu(tape, x)?,
            Activation::Gelu => {
                let h = self.ff1.forward(tape, x)?;
                tape.gelu(h)?
            }
        };
        let f = self.ff2.forward(tape, h)?;
        tape.dropout(f, self.dropout)
    }
}
