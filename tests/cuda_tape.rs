//! Every tape op on the emulated CUDA device against the same op on the CPU
//! tape: forward values and the gradients of every input, at small ragged
//! shapes (1, primes, non-multiples of 8). Tolerance |gpu − cpu| ≤ 2e-5 +
//! 1e-3·|cpu| (f32 on both, sums in a different order; the emulator poisons
//! fresh buffers with NaN, so an unwritten element fails).

mod support;

use convformer::autograd::{LossKind, Padding, ParamStore, Tape, Var};
use convformer::{Device, Error, Tensor};
use support::TestRng;

const EMU: Device = Device::CudaEmu;
const ATOL: f32 = 2e-5;
const RTOL: f32 = 1e-3;

fn assert_close(what: &str, gpu: &[f32], cpu: &[f32]) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: length");
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        assert!(
            (g - c).abs() <= ATOL + RTOL * c.abs(),
            "{what}[{i}]: emulated GPU {g}, CPU {c}"
        );
    }
}

/// Runs `build` on a CPU tape and on an emulated-GPU tape over the same
/// inputs, then an MSE loss against a random target; compares the op's
/// output, the loss and the gradient of every input.
fn check(
    name: &str,
    seed: u64,
    shapes: &[&[usize]],
    build: impl Fn(&mut Tape<'_, f32>, &[Var]) -> convformer::Result<Var>,
) {
    let mut rng = TestRng::new(seed);
    let inputs: Vec<Tensor> = shapes
        .iter()
        .map(|s| Tensor::from_vec(rng.vec(s.iter().product()), s).unwrap())
        .collect();
    let store = ParamStore::<f32>::new();
    let run = |device: Device| {
        let mut tape = Tape::new(&store).training(seed);
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| tape.input(t.to_device(&device).unwrap()))
            .collect();
        let out = build(&mut tape, &vars).unwrap();
        assert_eq!(tape.value(out).device(), device, "{name}: output device");
        let shape = tape.shape(out).to_vec();
        let target =
            Tensor::from_vec(TestRng::new(seed + 1).vec(shape.iter().product()), &shape).unwrap();
        let target = tape.input(target.to_device(&device).unwrap());
        let loss = tape.loss(out, target, LossKind::Mse).unwrap();
        let y = tape.value(out).to_vec().unwrap();
        let l = tape.value(loss).item().unwrap();
        let back = tape.backward(loss).unwrap();
        let grads: Vec<Option<Vec<f32>>> = vars
            .iter()
            .map(|&v| back.leaf(v).map(|g| g.to_vec().unwrap()))
            .collect();
        (y, l, grads)
    };
    let (y_cpu, l_cpu, g_cpu) = run(Device::Cpu);
    let (y_gpu, l_gpu, g_gpu) = run(EMU);
    assert_close(&format!("{name} forward"), &y_gpu, &y_cpu);
    assert_close(&format!("{name} loss"), &[l_gpu], &[l_cpu]);
    for (i, (g, c)) in g_gpu.iter().zip(&g_cpu).enumerate() {
        match (g, c) {
            (Some(g), Some(c)) => assert_close(&format!("{name} grad of input {i}"), g, c),
            (None, None) => {}
            _ => panic!("{name}: input {i} has a gradient on one device only"),
        }
    }
}

#[test]
fn pointwise_ops_match_cpu() {
    check("add", 1, &[&[3, 7], &[3, 7]], |t, v| t.add(v[0], v[1]));
    check("mul", 2, &[&[5, 13], &[5, 13]], |t, v| t.mul(v[0], v[1]));
    check("scale", 3, &[&[11]], |t, v| t.scale(v[0], -1.75));
    check("relu", 4, &[&[2, 3, 17]], |t, v| t.relu(v[0]));
    check("gelu", 5, &[&[1, 29]], |t, v| t.gelu(v[0]));
    check("reshape+add", 6, &[&[6, 5], &[3, 10]], |t, v| {
        let r = t.reshape(v[0], &[3, 10])?;
        t.add(r, v[1])
    });
    check("add_bias", 7, &[&[4, 3, 19], &[19]], |t, v| {
        t.add_bias(v[0], v[1])
    });
    check("softmax", 8, &[&[7, 23]], |t, v| t.softmax(v[0]));
}

