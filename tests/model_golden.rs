//! Golden test against PyTorch: `scripts/torch_reference.py` builds the same
//! network in PyTorch from the weights this test wrote, and recorded the
//! prediction, the loss and every parameter gradient in float64. The Rust
//! forward and backward must match within 1e-4 relative in f32 (1e-9 in f64).
//!
//! Regenerate (only when the architecture changes on purpose):
//!   CONVFORMER_WRITE_GOLDEN=1 cargo test --release --test model_golden
//!   python3 scripts/torch_reference.py

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use convformer::autograd::{ParamStore, Tape};
use convformer::nn::{Activation, ConvFormerNet, ModelConfig, SeedRng};
use convformer::train::weights::{
    fill_store, from_safetensors, store_tensors, to_safetensors, NamedTensor,
};
use convformer::train::LossSpec;
use convformer::{Float, Tensor};

struct Case {
    name: &'static str,
    config: ModelConfig,
    loss: &'static str,
    batch: usize,
}

fn cases() -> Vec<Case> {
    vec![
        // Post-norm, relu, 3 heads whose key_dim (4) does not divide d_model (10).
        Case {
            name: "post_relu",
            config: ModelConfig {
                seq_len: 7,
                in_channels: 3,
                conv_filters: 10,
                conv_layers: 2,
                num_heads: 3,
                ff_dim: 13,
                dropout_rate: 0.1,
                dense_units: 9,
                norm_first: false,
                ..ModelConfig::default()
            },
            loss: "mse",
            batch: 5,
        },
        // Pre-norm, gelu, two blocks, an explicit key_dim, the quantile loss.
        Case {
            name: "pre_gelu",
            config: ModelConfig {
                seq_len: 5,
                in_channels: 2,
                conv_filters: 8,
                conv_layers: 1,
                num_heads: 2,
                key_dim: Some(5),
                ff_dim: 11,
                num_blocks: 2,
                dense_units: 6,
                activation: Activation::Gelu,
                norm_first: true,
                ..ModelConfig::default()
            },
            loss: "quantile:0.8",
            batch: 4,
        },
    ]
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn read(path: &Path) -> (HashMap<String, NamedTensor<f64>>, HashMap<String, String>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; see this file's header for how to regenerate",
            path.display()
        )
    });
    let (tensors, meta) = from_safetensors::<f64>(&bytes, path).unwrap();
    (
        tensors.into_iter().map(|t| (t.name.clone(), t)).collect(),
        meta,
    )
}

fn write_inputs(case: &Case) {
    let mut store = ParamStore::<f32>::new();
    ConvFormerNet::new(&mut store, &case.config, 7).unwrap();
    let mut tensors = store_tensors(&store, "").unwrap();
    let mut rng = SeedRng::new(99);
    let (l, c) = (case.config.seq_len, case.config.in_channels);
    let x = (0..case.batch * l * c)
        .map(|_| (rng.next_f64() * 2.0 - 1.0) as f32)
        .collect();
    let y = (0..case.batch).map(|_| rng.next_f64() as f32).collect();
    tensors.push(NamedTensor {
        name: "x".into(),
        shape: vec![case.batch, l, c],
        data: x,
    });
    tensors.push(NamedTensor {
        name: "y".into(),
        shape: vec![case.batch],
        data: y,
    });
    let meta = HashMap::from([
        (
            "config".to_string(),
            serde_json::to_string(&case.config).unwrap(),
        ),
        ("loss".to_string(), case.loss.to_string()),
    ]);
    let bytes = to_safetensors(&tensors, Some(meta)).unwrap();
    std::fs::write(
        golden_dir().join(format!("{}_input.safetensors", case.name)),
        bytes,
    )
    .unwrap();
}

