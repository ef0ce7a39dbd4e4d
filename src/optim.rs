//! Adam / AdamW with bias correction, global-norm gradient clipping, and
//! learning-rate schedules.

use crate::autograd::{Grads, ParamStore};
use crate::error::{Error, Result};
use crate::float::Float;
use crate::ops::adamw::cpu::AdamCoefs;
use crate::ops::adamw::{self, AdamStep};
use crate::ops::elementwise::scaled;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 gives plain Adam.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// AdamW (Loshchilov & Hutter): p ← p·(1 − lr·wd) − lr·m̂/(√v̂ + eps), with
/// m̂ = m/(1 − β1ᵗ), v̂ = v/(1 − β2ᵗ). Moments are kept in `T`, one buffer per
/// parameter, created on the first step that sees its gradient. Parameters on
/// a GPU keep their moments there and update with the fused `adamw_step` kernel;
/// the others with the CPU kernel of `ops::adamw::cpu`.
#[derive(Clone, Debug)]
pub struct AdamW<T: Float = f32> {
    pub config: AdamConfig,
    step: u64,
    first_moment: Vec<Vec<T>>,
    second_moment: Vec<Vec<T>>,
    /// (m, v) of the parameters on a GPU; they take over from the host
    /// moments (an imported state) on their first device step.
    device_moments: Vec<Option<(Tensor<T>, Tensor<T>)>>,
}

