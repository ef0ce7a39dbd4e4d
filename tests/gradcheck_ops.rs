//! Gradient checks, one proptest property per tape op, in f64.
//!
//! Each op's output y is reduced to the objective f = Σ y ⊙ R (R random), built
//! on the tape with mul/reshape/mean_pool/scale. The analytic gradient of f with
//! respect to every input element is compared with the central difference
//! (f(x + h) − f(x − h)) / 2h, h = 1e-5, and must satisfy
//!     |analytic − numeric| / max(1, |analytic|, |numeric|) ≤ 1e-6.
//! Shapes are drawn by proptest from ranges that include 1, primes and sizes
//! that are not multiples of 8. Inputs of ops with kinks (relu, MAE, Huber,
//! pinball) are kept at least 1e-3 away from the kink, where h cannot cross it;
//! layer-norm rows are kept away from constant (see its property).

use convformer::autograd::{LossKind, Padding};
use convformer::{ParamStore, Tape, Tensor, Var};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

mod support;
use support::unit_stream;

const H: f64 = 1e-5;
const TOL: f64 = 1e-6;

/// Reproducible values from the proptest-drawn seed.
fn uniform(seed: u64, n: usize, lo: f64, hi: f64) -> Vec<f64> {
    unit_stream(seed)
        .take(n)
        .map(|u| lo + (hi - lo) * u)
        .collect()
}

/// Values in ±[margin, 1.5]: never within `margin` of zero.
fn away_from_zero(seed: u64, n: usize, margin: f64) -> Vec<f64> {
    uniform(seed, n, -1.0, 1.0)
        .into_iter()
        .map(|u| u.signum() * (margin + u.abs() * (1.5 - margin)))
        .collect()
}

fn tensor(seed: u64, shape: &[usize]) -> Tensor<f64> {
    let n = shape.iter().product();
    Tensor::from_vec(uniform(seed, n, -1.5, 1.5), shape).unwrap()
}

