//! ConvFormerNet inference (forward only, no dropout) at the default
//! configuration, 26 input channels, on 2 threads, side by side with PyTorch
//! eager and `torch.compile` (benches/torch_infer.py, the reference network of
//! scripts/torch_reference.py built from the same config) in the same run.
//! Every measurement is its own child process, so each side's peak memory is its
//! own; the rounds interleave the four sides (ours forward-only, ours on an
//! inference tape, the path `predict` took before the forward-only one, and
//! the two PyTorch modes). Prints a markdown table: median ms per pass,
//! samples/s, ratios of samples/s and peak memory.
//!
//! cargo bench --bench infer        (CONVFORMER_TORCH_PYTHON picks the python;
//!                                   CONVFORMER_BENCH_ROUNDS, default 3)

use std::process::Command;
use std::time::Instant;

use convformer::autograd::ParamStore;
use convformer::data::SERIES_CHANNELS;
use convformer::nn::{ConvFormerNet, ModelConfig, SeedRng};

#[path = "support/proc_stats.rs"]
#[allow(dead_code)] // its cpu_seconds serves the load benches
mod proc_stats;
#[path = "support/stats.rs"]
mod stats;
use stats::{env_count, median};

const THREADS: usize = 2;
const CHILD_ENV: &str = "CONVFORMER_INFER_CHILD";
/// (batch, seq_len, passes): each child runs about a few seconds.
const SHAPES: [(usize, usize, usize); 4] = [
    (1024, 16, 30),
    (1024, 64, 10),
    (16384, 16, 5),
    (16384, 64, 3),
];

fn config(seq_len: usize) -> ModelConfig {
    ModelConfig {
        seq_len,
        in_channels: SERIES_CHANNELS.len(),
        ..ModelConfig::default()
    }
}

/// One measurement of ours, in a child: `batch,seq,passes,path` from the
/// environment, path `forward` (`train::predict`) or `tape`.
fn child(spec: &str) {
    let fields: Vec<&str> = spec.split(',').collect();
    let n: Vec<usize> = fields[..3]
        .iter()
        .map(|v| v.parse().expect("child spec"))
        .collect();
    let (batch, seq_len, passes) = (n[0], n[1], n[2]);
    let on_tape = fields[3] == "tape";
    let cfg = config(seq_len);
    let mut store = ParamStore::<f32>::new();
    let model = ConvFormerNet::new(&mut store, &cfg, 0).expect("model");
    let mut rng = SeedRng::new(1);
    let x: Vec<f32> = (0..batch * seq_len * cfg.in_channels)
        .map(|_| rng.next_f64() as f32)
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .expect("pool");
    let mut times = Vec::new();
    for pass in 0..passes + 2 {
        let started = Instant::now();
        let y = pool
            .install(|| {
                if on_tape {
                    convformer::train::predict_on_tape(&model, &store, &x)
                } else {
                    convformer::train::predict(&model, &store, &x, batch)
                }
            })
            .expect("predict");
        assert_eq!(y.len(), batch);
        if pass >= 2 {
            times.push(started.elapsed().as_secs_f64());
        }
    }
    println!(
        "ours ms_per_pass={:.4} peak_mib={:.1}",
        median(&times) * 1e3,
        proc_stats::peak_rss_mib()
    );
}

/// (ms per pass, peak MiB) from a child's `ms_per_pass=… peak_mib=…` line.
fn parse(stdout: &[u8]) -> Option<(f64, f64)> {
    let text = String::from_utf8_lossy(stdout);
    let field = |key: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((field("ms_per_pass=")?, field("peak_mib=")?))
}

