//! Forward-only inference on the CPU: ConvFormerNet without the tape.
//!
//! Nothing is recorded and nothing is kept for a backward pass: the batch is
//! cut into chunks of samples small enough that a chunk's activations stay in
//! the core's cache, and each rayon task runs a chunk through the convolutions
//! and the encoder blocks in one go, in buffers it reuses from chunk to chunk
//! and from call to call (a [`Workspace`] per task, kept in a pool). Attention's
//! probabilities live in one chunk's scratch, never for the whole batch.
//! Pooling, the dense head and the skip then run over the whole batch.
//!
//! Every op is the tape's CPU kernel on the same rows in the same order, so the
//! output is bit-identical to `ConvFormerNet::forward` on an inference tape
//! (tests/model_infer.rs checks it). Where the tape runs a pass over a
//! product's output (bias, relu, the residual add), the pass runs in the
//! GEMM's store instead, with the same roundings in the same order.

use std::sync::Mutex;

use rayon::prelude::*;

use super::encoder::{Activation, TransformerEncoderBlock};
use super::{ConvFormerNet, LayerNorm, Linear, MultiHeadAttention};
use crate::autograd::{ParamId, ParamStore};
use crate::cpu::gemm::as_parallel_piece;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::ops::attention::{cpu::attention_forward_in, AttentionDims, HeadLayout};
use crate::ops::conv1d::cpu_nwc::{conv1d_forward_taps, taps_major};
use crate::ops::conv1d::Conv1dDims;
use crate::ops::layer_norm::{cpu::layer_norm_forward, LayerNormDims};
use crate::ops::matmul::cpu::{linear_forward_with, GemmEpilogue};
use crate::ops::matmul::LinearDims;
use crate::ops::pool::{cpu::mean_pool_forward, PoolDims};
use crate::ops::unary::cpu::gelu_forward;

/// Token rows (samples × time steps) a task runs through the network at once:
/// at the default width the chunk's largest buffer (the feed-forward's
/// 256 × 243 floats) is a quarter of a MiB, well inside a core's L2. Measured
/// at batch 1024 (interleaved, 3 rounds): 256 and 512 level at sequence 64,
/// 256 3% ahead at sequence 16, 1024 20% behind there.
const CHUNK_ROWS: usize = 256;

/// The network's weights, borrowed from a CPU parameter store, with the
/// convolutions' weights reordered once for the channels-last kernel.
pub struct Inference<'a, T: Float> {
    model: &'a ConvFormerNet,
    store: &'a ParamStore<T>,
    conv_taps: Vec<Vec<T>>,
    workspaces: Mutex<Vec<Workspace<T>>>,
}

/// One task's buffers, grown to the largest chunk seen and then reused.
#[derive(Default)]
struct Workspace<T> {
    cols: Vec<T>,
    conv: [Vec<T>; 2],
    normed: Vec<T>,
    stats: NormStats<T>,
    attn: AttentionBuffers<T>,
    ff: FeedForwardBuffers<T>,
}

#[derive(Default)]
struct NormStats<T> {
    mean: Vec<T>,
    rstd: Vec<T>,
}

#[derive(Default)]
struct AttentionBuffers<T> {
    q: Vec<T>,
    k: Vec<T>,
    v: Vec<T>,
    heads: Vec<T>,
    probs: Vec<T>,
}

#[derive(Default)]
struct FeedForwardBuffers<T> {
    hidden: Vec<T>,
    gelu: Vec<T>,
}

/// `buf` resized to `len` (its old values are overwritten by the caller).
fn sized<T: Float>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    buf.resize(len, T::ZERO);
    &mut buf[..]
}

