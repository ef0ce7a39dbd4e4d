//! The reverse walk: [`Tape::backward`] visits the nodes from the loss back,
//! hands each node's gradient to the backward of its op (the CPU kernels in
//! `ops`, the GPU launches in `gpu`) and accumulates what its parents receive.

use super::gpu;
use super::node::{Node, Op, Var};
use super::ops;
use super::params::Grads;
use super::tape::{map, zip_map, Tape};
use crate::cpu;
use crate::cuda::ops::Binary;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::on_gpu;
use crate::ops::{pool, softmax, unary};
use crate::tensor::Tensor;

/// Result of `backward`: parameter gradients plus those of the tape's leaves.
pub struct Backward<T: Float> {
    pub params: Grads<T>,
    leaves: Vec<Option<Tensor<T>>>,
}

impl<T: Float> Backward<T> {
    /// Gradient of a leaf created with `Tape::input`.
    pub fn leaf(&self, v: Var) -> Option<&Tensor<T>> {
        self.leaves.get(v.0).and_then(Option::as_ref)
    }
}

impl<T: Float> Tape<'_, T> {
    /// Walks the tape back from a one-element loss.
    pub fn backward(self, loss: Var) -> Result<Backward<T>> {
        if !self.grad_enabled {
            return Err(Error::Invalid(
                "backward on a tape in inference mode".into(),
            ));
        }
        let loss_shape = self.nodes[loss.0].value.shape().to_vec();
        if loss_shape.iter().product::<usize>() != 1 {
            return Err(Error::shape(
                "backward",
                &loss_shape,
                &[1],
                "the loss must hold a single value",
            ));
        }
        let mut grads: Vec<Option<Tensor<T>>> = (0..self.nodes.len()).map(|_| None).collect();
        let device = self.nodes[loss.0].value.device();
        grads[loss.0] = Some(Tensor::full(T::ONE, &loss_shape)?.to_device(&device)?);
        let mut params = Grads::new(self.store().len());
        let mut nodes = self.nodes;
        for i in (0..=loss.0).rev() {
            let node = &nodes[i];
            match &node.op {
                Op::Leaf => continue,
                Op::Param(id) => {
                    if let Some(g) = grads[i].take() {
                        accumulate(&mut params.params[id.0], g)?;
                    }
                    continue;
                }
                _ => {}
            }
            let Some(g) = grads[i].take() else { continue };
            if !node.needs_grad {
                continue;
            }
            for (parent, pg) in backward_op(&nodes, &node.op, &node.value, g)? {
                if nodes[parent.0].needs_grad {
                    accumulate(&mut grads[parent.0], pg)?;
                }
            }
            // Every consumer of node i has a larger index and is done: its value
            // and saved state are not needed any more.
            nodes[i].op = Op::Leaf;
            nodes[i].value = Tensor::from_vec(Vec::new(), &[0])?;
        }
        let leaves = grads
            .into_iter()
            .zip(&nodes)
            .map(|(g, n)| if matches!(n.op, Op::Leaf) { g } else { None })
            .collect();
        Ok(Backward { params, leaves })
    }
}

fn accumulate<T: Float>(slot: &mut Option<Tensor<T>>, g: Tensor<T>) -> Result<()> {
    match slot {
        None => *slot = Some(g),
        Some(acc) => {
            if acc.shape() != g.shape() {
                return Err(Error::shape(
                    "backward",
                    acc.shape(),
                    g.shape(),
                    "gradients of one value disagree in shape",
                ));
            }
            match acc.device() {
                Device::Cpu => cpu::elementwise::add_assign(acc.as_mut_slice()?, g.as_slice()?),
                // Out of place: a GPU gradient may share its buffer (add's
                // backward hands the same tensor to both operands).
                dev => *acc = on_gpu!(dev, be => gpu::binary(be, Binary::Add, acc, &g))?,
            }
        }
    }
    Ok(())
}

/// The gradients one node sends to its parents, given the gradient of its output.
fn backward_op<T: Float>(
    nodes: &[Node<T>],
    op: &Op<T>,
    out: &Tensor<T>,
    g: Tensor<T>,
) -> Result<Vec<(Var, Tensor<T>)>> {
    let val = |v: Var| &nodes[v.0].value;
    // The op families of `crate::ops` run their backward on either device.
    match op {
        Op::Unary(x, kind) => return Ok(vec![(*x, unary::backward(*kind, val(*x), &g)?)]),
        Op::Softmax(x) => return Ok(vec![(*x, softmax::backward(out, &g)?)]),
        Op::MeanPool(x, dims) => return Ok(vec![(*x, pool::backward(dims, val(*x), &g)?)]),
        _ => {}
    }
    if let dev @ (Device::Cuda(_) | Device::CudaEmu) = g.device() {
        return on_gpu!(dev, be => gpu::backward(be, nodes, op, out, g));
    }
    Ok(match op {
        Op::Leaf | Op::Param(_) => Vec::new(),
        Op::Add(a, b) => vec![(*a, g.clone()), (*b, g)],
        Op::Mul(a, b) => vec![
            (*a, zip_map(&g, val(*b), |g, y| g * y)?),
            (*b, zip_map(&g, val(*a), |g, x| g * x)?),
        ],
        Op::Scale(a, s) => vec![(*a, map(&g, |g| g * *s)?)],
        Op::Reshape(a) => vec![(*a, g.reshape(val(*a).shape())?)],
        _ => ops::backward_kernel(nodes, op, out, g)?,
    })
}
