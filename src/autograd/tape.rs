//! Define-by-run autograd. Every op on a tape records a node (its value and what
//! its backward needs); `backward` walks the nodes in reverse, accumulates the
//! gradient of a value used several times, and frees each node's gradient as soon
//! as its parents have received their share.

use super::gpu;
use super::params::{Grads, ParamId, ParamStore};
use crate::cpu;
use crate::cpu::dropout::DropoutDims;
use crate::cpu::elementwise::PoolDims;
use crate::cuda::exec::GpuBuffer;
use crate::cuda::ops::Binary;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::on_gpu;
use crate::tensor::Tensor;

/// A value recorded on a tape: an index, cheap to copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var(pub(crate) usize);

/// conv1d padding: `Same` keeps the length (odd kernels pad (k-1)/2 each side,
/// even kernels pad one more on the right, as Keras), `Valid` pads nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Padding {
    Same,
    Valid,
}

#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LossKind {
    Mse,
    Mae,
    /// Huber with threshold delta.
    Huber(f64),
    /// Pinball loss for quantile q in (0, 1).
    Quantile(f64),
}

/// What a node remembers for its backward pass.
#[derive(Debug)]
pub(crate) enum Op<T: Float> {
    /// An input or constant: gradients are kept for it, nothing flows further.
    Leaf,
    Param(ParamId),
    Add(Var, Var),
    Mul(Var, Var),
    Scale(Var, T),
    Reshape(Var),
    Matmul {
        a: Var,
        b: Var,
        dims: cpu::MatmulDims,
    },
    /// `relu`: the node holds relu of the product (`Tape::linear_relu`).
    Linear {
        x: Var,
        w: Var,
        b: Option<Var>,
        dims: cpu::LinearDims,
        relu: bool,
    },
    /// `relu`: the node holds relu of the convolution (`Tape::conv1d_relu`);
    /// `channels_last`: x and the node are [B, L, C] (CPU only; a GPU composes
    /// permutes around the channels-first kernel).
    Conv1d {
        x: Var,
        w: Var,
        b: Option<Var>,
        dims: cpu::Conv1dDims,
        relu: bool,
        channels_last: bool,
    },
    LayerNorm {
        x: Var,
        w: Var,
        b: Var,
        dims: cpu::LayerNormDims,
        mean: Vec<T>,
        rstd: Vec<T>,
    },
    /// Backward uses the node's own output.
    Softmax(Var),
    Relu(Var),
    Gelu(Var),
    Attention {
        q: Var,
        k: Var,
        v: Var,
        dims: cpu::AttentionDims,
        layout: cpu::HeadLayout,
        probs: Vec<T>,
    },
    /// Layer norm on a GPU: the saved statistics stay in device memory.
    LayerNormGpu {
        x: Var,
        w: Var,
        b: Var,
        dims: cpu::LayerNormDims,
        mean: Tensor<T>,
        rstd: Tensor<T>,
    },
    /// Attention on a GPU saves the log-sum-exp of each query row (the
    /// backward recomputes the probabilities) and the uploaded key mask.
    AttentionGpu {
        q: Var,
        k: Var,
        v: Var,
        dims: cpu::AttentionDims,
        key_mask: Option<GpuBuffer>,
        lse: Tensor<T>,
    },
    /// On the CPU the forward's mask (a byte per element) is kept; a GPU
    /// backward redraws it from (seed, call) and `keep` is empty.
    Dropout {
        x: Var,
        dims: DropoutDims,
        keep: Vec<u8>,
    },
    AddBias(Var, Var),
    MeanPool(Var, PoolDims),
    Permute(Var, Vec<usize>),
    Loss {
        pred: Var,
        target: Var,
        kind: LossKind,
    },
}

