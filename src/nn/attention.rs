//! Multi-head self-attention with Keras semantics: `num_heads` heads of
//! `key_dim` each (ceil(d_model / num_heads) by default), so any head count works
//! with any width; the output projection maps heads·key_dim back to d_model.

use super::init::SeedRng;
use super::linear::Linear;
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::float::Float;

#[derive(Clone, Debug)]
pub struct MultiHeadAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    pub num_heads: usize,
    pub key_dim: usize,
}

/// Keras' default per-head width.
pub fn default_key_dim(d_model: usize, num_heads: usize) -> usize {
    d_model.div_ceil(num_heads.max(1))
}

impl MultiHeadAttention {
    /// Registers `{name}.{q,k,v}_proj.{weight,bias}` ([heads·key_dim, d_model])
    /// and `{name}.out_proj.{weight,bias}` ([d_model, heads·key_dim]).
    pub fn new<T: Float>(
        store: &mut ParamStore<T>,
        name: &str,
        d_model: usize,
        num_heads: usize,
        key_dim: Option<usize>,
        rng: &mut SeedRng,
    ) -> Result<Self> {
        if num_heads == 0 || d_model == 0 {
            return Err(Error::Invalid(format!(
                "attention needs at least one head and a positive width (heads {num_heads}, d_model {d_model})"
            )));
        }
        let key_dim = key_dim.unwrap_or_else(|| default_key_dim(d_model, num_heads));
        let inner = num_heads * key_dim;
        Ok(MultiHeadAttention {
            q_proj: Linear::new(store, &format!("{name}.q_proj"), d_model, inner, true, rng)?,
            k_proj: Linear::new(store, &format!("{name}.k_proj"), d_model, inner, true, rng)?,
            v_proj: Linear::new(store, &format!("{name}.v_proj"), d_model, inner, true, rng)?,
            out_proj: Linear::new(
                store,
                &format!("{name}.out_proj"),
                inner,
                d_model,
                true,
                rng,
            )?,
            num_heads,
            key_dim,
        })
    }

    /// x [B, T, d_model] -> [B, T, d_model]; `key_mask` (B·T, true = attend) hides padding.
    pub fn forward<T: Float>(
        &self,
        tape: &mut Tape<'_, T>,
        x: Var,
        key_mask: Option<&[bool]>,
    ) -> Result<Var> {
        let shape = tape.shape(x).to_vec();
        let [b, t, _] = shape[..] else {
            return Err(Error::shape(
                "MultiHeadAttention",
                &shape,
                &[0, 0, self.q_proj.in_features],
                "input must be [batch, time, d_model]",
            ));
        };
        let q = self.q_proj.forward(tape, x)?;
        let k = self.k_proj.forward(tape, x)?;
        let v = self.v_proj.forward(tape, x)?;
        // Heads are column blocks of the projections; no permutes on the CPU.
        let merged = tape.attention_tokens(q, k, v, self.num_heads, key_mask)?;
        debug_assert_eq!(tape.shape(merged), [b, t, self.num_heads * self.key_dim]);
        self.out_proj.forward(tape, merged)
    }
}
