//! Named parameters (tch-rs `VarStore` style): modules register their weights
//! here by name; the optimizer and checkpoints read them from here.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub(crate) usize);

impl ParamId {
    pub fn index(self) -> usize {
        self.0
    }
}

#[derive(Clone, Debug, Default)]
pub struct ParamStore<T: Float = f32> {
    names: Vec<String>,
    values: Vec<Tensor<T>>,
}

impl<T: Float> ParamStore<T> {
    pub fn new() -> Self {
        ParamStore {
            names: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Registers a parameter; names are unique (they key checkpoints).
    pub fn add(&mut self, name: impl Into<String>, value: Tensor<T>) -> Result<ParamId> {
        let name = name.into();
        if self.names.contains(&name) {
            return Err(Error::Invalid(format!(
                "parameter '{name}' is registered twice"
            )));
        }
        self.names.push(name);
        self.values.push(value);
        Ok(ParamId(self.values.len() - 1))
    }

    /// A copy of every parameter on `device` (same names and ids).
    pub fn to_device(&self, device: &crate::Device) -> Result<Self> {
        Ok(ParamStore {
            names: self.names.clone(),
            values: self
                .values
                .iter()
                .map(|v| v.to_device(device))
                .collect::<Result<_>>()?,
        })
    }

    /// Where the parameters live (the CPU for an empty store).
    pub fn device(&self) -> crate::Device {
        self.values.first().map(Tensor::device).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = ParamId> {
        (0..self.values.len()).map(ParamId)
    }

    pub fn name(&self, id: ParamId) -> &str {
        &self.names[id.0]
    }

    pub fn get(&self, id: ParamId) -> &Tensor<T> {
        &self.values[id.0]
    }

    pub fn get_mut(&mut self, id: ParamId) -> &mut Tensor<T> {
        &mut self.values[id.0]
    }

    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.names.iter().position(|n| n == name).map(ParamId)
    }

    /// Total number of scalar parameters.
    pub fn numel(&self) -> usize {
        self.values.iter().map(Tensor::numel).sum()
    }
}

/// Gradients of one backward pass, one slot per parameter of the store.
#[derive(Clone, Debug)]
pub struct Grads<T: Float = f32> {
    pub(crate) params: Vec<Option<Tensor<T>>>,
}

impl<T: Float> Grads<T> {
    pub fn new(num_params: usize) -> Self {
        Grads {
            params: vec![None; num_params],
        }
    }

    /// The gradient of a parameter; `None` if the loss did not depend on it.
    pub fn get(&self, id: ParamId) -> Option<&Tensor<T>> {
        self.params.get(id.0).and_then(Option::as_ref)
    }

    /// Forgets every gradient (`zero_grad`).
    pub fn zero(&mut self) {
        self.params.iter_mut().for_each(|g| *g = None);
    }
}
