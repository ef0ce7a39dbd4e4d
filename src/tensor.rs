//! Row-major, contiguous tensors of up to 4 dimensions.

use crate::cuda::exec::{self as gpu, GpuBuffer};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use std::sync::Arc;

pub const MAX_DIMS: usize = 4;

/// The memory behind a tensor. `Gpu` holds f32 values whatever `T` is: only
/// `Tensor<f32>` can be moved there (`to_device` refuses f64).
///
/// Host data is shared between clones and copied on the first write to a
/// shared one, so that a reshape or a parameter placed on a tape costs nothing.
#[derive(Clone, Debug)]
pub enum Storage<T: Float> {
    Cpu(Arc<Vec<T>>),
    Gpu(GpuBuffer),
}

/// Float has two implementors, f32 and f64: the 4-byte one is f32.
fn is_f32<T: Float>() -> bool {
    std::mem::size_of::<T>() == 4
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
            storage: Storage::Cpu(Arc::new(data)),
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
            storage: Storage::Cpu(Arc::new(vec![value])),
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
            Storage::Gpu(b) => b.device(),
        }
    }

    /// A tensor on GPU memory from its buffer (f32 values, `numel` of them).
    pub fn from_gpu(buf: GpuBuffer, shape: &[usize]) -> Result<Self> {
        check_dims("Tensor::from_gpu", shape)?;
        if !is_f32::<T>() {
            return Err(Error::Device("GPU tensors hold f32 only".into()));
        }
        let numel: usize = shape.iter().product();
        if buf.bytes() < numel * 4 {
            return Err(Error::shape(
                "Tensor::from_gpu",
                shape,
                &[buf.bytes() / 4],
                "buffer smaller than the shape",
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            storage: Storage::Gpu(buf),
        })
    }

    /// The device buffer; an error for host tensors.
    pub fn gpu_buffer(&self) -> Result<&GpuBuffer> {
        match &self.storage {
            Storage::Gpu(b) => Ok(b),
            Storage::Cpu(_) => Err(Error::Device(
                "a CPU tensor where GPU memory was expected".into(),
            )),
        }
    }

    /// A copy on `device` (a clone when it is there already). GPU devices
    /// take f32 tensors only; moving an f64 tensor there is an error.
    pub fn to_device(&self, device: &Device) -> Result<Self> {
        if self.device() == *device {
            return Ok(self.clone());
        }
        let storage = match device {
            Device::Cpu => Storage::Cpu(Arc::new(self.to_vec()?)),
            gpu_device => {
                if !is_f32::<T>() {
                    return Err(Error::Device(format!(
                        "{gpu_device} holds f32 tensors only; this one is f64"
                    )));
                }
                let host: Vec<f32> = self.to_vec()?.iter().map(|v| v.to_f64() as f32).collect();
                Storage::Gpu(gpu::upload(*gpu_device, &host)?)
            }
        };
        Ok(Tensor {
            shape: self.shape.clone(),
            storage,
        })
    }

    pub fn storage(&self) -> &Storage<T> {
        &self.storage
    }

    /// Host data; an error for tensors on another device.
    pub fn as_slice(&self) -> Result<&[T]> {
        match &self.storage {
            Storage::Cpu(v) => Ok(v),
            Storage::Gpu(b) => Err(not_on_host(b)),
        }
    }

    /// Host data to write (copied first if a clone shares it).
    pub fn as_mut_slice(&mut self) -> Result<&mut [T]> {
        match &mut self.storage {
            Storage::Cpu(v) => Ok(Arc::make_mut(v).as_mut_slice()),
            Storage::Gpu(b) => Err(not_on_host(b)),
        }
    }

    /// A host copy of the data, whatever the device.
    pub fn to_vec(&self) -> Result<Vec<T>> {
        match &self.storage {
            Storage::Cpu(v) => Ok(v.to_vec()),
            Storage::Gpu(b) => Ok(gpu::download(b, self.numel())?
                .into_iter()
                .map(|v| T::from_f64(v as f64))
                .collect()),
        }
    }

    pub fn into_vec(self) -> Result<Vec<T>> {
        match self.storage {
            Storage::Cpu(v) => Ok(Arc::try_unwrap(v).unwrap_or_else(|shared| shared.to_vec())),
            Storage::Gpu(_) => self.to_vec(),
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
        Ok(self.to_vec()?[0])
    }
}

fn not_on_host(b: &GpuBuffer) -> Error {
    Error::Device(format!(
        "the tensor is on {}: copy it to the host with to_device(&Device::Cpu) or to_vec()",
        b.device()
    ))
}
