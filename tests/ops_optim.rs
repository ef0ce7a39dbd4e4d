//! Adam/AdamW against a hand-written reference, clipping, and schedules.

use convformer::autograd::{Grads, LossKind};
use convformer::optim::{clip_grad_norm, AdamConfig, AdamW, LrSchedule};
use convformer::{ParamStore, Tape, Tensor};

/// Grads of `store` for loss = mean(coef ⊙ w²), through the tape.
fn quadratic_grads(store: &ParamStore<f64>, coef: &[f64]) -> Grads<f64> {
    let id = store.ids().next().unwrap();
    let mut tp = Tape::new(store);
    let w = tp.param(id);
    let c = tp.input(Tensor::from_vec(coef.to_vec(), &[coef.len()]).unwrap());
    let sq = tp.mul(w, w).unwrap();
    let weighted = tp.mul(sq, c).unwrap();
    let row = tp.reshape(weighted, &[1, coef.len()]).unwrap();
    let loss = tp.mean_pool(row, 1).unwrap();
    tp.backward(loss).unwrap().params
}

fn reference_adamw(cfg: AdamConfig, w0: &[f64], coef: &[f64], lrs: &[f64]) -> Vec<f64> {
    let n = w0.len() as f64;
    let (mut w, mut m, mut v) = (w0.to_vec(), vec![0.0; w0.len()], vec![0.0; w0.len()]);
    for (t, &lr) in lrs.iter().enumerate() {
        let t = (t + 1) as i32;
        for i in 0..w.len() {
            let g = 2.0 * coef[i] * w[i] / n;
            w[i] -= lr * cfg.weight_decay * w[i];
            m[i] = cfg.beta1 * m[i] + (1.0 - cfg.beta1) * g;
            v[i] = cfg.beta2 * v[i] + (1.0 - cfg.beta2) * g * g;
            let m_hat = m[i] / (1.0 - cfg.beta1.powi(t));
            let v_hat = v[i] / (1.0 - cfg.beta2.powi(t));
            w[i] -= lr * m_hat / (v_hat.sqrt() + cfg.eps);
        }
    }
    w
}

#[test]
fn adam_and_adamw_match_the_reference_update() {
    let w0 = [0.7, -1.3, 0.05, 2.0, -0.4];
    let coef = [1.0, 0.5, 3.0, 0.2, 1.7];
    let lrs = [0.1, 0.05, 0.02, 0.08];
    for weight_decay in [0.0, 0.1] {
        let cfg = AdamConfig {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay,
        };
        let mut store = ParamStore::new();
        let id = store
            .add("w", Tensor::from_vec(w0.to_vec(), &[5]).unwrap())
            .unwrap();
        let mut opt = AdamW::new(cfg);
        for &lr in &lrs {
            let g = quadratic_grads(&store, &coef);
            opt.step(&mut store, &g, lr).unwrap();
        }
        let want = reference_adamw(cfg, &w0, &coef, &lrs);
        for (a, b) in store.get(id).as_slice().unwrap().iter().zip(&want) {
            assert!((a - b).abs() <= 1e-12, "wd {weight_decay}: {a} vs {b}");
        }
        assert_ne!(store.get(id).as_slice().unwrap(), &w0);
    }
}

#[test]
fn adam_fits_a_linear_model() {
    let mut store = ParamStore::<f64>::new();
    let w = store
        .add("w", Tensor::from_vec(vec![0.0; 3], &[1, 3]).unwrap())
        .unwrap();
    let x: Vec<f64> = (0..30).map(|i| ((i * 7 % 13) as f64 - 6.0) / 6.0).collect();
    let y: Vec<f64> = x
        .chunks(3)
        .map(|r| 2.0 * r[0] - r[1] + 0.5 * r[2])
        .collect();
    let mut opt = AdamW::new(AdamConfig {
        lr: 0.05,
        ..AdamConfig::default()
    });
    let mut last = f64::INFINITY;
    for _ in 0..400 {
        let mut tp = Tape::new(&store);
        let wv = tp.param(w);
        let xv = tp.input(Tensor::from_vec(x.clone(), &[10, 3]).unwrap());
        let yv = tp.input(Tensor::from_vec(y.clone(), &[10, 1]).unwrap());
        let pred = tp.linear(xv, wv, None).unwrap();
        let loss = tp.loss(pred, yv, LossKind::Mse).unwrap();
        last = tp.value(loss).item().unwrap();
        let g = tp.backward(loss).unwrap();
        opt.step(&mut store, &g.params, 0.05).unwrap();
    }
    assert!(last < 1e-6, "loss {last}");
    let fitted = store.get(w).as_slice().unwrap();
    for (a, b) in fitted.iter().zip([2.0, -1.0, 0.5]) {
        assert!((a - b).abs() < 1e-3, "{fitted:?}");
    }
}

