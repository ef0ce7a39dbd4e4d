//! The engine on its own: a different small network built from the public
//! modules (a Conv1d feature extractor, a pre-norm encoder block with gelu, a
//! Linear head) trained with AdamW to recover a known signal: the peak of a
//! noisy window. Shows the tape, the modules, the optimizer and the schedule
//! without any of the ConvFormerNet / trainer plumbing.
//!
//! cargo run --release --example custom_model

use convformer::autograd::{LossKind, Padding, ParamStore, Tape, Var};
use convformer::nn::{
    Activation, Conv1d, EncoderOptions, Linear, SeedRng, TransformerEncoderBlock,
};
use convformer::optim::{clip_grad_norm, AdamConfig, AdamW, LrSchedule};
use convformer::Tensor;

const SEQ: usize = 10;
const WIDTH: usize = 16;

struct PeakNet {
    conv: Conv1d,
    block: TransformerEncoderBlock,
    head: Linear,
}

impl PeakNet {
    fn new(store: &mut ParamStore, rng: &mut SeedRng) -> convformer::Result<Self> {
        let enc = EncoderOptions {
            d_model: WIDTH,
            num_heads: 4,
            key_dim: None,
            ff_dim: 32,
            dropout: 0.0,
            activation: Activation::Gelu,
            norm_first: true,
            eps: 1e-5,
        };
        Ok(PeakNet {
            conv: Conv1d::new(store, "conv", 1, WIDTH, 3, Padding::Same, rng)?,
            block: TransformerEncoderBlock::new(store, "block", &enc, rng)?,
            head: Linear::new(store, "head", WIDTH, 1, true, rng)?,
        })
    }

    /// x [B, SEQ] -> [B]: conv over time → encoder block → mean over time → linear.
    fn forward(&self, tape: &mut Tape<'_>, x: Var) -> convformer::Result<Var> {
        let b = tape.shape(x)[0];
        let h = tape.reshape(x, &[b, 1, SEQ])?;
        let h = self.conv.forward(tape, h)?;
        let h = tape.relu(h)?;
        let h = tape.permute(h, &[0, 2, 1])?;
        let h = self.block.forward(tape, h, None)?;
        let h = tape.mean_pool(h, 1)?;
        let y = self.head.forward(tape, h)?;
        tape.reshape(y, &[b])
    }
}

/// Windows of noise around a level; the target is the window's peak.
fn batch(rng: &mut SeedRng, n: usize) -> (Vec<f32>, Vec<f32>) {
    let mut x = Vec::with_capacity(n * SEQ);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let level = rng.next_f64();
        let w: Vec<f32> = (0..SEQ)
            .map(|_| (level + 0.3 * rng.next_f64()) as f32)
            .collect();
        y.push(w.iter().cloned().fold(f32::MIN, f32::max));
        x.extend(w);
    }
    (x, y)
}

fn main() -> convformer::Result<()> {
    convformer::train::alloc::keep_freed_memory();
    let mut rng = SeedRng::new(7);
    let mut store = ParamStore::new();
    let net = PeakNet::new(&mut store, &mut rng)?;
    println!(
        "PeakNet: {} parameters in {} tensors",
        store.numel(),
        store.len()
    );
    let steps = 600;
    let schedule = LrSchedule::WarmupCosine {
        peak: 3e-3,
        warmup_steps: 30,
        total_steps: steps,
        min_lr: 1e-5,
    };
    let mut opt = AdamW::new(AdamConfig {
        weight_decay: 1e-4,
        ..AdamConfig::default()
    });
    let (val_x, val_y) = batch(&mut rng, 512);
    let val_mae = |store: &ParamStore| -> convformer::Result<f64> {
        let mut tape = Tape::new(store).inference();
        let x = tape.input(Tensor::from_vec(val_x.clone(), &[512, SEQ])?);
        let p = net.forward(&mut tape, x)?;
        let p = tape.value(p).as_slice()?;
        Ok(p.iter()
            .zip(&val_y)
            .map(|(a, b)| (a - b).abs() as f64)
            .sum::<f64>()
            / 512.0)
    };
    // The mean of the window, a reasonable guess without learning anything.
    let mean_mae = val_x
        .chunks(SEQ)
        .zip(&val_y)
        .map(|(w, y)| (w.iter().sum::<f32>() / SEQ as f32 - y).abs() as f64)
        .sum::<f64>()
        / 512.0;
    println!(
        "validation MAE before training {:.4}, window-mean guess {mean_mae:.4}",
        val_mae(&store)?
    );
    for step in 0..steps {
        let (x, y) = batch(&mut rng, 64);
        let mut tape = Tape::new(&store).training(step as u64);
        let xv = tape.constant(Tensor::from_vec(x, &[64, SEQ])?);
        let yv = tape.constant(Tensor::from_vec(y, &[64])?);
        let pred = net.forward(&mut tape, xv)?;
        let loss = tape.loss(pred, yv, LossKind::Huber(0.1))?;
        let loss_value = tape.value(loss).item()?;
        let mut grads = tape.backward(loss)?.params;
        clip_grad_norm(&mut grads, 1.0)?;
        opt.step(&mut store, &grads, schedule.lr_at(step))?;
        if step % 100 == 0 || step + 1 == steps {
            println!(
                "step {step:4}: loss {loss_value:.5}, validation MAE {:.4}",
                val_mae(&store)?
            );
        }
    }
    let final_mae = val_mae(&store)?;
    println!("learned the peak: validation MAE {final_mae:.4} vs window-mean guess {mean_mae:.4}");
    Ok(())
}
