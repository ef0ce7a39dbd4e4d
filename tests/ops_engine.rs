//! Tape behaviour: shape errors name the op and both shapes, inference mode,
//! gradient accumulation, constants (no gradient), dropout call counter, and bit-for-bit reproducibility
//! of a training step whatever the rayon thread count.

use convformer::autograd::{LossKind, Padding};
use convformer::{Error, ParamStore, Tape, Tensor};

fn t(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(
        (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0).collect(),
        shape,
    )
    .unwrap()
}

/// The error must be a shape error of `op` whose message shows both shapes.
fn expect_shape_error(
    r: convformer::Result<convformer::Var>,
    op: &str,
    lhs: &[usize],
    rhs: &[usize],
) {
    let err = match r {
        Err(e) => e,
        Ok(_) => panic!("{op}: expected a shape error"),
    };
    let msg = err.to_string();
    assert!(
        matches!(err, Error::Shape { .. }),
        "{op}: not a shape error: {msg}"
    );
    assert!(msg.starts_with(op), "message does not name {op}: {msg}");
    for s in [lhs, rhs] {
        assert!(
            msg.contains(&format!("{s:?}")),
            "message lacks {s:?}: {msg}"
        );
    }
}

#[test]
fn bad_shapes_are_errors_naming_op_and_shapes() {
    let store = ParamStore::new();
    let mut tp = Tape::new(&store);
    let a = tp.input(t(&[2, 3, 4]));
    let b = tp.input(t(&[2, 5, 6]));
    expect_shape_error(
        tp.matmul(a, b, false, false),
        "matmul",
        &[2, 3, 4],
        &[2, 5, 6],
    );
    let w = tp.input(t(&[7, 5]));
    expect_shape_error(tp.linear(a, w, None), "linear", &[2, 3, 4], &[7, 5]);
    let cw = tp.input(t(&[4, 2, 3]));
    expect_shape_error(
        tp.conv1d(a, cw, None, Padding::Same),
        "conv1d",
        &[2, 3, 4],
        &[4, 2, 3],
    );
    let long = tp.input(t(&[1, 3, 9]));
    let cw_long = tp.input(t(&[2, 3, 9]));
    let short = tp.input(t(&[1, 3, 4]));
    assert!(tp.conv1d(long, cw_long, None, Padding::Valid).is_ok());
    expect_shape_error(
        tp.conv1d(short, cw_long, None, Padding::Valid),
        "conv1d",
        &[1, 3, 4],
        &[2, 3, 9],
    );
    expect_shape_error(tp.add(a, b), "add", &[2, 3, 4], &[2, 5, 6]);
    expect_shape_error(tp.mul(a, b), "mul", &[2, 3, 4], &[2, 5, 6]);
    let ln = tp.input(t(&[3]));
    expect_shape_error(
        tp.layer_norm(a, ln, ln, 1e-5),
        "layer_norm",
        &[2, 3, 4],
        &[3],
    );
    expect_shape_error(tp.add_bias(a, ln), "add_bias", &[2, 3, 4], &[3]);
    let q = tp.input(t(&[2, 2, 3, 4]));
    let k = tp.input(t(&[2, 2, 5, 3]));
    expect_shape_error(
        tp.attention(q, k, k, None),
        "attention",
        &[2, 2, 3, 4],
        &[2, 2, 5, 3],
    );
    expect_shape_error(
        tp.attention(q, q, q, Some(&[true; 5])),
        "attention",
        &[2, 2, 3, 4],
        &[5],
    );
    expect_shape_error(tp.loss(a, b, LossKind::Mse), "loss", &[2, 3, 4], &[2, 5, 6]);
    expect_shape_error(tp.permute(a, &[0, 0, 1]), "permute", &[2, 3, 4], &[0, 0, 1]);
    expect_shape_error(tp.mean_pool(a, 3), "mean_pool", &[2, 3, 4], &[3]);
    expect_shape_error(tp.reshape(a, &[5, 5]), "reshape", &[2, 3, 4], &[5, 5]);
    assert!(matches!(tp.dropout(a, 1.0), Err(Error::Invalid(_))));
    assert!(matches!(
        tp.loss(a, a, LossKind::Quantile(1.5)),
        Err(Error::Invalid(_))
    ));
}

