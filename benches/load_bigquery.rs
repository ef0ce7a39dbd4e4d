//! Load + featurise throughput of the BigQuery export reader (NDJSON, gzip NDJSON,
//! Parquet) on generated exports, side by side with pandas `read_json(lines=True)`
//! and `pyarrow.parquet.read_table` + the same 26 channels and windows
//! (`benches/bigquery_peer.py`). Every pipeline runs in its own child process, in
//! interleaved rounds, so that each one's peak memory (VmHWM / ru_maxrss) is its own.
//!
//! `cargo bench --bench load_bigquery` (env: CONVFORMER_BENCH_ROWS = rows per export,
//! default 150,000; CONVFORMER_BENCH_RUNS = rounds, default 3;
//! CONVFORMER_BENCH_PEER=0 skips Python).
//!
//! Throughput is MB of uncompressed input per second: the NDJSON text (for gzip, as
//! inflated), and for Parquet the uncompressed size of its pages (the column chunks'
//! `total_uncompressed_size`); the Parquet rows' NDJSON size is shown too.

#[path = "support/proc_stats.rs"]
mod proc_stats;
#[path = "support/stats.rs"]
mod stats;
use convformer::data::bigquery::write::ParquetCompression;
use convformer::data::{self, synth, Format, LoadOptions};
use stats::{env_count, median};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use proc_stats::{cpu_seconds, peak_rss_mib};

/// Set in a child process: load this file once and print one JSON line.
const CHILD_ENV: &str = "CONVFORMER_BQ_BENCH_CHILD";

fn child(file: &str) {
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let ds = data::load(Path::new(file), Format::BigQuery, &LoadOptions::default())
        .expect("load the export");
    let seconds = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"seconds": seconds, "cpu_seconds": cpu_seconds() - c0, "rows": ds.report.records, "samples": ds.len(), "peak_mib": peak_rss_mib()})
    );
}

struct Run {
    seconds: f64,
    cpu_seconds: f64,
    samples: u64,
    peak_mib: f64,
}

fn parse_run(stdout: &[u8]) -> Option<Run> {
    let text = String::from_utf8_lossy(stdout);
    let v: serde_json::Value = serde_json::from_str(text.lines().last()?.trim()).ok()?;
    Some(Run {
        seconds: v["seconds"].as_f64()?,
        cpu_seconds: v["cpu_seconds"].as_f64()?,
        samples: v["samples"].as_u64()?,
        peak_mib: v["peak_mib"].as_f64()?,
    })
}

fn ours(file: &Path) -> Result<Run, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .env(CHILD_ENV, file)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    parse_run(&out.stdout).ok_or_else(|| "no result line".into())
}

fn peer(kind: &str, file: &Path) -> Result<Run, String> {
    if std::env::var("CONVFORMER_BENCH_PEER").as_deref() == Ok("0") {
        return Err("disabled by CONVFORMER_BENCH_PEER=0".into());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/bigquery_peer.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(kind)
        .arg(file)
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    parse_run(&out.stdout).ok_or_else(|| "no result line".into())
}

fn bench_files(rows: usize) -> Vec<(&'static str, PathBuf)> {
    let dir = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()))
        .join("bench-data");
    std::fs::create_dir_all(&dir).expect("create bench-data dir");
    let files = [
        ("NDJSON", "json", ParquetCompression::Snappy),
        ("NDJSON gzip", "json.gz", ParquetCompression::Snappy),
        ("Parquet snappy", "parquet", ParquetCompression::Snappy),
        (
            "Parquet uncompressed",
            "plain.parquet",
            ParquetCompression::Uncompressed,
        ),
    ];
    files
        .into_iter()
        .map(|(name, ext, compression)| {
            let file = dir.join(format!("bigquery_{rows}_seed1.{ext}"));
            if !file.exists() {
                eprintln!("generating {} ...", file.display());
                synth::write_bigquery(rows, 1, &file, compression).expect("generate the export");
            }
            (name, file)
        })
        .collect()
}

/// The uncompressed size of a Parquet file's pages.
fn parquet_uncompressed_bytes(file: &Path) -> u64 {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader =
        SerializedFileReader::new(std::fs::File::open(file).expect("open")).expect("footer");
    reader
        .metadata()
        .row_groups()
        .iter()
        .flat_map(|g| g.columns())
        .map(|c| c.uncompressed_size() as u64)
        .sum()
}

