//! The tape's kernel ops: shape checks, a call into `cpu::`, and the node that
//! the backward pass needs. Shape errors name the op and both shapes.

use super::gpu;
use super::node::{Node, Op, Var};
use super::tape::{map, Tape};
use super::{LossKind, Padding};
use crate::cpu::{self, dropout::DropoutDims};
use crate::cpu::{AttentionDims, Conv1dDims, HeadLayout, LayerNormDims, LinearDims, MatmulDims};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::on_gpu;
use crate::ops::unary::{self, Unary};
use crate::tensor::Tensor;

/// How a convolution node runs: relu applied in place, channels-last layout.
#[derive(Clone, Copy, Default)]
struct ConvOpts {
    relu: bool,
    channels_last: bool,
}

fn zeros<T: Float>(n: usize) -> Vec<T> {
    vec![T::ZERO; n]
}

/// A key mask must hold one entry per (batch entry, key).
fn check_key_mask(
    op: &'static str,
    dims: &AttentionDims,
    key_mask: Option<&[bool]>,
    k_shape: &[usize],
) -> Result<()> {
    match key_mask {
        Some(m) if m.len() != dims.batch * dims.tk => Err(Error::shape(
            op,
            k_shape,
            &[m.len()],
            "key_mask needs B·Tk entries",
        )),
        _ => Ok(()),
    }
}

/// relu of `conv1d_relu`'s GPU output: a second kernel, as the conv kernel has
/// no epilogue (`linear_relu` fuses it into the GEMM; the CPU applies it in place).
fn gpu_relu_if<T: Float>(relu: bool, y: Tensor<T>) -> Result<Tensor<T>> {
    if !relu {
        return Ok(y);
    }
    unary::forward(Unary::Relu, &y)
}

impl<'s, T: Float> Tape<'s, T> {
    fn data(&self, v: Var) -> Result<&[T]> {
        self.value(v).as_slice()
    }

    fn expect_rank(&self, op: &'static str, v: Var, rank: usize, what: &str) -> Result<()> {
        let s = self.shape(v);
        if s.len() != rank {
            return Err(Error::shape(
                op,
                s,
                &[],
                format!("{what} must have {rank} dimensions"),
            ));
        }
        Ok(())
    }

    /// a [..., m, k] · b [..., k, n] (either transposed: a stored [..., k, m],
    /// b stored [..., n, k]); b has a's leading dims or is 2-D and shared.
    pub fn matmul(&mut self, a: Var, b: Var, trans_a: bool, trans_b: bool) -> Result<Var> {
        let (sa, sb) = (self.shape(a).to_vec(), self.shape(b).to_vec());
        let bad = |why: &str| Error::shape("matmul", &sa, &sb, why);
        if sa.len() < 2 || sb.len() < 2 {
            return Err(bad("both operands need at least 2 dimensions"));
        }
        let b_shared = sb.len() == 2 && sa.len() > 2;
        if !b_shared && sa[..sa.len() - 2] != sb[..sb.len() - 2] {
            return Err(bad("leading (batch) dimensions differ"));
        }
        let (ra, ca) = (sa[sa.len() - 2], sa[sa.len() - 1]);
        let (rb, cb) = (sb[sb.len() - 2], sb[sb.len() - 1]);
        let (m, k) = if trans_a { (ca, ra) } else { (ra, ca) };
        let (kb, n) = if trans_b { (cb, rb) } else { (rb, cb) };
        if k != kb {
            return Err(bad(&format!("inner dimensions differ ({k} vs {kb})")));
        }
        let batch = sa[..sa.len() - 2].iter().product();
        let dims = MatmulDims {
            batch,
            m,
            k,
            n,
            trans_a,
            trans_b,
            b_shared,
        };
        let mut shape = sa[..sa.len() - 2].to_vec();
        shape.extend([m, n]);
        let value = match self.device_of("matmul", &[a, b])? {
            Device::Cpu => {
                let mut c = zeros(dims.c_len());
                cpu::matmul::matmul_forward(&dims, self.data(a)?, self.data(b)?, &mut c);
                Tensor::from_vec(c, &shape)?
            }
            dev => {
                on_gpu!(dev, be => gpu::matmul(be, &dims, self.value(a), self.value(b), &shape))?
            }
        };
        Ok(self.push(value, Op::Matmul { a, b, dims }))
    }