#[test]
fn matmul_and_linear_match_cpu() {
    for (i, (ta, tb)) in [(false, false), (true, false), (false, true), (true, true)]
        .into_iter()
        .enumerate()
    {
        let a: &[usize] = if ta { &[2, 5, 3] } else { &[2, 3, 5] };
        let b: &[usize] = if tb { &[2, 7, 5] } else { &[2, 5, 7] };
        check(
            &format!("matmul {ta} {tb}"),
            10 + i as u64,
            &[a, b],
            |t, v| t.matmul(v[0], v[1], ta, tb),
        );
    }
    check("matmul shared b", 15, &[&[3, 4, 9], &[9, 2]], |t, v| {
        t.matmul(v[0], v[1], false, false)
    });
    check("matmul shared bᵀ", 16, &[&[3, 4, 9], &[2, 9]], |t, v| {
        t.matmul(v[0], v[1], false, true)
    });
    check("linear", 17, &[&[2, 5, 13], &[11, 13], &[11]], |t, v| {
        t.linear(v[0], v[1], Some(v[2]))
    });
    check(
        "linear + relu",
        19,
        &[&[2, 5, 13], &[11, 13], &[11]],
        |t, v| t.linear_relu(v[0], v[1], Some(v[2])),
    );
    check("linear no bias", 18, &[&[1, 7], &[3, 7]], |t, v| {
        t.linear(v[0], v[1], None)
    });
}

#[test]
fn conv1d_matches_cpu() {
    check(
        "conv1d same",
        20,
        &[&[2, 3, 11], &[5, 3, 3], &[5]],
        |t, v| t.conv1d(v[0], v[1], Some(v[2]), Padding::Same),
    );
    check(
        "conv1d + relu",
        22,
        &[&[3, 2, 9], &[4, 2, 3], &[4]],
        |t, v| t.conv1d_relu(v[0], v[1], Some(v[2]), Padding::Same),
    );
    check("conv1d valid", 21, &[&[3, 2, 9], &[4, 2, 4]], |t, v| {
        t.conv1d(v[0], v[1], None, Padding::Valid)
    });
    // On a GPU the channels-last op is permutes around the channels-first kernel.
    check(
        "conv1d channels-last + relu",
        23,
        &[&[3, 9, 2], &[4, 2, 3], &[4]],
        |t, v| t.conv1d_channels_last(v[0], v[1], Some(v[2]), Padding::Same, true),
    );
    check(
        "conv1d one input channel",
        22,
        &[&[2, 1, 16], &[7, 1, 5], &[7]],
        |t, v| t.conv1d(v[0], v[1], Some(v[2]), Padding::Same),
    );
    check(
        "conv1d even kernel",
        23,
        &[&[1, 4, 7], &[3, 4, 2], &[3]],
        |t, v| t.conv1d(v[0], v[1], Some(v[2]), Padding::Same),
    );
}

#[test]
fn layer_norm_attention_pool_permute_match_cpu() {
    check("layer_norm", 30, &[&[3, 5, 17], &[17], &[17]], |t, v| {
        t.layer_norm(v[0], v[1], v[2], 1e-5)
    });
    check(
        "attention",
        31,
        &[&[2, 3, 5, 8], &[2, 3, 7, 8], &[2, 3, 7, 6]],
        |t, v| t.attention(v[0], v[1], v[2], None),
    );
    // On the device: split heads, attention, merge (the CPU reads them in place).
    check(
        "attention_tokens",
        38,
        &[&[2, 5, 3 * 8], &[2, 7, 3 * 8], &[2, 7, 3 * 6]],
        |t, v| t.attention_tokens(v[0], v[1], v[2], 3, None),
    );
    let mask: Vec<bool> = (0..2 * 7).map(|i| i % 3 != 1).collect();
    check(
        "attention masked",
        32,
        &[&[2, 1, 4, 5], &[2, 1, 7, 5], &[2, 1, 7, 5]],
        |t, v| t.attention(v[0], v[1], v[2], Some(&mask)),
    );
    for axis in 0..3 {
        check(
            &format!("mean_pool {axis}"),
            33 + axis as u64,
            &[&[3, 5, 7]],
            |t, v| t.mean_pool(v[0], axis),
        );
    }
    check("permute 3-D", 37, &[&[2, 5, 3]], |t, v| {
        t.permute(v[0], &[0, 2, 1])
    });
    check("permute 4-D", 38, &[&[2, 3, 5, 7]], |t, v| {
        t.permute(v[0], &[0, 2, 1, 3])
    });
    check("permute 4-D reversed", 39, &[&[2, 3, 1, 5]], |t, v| {
        t.permute(v[0], &[3, 2, 1, 0])
    });
}

#[test]
fn losses_match_cpu() {
    for (i, kind) in [
        LossKind::Mse,
        LossKind::Mae,
        LossKind::Huber(0.3),
        LossKind::Quantile(0.9),
    ]
    .into_iter()
    .enumerate()
    {
        // The loss under test feeds the harness's MSE: its gradients reach
        // both pred and target.
        check(
            &format!("{kind:?}"),
            40 + i as u64,
            &[&[3, 11], &[3, 11]],
            |t, v| {
                let l = t.loss(v[0], v[1], kind)?;
                t.scale(l, 3.0)
            },
        );
    }
}