impl<T: Float> Op<T> {
    /// The values this op was computed from (at most three; no allocation,
    /// as every op on the tape asks).
    fn parents(&self) -> [Option<Var>; 3] {
        match self {
            Op::Leaf | Op::Param(_) => [None; 3],
            Op::Scale(a, _)
            | Op::Reshape(a)
            | Op::Softmax(a)
            | Op::Relu(a)
            | Op::Gelu(a)
            | Op::Dropout { x: a, .. }
            | Op::MeanPool(a, _)
            | Op::Permute(a, _) => [Some(*a), None, None],
            Op::Add(a, b) | Op::Mul(a, b) | Op::AddBias(a, b) | Op::Matmul { a, b, .. } => {
                [Some(*a), Some(*b), None]
            }
            Op::Loss { pred, target, .. } => [Some(*pred), Some(*target), None],
            Op::Linear { x, w, b, .. } | Op::Conv1d { x, w, b, .. } => [Some(*x), Some(*w), *b],
            Op::LayerNorm { x, w, b, .. } | Op::LayerNormGpu { x, w, b, .. } => {
                [Some(*x), Some(*w), Some(*b)]
            }
            Op::Attention { q, k, v, .. } | Op::AttentionGpu { q, k, v, .. } => {
                [Some(*q), Some(*k), Some(*v)]
            }
        }
    }
}

pub(super) struct Node<T: Float> {
    pub(super) value: Tensor<T>,
    pub(super) op: Op<T>,
    /// Whether a parameter or an input is upstream: if not (a constant and what
    /// is computed from constants only), backward computes no gradient for it.
    pub(super) needs_grad: bool,
}

pub struct Tape<'s, T: Float = f32> {
    store: &'s ParamStore<T>,
    pub(super) nodes: Vec<Node<T>>,
    /// Inference mode records values only; `backward` is then an error.
    grad_enabled: bool,
    /// Dropout is active only in training mode; its Philox key and counter.
    training: bool,
    pub(super) dropout_seed: u64,
    /// Call offset of the next dropout: +1 per dropout call in training mode.
    pub(super) dropout_counter: u64,
    /// Rows of the whole batch before this tape's first row (see `batch_shard`).
    pub(super) first_row: usize,
}

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

impl<'s, T: Float> Tape<'s, T> {
    pub fn new(store: &'s ParamStore<T>) -> Self {
        Tape {
            store,
            nodes: Vec::new(),
            grad_enabled: true,
            training: false,
            dropout_seed: 0,
            dropout_counter: 0,
            first_row: 0,
        }
    }

    /// Training mode: dropout masks drawn from Philox(seed, counter).
    pub fn training(mut self, seed: u64) -> Self {
        self.training = true;
        self.dropout_seed = seed;
        self
    }

    /// This tape holds rows `first_row..` of a larger batch: dropout then draws
    /// the mask those rows get in the whole batch (its inputs must be
    /// batch-major), so a batch split into shards trains like the whole batch.
    pub fn batch_shard(mut self, first_row: usize) -> Self {
        self.first_row = first_row;
        self
    }

    /// Inference mode: nothing is kept for a backward pass.
    pub fn inference(mut self) -> Self {
        self.grad_enabled = false;
        self.training = false;
        self
    }

    pub fn is_training(&self) -> bool {
        self.training
    }