    /// x [..., in] · wᵀ + b, with w [out, in] and b [out].
    pub fn linear(&mut self, x: Var, w: Var, b: Option<Var>) -> Result<Var> {
        self.linear_then(x, w, b, false)
    }

    /// relu(x · wᵀ + b) as one node: the activation is applied in place on the
    /// product, and its backward masks the incoming gradient in place.
    pub fn linear_relu(&mut self, x: Var, w: Var, b: Option<Var>) -> Result<Var> {
        self.linear_then(x, w, b, true)
    }

    fn linear_then(&mut self, x: Var, w: Var, b: Option<Var>, relu: bool) -> Result<Var> {
        let (sx, sw) = (self.shape(x).to_vec(), self.shape(w).to_vec());
        if sw.len() != 2 || sx[sx.len() - 1] != sw[1] {
            return Err(Error::shape(
                "linear",
                &sx,
                &sw,
                "x [..., in] needs a weight [out, in]",
            ));
        }
        let (d_in, d_out) = (sw[1], sw[0]);
        if let Some(b) = b {
            if self.shape(b) != [d_out] {
                return Err(Error::shape(
                    "linear",
                    &sw,
                    self.shape(b),
                    "bias must be [out]",
                ));
            }
        }
        let dims = LinearDims {
            rows: sx.iter().product::<usize>() / d_in.max(1),
            d_in,
            d_out,
        };
        let mut shape = sx.clone();
        *shape.last_mut().expect("rank >= 1") = d_out;
        let operands: Vec<Var> = [x, w].into_iter().chain(b).collect();
        let value = match self.device_of("linear", &operands)? {
            Device::Cpu => {
                let mut y = zeros(dims.rows * d_out);
                let bias = b.map(|b| self.data(b)).transpose()?;
                cpu::matmul::linear_forward(&dims, self.data(x)?, self.data(w)?, bias, &mut y);
                if relu {
                    unary::cpu::relu_inplace(&mut y);
                }
                Tensor::from_vec(y, &shape)?
            }
            dev => {
                let bias = b.map(|b| self.value(b));
                on_gpu!(dev, be => gpu::linear(be, &dims, self.value(x), self.value(w), bias, relu, &shape))?
            }
        };
        Ok(self.push(
            value,
            Op::Linear {
                x,
                w,
                b,
                dims,
                relu,
            },
        ))
    }

    /// x [B, Cin, L] ⊛ w [Cout, Cin, K] + b [Cout] -> [B, Cout, Lout], stride 1.
    pub fn conv1d(&mut self, x: Var, w: Var, b: Option<Var>, padding: Padding) -> Result<Var> {
        self.conv1d_then(x, w, b, padding, ConvOpts::default())
    }

    /// relu(conv1d(x, w) + b) as one node, like [`Tape::linear_relu`].
    pub fn conv1d_relu(&mut self, x: Var, w: Var, b: Option<Var>, padding: Padding) -> Result<Var> {
        let opts = ConvOpts {
            relu: true,
            ..ConvOpts::default()
        };
        self.conv1d_then(x, w, b, padding, opts)
    }

    /// [`Tape::conv1d`] on channels-last samples: x [B, L, Cin] -> [B, Lout, Cout]
    /// (w stays [Cout, Cin, K]), with relu if `relu`. The layout of a
    /// transformer's activations, so a model needs no permutes around it.
    pub fn conv1d_channels_last(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        padding: Padding,
        relu: bool,
    ) -> Result<Var> {
        if self.device_of("conv1d_channels_last", &[x, w])? != Device::Cpu {
            let xc = self.permute(x, &[0, 2, 1])?;
            let opts = ConvOpts {
                relu,
                ..ConvOpts::default()
            };
            let y = self.conv1d_then(xc, w, b, padding, opts)?;
            return self.permute(y, &[0, 2, 1]);
        }
        let opts = ConvOpts {
            relu,
            channels_last: true,
        };
        self.conv1d_then(x, w, b, padding, opts)
    }

