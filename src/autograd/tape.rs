//! Define-by-run autograd. Every op on a tape records a node (its value and what
//! its backward needs, `node`); `backward` walks the nodes in reverse,
//! accumulates the gradient of a value used several times, and frees each
//! node's gradient as soon as its parents have received their share.

use super::node::{Node, Op, Var};
use super::params::{ParamId, ParamStore};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::tensor::Tensor;

pub struct Tape<'s, T: Float = f32> {
    store: &'s ParamStore<T>,
    pub(super) nodes: Vec<Node<T>>,
    /// Inference mode records values only; `backward` is then an error.
    pub(super) grad_enabled: bool,
    /// Dropout is active only in training mode; its Philox key and counter.
    training: bool,
    pub(crate) dropout_seed: u64,
    /// Call offset of the next dropout: +1 per dropout call in training mode.
    pub(crate) dropout_counter: u64,
    /// Rows of the whole batch before this tape's first row (see `batch_shard`).
    pub(crate) first_row: usize,
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

    /// The device of all `vars`; operands on two devices are an error naming both.
    pub(crate) fn device_of(&self, op: &'static str, vars: &[Var]) -> Result<Device> {
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

    /// The device of a layer's input and weight [x, w] and its optional bias,
    /// which must be [len] (else `bias_shape` is the error, naming w's shape).
    pub(crate) fn layer_device(
        &self,
        op: &'static str,
        [x, w]: [Var; 2],
        b: Option<Var>,
        len: usize,
        bias_shape: &str,
    ) -> Result<Device> {
        match b {
            Some(b) if self.shape(b) != [len] => {
                Err(Error::shape(op, self.shape(w), self.shape(b), bias_shape))
            }
            Some(b) => self.device_of(op, &[x, w, b]),
            None => self.device_of(op, &[x, w]),
        }
    }

    pub(crate) fn same_shape(&self, op: &'static str, a: Var, b: Var) -> Result<()> {
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

    /// The CPU data of `v` (an error for a value on a GPU).
    pub(crate) fn data(&self, v: Var) -> Result<&[T]> {
        self.value(v).as_slice()
    }

    pub(crate) fn expect_rank(
        &self,
        op: &'static str,
        v: Var,
        rank: usize,
        what: &str,
    ) -> Result<()> {
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

    pub fn reshape(&mut self, a: Var, shape: &[usize]) -> Result<Var> {
        let value = self.value(a).clone().reshape(shape)?;
        Ok(self.push(value, Op::Reshape(a)))
    }
}