    pub fn store(&self) -> &'s ParamStore<T> {
        self.store
    }

    pub fn value(&self, v: Var) -> &Tensor<T> {
        &self.nodes[v.0].value
    }

    pub fn shape(&self, v: Var) -> &[usize] {
        self.nodes[v.0].value.shape()
    }

    pub(crate) fn push(&mut self, value: Tensor<T>, op: Op<T>) -> Var {
        let op = if self.grad_enabled { op } else { Op::Leaf };
        let needs_grad = match op {
            Op::Leaf | Op::Param(_) => true,
            _ => op
                .parents()
                .iter()
                .flatten()
                .any(|p| self.nodes[p.0].needs_grad),
        };
        self.nodes.push(Node {
            value,
            op,
            needs_grad,
        });
        Var(self.nodes.len() - 1)
    }

    /// A value whose gradient `backward` computes (see [`Backward::leaf`]).
    pub fn input(&mut self, value: Tensor<T>) -> Var {
        self.push(value, Op::Leaf)
    }

    /// A value no gradient is wanted for (training data, targets): backward
    /// skips it and the ops computed from constants alone, and ops that mix it
    /// with parameters may skip its share (conv1d does, for its input).
    pub fn constant(&mut self, value: Tensor<T>) -> Var {
        let v = self.push(value, Op::Leaf);
        self.nodes[v.0].needs_grad = false;
        v
    }

    pub fn param(&mut self, id: ParamId) -> Var {
        self.push(self.store.get(id).clone(), Op::Param(id))
    }

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
        let mut params = Grads::new(self.store.len());
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

    /// The device of all `vars`; operands on two devices are an error naming both.
    pub(super) fn device_of(&self, op: &'static str, vars: &[Var]) -> Result<Device> {
        let first = self.value(vars[0]).device();
        for v in &vars[1..] {
            let other = self.value(*v).device();
            if other != first {
                return Err(Error::Device(format!(
                    "{op}: operands on two devices, {first} and {other}"
                )));
            }
        }
        Ok(first)
    }

    pub(super) fn same_shape(&self, op: &'static str, a: Var, b: Var) -> Result<()> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        if sa != sb {
            return Err(Error::shape(
                op,
                sa,
                sb,
                "operands must have the same shape",
            ));
        }
        Ok(())
    }

    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        self.same_shape("add", a, b)?;
        let value = match self.device_of("add", &[a, b])? {
            Device::Cpu => zip_map(self.value(a), self.value(b), |x, y| x + y)?,
            dev => on_gpu!(dev, be => gpu::binary(be, Binary::Add, self.value(a), self.value(b)))?,
        };
        Ok(self.push(value, Op::Add(a, b)))
    }

    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.same_shape("mul", a, b)?;
        let value = match self.device_of("mul", &[a, b])? {
            Device::Cpu => zip_map(self.value(a), self.value(b), |x, y| x * y)?,
            dev => on_gpu!(dev, be => gpu::binary(be, Binary::Mul, self.value(a), self.value(b)))?,
        };
        Ok(self.push(value, Op::Mul(a, b)))
    }

    pub fn scale(&mut self, a: Var, s: T) -> Result<Var> {
        let value = match self.value(a).device() {
            Device::Cpu => map(self.value(a), |x| x * s)?,
            dev => on_gpu!(dev, be => gpu::scale(be, self.value(a), s))?,
        };
        Ok(self.push(value, Op::Scale(a, s)))
    }

    pub fn reshape(&mut self, a: Var, shape: &[usize]) -> Result<Var> {
        let value = self.value(a).clone().reshape(shape)?;
        Ok(self.push(value, Op::Reshape(a)))
    }
}

pub(super) fn accumulate<T: Float>(slot: &mut Option<Tensor<T>>, g: Tensor<T>) -> Result<()> {
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

pub(super) fn map<T: Float>(a: &Tensor<T>, f: impl Fn(T) -> T + Sync) -> Result<Tensor<T>> {
    let mut out = vec![T::ZERO; a.numel()];
    cpu::elementwise::map(a.as_slice()?, &mut out, f);
    Tensor::from_vec(out, a.shape())
}

pub(super) fn zip_map<T: Float>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    f: impl Fn(T, T) -> T + Sync,
) -> Result<Tensor<T>> {
    let mut out = vec![T::ZERO; a.numel()];
    cpu::elementwise::zip_map(a.as_slice()?, b.as_slice()?, &mut out, f);
    Tensor::from_vec(out, a.shape())
}

/// The gradients one node sends to its parents, given the gradient of its output.
fn backward_op<T: Float>(
    nodes: &[Node<T>],
    op: &Op<T>,
    out: &Tensor<T>,
    g: Tensor<T>,
) -> Result<Vec<(Var, Tensor<T>)>> {
    if let dev @ (Device::Cuda(_) | Device::CudaEmu) = g.device() {
        return on_gpu!(dev, be => gpu::backward(be, nodes, op, out, g));
    }
    let val = |v: Var| &nodes[v.0].value;
    Ok(match op {
        Op::Leaf | Op::Param(_) => Vec::new(),
        Op::Add(a, b) => vec![(*a, g.clone()), (*b, g)],
        Op::Mul(a, b) => vec![
            (*a, zip_map(&g, val(*b), |g, y| g * y)?),
            (*b, zip_map(&g, val(*a), |g, x| g * x)?),
        ],
        Op::Scale(a, s) => vec![(*a, map(&g, |g| g * *s)?)],
        Op::Reshape(a) => vec![(*a, g.reshape(val(*a).shape())?)],
        _ => super::ops::backward_kernel(nodes, op, out, g)?,
    })
}