fn run(mut cmd: Command) -> Result<(f64, f64), String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    parse(&out.stdout).ok_or_else(|| {
        format!(
            "unexpected output: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn ours(batch: usize, seq_len: usize, passes: usize, path: &str) -> Result<(f64, f64), String> {
    let mut cmd = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    cmd.env(CHILD_ENV, format!("{batch},{seq_len},{passes},{path}"));
    run(cmd)
}

/// PyTorch at the better of its two OpenMP wait policies (its default spins,
/// which collapses when other processes share the cores; PASSIVE sleeps).
fn torch(batch: usize, seq_len: usize, passes: usize, mode: &str) -> Result<(f64, f64), String> {
    let python = std::env::var("CONVFORMER_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/torch_infer.py");
    let cfg = serde_json::to_string(&config(seq_len)).expect("config json");
    let mut best: Option<(f64, f64)> = None;
    for policy in [None, Some("PASSIVE")] {
        let mut cmd = Command::new(&python);
        cmd.arg(script)
            .arg(&cfg)
            .args([batch, THREADS, passes].map(|v| v.to_string()))
            .arg(mode);
        if let Some(p) = policy {
            cmd.env("OMP_WAIT_POLICY", p);
        }
        let r = run(cmd)?;
        best = Some(best.map_or(r, |b| if r.0 < b.0 { r } else { b }));
    }
    best.ok_or_else(|| "not run".into())
}

/// Per side, the best of the rounds' medians (a burst of load from other
/// processes then hurts no side alone) and the largest peak.
#[derive(Default)]
struct Side {
    ms: Vec<f64>,
    peak: f64,
    failed: Option<String>,
}

impl Side {
    fn add(&mut self, r: Result<(f64, f64), String>) {
        match r {
            Ok((ms, peak)) => {
                self.ms.push(ms);
                self.peak = self.peak.max(peak);
            }
            Err(why) => self.failed = Some(why),
        }
    }
    fn best_ms(&self) -> Option<f64> {
        self.ms.iter().copied().reduce(f64::min)
    }
    fn rounds(&self) -> String {
        self.ms
            .iter()
            .map(|m| format!("{m:.1}"))
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child(&spec);
    }
    let rounds = env_count("CONVFORMER_BENCH_ROUNDS", 3);
    println!(
        "ConvFormerNet inference, default config (48 filters, 6 heads, ff 243, pre-norm), {} input channels, {THREADS} threads, {rounds} interleaved rounds\n",
        SERIES_CHANNELS.len()
    );
    println!("| batch | seq | convformer ms (rounds) | samples/s | peak MiB | on the tape ms | peak MiB | torch eager ms | peak MiB | torch.compile ms | peak MiB | vs tape | vs eager | vs compile |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (batch, seq_len, passes) in SHAPES {
        let [mut ours_side, mut tape, mut eager, mut compiled] = [(); 4].map(|()| Side::default());
        for round in 0..rounds {
            eprintln!(
                "batch {batch} seq {seq_len}: round {} of {rounds}",
                round + 1
            );
            ours_side.add(ours(batch, seq_len, passes, "forward"));
            tape.add(ours(batch, seq_len, passes, "tape"));
            if eager.failed.is_none() {
                eager.add(torch(batch, seq_len, passes, "eager"));
            }
            if compiled.failed.is_none() {
                compiled.add(torch(batch, seq_len, passes, "compile"));
            }
        }
        let t = ours_side.best_ms().expect("our inference runs");
        let peer = |s: &Side| match (s.best_ms(), &s.failed) {
            (Some(ms), None) => (
                format!("{ms:.1} ({})", s.rounds()),
                format!("{:.0}", s.peak),
                format!("{:.2}×", ms / t),
            ),
            (_, why) => {
                eprintln!("skipped: {}", why.as_deref().unwrap_or("no run"));
                ("skipped".into(), "–".into(), "–".into())
            }
        };
        let (tape_ms, tape_peak, tape_ratio) = peer(&tape);
        let (e_ms, e_peak, e_ratio) = peer(&eager);
        let (c_ms, c_peak, c_ratio) = peer(&compiled);
        println!(
            "| {batch} | {seq_len} | {t:.1} ({}) | {:.0} | {:.0} | {tape_ms} | {tape_peak} | {e_ms} | {e_peak} | {c_ms} | {c_peak} | {tape_ratio} | {e_ratio} | {c_ratio} |",
            ours_side.rounds(),
            batch as f64 / t * 1e3,
            ours_side.peak
        );
    }
}
