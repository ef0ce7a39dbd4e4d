//! Load + featurise throughput of the kaggle loader on a generated file the size of
//! the full extract (405,894 rows, ~328 MB), side by side with the pandas +
//! ast.literal_eval pipeline of `benches/pandas_load.py` on the same file.
//!
//! `cargo bench --bench load` (env: CONVFORMER_BENCH_FILE to reuse a file,
//! CONVFORMER_BENCH_RUNS = timed runs, default 3; CONVFORMER_BENCH_PANDAS=0 skips pandas).

#[path = "support/proc_stats.rs"]
mod proc_stats;
#[path = "support/stats.rs"]
mod stats;
use convformer::data::{self, synth, Format, LoadOptions};
use stats::{env_count, median};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use proc_stats::{cpu_seconds, peak_rss_mib};

const ROWS: usize = 405_894;

fn bench_file() -> PathBuf {
    if let Ok(p) = std::env::var("CONVFORMER_BENCH_FILE") {
        return PathBuf::from(p);
    }
    let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("bench-data");
    std::fs::create_dir_all(&dir).expect("create bench-data dir");
    let file = dir.join(format!("borg_synth_{ROWS}_seed1.csv"));
    if !file.exists() {
        eprintln!("generating {} ...", file.display());
        synth::write(Format::Kaggle, ROWS, 1, &file).expect("generate the benchmark file");
    }
    file
}

struct Timing {
    best: f64,
    median: f64,
    cpu: f64,
}

fn time_runs(runs: usize, mut f: impl FnMut() -> usize) -> (Timing, usize) {
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    let mut out = 0;
    for _ in 0..runs {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        out = f();
        wall.push(t0.elapsed().as_secs_f64());
        cpu.push(cpu_seconds() - c0);
    }
    let timing = Timing {
        best: wall.iter().copied().fold(f64::INFINITY, f64::min),
        median: median(&wall),
        cpu: median(&cpu),
    };
    (timing, out)
}

/// (wall, CPU) seconds of the pandas pipeline.
fn pandas_seconds(file: &Path) -> Option<(f64, f64)> {
    if std::env::var("CONVFORMER_BENCH_PANDAS").as_deref() == Ok("0") {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pandas_load.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(file)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "pandas pipeline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(text.trim()).ok()?;
    Some((v["seconds"].as_f64()?, v["cpu_seconds"].as_f64()?))
}

fn main() {
    let file = bench_file();
    let bytes = std::fs::metadata(&file).expect("benchmark file").len();
    let mb = bytes as f64 / 1e6;
    let runs = env_count("CONVFORMER_BENCH_RUNS", 3);
    let opts = LoadOptions::default();

    // The floor: quote-aware CSV records only, one thread, no featurising.
    let (csv_only, records) = time_runs(runs, || {
        let mut r = csv::Reader::from_path(&file).expect("open");
        let mut rec = csv::ByteRecord::new();
        let mut n = 0;
        while r.read_byte_record(&mut rec).expect("csv") {
            n += 1;
        }
        n
    });
    let (load, samples) = time_runs(runs, || {
        data::load(&file, Format::Kaggle, &opts)
            .expect("load")
            .len()
    });
    let peak = peak_rss_mib();
    let pandas = pandas_seconds(&file);

    println!(
        "file: {} ({mb:.1} MB, {records} records, {samples} samples), {} rayon threads",
        file.display(),
        rayon::current_num_threads()
    );
    println!();
    println!("| pipeline | best s | median s | CPU s | MB/s (best) | MB/s (median) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, t) in [
        ("csv records only (1 thread, floor)", &csv_only),
        ("convformer data::load (kaggle, load + featurise)", &load),
    ] {
        println!(
            "| {name} | {:.3} | {:.3} | {:.2} | {:.1} | {:.1} |",
            t.best,
            t.median,
            t.cpu,
            mb / t.best,
            mb / t.median
        );
    }
    match pandas {
        Some((wall, cpu)) => {
            println!("| pandas read_csv + ast.literal_eval (1 run, 1 thread) | {wall:.3} | {wall:.3} | {cpu:.2} | {:.1} | {:.1} |", mb / wall, mb / wall);
            println!();
            println!(
                "ratio pandas / convformer, wall (median): {:.1}x",
                wall / load.median
            );
            // On a busy machine wall time depends on the neighbours; pandas is single-threaded,
            // so its CPU time is what it would take on one idle core.
            println!(
                "ratio pandas CPU s / convformer wall (best): {:.1}x",
                cpu / load.best
            );
        }
        None => {
            println!("\n(pandas pipeline not run: python3 with pandas unavailable or disabled)")
        }
    }
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at the end: {}",
        load_avg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("peak resident memory of this process after the loads: {peak:.0} MiB");
}
