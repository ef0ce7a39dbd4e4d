//! Pointwise arithmetic of the tape (add, mul, scale) and the bias broadcast:
//! the CPU kernels (`cpu`), the CUDA launches (`cuda`, with the column sum
//! that is a bias's gradient), and the forward and backward of each on either
//! device.

pub mod cpu;
pub mod cuda;

pub use cuda::Binary;

use crate::autograd::node::Op;
use crate::autograd::{Tape, Var};
use crate::cuda::exec::GpuExec;
use crate::cuda::tensors::{buf, new};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::on_gpu;
use crate::tensor::Tensor;

impl<T: Float> Tape<'_, T> {
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        self.same_shape("add", a, b)?;
        self.device_of("add", &[a, b])?;
        let value = binary(Binary::Add, self.value(a), self.value(b))?;
        Ok(self.push(value, Op::Add(a, b)))
    }

    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.same_shape("mul", a, b)?;
        self.device_of("mul", &[a, b])?;
        let value = binary(Binary::Mul, self.value(a), self.value(b))?;
        Ok(self.push(value, Op::Mul(a, b)))
    }

    pub fn scale(&mut self, a: Var, s: T) -> Result<Var> {
        let value = scaled(self.value(a), s)?;
        Ok(self.push(value, Op::Scale(a, s)))
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
                let mut y = vec![T::ZERO; self.value(x).numel()];
                cpu::add_bias_forward(self.data(x)?, self.data(b)?, &mut y);
                Tensor::from_vec(y, &sx)?
            }
            dev => on_gpu!(dev, be => gpu_add_bias(be, self.value(x), self.value(b)))?,
        };
        Ok(self.push(value, Op::AddBias(x, b)))
    }
}

/// a op b of two tensors of one shape on one device.
pub(crate) fn binary<T: Float>(op: Binary, a: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
    match a.device() {
        Device::Cpu => {
            let (xs, ys) = (a.as_slice()?, b.as_slice()?);
            let mut out = vec![T::ZERO; a.numel()];
            match op {
                Binary::Add => cpu::zip_map(xs, ys, &mut out, |x, y| x + y),
                Binary::Mul => cpu::zip_map(xs, ys, &mut out, |x, y| x * y),
            }
            Tensor::from_vec(out, a.shape())
        }
        dev => on_gpu!(dev, be => gpu_binary(be, op, a, b)),
    }
}

/// s·t in a new tensor (gradients may share buffers, so never in place).
pub(crate) fn scaled<T: Float>(t: &Tensor<T>, s: T) -> Result<Tensor<T>> {
    match t.device() {
        Device::Cpu => {
            let mut out = vec![T::ZERO; t.numel()];
            cpu::map(t.as_slice()?, &mut out, |x| x * s);
            Tensor::from_vec(out, t.shape())
        }
        dev => on_gpu!(dev, be => gpu_scale(be, t, s)),
    }
}

/// The gradient of a bias [c] from that of x + bias (the sum over rows).
pub(crate) fn bias_backward<T: Float>(g: &Tensor<T>, c: usize) -> Result<Tensor<T>> {
    match g.device() {
        Device::Cpu => {
            let mut db = vec![T::ZERO; c];
            cpu::add_bias_backward(g.as_slice()?, c, &mut db);
            Tensor::from_vec(db, &[c])
        }
        dev => on_gpu!(dev, be => column_sum(be, g, c)),
    }
}

/// Accumulates g into acc, as the backward does for a value used twice.
pub(crate) fn add_into<T: Float>(acc: &mut Tensor<T>, g: &Tensor<T>) -> Result<()> {
    match acc.device() {
        Device::Cpu => cpu::add_assign(acc.as_mut_slice()?, g.as_slice()?),
        // Out of place: a GPU gradient may share its buffer (add's backward
        // hands the same tensor to both operands).
        _ => *acc = binary(Binary::Add, acc, g)?,
    }
    Ok(())
}

fn gpu_binary<E: GpuExec, T: Float>(
    be: &E,
    op: Binary,
    a: &Tensor<T>,
    b: &Tensor<T>,
) -> Result<Tensor<T>> {
    new(be, a.shape(), |y| {
        cuda::binary(be, op, a.numel(), buf::<E, T>(a)?, buf::<E, T>(b)?, y)
    })
}

fn gpu_scale<E: GpuExec, T: Float>(be: &E, a: &Tensor<T>, s: T) -> Result<Tensor<T>> {
    new(be, a.shape(), |y| {
        cuda::scale(be, a.numel(), s.to_f64() as f32, buf::<E, T>(a)?, y)
    })
}

fn gpu_add_bias<E: GpuExec, T: Float>(be: &E, x: &Tensor<T>, b: &Tensor<T>) -> Result<Tensor<T>> {
    let c = b.numel();
    new(be, x.shape(), |y| {
        cuda::add_bias(be, x.numel() / c, c, buf::<E, T>(x)?, buf::<E, T>(b)?, y)
    })
}

/// Sums a gradient [rows, c] over its rows (the gradient of a bias).
pub(crate) fn column_sum<E: GpuExec, T: Float>(
    be: &E,
    g: &Tensor<T>,
    c: usize,
) -> Result<Tensor<T>> {
    new(be, &[c], |out| {
        cuda::column_sum(be, g.numel() / c, c, buf::<E, T>(g)?, out)
    })
}
