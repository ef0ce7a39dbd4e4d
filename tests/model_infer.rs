//! The forward-only inference path (`nn::Inference`) against the tape's
//! forward on an inference tape: bit-identical outputs on ragged network
//! shapes and batch sizes, with every parameter drawn away from its
//! initial value (biases are zeros and LayerNorm weights ones at init), on
//! one thread and on two.

mod support;

use convformer::autograd::ParamStore;
use convformer::nn::{Activation, ConvFormerNet, Inference, ModelConfig};
use convformer::train::{predict, predict_on_tape};
use proptest::prelude::*;
use support::TestRng;

fn network(cfg: &ModelConfig, seed: u64) -> (ConvFormerNet, ParamStore<f32>) {
    let mut store = ParamStore::<f32>::new();
    let model = ConvFormerNet::new(&mut store, cfg, seed).expect("model");
    let mut rng = TestRng::new(seed ^ 0x5EED);
    let ids: Vec<_> = store.ids().collect();
    for id in ids {
        for v in store.get_mut(id).as_mut_slice().expect("cpu") {
            *v += 0.3 * rng.uniform();
        }
    }
    (model, store)
}

fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("pool")
        .install(f)
}

fn assert_same(cfg: &ModelConfig, batch: usize, seed: u64) {
    let (model, store) = network(cfg, seed);
    let x = TestRng::new(seed).vec(batch * cfg.seq_len * cfg.in_channels);
    let want = on_threads(2, || predict_on_tape(&model, &store, &x)).expect("tape");
    assert_eq!(want.len(), batch);
    for threads in [1, 2] {
        let inference = Inference::new(&model, &store).expect("inference");
        // Twice: the second call runs in the workspaces the first one grew.
        for pass in 0..2 {
            let got = on_threads(threads, || inference.forward(&x)).expect("forward");
            let differ: Vec<_> = (0..batch)
                .filter(|&i| got[i].to_bits() != want[i].to_bits())
                .take(3)
                .map(|i| (i, got[i], want[i]))
                .collect();
            assert!(
                differ.is_empty(),
                "{cfg:?} batch {batch}, {threads} threads, pass {pass}: (sample, forward-only, tape) {differ:?}"
            );
        }
    }
}

#[test]
fn default_network_matches_the_tape_bit_for_bit() {
    for (seq_len, batch) in [(16, 97), (64, 33)] {
        let cfg = ModelConfig {
            seq_len,
            in_channels: 26,
            ..ModelConfig::default()
        };
        assert_same(&cfg, batch, seq_len as u64);
    }
}

#[test]
fn predict_cuts_batches_and_matches_the_tape() {
    let cfg = ModelConfig {
        seq_len: 8,
        in_channels: 3,
        conv_filters: 12,
        num_heads: 3,
        ff_dim: 20,
        ..ModelConfig::default()
    };
    let (model, store) = network(&cfg, 7);
    let x = TestRng::new(8).vec(45 * 8 * 3);
    let whole = predict_on_tape(&model, &store, &x).expect("tape");
    // 45 samples in batches of 16: the last batch is ragged.
    let got = predict(&model, &store, &x, 16).expect("predict");
    let batched: Vec<f32> = x
        .chunks(16 * 8 * 3)
        .flat_map(|c| predict_on_tape(&model, &store, c).expect("tape"))
        .collect();
    assert_eq!(got.len(), 45);
    assert!(got.iter().all(|v| v.is_finite()));
    assert_eq!(
        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        batched.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    // Batching itself changes nothing either.
    assert_eq!(got, whole);
}

#[test]
fn bad_inputs_are_rejected() {
    let cfg = ModelConfig {
        seq_len: 4,
        in_channels: 2,
        conv_filters: 6,
        num_heads: 2,
        ..ModelConfig::default()
    };
    let (model, store) = network(&cfg, 1);
    let inference = Inference::new(&model, &store).expect("inference");
    let err = inference.forward(&[0.5; 7]).unwrap_err().to_string();
    assert!(err.contains("whole number"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn ragged_networks_match_the_tape(
        seq_len in 1usize..40,
        in_channels in 1usize..6,
        conv_filters in 1usize..20,
        conv_layers in 1usize..3,
        conv_kernel in 1usize..6,
        num_heads in 1usize..4,
        key_dim in prop::option::of(1usize..7),
        ff_dim in 1usize..30,
        num_blocks in 1usize..3,
        dense_units in 1usize..9,
        gelu in any::<bool>(),
        norm_first in any::<bool>(),
        linear_skip in any::<bool>(),
        batch in 1usize..70,
        seed in any::<u64>(),
    ) {
        let cfg = ModelConfig {
            seq_len,
            in_channels,
            conv_filters,
            conv_layers,
            conv_kernel,
            num_heads,
            key_dim,
            ff_dim,
            num_blocks,
            dense_units,
            activation: if gelu { Activation::Gelu } else { Activation::Relu },
            norm_first,
            linear_skip,
            ..ModelConfig::default()
        };
        assert_same(&cfg, batch, seed);
    }
}
