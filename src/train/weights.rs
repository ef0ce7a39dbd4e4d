//! safetensors files: model weights (PyTorch-loadable names and shapes) and
//! the raw tensors of checkpoints. Writes are atomic: temp file + rename, so an
//! interrupted write never leaves a torn file behind.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::autograd::ParamStore;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::tensor::Tensor;

/// A named host tensor as it goes to or comes from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedTensor<T> {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<T>,
}

fn dtype_of<T: Float>() -> Dtype {
    if std::mem::size_of::<T>() == 8 {
        Dtype::F64
    } else {
        Dtype::F32
    }
}

fn to_bytes<T: Float>(data: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(std::mem::size_of_val(data));
    for &v in data {
        if std::mem::size_of::<T>() == 8 {
            out.extend_from_slice(&v.to_f64().to_le_bytes());
        } else {
            out.extend_from_slice(&(v.to_f64() as f32).to_le_bytes());
        }
    }
    out
}

fn from_bytes<T: Float>(name: &str, view: &TensorView<'_>) -> Result<Vec<T>> {
    let bytes = view.data();
    match view.dtype() {
        Dtype::F32 => Ok(bytes
            .chunks_exact(4)
            .map(|c| T::from_f64(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
            .collect()),
        Dtype::F64 => Ok(bytes
            .chunks_exact(8)
            .map(|c| T::from_f64(f64::from_le_bytes(c.try_into().expect("8 bytes"))))
            .collect()),
        other => Err(Error::Invalid(format!(
            "tensor '{name}' has dtype {other:?}; expected F32 or F64"
        ))),
    }
}

/// A tensor already encoded little-endian, for files that mix dtypes.
pub struct RawTensor {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

impl RawTensor {
    pub fn encode<T: Float>(t: &NamedTensor<T>) -> Self {
        RawTensor {
            name: t.name.clone(),
            dtype: dtype_of::<T>(),
            shape: t.shape.clone(),
            bytes: to_bytes(&t.data),
        }
    }
}

/// Serialises raw tensors with string metadata.
pub fn serialize_raw(
    tensors: &[RawTensor],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|t| {
            TensorView::new(t.dtype, t.shape.clone(), &t.bytes)
                .map(|v| (t.name.clone(), v))
                .map_err(|e| Error::Invalid(format!("tensor '{}': {e}", t.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize(views, metadata)
        .map_err(|e| Error::Invalid(format!("safetensors serialisation: {e}")))
}

/// Serialises tensors (in the element type T: f32 or f64) with string metadata.
pub fn to_safetensors<T: Float>(
    tensors: &[NamedTensor<T>],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let raw: Vec<RawTensor> = tensors.iter().map(RawTensor::encode).collect();
    serialize_raw(&raw, metadata)
}

/// String metadata of a safetensors file.
pub type Metadata = HashMap<String, String>;

/// Reads every tensor (converted to T) and the metadata of a safetensors buffer.
pub fn from_safetensors<T: Float>(
    bytes: &[u8],
    source: &Path,
) -> Result<(Vec<NamedTensor<T>>, Metadata)> {
    let bad = |e: safetensors::SafeTensorError| {
        Error::Invalid(format!(
            "{}: not a valid safetensors file: {e}",
            source.display()
        ))
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(bad)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(bytes).map_err(bad)?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let data = from_bytes(&name, &view)?;
        out.push(NamedTensor {
            shape: view.shape().to_vec(),
            name,
            data,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((out, metadata))
}

/// Writes `bytes` to `path` via a sibling temp file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)
        .map_err(|e| Error::Invalid(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        Error::Invalid(format!(
            "cannot move {} to {}: {e}",
            tmp.display(),
            path.display()
        ))
    })
}

/// Every parameter of a store, in registration order, under its own name.
pub fn store_tensors<T: Float>(store: &ParamStore<T>, prefix: &str) -> Result<Vec<NamedTensor<T>>> {
    store
        .ids()
        .map(|id| {
            let t = store.get(id);
            Ok(NamedTensor {
                name: format!("{prefix}{}", store.name(id)),
                shape: t.shape().to_vec(),
                data: t.to_vec()?,
            })
        })
        .collect()
}

/// Copies tensors named `{prefix}{param name}` into a store whose parameters
/// are already registered; every parameter must be present with its shape.
pub fn fill_store<T: Float>(
    store: &mut ParamStore<T>,
    tensors: &[NamedTensor<T>],
    prefix: &str,
    source: &Path,
) -> Result<()> {
    let by_name: HashMap<&str, &NamedTensor<T>> =
        tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let ids: Vec<_> = store.ids().collect();
    for id in ids {
        let name = format!("{prefix}{}", store.name(id));
        let Some(t) = by_name.get(name.as_str()) else {
            return Err(Error::Invalid(format!(
                "{}: tensor '{name}' is missing (the file was written for another model configuration)",
                source.display()
            )));
        };
        if t.shape != store.get(id).shape() {
            return Err(Error::Invalid(format!(
                "{}: tensor '{name}' has shape {:?}, the model expects {:?}",
                source.display(),
                t.shape,
                store.get(id).shape()
            )));
        }
        *store.get_mut(id) = Tensor::from_vec(t.data.clone(), &t.shape)?;
    }
    Ok(())
}

/// Saves a model's parameters as f32 safetensors, loadable by PyTorch's
/// `load_state_dict(safetensors.torch.load_file(path))`.
pub fn save_model<T: Float>(store: &ParamStore<T>, path: &Path) -> Result<()> {
    let tensors: Vec<NamedTensor<f32>> = store_tensors(store, "")?
        .into_iter()
        .map(|t| NamedTensor {
            name: t.name,
            shape: t.shape,
            data: t.data.iter().map(|v| v.to_f64() as f32).collect(),
        })
        .collect();
    write_atomic(path, &to_safetensors(&tensors, None)?)
}

/// Loads parameters saved by `save_model` into a store built for the same config.
pub fn load_model<T: Float>(store: &mut ParamStore<T>, path: &Path) -> Result<()> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Invalid(format!("cannot read {}: {e}", path.display())))?;
    let (tensors, _) = from_safetensors::<T>(&bytes, path)?;
    fill_store(store, &tensors, "", path)
}