#[test]
fn step_rejects_gradients_of_another_store() {
    let mut store = ParamStore::<f32>::new();
    store.add("a", Tensor::zeros(&[2]).unwrap()).unwrap();
    let mut opt = AdamW::new(AdamConfig::default());
    assert!(opt.step(&mut store, &Grads::new(3), 1e-3).is_err());
}

#[test]
fn clipping_scales_to_the_max_norm_and_returns_the_old_norm() {
    let mut store = ParamStore::<f64>::new();
    store
        .add("w", Tensor::from_vec(vec![3.0, -4.0], &[2]).unwrap())
        .unwrap();
    // loss = mean(w²) -> grad = w = (3, -4), norm 5.
    let mut g = quadratic_grads(&store, &[1.0, 1.0]);
    let id = store.ids().next().unwrap();
    let norm = clip_grad_norm(&mut g, 1.0).unwrap();
    assert!((norm - 5.0).abs() < 1e-12);
    let clipped = g.get(id).unwrap().as_slice().unwrap();
    let new_norm = clipped.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!((new_norm - 1.0).abs() < 1e-6, "{clipped:?}");
    assert!(
        (clipped[0] / clipped[1] + 0.75).abs() < 1e-12,
        "direction kept"
    );
    // Below the limit nothing changes.
    let before = g.get(id).unwrap().to_vec().unwrap();
    let norm = clip_grad_norm(&mut g, 10.0).unwrap();
    assert!((norm - 1.0).abs() < 1e-6);
    assert_eq!(g.get(id).unwrap().to_vec().unwrap(), before);
}

#[test]
fn warmup_cosine_schedule() {
    let s = LrSchedule::WarmupCosine {
        peak: 1e-3,
        warmup_steps: 10,
        total_steps: 110,
        min_lr: 1e-5,
    };
    assert!((s.lr_at(0) - 1e-4).abs() < 1e-15);
    assert!((s.lr_at(9) - 1e-3).abs() < 1e-15);
    assert!((s.lr_at(10) - 1e-3).abs() < 1e-15);
    assert!((s.lr_at(60) - (1e-5 + 0.5 * (1e-3 - 1e-5))).abs() < 1e-12);
    assert!((s.lr_at(110) - 1e-5).abs() < 1e-15);
    assert!((s.lr_at(500) - 1e-5).abs() < 1e-15);
    let lrs: Vec<f64> = (10..=110).map(|i| s.lr_at(i)).collect();
    assert!(lrs.windows(2).all(|w| w[1] <= w[0]), "monotone decay");
    assert_eq!(LrSchedule::Constant(0.3).lr_at(1234), 0.3);
}

#[test]
fn cpu_adamw_kernel_rejects_mismatched_lengths_and_sums_squares() {
    use convformer::ops::adamw::cpu::{adamw_step, sum_squares, AdamCoefs};
    let c = AdamCoefs::<f64>::new(0.1, 0.9, 0.99, 1e-8, 0.0, 1);
    let (mut p, mut m, mut v) = (vec![1.0; 4], vec![0.0; 4], vec![0.0; 3]);
    let err = adamw_step(&c, &mut p, &[0.5; 4], &mut m, &mut v).unwrap_err();
    assert!(err.to_string().contains("differ in length"), "{err}");
    assert_eq!(
        p,
        vec![1.0; 4],
        "a rejected step must not touch the parameters"
    );
    // First step from zero moments: m̂ = g, v̂ = g², so p moves by lr·g/(|g| + eps).
    let mut v = vec![0.0; 4];
    let g = [0.5f64, -2.0, 0.25, 1.0];
    adamw_step(&c, &mut p, &g, &mut m, &mut v).unwrap();
    for (&pi, &gi) in p.iter().zip(&g) {
        let want = 1.0 - 0.1 * gi / (gi.abs() + 1e-8);
        assert!((pi - want).abs() < 1e-12, "{pi} vs {want}");
    }
    assert_eq!(sum_squares(&[3.0f32, -4.0, 0.5]), 25.25);
}
