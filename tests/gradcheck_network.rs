//! Gradient check of a small composed network (a miniature ConvFormerNet):
//! conv1d → permute → layer_norm → q/k/v linear → head split → masked attention
//! → merge → output linear + residual → GELU MLP → dropout → mean_pool → linear
//! head → Huber loss. The width (heads · head_dim) is at least 3, so that rows
//! entering layer_norm are rarely near-constant (whose huge rstd would make the
//! central difference itself inaccurate). Analytic gradients of every parameter and of the input are
//! compared with central differences in f64 (h = 1e-5), requiring
//! |analytic − numeric| / max(1, |analytic|, |numeric|) ≤ 1e-6.

use convformer::autograd::{LossKind, Padding};
use convformer::{ParamId, ParamStore, Tape, Tensor, Var};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

mod support;
use support::unit_stream;

const H: f64 = 1e-5;
const TOL: f64 = 1e-6;

fn uniform(seed: u64, n: usize, scale: f64) -> Vec<f64> {
    unit_stream(seed)
        .take(n)
        .map(|u| scale * (2.0 * u - 1.0))
        .collect()
}

#[derive(Clone, Copy, Debug)]
struct Sizes {
    batch: usize,
    c_in: usize,
    len: usize,
    heads: usize,
    head_dim: usize,
    ff: usize,
    kernel: usize,
}

struct Net {
    ids: Vec<ParamId>,
    sizes: Sizes,
}

impl Net {
    fn new(store: &mut ParamStore<f64>, s: Sizes, seed: u64) -> Net {
        let d = s.heads * s.head_dim;
        let shapes: Vec<(&str, Vec<usize>)> = vec![
            ("conv.w", vec![d, s.c_in, s.kernel]),
            ("conv.b", vec![d]),
            ("ln.w", vec![d]),
            ("ln.b", vec![d]),
            ("q.w", vec![d, d]),
            ("k.w", vec![d, d]),
            ("v.w", vec![d, d]),
            ("o.w", vec![d, d]),
            ("o.b", vec![d]),
            ("ff1.w", vec![s.ff, d]),
            ("ff1.b", vec![s.ff]),
            ("ff2.w", vec![d, s.ff]),
            ("ff2.b", vec![d]),
            ("head.w", vec![1, d]),
            ("head.b", vec![1]),
        ];
        let ids = shapes
            .into_iter()
            .enumerate()
            .map(|(i, (name, shape))| {
                let n = shape.iter().product();
                let t = Tensor::from_vec(uniform(seed + i as u64, n, 0.8), &shape).unwrap();
                store.add(name, t).unwrap()
            })
            .collect();
        Net { ids, sizes: s }
    }

    fn loss(
        &self,
        t: &mut Tape<f64>,
        x: Var,
        target: Var,
        mask: &[bool],
    ) -> convformer::Result<Var> {
        let s = self.sizes;
        let d = s.heads * s.head_dim;
        let p: Vec<Var> = self.ids.iter().map(|&id| t.param(id)).collect();
        let conv = t.conv1d(x, p[0], Some(p[1]), Padding::Same)?;
        let seq = t.permute(conv, &[0, 2, 1])?; // [B, L, D]
        let normed = t.layer_norm(seq, p[2], p[3], 1e-5)?;
        let split = |t: &mut Tape<f64>, w: Var| -> convformer::Result<Var> {
            let y = t.linear(normed, w, None)?;
            let y = t.reshape(y, &[s.batch, s.len, s.heads, s.head_dim])?;
            t.permute(y, &[0, 2, 1, 3])
        };
        let (q, k, v) = (split(t, p[4])?, split(t, p[5])?, split(t, p[6])?);
        let att = t.attention(q, k, v, Some(mask))?;
        let merged = t.permute(att, &[0, 2, 1, 3])?;
        let merged = t.reshape(merged, &[s.batch, s.len, d])?;
        let projected = t.linear(merged, p[7], Some(p[8]))?;
        let resid = t.add(seq, projected)?;
        let hidden = t.linear(resid, p[9], Some(p[10]))?;
        let hidden = t.gelu(hidden)?;
        let ff = t.linear(hidden, p[11], Some(p[12]))?;
        let ff = t.dropout(ff, 0.25)?;
        let out = t.add(resid, ff)?;
        let pooled = t.mean_pool(out, 1)?; // [B, D]
        let pred = t.linear(pooled, p[13], None)?;
        let pred = t.add_bias(pred, p[14])?;
        t.loss(pred, target, LossKind::Huber(0.7))
    }
}