    fn conv1d_then(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        padding: Padding,
        ConvOpts {
            relu,
            channels_last,
        }: ConvOpts,
    ) -> Result<Var> {
        let (sx, sw) = (self.shape(x).to_vec(), self.shape(w).to_vec());
        let bad = |why: &str| Error::shape("conv1d", &sx, &sw, why);
        if sx.len() != 3 || sw.len() != 3 {
            return Err(bad(if channels_last {
                "x must be [B, L, Cin] and w [Cout, Cin, K]"
            } else {
                "x must be [B, Cin, L] and w [Cout, Cin, K]"
            }));
        }
        let (c_in, len) = if channels_last {
            (sx[2], sx[1])
        } else {
            (sx[1], sx[2])
        };
        if c_in != sw[1] {
            return Err(bad("input channels of x and w differ"));
        }
        if sw[2] == 0 || (padding == Padding::Valid && len < sw[2]) {
            return Err(bad(
                "kernel is empty or longer than the sequence (valid padding)",
            ));
        }
        let dims = Conv1dDims {
            batch: sx[0],
            c_in,
            c_out: sw[0],
            len,
            kernel: sw[2],
            padding,
        };
        if let Some(b) = b {
            if self.shape(b) != [dims.c_out] {
                return Err(Error::shape(
                    "conv1d",
                    &sw,
                    self.shape(b),
                    "bias must be [Cout]",
                ));
            }
        }
        let operands: Vec<Var> = [x, w].into_iter().chain(b).collect();
        let value = match self.device_of("conv1d", &operands)? {
            Device::Cpu => {
                let mut y = zeros(dims.y_len());
                let bias = b.map(|b| self.data(b)).transpose()?;
                let (xs, ws) = (self.data(x)?, self.data(w)?);
                let shape = if channels_last {
                    cpu::conv1d_nwc::conv1d_forward_nwc(&dims, xs, ws, bias, &mut y);
                    [dims.batch, dims.out_len(), dims.c_out]
                } else {
                    cpu::conv1d::conv1d_forward(&dims, xs, ws, bias, &mut y);
                    [dims.batch, dims.c_out, dims.out_len()]
                };
                if relu {
                    unary::cpu::relu_inplace(&mut y);
                }
                Tensor::from_vec(y, &shape)?
            }
            dev => {
                let bias = b.map(|b| self.value(b));
                let y =
                    on_gpu!(dev, be => gpu::conv1d(be, &dims, self.value(x), self.value(w), bias))?;
                gpu_relu_if(relu, y)?
            }
        };
        Ok(self.push(
            value,
            Op::Conv1d {
                x,
                w,
                b,
                dims,
                relu,
                channels_last,
            },
        ))
    }

    /// Layer normalisation over the last dimension with affine w, b [D].
    pub fn layer_norm(&mut self, x: Var, w: Var, b: Var, eps: f64) -> Result<Var> {
        let sx = self.shape(x).to_vec();
        let dim = sx[sx.len() - 1];
        for p in [w, b] {
            if self.shape(p) != [dim] {
                return Err(Error::shape(
                    "layer_norm",
                    &sx,
                    self.shape(p),
                    "weight and bias must be [last dim of x]",
                ));
            }
        }
        let dims = LayerNormDims {
            rows: sx.iter().product::<usize>() / dim.max(1),
            dim,
            eps,
        };
        if let dev @ (Device::Cuda(_) | Device::CudaEmu) =
            self.device_of("layer_norm", &[x, w, b])?
        {
            let (value, mean, rstd) = on_gpu!(dev, be => gpu::layer_norm(
                be, &dims, self.value(x), self.value(w), self.value(b)
            ))?;
            let op = Op::LayerNormGpu {
                x,
                w,
                b,
                dims,
                mean,
                rstd,
            };
            return Ok(self.push(value, op));
        }
        let (mut y, mut mean, mut rstd) = (
            zeros(sx.iter().product()),
            zeros(dims.rows),
            zeros(dims.rows),
        );
        cpu::layernorm::layer_norm_forward(
            &dims,
            self.data(x)?,
            self.data(w)?,
            self.data(b)?,
            &mut y,
            &mut mean,
            &mut rstd,
        );
        let value = Tensor::from_vec(y, &sx)?;
        Ok(self.push(
            value,
            Op::LayerNorm {
                x,
                w,
                b,
                dims,
                mean,
                rstd,
            },
        ))
    }

