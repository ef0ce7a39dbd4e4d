//! Data parallelism on the CPU: a batch cut into shards of a fixed number of
//! rows, each shard's forward and backward recorded on its own tape as one
//! rayon task, the gradients summed in shard order.
//!
//! Why: the model's ops are small (a few hundred kFLOP each at batch 256), so
//! splitting every op across threads spends more time handing work over than
//! computing. A shard runs a whole forward and backward on one thread with
//! warm caches, and the threads meet once per step.
//!
//! Reproducibility: the cut depends on the batch shape only, never on the thread
//! count, and the partial results are added in shard order, so a step gives the
//! same bits on any number of threads.

use super::node::Var;
use super::params::{Grads, ParamStore};
use super::tape::Tape;
use crate::cpu;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::float::Float;
use rayon::prelude::*;
use std::ops::Range;

/// Time steps (rows × sequence length) one shard holds: big enough that its
/// GEMMs run near full speed, small enough that its activations stay in cache
/// (the feed-forward's 512 × 243 floats fill about a 512 KiB L2). 512 ran the
/// 2-thread step 3–6% faster than 1024 at batch 256/1024 × sequence 16/64, in
/// interleaved runs; 256 was slower again.
const SHARD_STEPS: usize = 512;

/// Rows per shard for samples of `seq_len` time steps.
pub fn shard_rows(seq_len: usize) -> usize {
    (SHARD_STEPS / seq_len.max(1)).max(1)
}

/// The whole batch's mean loss and its parameter gradients, computed shard by
/// shard on the CPU (in one piece on a GPU, where one launch per op is cheaper).
///
/// `shard_loss(tape, rows)` records, on a training tape (dropout key
/// `dropout_seed`) that holds rows `rows` of the batch, the mean loss of those
/// rows. Each shard's loss is weighted by its share of the batch, so the sum is
/// the mean over the batch and the gradients are its gradients.
pub fn sharded_backward<T, F>(
    store: &ParamStore<T>,
    dropout_seed: u64,
    batch: usize,
    rows_per_shard: usize,
    shard_loss: F,
) -> Result<(f64, Grads<T>)>
where
    T: Float,
    F: Fn(&mut Tape<'_, T>, Range<usize>) -> Result<Var> + Sync,
{
    if batch == 0 || rows_per_shard == 0 {
        return Err(Error::Invalid(format!(
            "sharded_backward: batch ({batch}) and rows per shard ({rows_per_shard}) must be at least 1"
        )));
    }
    let rows_per_shard = match store.device() {
        Device::Cpu => rows_per_shard,
        _ => batch,
    };
    // With at least one shard per thread, the threads are busy with shards.
    let shards_fill_threads = batch.div_ceil(rows_per_shard) >= rayon::current_num_threads();
    let shard = |rows: Range<usize>| -> Result<(f64, Grads<T>)> {
        let share = rows.len() as f64 / batch as f64;
        let run = || -> Result<(f64, Grads<T>)> {
            let mut tape = Tape::new(store)
                .training(dropout_seed)
                .batch_shard(rows.start);
            let mut loss = shard_loss(&mut tape, rows)?;
            if share != 1.0 {
                loss = tape.scale(loss, T::from_f64(share))?;
            }
            let value = tape.value(loss).item()?.to_f64();
            Ok((value, tape.backward(loss)?.params))
        };
        if shards_fill_threads {
            cpu::as_parallel_piece(run)
        } else {
            run()
        }
    };
    let cuts: Vec<Range<usize>> = (0..batch)
        .step_by(rows_per_shard)
        .map(|r| r..(r + rows_per_shard).min(batch))
        .collect();
    // Inside the pool from the start: a lone shard would otherwise run on the caller.
    let mut parts = cpu::on_pool(|| cuts.into_par_iter().map(shard).collect::<Result<Vec<_>>>())?;
    let loss = parts.iter().map(|(l, _)| l).sum();
    let mut grads: Vec<Vec<_>> = parts
        .iter_mut()
        .map(|(_, g)| std::mem::take(&mut g.params))
        .collect();
    let first = std::mem::take(&mut grads[0]);
    let summed = first
        .into_par_iter()
        .enumerate()
        .map(|(i, acc)| add_in_shard_order(i, acc, &grads[1..]))
        .collect::<Result<Vec<_>>>()?;
    Ok((loss, Grads { params: summed }))
}

/// Parameter `i`'s gradient of the first shard plus those of the others, in order.
fn add_in_shard_order<T: Float>(
    i: usize,
    mut acc: Option<crate::Tensor<T>>,
    rest: &[Vec<Option<crate::Tensor<T>>>],
) -> Result<Option<crate::Tensor<T>>> {
    for g in rest.iter().filter_map(|shard| shard[i].as_ref()) {
        match &mut acc {
            None => acc = Some(g.clone()),
            Some(a) => crate::ops::elementwise::cpu::add_assign(a.as_mut_slice()?, g.as_slice()?),
        }
    }
    Ok(acc)
}
