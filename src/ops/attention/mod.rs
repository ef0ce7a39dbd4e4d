//! Scaled dot-product attention per (batch, head): the [`AttentionDims`]
//! descriptor and [`HeadLayout`], the CPU kernels (`cpu`), the CUDA launches
//! (`cuda`), and the tape's forward and backward.

pub mod cpu;
pub mod cuda;
pub(crate) mod dims;

use dims::AttentionSaved;
pub use dims::{AttentionDims, HeadLayout};

use crate::autograd::node::Op;
use crate::autograd::{Tape, Var};
use crate::cuda::exec::{wrap_for, GpuBuffer, GpuExec};
use crate::cuda::launch::Backend;
use crate::cuda::tensors::{alloc, buf};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::on_gpu;
use crate::tensor::Tensor;

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

impl<T: Float> Tape<'_, T> {
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
        let device = self.device_of("attention", &[q, k, v])?;
        if device != Device::Cpu {
            let key_mask = key_mask.map(|m| upload_mask(device, m)).transpose()?;
            let (value, lse) = on_gpu!(device, be => gpu_forward(
                be, &dims, self.value(q), self.value(k), self.value(v), key_mask.as_ref()
            ))?;
            let saved = AttentionSaved {
                q,
                k,
                v,
                dims,
                layout: HeadLayout::HeadMajor,
                softmax: lse,
                key_mask,
            };
            return Ok(self.push(value, Op::Attention(saved)));
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
            if heads == 0 || !s[2].is_multiple_of(heads) {
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
        let (mut out, mut probs) = (
            vec![T::ZERO; dims.out_len()],
            vec![T::ZERO; dims.probs_len()],
        );
        cpu::attention_forward_in(
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
        let saved = AttentionSaved {
            q,
            k,
            v,
            dims,
            layout,
            softmax: Tensor::from_vec(probs, &[dims.probs_len()])?,
            key_mask: None,
        };
        Ok(self.push(value, Op::Attention(saved)))
    }
}

/// The key mask as one byte per entry on the executor of `device`.
fn upload_mask(device: Device, mask: &[bool]) -> Result<GpuBuffer> {
    on_gpu!(device, be => Ok(wrap_for(be, be.upload_mask(mask)?)))
}

/// out and the log-sum-exp of each query row (what the backward needs).
fn gpu_forward<E: GpuExec, T: Float>(
    be: &E,
    d: &AttentionDims,
    q: &Tensor<T>,
    k: &Tensor<T>,
    v: &Tensor<T>,
    mask: Option<&GpuBuffer>,
) -> Result<(Tensor<T>, Tensor<T>)> {
    let rows = d.batch * d.heads * d.tq;
    let (out, lse) = (alloc(be, d.out_len())?, alloc(be, rows)?);
    let mask = mask.map(E::unwrap).transpose()?;
    cuda::attention_fwd(
        be,
        d,
        cuda::AttentionPath::Auto,
        buf::<E, T>(q)?,
        buf::<E, T>(k)?,
        buf::<E, T>(v)?,
        mask,
        &out,
        &lse,
    )?;
    Ok((
        Tensor::from_gpu(E::wrap(out), &[d.batch, d.heads, d.tq, d.dv])?,
        Tensor::from_gpu(E::wrap(lse), &[rows])?,
    ))
}

/// dq, dk and dv of an attention node whose output is `out`, on the device of
/// the gradient `g`.
pub(crate) fn backward<T: Float>(
    s: &AttentionSaved<T>,
    [q, k, v]: [&Tensor<T>; 3],
    out: &Tensor<T>,
    g: &Tensor<T>,
) -> Result<[Tensor<T>; 3]> {
    let d = &s.dims;
    match g.device() {
        Device::Cpu => {
            let (mut dq, mut dk, mut dv) = (
                vec![T::ZERO; d.q_len()],
                vec![T::ZERO; d.k_len()],
                vec![T::ZERO; d.v_len()],
            );
            cpu::attention_backward_in(
                s.layout,
                d,
                q.as_slice()?,
                k.as_slice()?,
                v.as_slice()?,
                s.softmax.as_slice()?,
                g.as_slice()?,
                [&mut dq, &mut dk, &mut dv],
            );
            Ok([
                Tensor::from_vec(dq, q.shape())?,
                Tensor::from_vec(dk, k.shape())?,
                Tensor::from_vec(dv, v.shape())?,
            ])
        }
        dev => on_gpu!(dev, be => gpu_backward(be, s, [q, k, v], out, g)),
    }
}

fn gpu_backward<E: GpuExec, T: Float>(
    be: &E,
    s: &AttentionSaved<T>,
    [q, k, v]: [&Tensor<T>; 3],
    out: &Tensor<T>,
    g: &Tensor<T>,
) -> Result<[Tensor<T>; 3]> {
    let d = &s.dims;
    let rows = d.batch * d.heads * d.tq;
    let (dq, dk, dv, delta) = (
        alloc(be, d.q_len())?,
        alloc(be, d.k_len())?,
        alloc(be, d.v_len())?,
        alloc(be, rows)?,
    );
    cuda::attention_bwd(
        be,
        d,
        buf::<E, T>(q)?,
        buf::<E, T>(k)?,
        buf::<E, T>(v)?,
        s.key_mask.as_ref().map(E::unwrap).transpose()?,
        buf::<E, T>(out)?,
        buf::<E, T>(g)?,
        buf::<E, T>(&s.softmax)?,
        &delta,
        &dq,
        &dk,
        &dv,
    )?;
    Ok([
        Tensor::from_gpu(E::wrap(dq), q.shape())?,
        Tensor::from_gpu(E::wrap(dk), k.shape())?,
        Tensor::from_gpu(E::wrap(dv), v.shape())?,
    ])
}