    /// softmax(Q·Kᵀ/√D)·V per (batch, head): q [B, H, Tq, D], k [B, H, Tk, D],
    /// v [B, H, Tk, Dv] -> [B, H, Tq, Dv]; key_mask has B·Tk entries, true = attend.
    pub fn attention(&mut self, q: Var, k: Var, v: Var, key_mask: Option<&[bool]>) -> Result<Var> {
        for (var, what) in [(q, "q"), (k, "k"), (v, "v")] {
            self.expect_rank("attention", var, 4, what)?;
        }
        let (sq, sk, sv) = (
            self.shape(q).to_vec(),
            self.shape(k).to_vec(),
            self.shape(v).to_vec(),
        );
        if sq[..2] != sk[..2] || sq[3] != sk[3] {
            return Err(Error::shape(
                "attention",
                &sq,
                &sk,
                "q and k need the same B, H and D",
            ));
        }
        if sk[..3] != sv[..3] {
            return Err(Error::shape(
                "attention",
                &sk,
                &sv,
                "k and v need the same B, H and Tk",
            ));
        }
        let dims = AttentionDims {
            batch: sq[0],
            heads: sq[1],
            tq: sq[2],
            tk: sk[2],
            d: sq[3],
            dv: sv[3],
        };
        check_key_mask("attention", &dims, key_mask, &sk)?;
        if let dev @ (Device::Cuda(_) | Device::CudaEmu) =
            self.device_of("attention", &[q, k, v])?
        {
            let key_mask = key_mask.map(|m| gpu::upload_mask(dev, m)).transpose()?;
            let (value, lse) = on_gpu!(dev, be => gpu::attention(
                be, &dims, self.value(q), self.value(k), self.value(v), key_mask.as_ref()
            ))?;
            let op = Op::AttentionGpu {
                q,
                k,
                v,
                dims,
                key_mask,
                lse,
            };
            return Ok(self.push(value, op));
        }
        let shape = [dims.batch, dims.heads, dims.tq, dims.dv];
        self.attention_on_cpu(q, k, v, dims, HeadLayout::HeadMajor, key_mask, &shape)
    }

    /// Attention on token-major operands, as linear projections produce them:
    /// q [B, Tq, H·D], k [B, Tk, H·D], v [B, Tk, H·Dv] -> [B, Tq, H·Dv], head h
    /// being columns h·D..(h+1)·D. The same as splitting the heads out with
    /// reshape and permute, [`Tape::attention`], and merging them back, which is
    /// what runs on a GPU; the CPU reads the heads in place.
    pub fn attention_tokens(
        &mut self,
        q: Var,
        k: Var,
        v: Var,
        heads: usize,
        key_mask: Option<&[bool]>,
    ) -> Result<Var> {
        for (var, what) in [(q, "q"), (k, "k"), (v, "v")] {
            self.expect_rank("attention_tokens", var, 3, what)?;
            let s = self.shape(var);
            if heads == 0 || s[2] % heads != 0 {
                return Err(Error::shape(
                    "attention_tokens",
                    s,
                    &[heads],
                    format!("{what}'s last axis must split into {heads} heads"),
                ));
            }
        }
        let split = |t: &mut Self, x: Var| -> Result<Var> {
            let s = t.shape(x).to_vec();
            let x = t.reshape(x, &[s[0], s[1], heads, s[2] / heads])?;
            t.permute(x, &[0, 2, 1, 3])
        };
        let device = self.device_of("attention_tokens", &[q, k, v])?;
        if device != Device::Cpu {
            let (hq, hk, hv) = (split(self, q)?, split(self, k)?, split(self, v)?);
            let o = self.attention(hq, hk, hv, key_mask)?;
            let o = self.permute(o, &[0, 2, 1, 3])?;
            let s = self.shape(o).to_vec();
            return self.reshape(o, &[s[0], s[1], s[2] * s[3]]);
        }
        let (sq, sk, sv) = (
            self.shape(q).to_vec(),
            self.shape(k).to_vec(),
            self.shape(v).to_vec(),
        );
        if sq[0] != sk[0] || sq[2] != sk[2] || sk[..2] != sv[..2] {
            return Err(Error::shape(
                "attention_tokens",
                &sq,
                &sk,
                "q, k and v need the same B, k and v the same Tk, q and k the same H·D",
            ));
        }
        let dims = AttentionDims {
            batch: sq[0],
            heads,
            tq: sq[1],
            tk: sk[1],
            d: sq[2] / heads,
            dv: sv[2] / heads,
        };
        check_key_mask("attention_tokens", &dims, key_mask, &sk)?;
        let shape = [dims.batch, dims.tq, heads * dims.dv];
        self.attention_on_cpu(q, k, v, dims, HeadLayout::TokenMajor, key_mask, &shape)
    }