/// Forward + backward in T from the recorded weights and batch: (pred, loss, grads by name).
fn run<T: Float>(case: &Case) -> (Vec<f64>, f64, HashMap<String, Vec<f64>>) {
    let input_path = golden_dir().join(format!("{}_input.safetensors", case.name));
    let (inputs, meta) = read(&input_path);
    let config: ModelConfig = serde_json::from_str(&meta["config"]).unwrap();
    assert_eq!(
        config, case.config,
        "the recorded config differs from the test's"
    );
    let mut store = ParamStore::<T>::new();
    // Any seed: every weight is overwritten from the file.
    let model = ConvFormerNet::new(&mut store, &config, 1).unwrap();
    let weights: Vec<NamedTensor<T>> = inputs
        .values()
        .map(|t| NamedTensor {
            name: t.name.clone(),
            shape: t.shape.clone(),
            data: t.data.iter().map(|&v| T::from_f64(v)).collect(),
        })
        .collect();
    fill_store(&mut store, &weights, "", &input_path).unwrap();
    let to_t = |t: &NamedTensor<f64>| {
        Tensor::from_vec(t.data.iter().map(|&v| T::from_f64(v)).collect(), &t.shape).unwrap()
    };
    let loss_kind = meta["loss"].parse::<LossSpec>().unwrap().0;
    // Inference-style dropout (off) but with gradients: a plain tape, not `.training()`.
    let mut tape = Tape::new(&store);
    let x = tape.input(to_t(&inputs["x"]));
    let y = tape.input(to_t(&inputs["y"]));
    let pred = model.forward(&mut tape, x).unwrap();
    let loss = tape.loss(pred, y, loss_kind).unwrap();
    let pred_v: Vec<f64> = tape
        .value(pred)
        .as_slice()
        .unwrap()
        .iter()
        .map(|v| v.to_f64())
        .collect();
    let loss_v = tape.value(loss).item().unwrap().to_f64();
    let back = tape.backward(loss).unwrap();
    let grads = store
        .ids()
        .map(|id| {
            let g = back
                .params
                .get(id)
                .unwrap_or_else(|| panic!("no gradient for {}", store.name(id)));
            (
                store.name(id).to_string(),
                g.as_slice().unwrap().iter().map(|v| v.to_f64()).collect(),
            )
        })
        .collect();
    (pred_v, loss_v, grads)
}

/// |a − b| ≤ tol · max(|b|, 1% of the tensor's largest |b|, floor): relative,
/// judged at the tensor's scale near zero. `floor` comes from the gradients as a
/// whole: the key bias gradient is exactly zero in theory (softmax ignores a
/// shift shared by all keys), so both sides hold round-off there.
fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64, floor: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let bound = tol * w.abs().max(0.01 * scale).max(floor);
        assert!(
            (g - w).abs() <= bound,
            "{what}[{i}]: rust {g:e} vs torch {w:e} (bound {bound:e})"
        );
    }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0f64, |m, x| m.max(x.abs()))
}

fn check<T: Float>(tol: f64) {
    for case in cases() {
        let (golden, _) = read(&golden_dir().join(format!("{}_golden.safetensors", case.name)));
        let (pred, loss, grads) = run::<T>(&case);
        let want_pred = &golden["pred"].data;
        assert!(
            max_abs(want_pred) > 0.0,
            "all-zero golden predictions would prove nothing"
        );
        assert_close(&format!("{} pred", case.name), &pred, want_pred, tol, 0.0);
        assert_close(
            &format!("{} loss", case.name),
            &[loss],
            &golden["loss"].data,
            tol,
            0.0,
        );
        let grad_scale = golden
            .iter()
            .filter(|(k, _)| k.starts_with("grad."))
            .map(|(_, t)| max_abs(&t.data))
            .fold(0.0, f64::max);
        assert!(
            grad_scale > 0.0,
            "all-zero golden gradients would prove nothing"
        );
        let golden_grads = golden.keys().filter(|k| k.starts_with("grad.")).count();
        assert_eq!(
            golden_grads,
            grads.len(),
            "{}: torch and rust parameter counts differ",
            case.name
        );
        for (name, g) in &grads {
            let want = &golden
                .get(&format!("grad.{name}"))
                .unwrap_or_else(|| panic!("{}: torch has no parameter '{name}'", case.name))
                .data;
            assert_close(
                &format!("{} grad {name}", case.name),
                g,
                want,
                tol,
                1e-4 * grad_scale,
            );
        }
    }
}

#[test]
fn matches_pytorch_in_f32() {
    if std::env::var_os("CONVFORMER_WRITE_GOLDEN").is_some() {
        cases().iter().for_each(write_inputs);
        eprintln!("wrote the golden inputs; now run python3 scripts/torch_reference.py");
        return;
    }
    check::<f32>(1e-4);
}

#[test]
fn matches_pytorch_in_f64() {
    if std::env::var_os("CONVFORMER_WRITE_GOLDEN").is_some() {
        return;
    }
    check::<f64>(1e-9);
}