#[test]
fn inference_mode_records_nothing_and_refuses_backward() {
    let mut store = ParamStore::new();
    let w = store.add("w", t(&[3, 4])).unwrap();
    let mut tp = Tape::new(&store).inference();
    let x = tp.input(t(&[2, 4]));
    let wv = tp.param(w);
    let y = tp.linear(x, wv, None).unwrap();
    // Dropout is the identity outside training.
    assert_eq!(tp.dropout(y, 0.5).unwrap(), y);
    let target = tp.input(t(&[2, 3]));
    let l = tp.loss(y, target, LossKind::Mse).unwrap();
    assert!(tp.value(l).item().unwrap() > 0.0);
    assert!(matches!(tp.backward(l), Err(Error::Invalid(_))));
}

#[test]
fn gradients_of_a_reused_value_accumulate() {
    let mut store = ParamStore::<f64>::new();
    let w = store
        .add("w", Tensor::from_vec(vec![1.5, -2.0], &[2]).unwrap())
        .unwrap();
    let mut tp = Tape::new(&store);
    let wv = tp.param(w);
    let sq = tp.mul(wv, wv).unwrap(); // w², used with w again below
    let cube = tp.mul(sq, wv).unwrap();
    let both = tp.add(cube, sq).unwrap();
    let two = tp.reshape(both, &[1, 2]).unwrap();
    let mean = tp.mean_pool(two, 1).unwrap();
    let g = tp.backward(mean).unwrap();
    // d/dw mean(w³ + w²) = (3w² + 2w) / 2
    let want = [(3.0 * 2.25 + 3.0) / 2.0, (3.0 * 4.0 - 4.0) / 2.0];
    assert_eq!(g.params.get(w).unwrap().as_slice().unwrap(), &want);
}

/// A conv → relu → linear chain on x; returns the parameter gradients and
/// x's own gradient, with x put on the tape as an input or as a constant.
fn conv_chain_grads(constant: bool) -> (Vec<Vec<f64>>, Option<Vec<f64>>) {
    let mut store = ParamStore::<f64>::new();
    let val = |shape: &[usize], salt: usize| {
        let n: usize = shape.iter().product();
        Tensor::from_vec(
            (0..n)
                .map(|i| (((i + salt) * 37 % 11) as f64 - 5.0) / 7.0)
                .collect(),
            shape,
        )
        .unwrap()
    };
    let (cw, cb) = (
        store.add("cw", val(&[4, 3, 3], 1)).unwrap(),
        store.add("cb", val(&[4], 2)).unwrap(),
    );
    let lw = store.add("lw", val(&[1, 4 * 5], 3)).unwrap();
    let ids = [cw, cb, lw];
    let mut tp = Tape::new(&store);
    let x = val(&[2, 3, 5], 4);
    let xv = if constant {
        tp.constant(x)
    } else {
        tp.input(x)
    };
    let (cw, cb, lw) = (tp.param(cw), tp.param(cb), tp.param(lw));
    let h = tp.conv1d(xv, cw, Some(cb), Padding::Same).unwrap();
    let h = tp.relu(h).unwrap();
    let h = tp.reshape(h, &[2, 20]).unwrap();
    let y = tp.linear(h, lw, None).unwrap();
    let target = tp.constant(val(&[2, 1], 5));
    let loss = tp.loss(y, target, LossKind::Mse).unwrap();
    let back = tp.backward(loss).unwrap();
    let params = ids
        .iter()
        .map(|&id| back.params.get(id).unwrap().as_slice().unwrap().to_vec())
        .collect();
    let dx = back.leaf(xv).map(|g| g.as_slice().unwrap().to_vec());
    assert!(
        back.leaf(target).is_none(),
        "a constant target got a gradient"
    );
    (params, dx)
}

#[test]
fn constants_get_no_gradient_and_change_no_parameter_gradient() {
    let (with_input, dx) = conv_chain_grads(false);
    let (with_constant, none) = conv_chain_grads(true);
    assert_eq!(with_input, with_constant);
    assert!(none.is_none(), "a constant input got a gradient");
    let dx = dx.expect("an input gets its gradient");
    assert_eq!(dx.len(), 2 * 3 * 5);
    assert!(
        dx.iter().any(|&v| v != 0.0),
        "the input gradient is all zeros"
    );
}

#[test]
fn dropout_calls_draw_different_masks_and_reproduce_per_seed() {
    let store = ParamStore::new();
    let run = |seed: u64| {
        let mut tp = Tape::new(&store).training(seed);
        let x = tp.input(Tensor::full(1.0f32, &[1000]).unwrap());
        let a = tp.dropout(x, 0.5).unwrap();
        let b = tp.dropout(x, 0.5).unwrap();
        (tp.value(a).to_vec().unwrap(), tp.value(b).to_vec().unwrap())
    };
    let (a, b) = run(3);
    assert_ne!(a, b, "the call counter must change the mask");
    assert_eq!(run(3), (a.clone(), b), "same seed, same masks");
    assert_ne!(run(4).0, a);
    let kept = a.iter().filter(|&&v| v == 2.0).count();
    assert!(a.iter().all(|&v| v == 0.0 || v == 2.0));
    assert!((400..600).contains(&kept), "kept {kept} of 1000 at p = 0.5");
}