fn fail(e: convformer::Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Compares analytic and numeric gradients of Σ build(inputs) ⊙ R for every
/// element of every input. `dropout_seed` puts the tape in training mode.
fn gradcheck<F>(
    inputs: &[Tensor<f64>],
    dropout_seed: Option<u64>,
    build: F,
) -> Result<(), TestCaseError>
where
    F: Fn(&mut Tape<f64>, &[Var]) -> convformer::Result<Var>,
{
    let store = ParamStore::<f64>::new();
    let new_tape = || match dropout_seed {
        Some(seed) => Tape::new(&store).training(seed),
        None => Tape::new(&store),
    };
    let weights = |n: usize| uniform(0xC0FFEE, n, -1.0, 1.0);
    let objective = |xs: &[Tensor<f64>]| -> Result<f64, TestCaseError> {
        let mut tape = new_tape();
        let vars: Vec<Var> = xs.iter().map(|x| tape.input(x.clone())).collect();
        let out = build(&mut tape, &vars).map_err(fail)?;
        let y = tape.value(out).as_slice().map_err(fail)?;
        Ok(y.iter().zip(weights(y.len())).map(|(a, b)| a * b).sum())
    };

    let mut tape = new_tape();
    let vars: Vec<Var> = inputs.iter().map(|x| tape.input(x.clone())).collect();
    let out = build(&mut tape, &vars).map_err(fail)?;
    let shape = tape.shape(out).to_vec();
    let n = tape.value(out).numel();
    let r = tape.input(Tensor::from_vec(weights(n), &shape).map_err(fail)?);
    let weighted = tape.mul(out, r).map_err(fail)?;
    let flat = tape.reshape(weighted, &[1, n]).map_err(fail)?;
    let mean = tape.mean_pool(flat, 1).map_err(fail)?;
    let f = tape.scale(mean, n as f64).map_err(fail)?;
    let grads = tape.backward(f).map_err(fail)?;

    for (i, x) in inputs.iter().enumerate() {
        let analytic = match grads.leaf(vars[i]) {
            Some(g) => g.to_vec().map_err(fail)?,
            None => vec![0.0; x.numel()],
        };
        prop_assert_eq!(analytic.len(), x.numel());
        for (j, &a) in analytic.iter().enumerate() {
            let mut xs = inputs.to_vec();
            xs[i].as_mut_slice().map_err(fail)?[j] += H;
            let plus = objective(&xs)?;
            xs[i].as_mut_slice().map_err(fail)?[j] -= 2.0 * H;
            let minus = objective(&xs)?;
            let numeric = (plus - minus) / (2.0 * H);
            let err = (a - numeric).abs() / 1f64.max(a.abs()).max(numeric.abs());
            prop_assert!(
                err <= TOL,
                "input {} {:?} element {}: analytic {} numeric {} relative error {:e}",
                i,
                x.shape(),
                j,
                a,
                numeric,
                err
            );
        }
    }
    Ok(())
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![Just(1usize), Just(2), Just(3), Just(5), Just(7), 1usize..=9]
}

fn lead_dims() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=3, 0..=2)
}

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(40)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn gradcheck_matmul(
        lead in lead_dims(), m in size(), k in size(), n in size(),
        trans_a: bool, trans_b: bool, shared_b: bool, seed: u64,
    ) {
        let with = |lead: &[usize], r: usize, c: usize, t: bool| {
            let mut s = lead.to_vec();
            s.extend(if t { [c, r] } else { [r, c] });
            s
        };
        let a = tensor(seed, &with(&lead, m, k, trans_a));
        let b_lead: &[usize] = if shared_b { &[] } else { &lead };
        let b = tensor(seed ^ 1, &with(b_lead, k, n, trans_b));
        gradcheck(&[a, b], None, |t, v| t.matmul(v[0], v[1], trans_a, trans_b))?;
    }

    #[test]
    fn gradcheck_linear(lead in lead_dims(), d_in in size(), d_out in size(), bias: bool, seed: u64) {
        let mut xs = lead.clone();
        xs.push(d_in);
        let inputs = [tensor(seed, &xs), tensor(seed ^ 1, &[d_out, d_in]), tensor(seed ^ 2, &[d_out])];
        gradcheck(&inputs, None, |t, v| t.linear(v[0], v[1], bias.then_some(v[2])))?;
    }

    #[test]
    fn gradcheck_conv1d(
        batch in 1usize..=3, c_in in size(), c_out in 1usize..=5, kernel in 1usize..=5,
        extra_len in 0usize..=7, same: bool, bias: bool, seed: u64,
    ) {
        let padding = if same { Padding::Same } else { Padding::Valid };
        let len = kernel + extra_len;
        let inputs = [
            tensor(seed, &[batch, c_in, len]),
            tensor(seed ^ 1, &[c_out, c_in, kernel]),
            tensor(seed ^ 2, &[c_out]),
        ];
        gradcheck(&inputs, None, |t, v| t.conv1d(v[0], v[1], bias.then_some(v[2]), padding))?;
    }

    #[test]
    fn gradcheck_conv1d_channels_last(
        batch in 1usize..=3, c_in in size(), c_out in 1usize..=5, kernel in 1usize..=5,
        extra_len in 0usize..=7, same: bool, bias: bool, seed: u64,
    ) {
        let padding = if same { Padding::Same } else { Padding::Valid };
        let len = kernel + extra_len;
        let inputs = [
            tensor(seed, &[batch, len, c_in]),
            tensor(seed ^ 1, &[c_out, c_in, kernel]),
            tensor(seed ^ 2, &[c_out]),
        ];
        gradcheck(&inputs, None, |t, v| {
            t.conv1d_channels_last(v[0], v[1], bias.then_some(v[2]), padding, false)
        })?;
    }

    #[test]
    fn fused_relu_ops_equal_linear_or_conv_then_relu(
        rows in 1usize..=7, d_in in size(), d_out in size(), conv: bool, seed: u64,
    ) {
        // relu's kink rules out central differences on a product, so the fused
        // node is held to the unfused chain (itself gradchecked), bit for bit.
        let inputs = if conv {
            [tensor(seed, &[rows, d_in, 6]), tensor(seed ^ 1, &[d_out, d_in, 3]), tensor(seed ^ 2, &[d_out])]
        } else {
            [tensor(seed, &[rows, d_in]), tensor(seed ^ 1, &[d_out, d_in]), tensor(seed ^ 2, &[d_out])]
        };
        let run = |fused: bool| -> (Vec<f64>, Vec<Vec<f64>>) {
            let store = ParamStore::<f64>::new();
            let mut t = Tape::new(&store);
            let v: Vec<Var> = inputs.iter().map(|x| t.input(x.clone())).collect();
            let y = match (conv, fused) {
                (true, true) => t.conv1d_relu(v[0], v[1], Some(v[2]), Padding::Same),
                (true, false) => t.conv1d(v[0], v[1], Some(v[2]), Padding::Same).and_then(|y| t.relu(y)),
                (false, true) => t.linear_relu(v[0], v[1], Some(v[2])),
                (false, false) => t.linear(v[0], v[1], Some(v[2])).and_then(|y| t.relu(y)),
            }.unwrap();
            let out = t.value(y).as_slice().unwrap().to_vec();
            // A weighted sum, so every output element gets its own gradient.
            let n = out.len();
            let weights = t.input(tensor(seed ^ 3, &[n]));
            let flat = t.reshape(y, &[n]).unwrap();
            let prod = t.mul(flat, weights).unwrap();
            let prod = t.reshape(prod, &[1, n]).unwrap();
            let loss = t.mean_pool(prod, 1).unwrap();
            let back = t.backward(loss).unwrap();
            let grads = v.iter().map(|&x| back.leaf(x).unwrap().as_slice().unwrap().to_vec()).collect();
            (out, grads)
        };
        let (fused, chain) = (run(true), run(false));
        prop_assert_eq!(fused, chain);
    }

    #[test]
    fn gradcheck_layer_norm(lead in lead_dims(), dim in size(), seed: u64) {
        let mut xs = lead.clone();
        xs.push(dim);
        // Alternating signs keep every row's spread ≥ 1: a near-constant row has a
        // huge rstd, and the central difference's h² error grows as rstd³.
        let n: usize = xs.iter().product();
        let x: Vec<f64> = uniform(seed, n, 0.5, 1.5).iter().enumerate()
            .map(|(i, u)| if i % 2 == 0 { *u } else { -u })
            .collect();
        let inputs = [Tensor::from_vec(x, &xs).unwrap(), tensor(seed ^ 1, &[dim]), tensor(seed ^ 2, &[dim])];
        gradcheck(&inputs, None, |t, v| t.layer_norm(v[0], v[1], v[2], 1e-5))?;
    }

    #[test]
    fn gradcheck_attention(
        batch in 1usize..=2, heads in 1usize..=3, tq in size(), tk in size(),
        d in 1usize..=5, dv in 1usize..=4, masked: bool, seed: u64,
    ) {
        let inputs = [
            tensor(seed, &[batch, heads, tq, d]),
            tensor(seed ^ 1, &[batch, heads, tk, d]),
            tensor(seed ^ 2, &[batch, heads, tk, dv]),
        ];
        let mask: Vec<bool> = uniform(seed ^ 3, batch * tk, 0.0, 1.0).iter().map(|&u| u < 0.7).collect();
        let mask = masked.then_some(mask.as_slice());
        gradcheck(&inputs, None, |t, v| t.attention(v[0], v[1], v[2], mask))?;
    }

    #[test]
    fn gradcheck_attention_tokens(
        batch in 1usize..=2, heads in 1usize..=3, tq in size(), tk in size(),
        d in 1usize..=5, dv in 1usize..=4, masked: bool, seed: u64,
    ) {
        // Token-major operands [B, T, H·D]: the heads are read in place.
        let inputs = [
            tensor(seed, &[batch, tq, heads * d]),
            tensor(seed ^ 1, &[batch, tk, heads * d]),
            tensor(seed ^ 2, &[batch, tk, heads * dv]),
        ];
        let mask: Vec<bool> = uniform(seed ^ 3, batch * tk, 0.0, 1.0).iter().map(|&u| u < 0.7).collect();
        let mask = masked.then_some(mask.as_slice());
        gradcheck(&inputs, None, |t, v| t.attention_tokens(v[0], v[1], v[2], heads, mask))?;
    }

    #[test]
    fn gradcheck_softmax(lead in lead_dims(), dim in size(), seed: u64) {
        let mut xs = lead.clone();
        xs.push(dim);
        gradcheck(&[tensor(seed, &xs)], None, |t, v| t.softmax(v[0]))?;
    }

    #[test]
    fn gradcheck_relu(n in 1usize..=40, seed: u64) {
        let x = Tensor::from_vec(away_from_zero(seed, n, 1e-3), &[n]).unwrap();
        gradcheck(&[x], None, |t, v| t.relu(v[0]))?;
    }

    #[test]
    fn gradcheck_gelu(a in size(), b in size(), seed: u64) {
        let x = Tensor::from_vec(uniform(seed, a * b, -4.0, 4.0), &[a, b]).unwrap();
        gradcheck(&[x], None, |t, v| t.gelu(v[0]))?;
    }

    #[test]
    fn gradcheck_dropout(a in size(), b in size(), p in prop_oneof![Just(0.0), Just(0.1), Just(0.5), Just(0.9)], seed: u64) {
        // Two dropout calls, so the second uses call offset 1.
        gradcheck(&[tensor(seed, &[a, b])], Some(seed), |t, v| {
            let y = t.dropout(v[0], p)?;
            t.dropout(y, p)
        })?;
    }

    #[test]
    fn gradcheck_add_mul_scale(shape in prop::collection::vec(1usize..=5, 1..=4), s in -2.0f64..2.0, seed: u64) {
        let inputs = [tensor(seed, &shape), tensor(seed ^ 1, &shape)];
        gradcheck(&inputs, None, |t, v| {
            let sum = t.add(v[0], v[1])?;
            let prod = t.mul(sum, v[0])?;
            t.scale(prod, s)
        })?;
    }

    #[test]
    fn gradcheck_add_bias(lead in lead_dims(), c in size(), seed: u64) {
        let mut xs = lead.clone();
        xs.push(c);
        let inputs = [tensor(seed, &xs), tensor(seed ^ 1, &[c])];
        gradcheck(&inputs, None, |t, v| t.add_bias(v[0], v[1]))?;
    }

    #[test]
    fn gradcheck_mean_pool(shape in prop::collection::vec(1usize..=5, 1..=4), axis_pick in 0usize..4, seed: u64) {
        let axis = axis_pick % shape.len();
        gradcheck(&[tensor(seed, &shape)], None, |t, v| t.mean_pool(v[0], axis))?;
    }

    #[test]
    fn gradcheck_permute_reshape(
        (shape, perm) in prop::collection::vec(1usize..=5, 2..=4).prop_flat_map(|s| {
            let axes: Vec<usize> = (0..s.len()).collect();
            (Just(s), Just(axes).prop_shuffle())
        }),
        seed: u64,
    ) {
        let n: usize = shape.iter().product();
        gradcheck(&[tensor(seed, &shape)], None, |t, v| {
            let p = t.permute(v[0], &perm)?;
            let r = t.reshape(p, &[n])?;
            t.mul(r, r)
        })?;
    }
}