#[test]
fn dropout_masks_are_identical_on_both_devices() {
    // Two calls, so the tape's call counter takes part too.
    check("dropout", 50, &[&[4, 37]], |t, v| {
        let a = t.dropout(v[0], 0.3)?;
        t.dropout(a, 0.5)
    });
    let x = Tensor::full(1.0f32, &[1001]).unwrap();
    let store = ParamStore::<f32>::new();
    let kept = |device: Device| {
        let mut tape = Tape::new(&store).training(99);
        let v = tape.input(x.to_device(&device).unwrap());
        let y = tape.dropout(v, 0.25).unwrap();
        let y = tape.value(y).to_vec().unwrap();
        y.iter().map(|&v| v != 0.0).collect::<Vec<bool>>()
    };
    let (cpu, gpu) = (kept(Device::Cpu), kept(EMU));
    assert_eq!(cpu, gpu, "dropout masks differ");
    let dropped = cpu.iter().filter(|&&k| !k).count();
    assert!(
        (150..350).contains(&dropped),
        "{dropped} of 1001 dropped at p = 0.25"
    );
}

#[test]
fn mixed_devices_and_f64_are_clear_errors() {
    let store = ParamStore::<f32>::new();
    let mut tape = Tape::new(&store);
    let a = tape.input(Tensor::full(1.0f32, &[2, 3]).unwrap());
    let b = tape.input(
        Tensor::full(2.0f32, &[2, 3])
            .unwrap()
            .to_device(&EMU)
            .unwrap(),
    );
    let msg = tape.add(a, b).unwrap_err().to_string();
    assert!(
        msg.contains("cpu") && msg.contains("cuda-emulator"),
        "{msg}"
    );
    let w = tape.input(
        Tensor::full(1.0f32, &[4, 3])
            .unwrap()
            .to_device(&EMU)
            .unwrap(),
    );
    let msg = tape.linear(a, w, None).unwrap_err().to_string();
    assert!(
        msg.contains("linear") && msg.contains("cpu") && msg.contains("cuda-emulator"),
        "{msg}"
    );

    let f64_tensor = Tensor::<f64>::full(1.0, &[3]).unwrap();
    assert!(matches!(f64_tensor.to_device(&EMU), Err(Error::Device(_))));
    let on_gpu = Tensor::full(3.5f32, &[2]).unwrap().to_device(&EMU).unwrap();
    assert!(on_gpu.as_slice().is_err());
    assert_eq!(on_gpu.to_vec().unwrap(), vec![3.5, 3.5]);
    assert_eq!(
        on_gpu.to_device(&Device::Cpu).unwrap().as_slice().unwrap(),
        &[3.5, 3.5]
    );
}

#[test]
fn adamw_on_the_device_matches_cpu_and_leaves_store_clones_alone() {
    use convformer::optim::{AdamConfig, AdamW};
    let mut rng = TestRng::new(60);
    let (p0, g0) = (rng.vec(37), rng.vec(37));
    let step = |device: Device| {
        let mut store = ParamStore::<f32>::new();
        let id = store
            .add("w", Tensor::from_vec(p0.clone(), &[37]).unwrap())
            .unwrap();
        let mut store = store.to_device(&device).unwrap();
        let snapshot = store.clone();
        let mut opt = AdamW::new(AdamConfig {
            weight_decay: 0.1,
            ..AdamConfig::default()
        });
        let mut tape = Tape::new(&store);
        let w = tape.param(id);
        let g = tape.input(
            Tensor::from_vec(g0.clone(), &[37])
                .unwrap()
                .to_device(&device)
                .unwrap(),
        );
        // d(Σ w·g)/dw = g, through mul and a sum (mean_pool · 37).
        let prod = tape.mul(w, g).unwrap();
        let mean = tape.mean_pool(prod, 0).unwrap();
        let loss = tape.scale(mean, 37.0).unwrap();
        let grads = tape.backward(loss).unwrap().params;
        for _ in 0..3 {
            opt.step(&mut store, &grads, 0.01).unwrap();
        }
        assert_eq!(
            snapshot.get(id).to_vec().unwrap(),
            p0,
            "{device}: a clone of the store moved"
        );
        (store.get(id).to_vec().unwrap(), opt.export_state().unwrap())
    };
    let (cpu, cpu_state) = step(Device::Cpu);
    let (gpu, gpu_state) = step(EMU);
    assert!(
        cpu.iter().zip(&p0).all(|(a, b)| a != b),
        "AdamW did not move"
    );
    assert_close("AdamW parameters", &gpu, &cpu);
    assert_eq!(gpu_state.steps, 3);
    assert_close(
        "AdamW first moment",
        &gpu_state.first_moment[0],
        &cpu_state.first_moment[0],
    );
    assert_close(
        "AdamW second moment",
        &gpu_state.second_moment[0],
        &cpu_state.second_moment[0],
    );
}
