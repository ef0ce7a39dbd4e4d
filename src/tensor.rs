//! Row-major, contiguous tensors of up to 4 dimensions.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;

pub const MAX_DIMS: usize = 4;

/// The memory behind a tensor. The CUDA backend adds its variant here.
#[derive(Clone, Debug)]
pub enum Storage<T: Float> {
    Cpu(Vec<T>),
}

#[derive(Clone, Debug)]
pub struct Tensor<T: Float = f32> {
    shape: Vec<usize>,
    storage: Storage<T>,
}

fn check_dims(op: &'static str, shape: &[usize]) -> Result<()> {
    if shape.is_empty() || shape.len() > MAX_DIMS {
        return Err(Error::shape(
            op,
            shape,
            &[],
            format!("a tensor has 1 to {MAX_DIMS} dimensions"),
        ));
    }
    Ok(())
}

impl<T: Float> Tensor<T> {
    pub fn from_vec(data: Vec<T>, shape: &[usize]) -> Result<Self> {
        check_dims("Tensor::from_vec", shape)?;
        let numel: usize = shape.iter().product();
        if numel != data.len() {
            return Err(Error::shape(
                "Tensor::from_vec",
                shape,
                &[data.len()],
                "element count differs from data length",
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            storage: Storage::Cpu(data),
        })
    }

    pub fn full(value: T, shape: &[usize]) -> Result<Self> {
        Self::from_vec(vec![value; shape.iter().product()], shape)
    }

    pub fn zeros(shape: &[usize]) -> Result<Self> {
        Self::full(T::ZERO, shape)
    }

    pub fn scalar(value: T) -> Self {
        Tensor {
            shape: vec![1],
            storage: Storage::Cpu(vec![value]),
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn device(&self) -> Device {
        match &self.storage {
            Storage::Cpu(_) => Device::Cpu,
        }
    }

    pub fn storage(&self) -> &Storage<T> {
        &self.storage
    }

    /// Host data; an error for tensors on another device.
    pub fn as_slice(&self) -> Result<&[T]> {
        match &self.storage {
            Storage::Cpu(v) => Ok(v),
        }
    }

    pub fn as_mut_slice(&mut self) -> Result<&mut [T]> {
        match &mut self.storage {
            Storage::Cpu(v) => Ok(v),
        }
    }

    /// A host copy of the data, whatever the device.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        Ok(self.as_slice()?.to_vec())
    }

    pub fn into_vec(self) -> Result<Vec<T>> {
        match self.storage {
            Storage::Cpu(v) => Ok(v),
        }
    }

    /// Same data, new shape of equal element count.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        check_dims("reshape", shape)?;
        if shape.iter().product::<usize>() != self.numel() {
            return Err(Error::shape(
                "reshape",
                &self.shape,
                shape,
                "element counts differ",
            ));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    /// The single value of a one-element tensor (a loss, say).
    pub fn item(&self) -> Result<T> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                &self.shape,
                &[1],
                "item() needs exactly one element",
            ));
        }
        Ok(self.as_slice()?[0])
    }
}
