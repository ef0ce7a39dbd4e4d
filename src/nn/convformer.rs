//! ConvFormerNet: conv1d stack (relu, `same`) → transformer encoder blocks →
//! global average pooling over time → Dense(64, relu) → Dense(1), plus (as
//! an option) a linear skip from the flattened input window to the output, the
//! autoregressive "highway" of LSTNet (Lai et al., SIGIR 2018).

use super::conv::Conv1d;
use super::encoder::{Activation, EncoderOptions, TransformerEncoderBlock};
use super::init::SeedRng;
use super::linear::Linear;
use crate::autograd::{Padding, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::float::Float;

/// Every hyperparameter of the network. The four the original tuned are
/// `conv_filters`, `num_heads`, `ff_dim` and `dropout_rate`; the defaults are
/// its best configuration (48, 6, 243, 0.05).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Time steps per sample; 0 = taken from the data.
    pub seq_len: usize,
    /// Features per time step; 0 = taken from the data.
    pub in_channels: usize,
    pub conv_filters: usize,
    pub conv_layers: usize,
    pub conv_kernel: usize,
    pub num_heads: usize,
    /// Per-head width; `None` = ceil(conv_filters / num_heads) as Keras.
    pub key_dim: Option<usize>,
    pub ff_dim: usize,
    pub dropout_rate: f64,
    pub num_blocks: usize,
    pub dense_units: usize,
    pub activation: Activation,
    /// Pre-norm blocks (the default) instead of the original post-norm, whose
    /// last LayerNorm flattens the tokens and holds the output on a constant
    /// for the first epochs.
    pub norm_first: bool,
    pub layer_norm_eps: f64,
    /// A linear term of the whole input window added to the output (`skip.*`),
    /// fitted before training (see `TrainConfig::fit_skip`). Off by default:
    /// it wins the first epochs but takes the signal the other layers need,
    /// which then stop learning (benches/results/learning.md).
    pub linear_skip: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            seq_len: 0,
            in_channels: 0,
            conv_filters: 48,
            conv_layers: 2,
            conv_kernel: 3,
            num_heads: 6,
            key_dim: None,
            ff_dim: 243,
            dropout_rate: 0.05,
            num_blocks: 1,
            dense_units: 64,
            activation: Activation::Relu,
            norm_first: true,
            layer_norm_eps: 1e-6,
            linear_skip: false,
        }
    }
}

impl ModelConfig {
    /// Rejects configurations that cannot build a network, saying which field.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("seq_len", self.seq_len),
            ("in_channels", self.in_channels),
            ("conv_filters", self.conv_filters),
            ("conv_layers", self.conv_layers),
            ("conv_kernel", self.conv_kernel),
            ("num_heads", self.num_heads),
            ("ff_dim", self.ff_dim),
            ("dense_units", self.dense_units),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(Error::Invalid(format!(
                    "model config: {name} must be at least 1"
                )));
            }
        }
        if self.key_dim == Some(0) {
            return Err(Error::Invalid(
                "model config: key_dim must be at least 1".into(),
            ));
        }
        if !(0.0..1.0).contains(&self.dropout_rate) {
            return Err(Error::Invalid(format!(
                "model config: dropout_rate must be in [0, 1), got {}",
                self.dropout_rate
            )));
        }
        if self.layer_norm_eps.is_nan() || self.layer_norm_eps <= 0.0 {
            return Err(Error::Invalid(
                "model config: layer_norm_eps must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct ConvFormerNet {
    pub config: ModelConfig,
    pub convs: Vec<Conv1d>,
    pub blocks: Vec<TransformerEncoderBlock>,
    pub dense: Linear,
    pub out: Linear,
    /// [seq_len · in_channels] -> 1, when `config.linear_skip`.
    pub skip: Option<Linear>,
}

impl ConvFormerNet {
    /// Registers every parameter under PyTorch-style names (`convs.0.weight`,
    /// `blocks.0.attn.q_proj.weight`, `dense.weight`, `out.bias`, ...), drawing
    /// the initial weights from `seed`.
    pub fn new<T: Float>(
        store: &mut ParamStore<T>,
        config: &ModelConfig,
        seed: u64,
    ) -> Result<Self> {
        config.validate()?;
        let mut rng = SeedRng::new(seed);
        let f = config.conv_filters;
        let mut convs = Vec::with_capacity(config.conv_layers);
        for i in 0..config.conv_layers {
            let cin = if i == 0 { config.in_channels } else { f };
            convs.push(Conv1d::new(
                store,
                &format!("convs.{i}"),
                cin,
                f,
                config.conv_kernel,
                Padding::Same,
                &mut rng,
            )?);
        }
        let enc = EncoderOptions {
            d_model: f,
            num_heads: config.num_heads,
            key_dim: config.key_dim,
            ff_dim: config.ff_dim,
            dropout: config.dropout_rate,
            activation: config.activation,
            norm_first: config.norm_first,
            eps: config.layer_norm_eps,
        };
        let blocks = (0..config.num_blocks)
            .map(|i| TransformerEncoderBlock::new(store, &format!("blocks.{i}"), &enc, &mut rng))
            .collect::<Result<Vec<_>>>()?;
        let dense = Linear::new(store, "dense", f, config.dense_units, true, &mut rng)?;
        let out = Linear::new(store, "out", config.dense_units, 1, true, &mut rng)?;
        let skip = if config.linear_skip {
            let window = config.seq_len * config.in_channels;
            Some(Linear::new(store, "skip", window, 1, true, &mut rng)?)
        } else {
            None
        };
        Ok(ConvFormerNet {
            config: config.clone(),
            convs,
            blocks,
            dense,
            out,
            skip,
        })
    }

    /// x [B, seq_len, in_channels] -> predictions [B].
    pub fn forward<T: Float>(&self, tape: &mut Tape<'_, T>, x: Var) -> Result<Var> {
        let shape = tape.shape(x).to_vec();
        let c = &self.config;
        if shape.len() != 3 || shape[1] != c.seq_len || shape[2] != c.in_channels {
            return Err(Error::shape(
                "ConvFormerNet",
                &shape,
                &[0, c.seq_len, c.in_channels],
                "input must be [batch, seq_len, in_channels] as the model was built",
            ));
        }
        let batch = shape[0];
        // Channels-last throughout: [batch, time, features].
        let mut h = x;
        for conv in &self.convs {
            h = conv.forward_channels_last(tape, h, true)?;
        }
        for block in &self.blocks {
            h = block.forward(tape, h, None)?;
        }
        let pooled = tape.mean_pool(h, 1)?;
        let d = self.dense.forward_relu(tape, pooled)?;
        let mut y = self.out.forward(tape, d)?;
        if let Some(skip) = &self.skip {
            let flat = tape.reshape(x, &[batch, c.seq_len * c.in_channels])?;
            let linear = skip.forward(tape, flat)?;
            y = tape.add(y, linear)?;
        }
        tape.reshape(y, &[batch])
    }
}