impl<'a, T: Float> Inference<'a, T> {
    /// Fails unless `store` lives on the CPU and holds `model`'s parameters.
    pub fn new(model: &'a ConvFormerNet, store: &'a ParamStore<T>) -> Result<Self> {
        if store.device() != Device::Cpu {
            return Err(Error::Invalid(
                "forward-only inference runs on the CPU; use the tape on a GPU".into(),
            ));
        }
        let c = &model.config;
        let conv_taps = model
            .convs
            .iter()
            .enumerate()
            .map(|(i, conv)| {
                let c_in = if i == 0 {
                    c.in_channels
                } else {
                    c.conv_filters
                };
                let d = conv_dims(model, i, 1, c_in);
                Ok(taps_major(&d, data(store, conv.weight)?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Inference {
            model,
            store,
            conv_taps,
            workspaces: Mutex::new(Vec::new()),
        })
    }

    /// Network outputs for `inputs`, whole samples of [seq_len, in_channels].
    pub fn forward(&self, inputs: &[T]) -> Result<Vec<T>> {
        let c = &self.model.config;
        let (t, sample) = (c.seq_len, c.seq_len * c.in_channels);
        if sample == 0 || !inputs.len().is_multiple_of(sample) {
            return Err(Error::shape(
                "Inference::forward",
                &[inputs.len()],
                &[t, c.in_channels],
                "inputs are not a whole number of [seq_len, channels] samples",
            ));
        }
        let batch = inputs.len() / sample;
        let f = c.conv_filters;
        let per_chunk = (CHUNK_ROWS / t.max(1)).max(1);
        // NaN until pooled: a skipped chunk would show in the output.
        let mut pooled = vec![T::from_f64(f64::NAN); batch * f];
        pooled
            .par_chunks_mut(per_chunk * f)
            .zip(inputs.par_chunks(per_chunk * sample))
            .try_for_each(|(pooled, x)| {
                let mut ws = self.take_workspace();
                let done = as_parallel_piece(|| self.encode_chunk(x, pooled, &mut ws));
                self.workspaces.lock().expect("workspace pool").push(ws);
                done
            })?;
        self.head(inputs, &pooled, batch)
    }

    fn take_workspace(&self) -> Workspace<T> {
        self.workspaces
            .lock()
            .expect("workspace pool")
            .pop()
            .unwrap_or_default()
    }

    fn w(&self, id: ParamId) -> Result<&[T]> {
        data(self.store, id)
    }

    /// x (`s` samples) through the convolutions and the encoder blocks, then
    /// mean-pooled over time into `pooled` [s, conv_filters].
    fn encode_chunk(&self, x: &[T], pooled: &mut [T], ws: &mut Workspace<T>) -> Result<()> {
        let c = &self.model.config;
        let (t, f) = (c.seq_len, c.conv_filters);
        let s = x.len() / (t * c.in_channels);
        let rows = s * t;
        let [mut stream, mut spare] = std::mem::take(&mut ws.conv);
        for (i, conv) in self.model.convs.iter().enumerate() {
            let input: &[T] = if i == 0 { x } else { &stream[..] };
            let c_in = if i == 0 { c.in_channels } else { f };
            let d = conv_dims(self.model, i, s, c_in);
            let y = sized(&mut spare, d.y_len());
            let ep = GemmEpilogue {
                bias: Some(self.w(conv.bias)?),
                relu: true,
                residual: false,
            };
            conv1d_forward_taps(&d, input, &self.conv_taps[i], ep, y, &mut ws.cols);
            std::mem::swap(&mut stream, &mut spare);
        }
        let encoded = self
            .model
            .blocks
            .iter()
            .try_for_each(|block| self.block(block, s, &mut stream[..rows * f], ws));
        let d = PoolDims {
            outer: s,
            n: t,
            inner: f,
        };
        mean_pool_forward(&d, &stream[..rows * f], pooled);
        ws.conv = [stream, spare];
        encoded
    }

    /// One encoder block on the residual stream x [s·t, d_model], in place.
    fn block(
        &self,
        block: &TransformerEncoderBlock,
        s: usize,
        x: &mut [T],
        ws: &mut Workspace<T>,
    ) -> Result<()> {
        let Workspace {
            normed,
            stats,
            attn,
            ff,
            ..
        } = ws;
        let normed = sized(normed, x.len());
        // Each sub-layer's last product adds itself to the residual stream in
        // its store, as the tape's `x + sublayer(x)` does after it.
        let (out_proj, ff2) = (&block.attn.out_proj, &block.ff2);
        if block.norm_first {
            self.layer_norm(&block.norm1, x, normed, stats)?;
            self.attention_heads(&block.attn, s, normed, attn)?;
            self.add_linear(out_proj, &attn.heads, x)?;
            self.layer_norm(&block.norm2, x, normed, stats)?;
            let hidden = self.feed_forward_hidden(block, normed, ff)?;
            self.add_linear(ff2, hidden, x)?;
        } else {
            self.attention_heads(&block.attn, s, x, attn)?;
            self.add_linear(out_proj, &attn.heads, x)?;
            self.layer_norm(&block.norm1, x, normed, stats)?;
            let hidden = self.feed_forward_hidden(block, normed, ff)?;
            self.add_linear(ff2, hidden, normed)?;
            self.layer_norm(&block.norm2, normed, x, stats)?;
        }
        Ok(())
    }

    /// y ← LayerNorm(x) over rows of d_model.
    fn layer_norm(
        &self,
        norm: &LayerNorm,
        x: &[T],
        y: &mut [T],
        stats: &mut NormStats<T>,
    ) -> Result<()> {
        let dim = self.model.config.conv_filters;
        let rows = x.len() / dim;
        let d = LayerNormDims {
            rows,
            dim,
            eps: norm.eps,
        };
        layer_norm_forward(
            &d,
            x,
            self.w(norm.weight)?,
            self.w(norm.bias)?,
            y,
            sized(&mut stats.mean, rows),
            sized(&mut stats.rstd, rows),
        );
        Ok(())
    }

    /// bufs.heads ← the attention heads of h [s·t, d_model], before the
    /// output projection.
    fn attention_heads(
        &self,
        a: &MultiHeadAttention,
        s: usize,
        h: &[T],
        bufs: &mut AttentionBuffers<T>,
    ) -> Result<()> {
        let t = self.model.config.seq_len;
        self.linear(&a.q_proj, h, &mut bufs.q, false)?;
        self.linear(&a.k_proj, h, &mut bufs.k, false)?;
        self.linear(&a.v_proj, h, &mut bufs.v, false)?;
        let dims = AttentionDims {
            batch: s,
            heads: a.num_heads,
            tq: t,
            tk: t,
            d: a.key_dim,
            dv: a.key_dim,
        };
        attention_forward_in(
            HeadLayout::TokenMajor,
            &dims,
            &bufs.q,
            &bufs.k,
            &bufs.v,
            None,
            sized(&mut bufs.heads, dims.out_len()),
            sized(&mut bufs.probs, dims.probs_len()),
        );
        Ok(())
    }

    /// The feed-forward's activated hidden layer of h [rows, d_model], the
    /// input of its second product.
    fn feed_forward_hidden<'b>(
        &self,
        block: &TransformerEncoderBlock,
        h: &[T],
        bufs: &'b mut FeedForwardBuffers<T>,
    ) -> Result<&'b [T]> {
        match block.activation {
            Activation::Relu => {
                self.linear(&block.ff1, h, &mut bufs.hidden, true)?;
                Ok(&bufs.hidden)
            }
            Activation::Gelu => {
                self.linear(&block.ff1, h, &mut bufs.hidden, false)?;
                gelu_forward(&bufs.hidden, sized(&mut bufs.gelu, bufs.hidden.len()));
                Ok(&bufs.gelu)
            }
        }
    }

    /// y ← x·Wᵀ + b, relu'd if asked, `y` resized to the rows of x.
    fn linear(&self, layer: &Linear, x: &[T], y: &mut Vec<T>, relu: bool) -> Result<()> {
        let d = self.linear_dims(layer, x);
        let ep = GemmEpilogue {
            bias: layer.bias.map(|b| self.w(b)).transpose()?,
            relu,
            residual: false,
        };
        linear_forward_with(&d, x, self.w(layer.weight)?, ep, sized(y, d.rows * d.d_out));
        Ok(())
    }

    /// y ← y + (x·Wᵀ + b): a sub-layer's output joining the residual stream y.
    fn add_linear(&self, layer: &Linear, x: &[T], y: &mut [T]) -> Result<()> {
        let d = self.linear_dims(layer, x);
        let ep = GemmEpilogue {
            bias: layer.bias.map(|b| self.w(b)).transpose()?,
            relu: false,
            residual: true,
        };
        linear_forward_with(&d, x, self.w(layer.weight)?, ep, y);
        Ok(())
    }

    fn linear_dims(&self, layer: &Linear, x: &[T]) -> LinearDims {
        LinearDims {
            rows: x.len() / layer.in_features.max(1),
            d_in: layer.in_features,
            d_out: layer.out_features,
        }
    }

    /// Dense(relu) → out, plus the skip, over the whole batch as the tape
    /// runs them (so even the GEMMs' shapes are the tape's).
    fn head(&self, inputs: &[T], pooled: &[T], batch: usize) -> Result<Vec<T>> {
        let m = self.model;
        let mut dense = Vec::new();
        self.linear(&m.dense, pooled, &mut dense, true)?;
        let mut y = Vec::new();
        self.linear(&m.out, &dense, &mut y, false)?;
        if let Some(skip) = &m.skip {
            self.add_linear(skip, inputs, &mut y)?;
        }
        debug_assert_eq!(y.len(), batch);
        Ok(y)
    }
}

fn data<T: Float>(store: &ParamStore<T>, id: ParamId) -> Result<&[T]> {
    store.get(id).as_slice()
}

/// Convolution `i` over `batch` channels-last samples of `c_in` channels.
fn conv_dims(model: &ConvFormerNet, i: usize, batch: usize, c_in: usize) -> Conv1dDims {
    let c = &model.config;
    Conv1dDims {
        batch,
        c_in,
        c_out: c.conv_filters,
        len: c.seq_len,
        kernel: c.conv_kernel,
        padding: model.convs[i].padding,
    }
}