impl<T: Float> AdamW<T> {
    pub fn new(config: AdamConfig) -> Self {
        AdamW {
            config,
            step: 0,
            first_moment: Vec::new(),
            second_moment: Vec::new(),
            device_moments: Vec::new(),
        }
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update with learning rate `lr` (from a schedule; `config.lr` is the
    /// default a caller may pass). Parameters without a gradient are left
    /// untouched, weight decay included (as PyTorch).
    pub fn step(&mut self, store: &mut ParamStore<T>, grads: &Grads<T>, lr: f64) -> Result<()> {
        if grads.params.len() != store.len() {
            return Err(Error::Invalid(format!(
                "AdamW: {} gradients for {} parameters",
                grads.params.len(),
                store.len()
            )));
        }
        self.first_moment.resize(store.len(), Vec::new());
        self.second_moment.resize(store.len(), Vec::new());
        self.device_moments.resize(store.len(), None);
        self.step += 1;
        let AdamConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
            ..
        } = self.config;
        let t = self.step as i32;
        let coefs = AdamCoefs::<T>::new(lr, beta1, beta2, eps, weight_decay, t);
        for id in store.ids().collect::<Vec<_>>() {
            let Some(g) = grads.get(id) else { continue };
            let name = store.name(id).to_string();
            let p = store.get_mut(id);
            if g.shape() != p.shape() {
                return Err(Error::shape(
                    "AdamW::step",
                    p.shape(),
                    g.shape(),
                    format!("gradient of '{name}' has another shape"),
                ));
            }
            if p.device().is_gpu() {
                let adam = AdamStep {
                    lr: lr as f32,
                    beta1: beta1 as f32,
                    beta2: beta2 as f32,
                    eps: eps as f32,
                    weight_decay: weight_decay as f32,
                    t: t as u32,
                };
                let i = id.index();
                if self.device_moments[i].is_none() {
                    let host = |m: &mut Vec<T>| -> Result<Tensor<T>> {
                        let m = std::mem::take(m);
                        let m = if m.len() == p.numel() {
                            m
                        } else {
                            vec![T::ZERO; p.numel()]
                        };
                        Tensor::from_vec(m, p.shape())?.to_device(&p.device())
                    };
                    self.device_moments[i] = Some((
                        host(&mut self.first_moment[i])?,
                        host(&mut self.second_moment[i])?,
                    ));
                }
                // The update writes in place: a parameter whose memory a clone
                // of the store shares gets its own copy first (1·x is exact).
                if p.gpu_buffer()?.is_shared() {
                    *p = scaled(p, T::ONE)?;
                }
                let (m, v) = self.device_moments[i].as_ref().expect("set above");
                adamw::step_on_gpu(&adam, p, g, m, v)?;
                continue;
            }
            let (g, p) = (g.as_slice()?, p.as_mut_slice()?);
            let (m, v) = (
                &mut self.first_moment[id.index()],
                &mut self.second_moment[id.index()],
            );
            if m.len() != p.len() {
                m.resize(p.len(), T::ZERO);
                v.resize(p.len(), T::ZERO);
            }
            adamw::cpu::adamw_step(&coefs, p, g, m, v)?;
        }
        Ok(())
    }
}

/// Scales all gradients so that their global L2 norm is at most `max_norm`
/// (factor max_norm / (norm + 1e-6), as PyTorch). Returns the norm before
/// clipping; a non-finite norm is returned as is and nothing is scaled, so the
/// caller can stop the run with `Error::NonFinite`.
pub fn clip_grad_norm<T: Float>(grads: &mut Grads<T>, max_norm: f64) -> Result<f64> {
    let mut sum_sq = 0.0f64;
    for g in grads.params.iter().flatten() {
        sum_sq += if g.device().is_gpu() {
            adamw::sum_squares(g)?
        } else {
            adamw::cpu::sum_squares(g.as_slice()?)
        };
    }
    let norm = sum_sq.sqrt();
    if norm.is_finite() && norm > max_norm {
        let factor = T::from_f64(max_norm / (norm + 1e-6));
        for g in grads.params.iter_mut().flatten() {
            if g.device().is_gpu() {
                *g = scaled(g, factor)?;
            } else {
                g.as_mut_slice()?.iter_mut().for_each(|v| *v *= factor);
            }
        }
    }
    Ok(norm)
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum LrSchedule {
    Constant(f64),
    /// Linear warmup from peak/warmup_steps to peak over `warmup_steps`, then
    /// cosine decay to `min_lr` at `total_steps` (held there afterwards).
    WarmupCosine {
        peak: f64,
        warmup_steps: usize,
        total_steps: usize,
        min_lr: f64,
    },
}

impl LrSchedule {
    /// The learning rate of step `step` (0-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        match *self {
            LrSchedule::Constant(lr) => lr,
            LrSchedule::WarmupCosine {
                peak,
                warmup_steps,
                total_steps,
                min_lr,
            } => {
                if step < warmup_steps {
                    return peak * (step + 1) as f64 / warmup_steps as f64;
                }
                let decay_steps = total_steps.saturating_sub(warmup_steps).max(1);
                let progress = ((step - warmup_steps) as f64 / decay_steps as f64).min(1.0);
                min_lr + 0.5 * (peak - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

/// AdamW's moments and step count, for checkpoints: `import_state` after
/// `export_state` continues the exact same trajectory.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamState<T> {
    pub steps: u64,
    /// One buffer per parameter; empty until its first gradient.
    pub first_moment: Vec<Vec<T>>,
    pub second_moment: Vec<Vec<T>>,
}

impl<T: Float> AdamW<T> {
    /// The moments on the host, whichever device they are kept on.
    pub fn export_state(&self) -> Result<AdamState<T>> {
        let (mut first_moment, mut second_moment) =
            (self.first_moment.clone(), self.second_moment.clone());
        for (i, moments) in self.device_moments.iter().enumerate() {
            if let Some((m, v)) = moments {
                first_moment[i] = m.to_vec()?;
                second_moment[i] = v.to_vec()?;
            }
        }
        Ok(AdamState {
            steps: self.step,
            first_moment,
            second_moment,
        })
    }

    pub fn import_state(&mut self, state: AdamState<T>) -> Result<()> {
        if state.first_moment.len() != state.second_moment.len() {
            return Err(Error::Invalid(
                "AdamW state: first and second moments differ in count".into(),
            ));
        }
        self.step = state.steps;
        self.first_moment = state.first_moment;
        self.second_moment = state.second_moment;
        self.device_moments.clear();
        Ok(())
    }
}