    #[allow(clippy::too_many_arguments)]
    fn attention_on_cpu(
        &mut self,
        q: Var,
        k: Var,
        v: Var,
        dims: AttentionDims,
        layout: HeadLayout,
        key_mask: Option<&[bool]>,
        shape: &[usize],
    ) -> Result<Var> {
        let (mut out, mut probs) = (zeros(dims.out_len()), zeros(dims.probs_len()));
        cpu::attention::attention_forward_in(
            layout,
            &dims,
            self.data(q)?,
            self.data(k)?,
            self.data(v)?,
            key_mask,
            &mut out,
            &mut probs,
        );
        let value = Tensor::from_vec(out, shape)?;
        Ok(self.push(
            value,
            Op::Attention {
                q,
                k,
                v,
                dims,
                layout,
                probs,
            },
        ))
    }

    /// Inverted dropout: identity unless in training mode. The mask of call c
    /// (c = the tape's dropout counter, starting at 0 and incremented by every
    /// training-mode dropout call, p = 0 included) comes from Philox(seed, c).
    pub fn dropout(&mut self, x: Var, p: f64) -> Result<Var> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::Invalid(format!(
                "dropout: p = {p} is outside [0, 1)"
            )));
        }
        if !self.is_training() {
            return Ok(x);
        }
        let (numel, rows) = (self.value(x).numel(), self.shape(x).first().copied());
        let dims = DropoutDims {
            p,
            seed: self.dropout_seed,
            call: self.dropout_counter,
            offset: match rows {
                Some(rows) if rows > 0 => (self.first_row * (numel / rows)) as u64,
                _ => 0,
            },
        };
        self.dropout_counter += 1;
        if p == 0.0 {
            return Ok(x);
        }
        let (value, keep) = match self.value(x).device() {
            Device::Cpu => {
                let mut y = zeros(self.value(x).numel());
                let keep = cpu::dropout::dropout_forward(&dims, self.data(x)?, &mut y);
                (Tensor::from_vec(y, self.shape(x))?, keep)
            }
            dev => (
                on_gpu!(dev, be => gpu::dropout(be, &dims, self.value(x)))?,
                Vec::new(),
            ),
        };
        Ok(self.push(value, Op::Dropout { x, dims, keep }))
    }

    /// x [..., C] + b [C].
    pub fn add_bias(&mut self, x: Var, b: Var) -> Result<Var> {
        let (sx, sb) = (self.shape(x).to_vec(), self.shape(b).to_vec());
        if sb.len() != 1 || sx[sx.len() - 1] != sb[0] {
            return Err(Error::shape(
                "add_bias",
                &sx,
                &sb,
                "bias must be [last dim of x]",
            ));
        }
        let value = match self.device_of("add_bias", &[x, b])? {
            Device::Cpu => {
                let mut y = zeros(self.value(x).numel());
                cpu::elementwise::add_bias_forward(self.data(x)?, self.data(b)?, &mut y);
                Tensor::from_vec(y, &sx)?
            }
            dev => on_gpu!(dev, be => gpu::add_bias(be, self.value(x), self.value(b)))?,
        };
        Ok(self.push(value, Op::AddBias(x, b)))
    }

    /// Reorders axes: output axis i is input axis perm[i].
    pub fn permute(&mut self, x: Var, perm: &[usize]) -> Result<Var> {
        let sx = self.shape(x).to_vec();
        let mut seen = vec![false; sx.len()];
        let valid = perm.len() == sx.len()
            && perm
                .iter()
                .all(|&p| p < sx.len() && !std::mem::replace(&mut seen[p], true));
        if !valid {
            return Err(Error::shape(
                "permute",
                &sx,
                perm,
                "perm must be a permutation of the axes",
            ));
        }
        let value = match self.value(x).device() {
            Device::Cpu => {
                let mut y = zeros(self.value(x).numel());
                cpu::elementwise::permute(&sx, perm, self.data(x)?, &mut y);
                Tensor::from_vec(y, &cpu::elementwise::permuted_shape(&sx, perm))?
            }
            dev => on_gpu!(dev, be => gpu::permute(be, self.value(x), perm))?,
        };
        Ok(self.push(value, Op::Permute(x, perm.to_vec())))
    }

    /// Mean loss over all elements; pred and target have the same shape.
    pub fn loss(&mut self, pred: Var, target: Var, kind: LossKind) -> Result<Var> {
        self.same_shape("loss", pred, target)?;
        match kind {
            LossKind::Huber(d) if d.is_nan() || d <= 0.0 => {
                return Err(Error::Invalid(format!("loss: Huber delta {d} must be > 0")))
            }
            LossKind::Quantile(q) if q.is_nan() || q <= 0.0 || q >= 1.0 => {
                return Err(Error::Invalid(format!(
                    "loss: quantile {q} must be in (0, 1)"
                )))
            }
            _ => {}
        }
        let value = match self.device_of("loss", &[pred, target])? {
            Device::Cpu => Tensor::scalar(cpu::losses::loss_forward(
                kind,
                self.data(pred)?,
                self.data(target)?,
            )),
            dev => on_gpu!(dev, be => gpu::loss(be, kind, self.value(pred), self.value(target)))?,
        };
        Ok(self.push(value, Op::Loss { pred, target, kind }))
    }
}

