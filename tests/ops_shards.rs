//! Data-parallel shards: a batch cut into shards gives the whole batch's loss
//! and gradients (dropout included: each shard draws its rows' mask of the
//! whole batch), and the same bits on any number of threads.

use convformer::autograd::{sharded_backward, Grads, LossKind, ParamStore, Tape, Var};
use convformer::nn::{ConvFormerNet, ModelConfig, SeedRng};
use convformer::{Float, Tensor};
use std::ops::Range;

const SEQ: usize = 6;
const CHANNELS: usize = 3;
const BATCH: usize = 37;

fn config() -> ModelConfig {
    ModelConfig {
        seq_len: SEQ,
        in_channels: CHANNELS,
        conv_filters: 8,
        num_heads: 2,
        ff_dim: 12,
        dense_units: 5,
        // Large, so that a wrong mask anywhere moves the gradients visibly.
        dropout_rate: 0.3,
        ..ModelConfig::default()
    }
}

struct Batch {
    x: Vec<f64>,
    y: Vec<f64>,
}

fn batch() -> Batch {
    let mut rng = SeedRng::new(9);
    Batch {
        x: (0..BATCH * SEQ * CHANNELS)
            .map(|_| rng.next_f64() * 2.0 - 1.0)
            .collect(),
        y: (0..BATCH).map(|_| rng.next_f64()).collect(),
    }
}

/// Records the mean loss of rows `rows` of the batch on `tape`.
fn rows_loss<T: Float>(
    model: &ConvFormerNet,
    data: &Batch,
    tape: &mut Tape<'_, T>,
    rows: Range<usize>,
) -> convformer::Result<Var> {
    let per = SEQ * CHANNELS;
    let x: Vec<T> = data.x[rows.start * per..rows.end * per]
        .iter()
        .map(|&v| T::from_f64(v))
        .collect();
    let y: Vec<T> = data.y[rows.clone()]
        .iter()
        .map(|&v| T::from_f64(v))
        .collect();
    let xv = tape.input(Tensor::from_vec(x, &[rows.len(), SEQ, CHANNELS])?);
    let yv = tape.input(Tensor::from_vec(y, &[rows.len()])?);
    let pred = model.forward(tape, xv)?;
    tape.loss(pred, yv, LossKind::Huber(0.5))
}

fn grad_values<T: Float>(store: &ParamStore<T>, grads: &Grads<T>) -> Vec<Vec<T>> {
    store
        .ids()
        .map(|id| {
            grads
                .get(id)
                .expect("every parameter has a gradient")
                .to_vec()
                .unwrap()
        })
        .collect()
}

#[test]
fn shards_give_the_whole_batch_loss_and_gradients_dropout_included() {
    let mut store = ParamStore::<f64>::new();
    let model = ConvFormerNet::new(&mut store, &config(), 3).unwrap();
    let data = batch();
    let seed = 77;
    let mut tape = Tape::new(&store).training(seed);
    let loss = rows_loss(&model, &data, &mut tape, 0..BATCH).unwrap();
    let whole_loss = tape.value(loss).item().unwrap();
    let whole = grad_values(&store, &tape.backward(loss).unwrap().params);
    // 1 and 5: many shards, a ragged last one; 37 and 64: one shard.
    for rows in [1, 5, 8, 37, 64] {
        let (loss, grads) = sharded_backward(&store, seed, BATCH, rows, |tape, r| {
            rows_loss(&model, &data, tape, r)
        })
        .unwrap();
        assert!(
            (loss - whole_loss).abs() <= 1e-12 * whole_loss.abs().max(1.0),
            "{rows} rows per shard: loss {loss} vs {whole_loss}"
        );
        for ((g, w), id) in grad_values(&store, &grads)
            .iter()
            .zip(&whole)
            .zip(store.ids())
        {
            for (a, b) in g.iter().zip(w) {
                assert!(
                    (a - b).abs() <= 1e-10 * b.abs().max(1.0),
                    "{rows} rows per shard, parameter {}: {a} vs {b}",
                    store.name(id)
                );
            }
        }
    }
}

#[test]
fn a_sharded_step_is_bit_identical_whatever_the_thread_count() {
    let mut store = ParamStore::<f32>::new();
    let model = ConvFormerNet::new(&mut store, &config(), 4).unwrap();
    let data = batch();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let (loss, grads) = sharded_backward(&store, 5, BATCH, 4, |tape, r| {
                rows_loss(&model, &data, tape, r)
            })
            .unwrap();
            let bits: Vec<u32> = grad_values(&store, &grads)
                .concat()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            (loss.to_bits(), bits)
        })
    };
    let one = run(1);
    for threads in [2, 3] {
        assert!(run(threads) == one, "{threads} threads differ from 1");
    }
}

#[test]
fn an_empty_batch_is_an_error() {
    let store = ParamStore::<f32>::new();
    let err = sharded_backward(&store, 0, 0, 4, |tape, _| {
        Ok(tape.input(Tensor::scalar(0.0f32)))
    })
    .unwrap_err();
    assert!(err.to_string().contains("batch (0)"), "{err}");
}