/// pred and target whose residual stays ≥ 1e-3 away from 0 (the kink of MAE
/// and the pinball loss).
fn loss_inputs(seed: u64, shape: &[usize]) -> [Tensor<f64>; 2] {
    let n: usize = shape.iter().product();
    let target = uniform(seed, n, -1.0, 1.0);
    let residual = away_from_zero(seed ^ 1, n, 1e-3);
    let pred: Vec<f64> = target.iter().zip(&residual).map(|(t, r)| t + r).collect();
    [
        Tensor::from_vec(pred, shape).unwrap(),
        Tensor::from_vec(target, shape).unwrap(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn gradcheck_loss_mse(shape in prop::collection::vec(1usize..=7, 1..=3), seed: u64) {
        let inputs = loss_inputs(seed, &shape);
        gradcheck(&inputs, None, |t, v| t.loss(v[0], v[1], LossKind::Mse))?;
    }

    #[test]
    fn gradcheck_loss_mae(shape in prop::collection::vec(1usize..=7, 1..=3), seed: u64) {
        let inputs = loss_inputs(seed, &shape);
        gradcheck(&inputs, None, |t, v| t.loss(v[0], v[1], LossKind::Mae))?;
    }

    #[test]
    fn gradcheck_loss_huber(shape in prop::collection::vec(1usize..=7, 1..=3), delta in 0.1f64..2.0, seed: u64) {
        // Residuals on both sides of delta, each ≥ 1e-3 away from it and from 0.
        let n: usize = shape.iter().product();
        let target = uniform(seed, n, -1.0, 1.0);
        let u = uniform(seed ^ 1, n, -1.0, 1.0);
        let pred: Vec<f64> = target.iter().zip(&u).enumerate().map(|(i, (t, u))| {
            let magnitude = if i % 2 == 0 {
                1e-3 + u.abs() * (delta - 2e-3)
            } else {
                delta + 1e-3 + u.abs()
            };
            t + u.signum() * magnitude
        }).collect();
        let inputs = [Tensor::from_vec(pred, &shape).unwrap(), Tensor::from_vec(target, &shape).unwrap()];
        gradcheck(&inputs, None, |t, v| t.loss(v[0], v[1], LossKind::Huber(delta)))?;
    }

    #[test]
    fn gradcheck_loss_quantile(shape in prop::collection::vec(1usize..=7, 1..=3), q in 0.05f64..0.95, seed: u64) {
        let inputs = loss_inputs(seed, &shape);
        gradcheck(&inputs, None, |t, v| t.loss(v[0], v[1], LossKind::Quantile(q)))?;
    }
}