/// One forward + backward of a small ConvFormer-like block at sizes that span
/// several fixed reduction blocks (batch 40 > CONV_CHUNK, 640 rows > REDUCE_ROWS).
fn training_step() -> (f32, Vec<Vec<f32>>) {
    let (batch, c_in, len, d, heads, ff) = (40, 5, 16, 12, 3, 27);
    let mut store = ParamStore::new();
    let mut seed = 1u64;
    let mut param = |store: &mut ParamStore, name: &str, shape: &[usize]| {
        let n: usize = shape.iter().product();
        seed += 1;
        let v = (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 1000.0 - 0.5) * 0.6)
            .collect();
        store
            .add(name, Tensor::from_vec(v, shape).unwrap())
            .unwrap()
    };
    let ids = [
        param(&mut store, "conv.w", &[d, c_in, 3]),
        param(&mut store, "conv.b", &[d]),
        param(&mut store, "ln.w", &[d]),
        param(&mut store, "ln.b", &[d]),
        param(&mut store, "qkv.w", &[3 * d, d]),
        param(&mut store, "ff1.w", &[ff, d]),
        param(&mut store, "ff1.b", &[ff]),
        param(&mut store, "ff2.w", &[d, ff]),
        param(&mut store, "head.w", &[1, d]),
    ];
    let mut tp = Tape::new(&store).training(99);
    let p: Vec<_> = ids.iter().map(|&id| tp.param(id)).collect();
    let x = tp.input(t(&[batch, c_in, len]));
    let h = tp.conv1d(x, p[0], Some(p[1]), Padding::Same).unwrap();
    let h = tp.permute(h, &[0, 2, 1]).unwrap();
    let h = tp.layer_norm(h, p[2], p[3], 1e-5).unwrap();
    let qkv = tp.linear(h, p[4], None).unwrap();
    // q, k and v side by side as 3·heads heads (tensors are at most 4-D).
    let qkv = tp
        .reshape(qkv, &[batch, len, 3 * heads, d / heads])
        .unwrap();
    let qkv = tp.permute(qkv, &[0, 2, 1, 3]).unwrap(); // [B, 3H, L, dh]
    let att_in = tp
        .reshape(qkv, &[batch * 3, heads, len, d / heads])
        .unwrap();
    let att = tp.attention(att_in, att_in, att_in, None).unwrap();
    let att = tp
        .reshape(att, &[batch, 3 * heads * len * (d / heads)])
        .unwrap();
    let att = tp.reshape(att, &[batch, 3, len, d]).unwrap();
    let att = tp.mean_pool(att, 1).unwrap(); // [B, L, D]
    let h2 = tp.add(h, att).unwrap();
    let f = tp.linear(h2, p[5], Some(p[6])).unwrap();
    let f = tp.gelu(f).unwrap();
    let f = tp.dropout(f, 0.1).unwrap();
    let f = tp.linear(f, p[7], None).unwrap();
    let f = tp.relu(f).unwrap();
    let pooled = tp.mean_pool(f, 1).unwrap();
    let pred = tp.linear(pooled, p[8], None).unwrap();
    let target = tp.input(t(&[batch, 1]));
    let loss = tp.loss(pred, target, LossKind::Huber(0.5)).unwrap();
    let value = tp.value(loss).item().unwrap();
    let g = tp.backward(loss).unwrap();
    let grads = ids
        .iter()
        .map(|&id| g.params.get(id).unwrap().to_vec().unwrap())
        .collect();
    (value, grads)
}

#[test]
fn a_training_step_is_bitwise_identical_across_thread_counts() {
    let run_with = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(training_step)
    };
    let one = run_with(1);
    for threads in [2, 3, 5] {
        let other = run_with(threads);
        assert_eq!(
            one.0.to_bits(),
            other.0.to_bits(),
            "loss differs at {threads} threads"
        );
        for (i, (a, b)) in one.1.iter().zip(&other.1).enumerate() {
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(same, "gradient of param {i} differs at {threads} threads");
        }
    }
    assert!(one.1.iter().flatten().any(|&v| v != 0.0));
}
