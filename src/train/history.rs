//! The per-epoch record of a run: written by the trainer, kept in its
//! checkpoint, drawn by the loss curve.

/// One line of the loss history.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    /// Training and validation loss in the network's units (see `SplitData::net_scale`).
    pub train_loss: f64,
    pub val_loss: f64,
    /// Validation MAE in scaled units (reported; selection uses `val_loss`).
    pub val_mae: f64,
    pub lr: f64,
    /// Mean global gradient norm of the epoch's steps, before clipping.
    pub grad_norm: f64,
    /// Share of the epoch's steps whose gradient was clipped.
    pub clipped: f64,
    /// Standard deviation of the network's outputs over the validation
    /// samples (network units): near zero when the output has collapsed to a constant.
    pub output_spread: f64,
}