fn main() {
    if let Ok(file) = std::env::var(CHILD_ENV) {
        return child(&file);
    }
    let rows = env_count("CONVFORMER_BENCH_ROWS", 150_000);
    let rounds = env_count("CONVFORMER_BENCH_RUNS", 3);
    let files = bench_files(rows);
    let ndjson_bytes = std::fs::metadata(&files[0].1).expect("export").len();
    // (input, uncompressed MB, peer kind) per file.
    let inputs: Vec<(&str, &PathBuf, f64, &str)> = files
        .iter()
        .map(|(name, file)| {
            let (mb, kind) = match name.starts_with("Parquet") {
                true => (parquet_uncompressed_bytes(file) as f64 / 1e6, "parquet"),
                false => (ndjson_bytes as f64 / 1e6, "ndjson"),
            };
            (*name, file, mb, kind)
        })
        .collect();
    // Per input: our runs and the peer's, interleaved round by round.
    let mut ours_runs: Vec<Vec<Run>> = inputs.iter().map(|_| Vec::new()).collect();
    let mut peer_runs: Vec<Result<Vec<Run>, String>> =
        inputs.iter().map(|_| Ok(Vec::new())).collect();
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        for (k, (_, file, _, kind)) in inputs.iter().enumerate() {
            ours_runs[k].push(ours(file).expect("our load"));
            if let Ok(runs) = &mut peer_runs[k] {
                match peer(kind, file) {
                    Ok(run) => runs.push(run),
                    Err(why) => peer_runs[k] = Err(why),
                }
            }
        }
    }
    let peer_name = |kind: &str| match kind {
        "parquet" => "pyarrow.parquet.read_table + numpy",
        _ => "pandas read_json(lines=True) + numpy",
    };
    println!(
        "{rows} rows per export ({:.1} MB as NDJSON), {rounds} interleaved rounds, {} rayon threads, {} CPUs",
        ndjson_bytes as f64 / 1e6,
        rayon::current_num_threads(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| input | file MB | uncompressed MB | pipeline | median s | CPU s | MB/s (uncompressed) | MB/s (as NDJSON) | peak MiB | speed-up (wall) |");
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|");
    for (k, (name, file, mb, kind)) in inputs.iter().enumerate() {
        let file_mb = std::fs::metadata(file).map_or(0.0, |m| m.len() as f64 / 1e6);
        let ndjson_mb = ndjson_bytes as f64 / 1e6;
        let ours_s = median(&ours_runs[k].iter().map(|r| r.seconds).collect::<Vec<_>>());
        let ours_cpu = median(
            &ours_runs[k]
                .iter()
                .map(|r| r.cpu_seconds)
                .collect::<Vec<_>>(),
        );
        let ours_peak = ours_runs[k].iter().map(|r| r.peak_mib).fold(0.0, f64::max);
        println!(
            "| {name} | {file_mb:.1} | {mb:.1} | convformer data::load | {ours_s:.3} | {ours_cpu:.2} | {:.0} | {:.0} | {ours_peak:.0} | |",
            mb / ours_s,
            ndjson_mb / ours_s
        );
        match &peer_runs[k] {
            Ok(runs) if !runs.is_empty() => {
                let s = median(&runs.iter().map(|r| r.seconds).collect::<Vec<_>>());
                let cpu = median(&runs.iter().map(|r| r.cpu_seconds).collect::<Vec<_>>());
                let peak = runs.iter().map(|r| r.peak_mib).fold(0.0, f64::max);
                assert_eq!(
                    runs[0].samples, ours_runs[k][0].samples,
                    "{name}: the peer built other samples"
                );
                println!(
                    "| {name} | {file_mb:.1} | {mb:.1} | {} | {s:.3} | {cpu:.2} | {:.0} | {:.0} | {peak:.0} | {:.1}x |",
                    peer_name(kind),
                    mb / s,
                    ndjson_mb / s,
                    s / ours_s
                );
            }
            Ok(_) => println!(
                "| {name} | | | {} | skipped: no rounds | | | | | |",
                peer_name(kind)
            ),
            Err(why) => println!(
                "| {name} | | | {} | skipped: {why} | | | | | |",
                peer_name(kind)
            ),
        }
    }
    let load_avg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!();
    println!(
        "samples per export: {}; load average at the end: {}",
        ours_runs[0][0].samples,
        load_avg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
