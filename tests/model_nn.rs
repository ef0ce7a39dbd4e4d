//! The network modules: Keras head semantics, shapes and their errors, seeded
//! Glorot init, and safetensors round trips under PyTorch names.

use convformer::autograd::{ParamStore, Tape};
use convformer::nn::{glorot_uniform, ConvFormerNet, ModelConfig, MultiHeadAttention, SeedRng};
use convformer::train::weights::{load_model, save_model};
use convformer::{Error, Tensor};
use proptest::prelude::*;

fn input(rng: &mut SeedRng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec((0..n).map(|_| rng.next_f64() as f32 - 0.5).collect(), shape).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any head count works with any width: heads of ceil(d / h) each, and the
    /// output projection brings the width back to d.
    #[test]
    fn attention_accepts_any_head_count(d in 1usize..13, heads in 1usize..8, b in 1usize..4, t in 1usize..6) {
        let mut store = ParamStore::<f32>::new();
        let mut rng = SeedRng::new(3);
        let mha = MultiHeadAttention::new(&mut store, "attn", d, heads, None, &mut rng).unwrap();
        let key_dim = d.div_ceil(heads);
        prop_assert_eq!(mha.key_dim, key_dim);
        prop_assert_eq!(store.get(mha.q_proj.weight).shape(), &[heads * key_dim, d][..]);
        prop_assert_eq!(store.get(mha.out_proj.weight).shape(), &[d, heads * key_dim][..]);
        let mut tape = Tape::new(&store).inference();
        let x = tape.input(input(&mut rng, &[b, t, d]));
        let y = mha.forward(&mut tape, x, None).unwrap();
        prop_assert_eq!(tape.shape(y), &[b, t, d][..]);
        prop_assert!(tape.value(y).as_slice().unwrap().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn convformer_maps_a_batch_to_one_value_per_sample(
        b in 1usize..5, l in 1usize..9, c in 1usize..5, filters in 1usize..11, heads in 1usize..5,
    ) {
        let cfg = ModelConfig {
            seq_len: l, in_channels: c, conv_filters: filters, num_heads: heads,
            ff_dim: 7, dense_units: 5, ..ModelConfig::default()
        };
        let mut store = ParamStore::<f32>::new();
        let net = ConvFormerNet::new(&mut store, &cfg, 1).unwrap();
        let mut tape = Tape::new(&store).inference();
        let x = tape.input(input(&mut SeedRng::new(2), &[b, l, c]));
        let y = net.forward(&mut tape, x).unwrap();
        prop_assert_eq!(tape.shape(y), &[b][..]);
    }
}

#[test]
fn wrong_input_shape_is_an_error_naming_the_model() {
    let cfg = ModelConfig {
        seq_len: 6,
        in_channels: 3,
        ..ModelConfig::default()
    };
    let mut store = ParamStore::<f32>::new();
    let net = ConvFormerNet::new(&mut store, &cfg, 1).unwrap();
    let mut tape = Tape::new(&store).inference();
    let x = tape.input(Tensor::zeros(&[2, 6, 4]).unwrap());
    match net.forward(&mut tape, x) {
        Err(Error::Shape { op, lhs, .. }) => {
            assert_eq!(op, "ConvFormerNet");
            assert_eq!(lhs, vec![2, 6, 4]);
        }
        other => panic!("expected a shape error, got {:?}", other.map(|_| ())),
    }
    let bad = ModelConfig {
        num_heads: 0,
        ..cfg.clone()
    };
    let err = ConvFormerNet::new(&mut ParamStore::<f32>::new(), &bad, 1).unwrap_err();
    assert!(err.to_string().contains("num_heads"), "{err}");
    let bad = ModelConfig {
        dropout_rate: 1.0,
        ..cfg
    };
    assert!(ConvFormerNet::new(&mut ParamStore::<f32>::new(), &bad, 1).is_err());
}

#[test]
fn glorot_init_is_seeded_bounded_and_spread() {
    let (fan_in, fan_out) = (48, 243);
    let limit = (6.0f64 / (fan_in + fan_out) as f64).sqrt();
    let a: Tensor =
        glorot_uniform(&[fan_out, fan_in], fan_in, fan_out, &mut SeedRng::new(5)).unwrap();
    let b: Tensor =
        glorot_uniform(&[fan_out, fan_in], fan_in, fan_out, &mut SeedRng::new(5)).unwrap();
    let c: Tensor =
        glorot_uniform(&[fan_out, fan_in], fan_in, fan_out, &mut SeedRng::new(6)).unwrap();
    assert_eq!(a.as_slice().unwrap(), b.as_slice().unwrap());
    assert_ne!(a.as_slice().unwrap(), c.as_slice().unwrap());
    let v = a.as_slice().unwrap();
    assert!(v.iter().all(|&x| (x as f64).abs() <= limit));
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
    // U(-l, l) has variance l²/3 = 2 / (fan_in + fan_out).
    assert!(mean.abs() < 0.01 * limit, "mean {mean}");
    assert!(
        (var / (limit * limit / 3.0) - 1.0).abs() < 0.05,
        "variance {var}"
    );
}

#[test]
fn parameters_carry_pytorch_names_and_shapes() {
    let cfg = ModelConfig {
        seq_len: 12,
        in_channels: 5,
        ..ModelConfig::default()
    };
    let mut store = ParamStore::<f32>::new();
    ConvFormerNet::new(&mut store, &cfg, 1).unwrap();
    let shape = |name: &str| {
        store
            .get(store.find(name).unwrap_or_else(|| panic!("{name}")))
            .shape()
            .to_vec()
    };
    assert_eq!(shape("convs.0.weight"), [48, 5, 3]);
    assert_eq!(shape("convs.1.weight"), [48, 48, 3]);
    assert_eq!(shape("blocks.0.attn.q_proj.weight"), [48, 48]); // 6 heads × 8
    assert_eq!(shape("blocks.0.ff1.weight"), [243, 48]);
    assert_eq!(shape("blocks.0.norm2.bias"), [48]);
    assert_eq!(shape("dense.weight"), [64, 48]);
    assert_eq!(shape("out.weight"), [1, 64]);
    assert_eq!(store.len(), 4 + 8 + 4 + 4 + 4);
}

#[test]
fn safetensors_round_trip_and_refuse_another_config() {
    let cfg = ModelConfig {
        seq_len: 4,
        in_channels: 2,
        conv_filters: 8,
        num_heads: 3,
        ..ModelConfig::default()
    };
    let mut store = ParamStore::<f32>::new();
    ConvFormerNet::new(&mut store, &cfg, 11).unwrap();
    let dir = std::env::temp_dir().join(format!("cf-st-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    save_model(&store, &path).unwrap();
    let mut other = ParamStore::<f32>::new();
    ConvFormerNet::new(&mut other, &cfg, 12).unwrap();
    assert_ne!(
        store
            .get(store.find("dense.weight").unwrap())
            .as_slice()
            .unwrap(),
        other
            .get(other.find("dense.weight").unwrap())
            .as_slice()
            .unwrap()
    );
    load_model(&mut other, &path).unwrap();
    for id in store.ids() {
        assert_eq!(
            store.get(id).as_slice().unwrap(),
            other.get(id).as_slice().unwrap()
        );
    }
    let wider = ModelConfig {
        conv_filters: 9,
        ..cfg
    };
    let mut third = ParamStore::<f32>::new();
    ConvFormerNet::new(&mut third, &wider, 1).unwrap();
    let err = load_model(&mut third, &path).unwrap_err().to_string();
    assert!(
        err.contains("convs.0.weight") && err.contains("shape"),
        "{err}"
    );
    std::fs::write(&path, b"not a safetensors file").unwrap();
    assert!(load_model(&mut other, &path)
        .unwrap_err()
        .to_string()
        .contains("not a valid safetensors"));
    std::fs::remove_dir_all(&dir).ok();
}

/// Loss of ConvFormerNet (f64, no dropout) on a fixed batch.
fn skip_net_loss(store: &ParamStore<f64>, net: &ConvFormerNet, x: &[f64], y: &[f64]) -> f64 {
    let c = &net.config;
    let mut tape = Tape::new(store).inference();
    let xv =
        tape.constant(Tensor::from_vec(x.to_vec(), &[y.len(), c.seq_len, c.in_channels]).unwrap());
    let yv = tape.constant(Tensor::from_vec(y.to_vec(), &[y.len()]).unwrap());
    let pred = net.forward(&mut tape, xv).unwrap();
    let loss = tape
        .loss(pred, yv, convformer::autograd::LossKind::Mse)
        .unwrap();
    tape.value(loss).to_vec().unwrap()[0]
}

#[test]
fn the_linear_skip_is_a_named_parameter_with_exact_gradients() {
    let cfg = ModelConfig {
        seq_len: 5,
        in_channels: 3,
        conv_filters: 6,
        num_heads: 2,
        ff_dim: 7,
        dense_units: 4,
        dropout_rate: 0.0,
        linear_skip: true,
        ..ModelConfig::default()
    };
    let mut store = ParamStore::<f64>::new();
    let net = ConvFormerNet::new(&mut store, &cfg, 3).unwrap();
    let skip = store.find("skip.weight").expect("skip.weight");
    assert_eq!(store.get(skip).shape(), [1, 15]);
    assert!(store.find("skip.bias").is_some());
    let mut rng = SeedRng::new(5);
    let x: Vec<f64> = (0..4 * 15).map(|_| rng.next_f64() * 2.0 - 1.0).collect();
    let y: Vec<f64> = (0..4).map(|_| rng.next_f64()).collect();
    let mut tape = Tape::new(&store);
    let xv = tape.constant(Tensor::from_vec(x.clone(), &[4, 5, 3]).unwrap());
    let yv = tape.constant(Tensor::from_vec(y.clone(), &[4]).unwrap());
    let pred = net.forward(&mut tape, xv).unwrap();
    let loss = tape
        .loss(pred, yv, convformer::autograd::LossKind::Mse)
        .unwrap();
    let grads = tape.backward(loss).unwrap().params;
    // Central differences on every skip weight and on a conv weight.
    let conv = store.find("convs.0.weight").unwrap();
    for (id, indices) in [(skip, (0..15).collect::<Vec<_>>()), (conv, vec![0, 7, 20])] {
        let analytic = grads.get(id).unwrap().as_slice().unwrap().to_vec();
        for i in indices {
            let h = 1e-6;
            let mut plus = store.clone();
            plus.get_mut(id).as_mut_slice().unwrap()[i] += h;
            let mut minus = store.clone();
            minus.get_mut(id).as_mut_slice().unwrap()[i] -= h;
            let numeric = (skip_net_loss(&plus, &net, &x, &y)
                - skip_net_loss(&minus, &net, &x, &y))
                / (2.0 * h);
            assert!(
                (analytic[i] - numeric).abs() <= 1e-6 * (1.0 + numeric.abs()),
                "{} [{i}]: {} vs {numeric}",
                store.name(id),
                analytic[i]
            );
        }
    }
}
