//! Stride-1 1-D convolution: the [`Conv1dDims`] descriptor and [`Padding`],
//! the CPU kernels channels-first (`cpu`) and channels-last (`cpu_nwc`), the
//! CUDA launches (`cuda`, channels-first), and the tape's forward and
//! backward, with relu optionally fused in.

pub mod cpu;
pub mod cpu_nwc;
pub mod cuda;
pub(crate) mod dims;

use dims::Conv1dSaved;
pub use dims::{Conv1dDims, Padding};

use crate::autograd::node::Op;
use crate::autograd::{Tape, Var};
use crate::cuda::exec::GpuExec;
use crate::cuda::tensors::{alloc, buf, new, opt_buf};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::on_gpu;
use crate::ops::matmul::cpu::GemmEpilogue;
use crate::ops::unary::{self, Unary};
use crate::tensor::Tensor;

/// How a convolution node runs: relu applied in place, channels-last layout.
#[derive(Clone, Copy, Default)]
struct ConvOpts {
    relu: bool,
    channels_last: bool,
}

impl<T: Float> Tape<'_, T> {
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
        let device = self.layer_device("conv1d", [x, w], b, dims.c_out, "bias must be [Cout]")?;
        let value = match device {
            Device::Cpu => {
                let mut y = vec![T::ZERO; dims.y_len()];
                let bias = b.map(|b| self.data(b)).transpose()?;
                let (xs, ws) = (self.data(x)?, self.data(w)?);
                let shape = if channels_last {
                    // relu in the GEMM's store, with the bias.
                    let ep = GemmEpilogue {
                        bias,
                        relu,
                        residual: false,
                    };
                    let taps = cpu_nwc::taps_major(&dims, ws);
                    cpu_nwc::conv1d_forward_taps(&dims, xs, &taps, ep, &mut y, &mut Vec::new());
                    [dims.batch, dims.out_len(), dims.c_out]
                } else {
                    cpu::conv1d_forward(&dims, xs, ws, bias, &mut y);
                    if relu {
                        unary::cpu::relu_inplace(&mut y);
                    }
                    [dims.batch, dims.c_out, dims.out_len()]
                };
                Tensor::from_vec(y, &shape)?
            }
            dev => {
                let bias = b.map(|b| self.value(b));
                let y =
                    on_gpu!(dev, be => gpu_forward(be, &dims, self.value(x), self.value(w), bias))?;
                // The conv kernel has no epilogue: relu is a second kernel.
                if relu {
                    unary::forward(Unary::Relu, &y)?
                } else {
                    y
                }
            }
        };
        let saved = Conv1dSaved {
            x,
            w,
            b,
            dims,
            relu,
            channels_last,
        };
        Ok(self.push(value, Op::Conv1d(saved)))
    }
}

fn gpu_forward<E: GpuExec, T: Float>(
    be: &E,
    d: &Conv1dDims,
    x: &Tensor<T>,
    w: &Tensor<T>,
    b: Option<&Tensor<T>>,
) -> Result<Tensor<T>> {
    new(be, &[d.batch, d.c_out, d.out_len()], |y| {
        cuda::conv1d_fwd(
            be,
            d,
            buf::<E, T>(x)?,
            buf::<E, T>(w)?,
            opt_buf::<E, T>(b)?,
            y,
        )
    })
}

/// The gradients of a convolution node whose output is `out`, on the device
/// of the gradient `g`: dw, and dx when `want_dx` (x needs a gradient), and db
/// when the node has a bias.
pub(crate) fn backward<T: Float>(
    s: &Conv1dSaved,
    x: &Tensor<T>,
    w: &Tensor<T>,
    out: &Tensor<T>,
    g: Tensor<T>,
    want_dx: bool,
) -> Result<Conv1dGrads<T>> {
    let g = if s.relu {
        unary::fused_relu_backward(out, g)?
    } else {
        g
    };
    if let dev @ (Device::Cuda(_) | Device::CudaEmu) = g.device() {
        return on_gpu!(dev, be => gpu_backward(be, s, x, w, &g, want_dx));
    }
    let d = &s.dims;
    let mut dx = want_dx.then(|| vec![T::ZERO; d.x_len()]);
    let mut dw = vec![T::ZERO; d.w_len()];
    let mut db = s.b.map(|_| vec![T::ZERO; d.c_out]);
    let kernel = if s.channels_last {
        cpu_nwc::conv1d_backward_nwc
    } else {
        cpu::conv1d_backward
    };
    kernel(
        d,
        x.as_slice()?,
        w.as_slice()?,
        g.as_slice()?,
        dx.as_deref_mut(),
        &mut dw,
        db.as_deref_mut(),
    );
    Ok(Conv1dGrads {
        dx: dx.map(|dx| Tensor::from_vec(dx, x.shape())).transpose()?,
        dw: Tensor::from_vec(dw, w.shape())?,
        db: db.map(|db| Tensor::from_vec(db, &[d.c_out])).transpose()?,
    })
}

pub(crate) struct Conv1dGrads<T: Float> {
    pub dx: Option<Tensor<T>>,
    pub dw: Tensor<T>,
    pub db: Option<Tensor<T>>,
}

fn gpu_backward<E: GpuExec, T: Float>(
    be: &E,
    s: &Conv1dSaved,
    x: &Tensor<T>,
    w: &Tensor<T>,
    g: &Tensor<T>,
    want_dx: bool,
) -> Result<Conv1dGrads<T>> {
    let d = &s.dims;
    let dx = want_dx.then(|| alloc(be, d.x_len())).transpose()?;
    let dw = alloc(be, d.w_len())?;
    let db = s.b.map(|_| alloc(be, d.c_out)).transpose()?;
    cuda::conv1d_bwd(
        be,
        d,
        buf::<E, T>(x)?,
        buf::<E, T>(w)?,
        buf::<E, T>(g)?,
        dx.as_ref(),
        Some(&dw),
        db.as_ref(),
    )?;
    let wrap = |b: E::Buffer, shape: &[usize]| Tensor::from_gpu(E::wrap(b), shape);
    Ok(Conv1dGrads {
        dx: dx.map(|dx| wrap(dx, x.shape())).transpose()?,
        dw: wrap(dw, w.shape())?,
        db: db.map(|db| wrap(db, &[d.c_out])).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// out_len counts the window positions that fit (Valid) or keeps the
    /// length (Same), for every small length and kernel.
    #[test]
    fn out_len_counts_the_output_positions() {
        for len in 0..12 {
            for kernel in 1..8 {
                let d = |padding| Conv1dDims {
                    batch: 1,
                    c_in: 1,
                    c_out: 1,
                    len,
                    kernel,
                    padding,
                };
                let fitting = (0..len).filter(|t| t + kernel <= len).count();
                assert_eq!(d(Padding::Valid).out_len(), fitting, "len {len} k {kernel}");
                assert_eq!(d(Padding::Same).out_len(), len);
                let pad = d(Padding::Same).pad_left();
                assert!(pad + (kernel - 1 - pad) == kernel - 1 && pad <= kernel - 1 - pad);
            }
        }
    }
}