fn fail(e: convformer::Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

fn check(a: f64, numeric: f64, what: &str) -> Result<(), TestCaseError> {
    let err = (a - numeric).abs() / 1f64.max(a.abs()).max(numeric.abs());
    prop_assert!(
        err <= TOL,
        "{what}: analytic {a} numeric {numeric} relative error {err:e}"
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn gradcheck_composed_network(
        batch in 1usize..=2, c_in in 1usize..=3, len in 1usize..=5, heads in 1usize..=2,
        head_dim in 3usize..=4, ff in 1usize..=5, kernel in 1usize..=4, seed: u64,
    ) {
        let sizes = Sizes { batch, c_in, len, heads, head_dim, ff, kernel };
        let mut store = ParamStore::new();
        let net = Net::new(&mut store, sizes, seed);
        let x = Tensor::from_vec(uniform(seed ^ 7, batch * c_in * len, 1.5), &[batch, c_in, len]).unwrap();
        let target = Tensor::from_vec(uniform(seed ^ 9, batch, 2.0), &[batch, 1]).unwrap();
        let mut mask: Vec<bool> = uniform(seed ^ 11, batch * len, 1.0).iter().map(|&u| u < 0.5).collect();
        mask.chunks_mut(len).for_each(|m| m[0] = true);
        let dropout_seed = seed ^ 13;

        let eval = |store: &ParamStore<f64>, x: &Tensor<f64>| -> Result<f64, TestCaseError> {
            let mut t = Tape::new(store).training(dropout_seed);
            let (xv, tv) = (t.input(x.clone()), t.input(target.clone()));
            let l = net.loss(&mut t, xv, tv, &mask).map_err(fail)?;
            t.value(l).item().map_err(fail)
        };

        let mut tape = Tape::new(&store).training(dropout_seed);
        let (xv, tv) = (tape.input(x.clone()), tape.input(target.clone()));
        let loss = net.loss(&mut tape, xv, tv, &mask).map_err(fail)?;
        let grads = tape.backward(loss).map_err(fail)?;

        for &id in &net.ids {
            let analytic = grads.params.get(id).map(|g| g.to_vec().unwrap());
            let analytic = analytic.unwrap_or_else(|| vec![0.0; store.get(id).numel()]);
            for (j, &a) in analytic.iter().enumerate() {
                let mut perturbed = store.clone();
                perturbed.get_mut(id).as_mut_slice().unwrap()[j] += H;
                let plus = eval(&perturbed, &x)?;
                perturbed.get_mut(id).as_mut_slice().unwrap()[j] -= 2.0 * H;
                let minus = eval(&perturbed, &x)?;
                check(a, (plus - minus) / (2.0 * H), &format!("{}[{j}]", store.name(id)))?;
            }
        }
        let dx = grads.leaf(xv).expect("input gradient").to_vec().unwrap();
        for (j, &a) in dx.iter().enumerate() {
            let mut xp = x.clone();
            xp.as_mut_slice().unwrap()[j] += H;
            let plus = eval(&store, &xp)?;
            xp.as_mut_slice().unwrap()[j] -= 2.0 * H;
            let minus = eval(&store, &xp)?;
            check(a, (plus - minus) / (2.0 * H), &format!("x[{j}]"))?;
        }
    }
}
