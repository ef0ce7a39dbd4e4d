//! Per-epoch checkpoints: the current and best weights, the AdamW moments, the
//! shuffling RNG and the loss history in one safetensors file, written
//! atomically, so `--resume` continues exactly where the run stopped.

use std::collections::HashMap;
use std::path::Path;

use super::config::TrainConfig;
use super::history::EpochLog;
use super::weights::{
    fill_store, from_safetensors, serialize_raw, store_tensors, write_atomic, NamedTensor,
    RawTensor,
};
use crate::autograd::ParamStore;
use crate::error::{Error, Result};
use crate::nn::{ModelConfig, SeedRng};
use crate::optim::{AdamState, AdamW};

pub const FILE_NAME: &str = "checkpoint.safetensors";

/// Loop state besides tensors. Floats that steer the run (history, best loss)
/// travel as f64 tensors, not JSON text, so they come back bit for bit.
#[derive(Clone, Debug)]
pub struct TrainState {
    /// Epochs completed.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: u64,
    pub rng: SeedRng,
    pub history: Vec<EpochLog>,
    pub best_val_loss: f64,
    pub best_epoch: usize,
    /// Epochs since the last improvement.
    pub wait: usize,
    pub stopped: bool,
}

impl TrainState {
    pub fn new(seed: u64) -> Self {
        TrainState {
            epoch: 0,
            step: 0,
            // A different stream than the weight init, from the same seed.
            rng: SeedRng::new(seed ^ 0x5EED_5AFE),
            history: Vec::new(),
            best_val_loss: f64::INFINITY,
            best_epoch: 0,
            wait: 0,
            stopped: false,
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Counters {
    epoch: usize,
    step: u64,
    rng_state: u64,
    best_epoch: usize,
    wait: usize,
    stopped: bool,
    adam_steps: u64,
}

const HISTORY_COLS: usize = 8;

pub fn save(
    path: &Path,
    model_cfg: &ModelConfig,
    train_cfg: &TrainConfig,
    store: &ParamStore<f32>,
    best: &ParamStore<f32>,
    opt: &AdamW<f32>,
    state: &TrainState,
) -> Result<()> {
    let adam = opt.export_state()?;
    let mut f32s = store_tensors(store, "param.")?;
    f32s.extend(store_tensors(best, "best.")?);
    for (id, (m, v)) in store
        .ids()
        .zip(adam.first_moment.iter().zip(&adam.second_moment))
    {
        let name = store.name(id);
        f32s.push(NamedTensor {
            name: format!("adam.m.{name}"),
            shape: vec![m.len().max(1)],
            data: pad(m),
        });
        f32s.push(NamedTensor {
            name: format!("adam.v.{name}"),
            shape: vec![v.len().max(1)],
            data: pad(v),
        });
    }
    let mut history: Vec<f64> = Vec::with_capacity(state.history.len() * HISTORY_COLS + 1);
    history.push(state.best_val_loss);
    for h in &state.history {
        history.extend([
            h.epoch as f64,
            h.train_loss,
            h.val_loss,
            h.val_mae,
            h.lr,
            h.grad_norm,
            h.clipped,
            h.output_spread,
        ]);
    }
    let counters = Counters {
        epoch: state.epoch,
        step: state.step,
        rng_state: state.rng.state(),
        best_epoch: state.best_epoch,
        wait: state.wait,
        stopped: state.stopped,
        adam_steps: adam.steps,
    };
    let meta = HashMap::from([
        ("counters".to_string(), to_json(&counters)?),
        ("model_config".to_string(), to_json(model_cfg)?),
        ("train_config".to_string(), to_json(train_cfg)?),
    ]);
    let mut raw: Vec<RawTensor> = f32s.iter().map(RawTensor::encode).collect();
    raw.push(RawTensor::encode(&NamedTensor {
        name: "state.history".into(),
        shape: vec![history.len()],
        data: history,
    }));
    write_atomic(path, &serialize_raw(&raw, Some(meta))?)
}

/// An empty moment (a parameter that never had a gradient) is stored as one zero.
fn pad(v: &[f32]) -> Vec<f32> {
    if v.is_empty() {
        vec![0.0]
    } else {
        v.to_vec()
    }
}

pub fn load(
    path: &Path,
    model_cfg: &ModelConfig,
    train_cfg: &TrainConfig,
    store: &mut ParamStore<f32>,
    best: &mut ParamStore<f32>,
    opt: &mut AdamW<f32>,
) -> Result<TrainState> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::Invalid(format!(
            "cannot resume: cannot read {}: {e}",
            path.display()
        ))
    })?;
    // Every f32 is exact in f64; the f64 history needs the wider type.
    let (wide, meta) = from_safetensors::<f64>(&bytes, path)?;
    let tensors: Vec<NamedTensor<f32>> = wide
        .iter()
        .map(|t| NamedTensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
            data: t.data.iter().map(|&v| v as f32).collect(),
        })
        .collect();
    let field = |key: &str| {
        meta.get(key).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: not a convformer checkpoint (no '{key}')",
                path.display()
            ))
        })
    };
    let saved_model: ModelConfig = parse(field("model_config")?, path)?;
    let saved_train: TrainConfig = parse(field("train_config")?, path)?;
    if &saved_model != model_cfg || &saved_train != train_cfg {
        return Err(Error::Invalid(format!(
            "{}: the checkpoint was written with another configuration; resume with the run's own config",
            path.display()
        )));
    }
    let counters: Counters = parse(field("counters")?, path)?;
    fill_store(store, &tensors, "param.", path)?;
    fill_store(best, &tensors, "best.", path)?;
    let by_name: HashMap<&str, &NamedTensor<f32>> =
        tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let moment = |kind: &str, id| -> Result<Vec<f32>> {
        let name = format!("adam.{kind}.{}", store.name(id));
        let t = by_name
            .get(name.as_str())
            .ok_or_else(|| Error::Invalid(format!("{}: '{name}' is missing", path.display())))?;
        // A never-updated moment was stored as a single zero.
        Ok(if t.data.len() == store.get(id).numel() {
            t.data.clone()
        } else {
            Vec::new()
        })
    };
    let mut adam = AdamState {
        steps: counters.adam_steps,
        first_moment: Vec::new(),
        second_moment: Vec::new(),
    };
    for id in store.ids() {
        adam.first_moment.push(moment("m", id)?);
        adam.second_moment.push(moment("v", id)?);
    }
    opt.import_state(adam)?;
    let values = &wide
        .iter()
        .find(|t| t.name == "state.history")
        .ok_or_else(|| Error::Invalid(format!("{}: the loss history is missing", path.display())))?
        .data;
    let (best_val_loss, rows) = values
        .split_first()
        .ok_or_else(|| Error::Invalid(format!("{}: the loss history is empty", path.display())))?;
    let history = rows
        .chunks_exact(HISTORY_COLS)
        .map(|r| EpochLog {
            epoch: r[0] as usize,
            train_loss: r[1],
            val_loss: r[2],
            val_mae: r[3],
            lr: r[4],
            grad_norm: r[5],
            clipped: r[6],
            output_spread: r[7],
        })
        .collect();
    Ok(TrainState {
        epoch: counters.epoch,
        step: counters.step,
        rng: SeedRng::from_state(counters.rng_state),
        history,
        best_val_loss: *best_val_loss,
        best_epoch: counters.best_epoch,
        wait: counters.wait,
        stopped: counters.stopped,
    })
}

fn parse<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| Error::Invalid(format!("{}: bad checkpoint metadata: {e}", path.display())))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Invalid(format!("checkpoint metadata: {e}")))
}