/// Backward of the kernel ops (those defined in this file).
pub(super) fn backward_kernel<T: Float>(
    nodes: &[Node<T>],
    op: &Op<T>,
    out: &Tensor<T>,
    g: Tensor<T>,
) -> Result<Vec<(Var, Tensor<T>)>> {
    let val = |v: Var| &nodes[v.0].value;
    let data = |v: Var| nodes[v.0].value.as_slice();
    let like = |v: Var, data: Vec<T>| Tensor::from_vec(data, val(v).shape());
    let mut g = g;
    if let Op::Linear { relu: true, .. } | Op::Conv1d { relu: true, .. } = op {
        unary::cpu::relu_backward_inplace(out.as_slice()?, g.as_mut_slice()?);
    }
    let gs = g.as_slice()?;
    Ok(match op {
        Op::Matmul { a, b, dims } => {
            let (mut da, mut db) = (zeros(dims.a_len()), zeros(dims.b_len()));
            cpu::matmul::matmul_backward(dims, data(*a)?, data(*b)?, gs, &mut da, &mut db);
            vec![(*a, like(*a, da)?), (*b, like(*b, db)?)]
        }
        Op::Linear { x, w, b, dims, .. } => {
            let (mut dx, mut dw) = (zeros(val(*x).numel()), zeros(val(*w).numel()));
            let mut db = b.map(|_| zeros(dims.d_out));
            cpu::matmul::linear_backward(
                dims,
                data(*x)?,
                data(*w)?,
                gs,
                &mut dx,
                &mut dw,
                db.as_deref_mut(),
            );
            let mut grads = vec![(*x, like(*x, dx)?), (*w, like(*w, dw)?)];
            if let (Some(b), Some(db)) = (b, db) {
                grads.push((*b, like(*b, db)?));
            }
            grads
        }
        Op::Conv1d {
            x,
            w,
            b,
            dims,
            channels_last,
            ..
        } => {
            let mut dx = nodes[x.0].needs_grad.then(|| zeros(dims.x_len()));
            let mut dw = zeros(dims.w_len());
            let mut db = b.map(|_| zeros(dims.c_out));
            let backward = if *channels_last {
                cpu::conv1d_nwc::conv1d_backward_nwc
            } else {
                cpu::conv1d::conv1d_backward
            };
            backward(
                dims,
                data(*x)?,
                data(*w)?,
                gs,
                dx.as_deref_mut(),
                &mut dw,
                db.as_deref_mut(),
            );
            let mut grads = vec![(*w, like(*w, dw)?)];
            if let Some(dx) = dx {
                grads.push((*x, like(*x, dx)?));
            }
            if let (Some(b), Some(db)) = (b, db) {
                grads.push((*b, like(*b, db)?));
            }
            grads
        }
        Op::LayerNorm {
            x,
            w,
            b,
            dims,
            mean,
            rstd,
        } => {
            let mut dx = zeros(val(*x).numel());
            let (mut dw, mut db) = (zeros(dims.dim), zeros(dims.dim));
            cpu::layernorm::layer_norm_backward(
                dims,
                data(*x)?,
                data(*w)?,
                mean,
                rstd,
                gs,
                &mut dx,
                &mut dw,
                &mut db,
            );
            vec![
                (*x, like(*x, dx)?),
                (*w, like(*w, dw)?),
                (*b, like(*b, db)?),
            ]
        }
        Op::Attention {
            q,
            k,
            v,
            dims,
            layout,
            probs,
        } => {
            let (mut dq, mut dk, mut dv) = (
                zeros(dims.q_len()),
                zeros(dims.k_len()),
                zeros(dims.v_len()),
            );
            cpu::attention::attention_backward_in(
                *layout,
                dims,
                data(*q)?,
                data(*k)?,
                data(*v)?,
                probs,
                gs,
                [&mut dq, &mut dk, &mut dv],
            );
            vec![
                (*q, like(*q, dq)?),
                (*k, like(*k, dk)?),
                (*v, like(*v, dv)?),
            ]
        }
        Op::Dropout { x, dims, keep } => {
            let mut dx = zeros(out.numel());
            cpu::dropout::dropout_backward(dims.p, keep, gs, &mut dx);
            vec![(*x, like(*x, dx)?)]
        }
        Op::AddBias(x, b) => {
            let c = val(*b).numel();
            let mut db = zeros(c);
            cpu::elementwise::add_bias_backward(gs, c, &mut db);
            vec![(*b, like(*b, db)?), (*x, g)]
        }
        Op::Permute(x, perm) => {
            let inverse = cpu::elementwise::inverse_permutation(perm);
            let mut dx = zeros(out.numel());
            cpu::elementwise::permute(out.shape(), &inverse, gs, &mut dx);
            vec![(*x, like(*x, dx)?)]
        }
        Op::Loss { pred, target, kind } => {
            let mut dp = zeros(val(*pred).numel());
            cpu::losses::loss_backward(*kind, data(*pred)?, data(*target)?, gs[0], &mut dp);
            let dt = map(&like(*pred, dp.clone())?, |v| -v)?;
            vec![
                (*pred, like(*pred, dp)?),
                (*target, dt.reshape(val(*target).shape())?),
            ]
        }
        Op::Leaf
        | Op::Param(_)
        | Op::Add(..)
        | Op::Mul(..)
        | Op::Scale(..)
        | Op::Reshape(_)
        | Op::Unary(..)
        | Op::Softmax(_)
        | Op::MeanPool(..) => {
            unreachable!("handled in backward::backward_op")
        }
        Op::LayerNormGpu { .. } | Op::AttentionGpu { .. } => {
            return Err(Error::Device(
                "a GPU node's backward with a CPU gradient".into(),
            ))
        }
    })
}
