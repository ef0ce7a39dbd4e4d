//! The reverse walk: [`Tape::backward`] visits the nodes from the loss back,
//! hands each node's gradient to the backward of its op family (in
//! `crate::ops`, on the device of the gradient) and accumulates what its
//! parents receive.

use super::node::{Node, Op, Var};
use super::params::Grads;
use super::tape::Tape;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::ops::elementwise::{self, Binary};
use crate::ops::{
    attention, conv1d, dropout, layer_norm, losses, matmul, permute, pool, softmax, unary,
};
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
            for (parent, pg) in backward_op(&nodes, &node.op, &node.value, g)?
                .into_iter()
                .flatten()
            {
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
            elementwise::add_into(acc, &g)?;
        }
    }
    Ok(())
}

/// What one node sends its parents: at most three gradients, in a fixed array
/// (no allocation per node).
type ParentGrads<T> = [Option<(Var, Tensor<T>)>; 3];

fn one<T: Float>(a: Var, ga: Tensor<T>) -> ParentGrads<T> {
    [Some((a, ga)), None, None]
}

fn two<T: Float>(a: Var, ga: Tensor<T>, b: Var, gb: Tensor<T>) -> ParentGrads<T> {
    [Some((a, ga)), Some((b, gb)), None]
}

/// The gradients one node sends to its parents, given the gradient `g` of
/// its output `out`: each op family's backward, on the device of `g`.
fn backward_op<T: Float>(
    nodes: &[Node<T>],
    op: &Op<T>,
    out: &Tensor<T>,
    g: Tensor<T>,
) -> Result<ParentGrads<T>> {
    let val = |v: Var| &nodes[v.0].value;
    Ok(match op {
        Op::Leaf | Op::Param(_) => [None, None, None],
        Op::Add(a, b) => two(*a, g.clone(), *b, g),
        Op::Mul(a, b) => two(
            *a,
            elementwise::binary(Binary::Mul, &g, val(*b))?,
            *b,
            elementwise::binary(Binary::Mul, &g, val(*a))?,
        ),
        Op::Scale(a, s) => one(*a, elementwise::scaled(&g, *s)?),
        Op::Reshape(a) => one(*a, g.reshape(val(*a).shape())?),
        Op::AddBias(x, b) => {
            let db = elementwise::bias_backward(&g, val(*b).numel())?;
            two(*b, db, *x, g)
        }
        Op::Unary(x, kind) => one(*x, unary::backward(*kind, val(*x), &g)?),
        Op::Softmax(x) => one(*x, softmax::backward(out, &g)?),
        Op::MeanPool(x, dims) => one(*x, pool::backward(dims, val(*x), &g)?),
        Op::Permute(x, perm) => one(*x, permute::backward(perm, &g)?),
        Op::Dropout(s) => one(s.x, dropout::backward(s, &g)?),
        Op::Loss { pred, target, kind } => {
            let [dp, dt] = losses::backward(*kind, val(*pred), val(*target), &g)?;
            two(*pred, dp, *target, dt)
        }
        Op::Matmul { a, b, dims } => {
            let [da, db] = matmul::matmul_backward(dims, val(*a), val(*b), &g)?;
            two(*a, da, *b, db)
        }
        Op::Linear {
            x,
            w,
            b,
            dims,
            relu,
        } => {
            let operands = [val(*x), val(*w)];
            let (dx, dw, db) = matmul::linear_backward(dims, operands, b.is_some(), *relu, out, g)?;
            [Some((*x, dx)), Some((*w, dw)), b.zip(db)]
        }
        Op::Conv1d(s) => {
            let want_dx = nodes[s.x.0].needs_grad;
            let grads = conv1d::backward(s, val(s.x), val(s.w), out, g, want_dx)?;
            [
                Some((s.w, grads.dw)),
                grads.dx.map(|dx| (s.x, dx)),
                s.b.zip(grads.db),
            ]
        }
        Op::LayerNorm(s) => {
            let [dx, dw, db] = layer_norm::backward(s, val(s.x), val(s.w), &g)?;
            [Some((s.x, dx)), Some((s.w, dw)), Some((s.b, db))]
        }
        Op::Attention(s) => {
            let operands = [val(s.q), val(s.k), val(s.v)];
            let [dq, dk, dv] = attention::backward(s, operands, out, &g)?;
            [Some((s.q, dq)), Some((s.k, dk)), Some((s.v, dv))]
        }
    })
}
