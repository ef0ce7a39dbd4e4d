//! A seeded generator of Borg-like traces in all three formats (BigQuery exports
//! hold the series rows, encoded by `bigquery::write`), calibrated to the real
//! rows of `../shared/data/borg` (see `tests/data_synth.rs` for what it matches):
//! about 31% of rows without CPI/MAPI, 6% empty CPU distributions, 1 in 400
//! without a target, 3.5% zero memory, max/avg memory ratio with median ≈ 1.02 and
//! a heavy tail, memory quantised to 2⁻²⁰, and bursty usage with a daily cycle.
//! The series are tasks of one job whose peak memory is predictable beyond the last
//! window's value about as much as the real series' (ridge/last-value MAE ≈ 0.7 here,
//! 0.64 on the real rows), so a model trained on the default trace has something to learn.

use super::bigquery::write::{export_csv, ExportOptions, ParquetCompression};
use super::split::SplitMix64;
use super::{DataError, Dataset, Format, LoadOptions};
use std::f64::consts::TAU;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Memory and CPU figures of the trace are multiples of 2⁻²⁰ (of the largest machine).
const QUANTUM: f64 = 1.0 / (1u64 << 20) as f64;
const DAY_US: f64 = 86_400e6;
const TRACE_US: f64 = 2_678_400e6;
const STEP_US: u64 = super::WINDOW_STEP_US;

struct Rng(SplitMix64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0.next_f64()
    }
    fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n
    }
    fn normal(&mut self) -> f64 {
        // Box–Muller; 1 - u keeps the log argument in (0, 1].
        let (u, v) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (TAU * v).cos()
    }
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    /// A base64 text like the trace's hashed names.
    fn hash_text(&mut self) -> String {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s: String = (0..43).map(|_| *self.pick(B64) as char).collect();
        s.push('=');
        s
    }
}

fn quantise(v: f64) -> f64 {
    (v / QUANTUM).round() * QUANTUM
}

/// Daily load factor in [0.6, 1.4] at time `t_us`, phase per workload.
fn daily(t_us: f64, phase: f64) -> f64 {
    1.0 + 0.4 * (TAU * t_us / DAY_US + phase).sin()
}

/// numpy's array text: `%.8g`-like values, six per line.
fn numpy_array(values: &[f64]) -> String {
    let mut s = String::from("[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(if i % 6 == 0 { '\n' } else { ' ' });
            if i % 6 == 0 {
                s.push(' ');
            }
        }
        if *v != 0.0 && v.abs() < 1e-4 {
            let t = format!("{v:.8e}");
            // Rust writes e-5, numpy e-05.
            let (m, e) = t.split_once('e').unwrap_or((&t, "0"));
            let e: i32 = e.parse().unwrap_or(0);
            s.push_str(&format!(
                "{m}e{}{:02}",
                if e < 0 { '-' } else { '+' },
                e.abs()
            ));
        } else {
            let t = format!("{v:.8}");
            s.push_str(t.trim_end_matches('0'));
        }
    }
    s.push(']');
    s
}

fn py_value(v: Option<f64>) -> String {
    v.map_or("None".to_string(), |v| format!("{v:?}"))
}

const KAGGLE_HEADER: &str = "Unnamed: 0,time,instance_events_type,collection_id,scheduling_class,collection_type,priority,alloc_collection_id,instance_index,machine_id,resource_request,constraint,collections_events_type,user,collection_name,collection_logical_name,start_after_collection_ids,vertical_scaling,scheduler,start_time,end_time,average_usage,maximum_usage,random_sample_usage,assigned_memory,page_cache_memory,cycles_per_instruction,memory_accesses_per_instruction,sample_rate,cpu_usage_distribution,tail_cpu_usage_distribution,cluster,event,failed";

/// The largest machine's capacity: the trace's unit, a bound on every usage figure.
const MACHINE: f64 = 1.0;

fn write_kaggle<W: Write>(rows: usize, seed: u64, w: &mut W) -> std::io::Result<()> {
    let mut rng = Rng(SplitMix64::new(seed ^ 0x6b61_6767_6c65));
    writeln!(w, "{KAGGLE_HEADER}")?;
    let priorities = [
        0u32, 25, 100, 101, 103, 105, 107, 114, 116, 117, 118, 119, 199, 200, 360,
    ];
    let events = [
        "ENABLE", "EVICT", "FAIL", "FINISH", "KILL", "LOST", "SCHEDULE",
    ];
    let sample_rates = [
        0.9629629850387572,
        0.9733333587646484,
        0.9900000095367432,
        0.996666669845581,
    ];
    let mut collection = (
        0u64,
        0u32,
        String::new(),
        String::new(),
        String::new(),
        0.0,
        0.0,
    );
    let mut left_in_collection = 0;
    for row in 0..rows {
        if left_in_collection == 0 {
            // A collection: a few instances sharing ids, names and a request size.
            left_in_collection = 1 + rng.below(4);
            collection = (
                1_000_000_000 + rng.below(399_000_000_000),
                *rng.pick(&priorities),
                rng.hash_text(),
                rng.hash_text(),
                rng.hash_text(),
                quantise(rng.lognormal(0.004, 1.5).min(0.5)),
                rng.lognormal(0.01, 1.3).min(1.0),
            );
        }
        left_in_collection -= 1;
        let (cid, priority, ref user, ref name, ref logical, req_mem, req_cpu) = collection;
        let time = if rng.chance(0.15) {
            0
        } else {
            rng.below(TRACE_US as u64)
        };
        let phase = rng.uniform() * TAU;
        let load = daily(time as f64, phase);
        // Memory: used share of the request, bursts above the average (heavy-tailed ratio).
        let zero_memory = rng.chance(0.035);
        let avg_mem = if zero_memory {
            0.0
        } else {
            quantise((req_mem * rng.uniform().powf(1.5) * load).max(QUANTUM))
        };
        let ratio = 1.0 + rng.lognormal(0.02, 2.0).min(20.0);
        let max_mem = quantise(avg_mem * ratio).min(MACHINE);
        let avg_cpu = quantise(req_cpu * rng.lognormal(0.2, 1.2).min(3.0) * load).min(MACHINE);
        let max_cpu = quantise(avg_cpu * (1.0 + rng.lognormal(0.8, 1.0))).min(MACHINE);
        let rnd_cpu = quantise(avg_cpu * rng.lognormal(1.0, 0.3)).min(MACHINE);
        let assigned = if rng.chance(0.26) {
            0.0
        } else {
            quantise(req_mem * rng.lognormal(1.0, 0.1))
        };
        let page_cache = quantise(avg_mem * rng.uniform() * 0.2);
        let (cpi, mapi) = if rng.chance(0.3125) {
            (String::new(), String::new())
        } else {
            (
                format!("{:?}", rng.lognormal(1.77, 0.35)),
                format!("{:?}", rng.lognormal(0.0089, 0.6)),
            )
        };
        let sample_rate = if rng.chance(0.9) {
            1.0
        } else {
            *rng.pick(&sample_rates)
        };
        let (dist, tail) = if rng.chance(0.06) {
            ("[]".to_string(), "[]".to_string())
        } else {
            let mut d: Vec<f64> = (0..11)
                .map(|_| (avg_cpu * rng.lognormal(0.9, 0.4)).min(MACHINE))
                .collect();
            d.sort_by(f64::total_cmp);
            d[10] = d[10].max(max_cpu);
            let mut t: Vec<f64> = (0..9)
                .map(|_| d[9] + (d[10] - d[9]) * rng.uniform())
                .collect();
            t.sort_by(f64::total_cmp);
            (numpy_array(&d), numpy_array(&t))
        };
        let start = rng.below(TRACE_US as u64 / 1_000_000) * 1_000_000;
        let duration = if rng.chance(0.8) {
            300
        } else {
            1 + rng.below(300)
        } * 1_000_000;
        let target = if rng.chance(0.0025) {
            None
        } else {
            Some(max_mem)
        };
        let request = if rng.chance(0.005) {
            String::new()
        } else {
            format!(
                "\"{{'cpus': {:?}, 'memory': {:?}}}\"",
                quantise(req_cpu),
                req_mem
            )
        };
        // Scheduling constraints: list text over several lines inside one quoted field.
        let constraint = if rng.chance(0.165) {
            let entries: Vec<String> = (0..1 + rng.below(3))
                .map(|_| {
                    format!(
                        "{{'name': '{}', 'value': '{}', 'relation': {}}}",
                        rng.hash_text(),
                        rng.below(4),
                        rng.below(4)
                    )
                })
                .collect();
            format!("\"[{}]\"", entries.join("\n "))
        } else {
            "[]".to_string()
        };
        let event = *rng.pick(&events);
        writeln!(
            w,
            "{row},{time},{etype},{cid},{sclass},{ctype},{priority},{alloc},{instance},{machine},{request},{constraint},{cetype},{user},{name},{logical},[],{vs:?},{sched:?},{start},{end},\"{{'cpus': {avg_cpu:?}, 'memory': {avg_mem:?}}}\",\"{{'cpus': {max_cpu:?}, 'memory': {target}}}\",\"{{'cpus': {rnd_cpu:?}, 'memory': None}}\",{assigned:?},{page_cache:?},{cpi},{mapi},{sample_rate:?},\"{dist}\",\"{tail}\",{cluster},{event},{failed}",
            etype = rng.below(7),
            sclass = rng.below(4),
            ctype = rng.below(2),
            alloc = if rng.chance(0.8) { 0 } else { 1_000_000_000 + rng.below(399_000_000_000) },
            instance = rng.below(3000),
            machine = rng.below(400_000_000_000),
            cetype = rng.below(7),
            vs = (1 + rng.below(3)) as f64,
            sched = rng.below(2) as f64,
            end = start + duration,
            target = py_value(target),
            cluster = 1 + rng.below(8),
            failed = (event == "FAIL" || event == "KILL" || event == "EVICT") as u8,
        )?;
    }
    Ok(())
}

const SERIES_HEADER: &str = "time,unique_id,collection_id,instance_index,priority,scheduling_class,machine_id,alloc_collection_id,alloc_instance_index,collection_type,avg_cpu_usage,avg_memory_usage,max_cpu_usage,max_memory_usage,random_sample_cpu_usage,assigned_memory,sample_rate,p0_cpu_usage,p10_cpu_usage,p20_cpu_usage,p30_cpu_usage,p40_cpu_usage,p50_cpu_usage,p60_cpu_usage,p70_cpu_usage,p80_cpu_usage,p90_cpu_usage,p91_cpu_usage,p92_cpu_usage,p93_cpu_usage,p94_cpu_usage,p95_cpu_usage,p96_cpu_usage,p97_cpu_usage,p98_cpu_usage,p99_cpu_usage,memory_limit,cpu_limit,abstract_usage,abstract_limit";

/// One window of generated memory (trace units) and the burst state behind it.
struct MemoryWindow {
    avg: f64,
    max: f64,
    /// Burst share of the level now in memory (drives CPU too).
    burst: f64,
    /// Burst drawn this window, taken up by memory from the next window on.
    announced: f64,
}

/// Memory of one instance, shaped like the real series (see `tests/data_synth.rs`):
/// a slowly mean-reverting level with a mild daily cycle, small white noise, rare bursts
/// that decay, and a heavy-tailed peak above the level that is new each window and
/// partly lifts the average. Memory is thus predictable beyond the last max: the level
/// shows through the averages, and a high peak does not carry over.
#[derive(Default)]
struct MemoryProcess {
    level: f64,
    burst: f64,
    pending: f64,
}

impl MemoryProcess {
    /// AR(1) level: 0.999 per window (a half-life of about 2.4 days), stationary sd ≈ 4.5%.
    const LEVEL_PERSISTENCE: f64 = 0.999;
    const LEVEL_STEP: f64 = 0.002;
    const DAILY_SHARE: f64 = 0.05;
    const NOISE: f64 = 0.005;
    const BURST_CHANCE: f64 = 0.005;
    const BURST_DECAY: f64 = 0.85;
    /// Share of the window's peak that shows in its average.
    const PEAK_IN_AVERAGE: f64 = 0.5;

    fn step(&mut self, rng: &mut Rng, base: f64, load: f64) -> MemoryWindow {
        self.level = Self::LEVEL_PERSISTENCE * self.level + Self::LEVEL_STEP * rng.normal();
        self.burst = self.burst * Self::BURST_DECAY + self.pending;
        let announced = if rng.chance(Self::BURST_CHANCE) {
            rng.lognormal(0.04, 0.5)
        } else {
            0.0
        };
        self.pending = announced;
        // `load` swings ±0.4 around 1; memory follows a fraction of it.
        let level = base * (1.0 + self.level) * (1.0 + Self::DAILY_SHARE * (load - 1.0) / 0.4);
        // Peak above the rest of the window, sized so that max/avg − 1 ≈ half of it has
        // the real rows' floor (≈ 0.5%), median (≈ 0.86%) and tail (90th pct. ≈ 2.5%).
        let peak = (0.004 + rng.lognormal(0.0046, 0.9)).min(0.1) / (1.0 - Self::PEAK_IN_AVERAGE);
        let core = level * (1.0 + self.burst + Self::NOISE * rng.normal());
        MemoryWindow {
            avg: core + Self::PEAK_IN_AVERAGE * peak * level,
            max: core + peak * level,
            burst: self.burst,
            announced,
        }
    }
}

/// Rows per generated instance: a little over two days of 5-minute windows.
const ROWS_PER_INSTANCE: usize = 600;

fn write_series<W: Write>(rows: usize, seed: u64, w: &mut W) -> std::io::Result<()> {
    let mut rng = Rng(SplitMix64::new(seed ^ 0x7365_7269_6573));
    writeln!(w, "{SERIES_HEADER}")?;
    let collection = 100_000_000_000 + rng.below(300_000_000_000);
    // The instances are tasks of one job: as in the real series, they share a size, a
    // usage share of it and a daily rhythm, and differ by a few percent.
    let job_assigned = rng.lognormal(0.006, 0.8);
    let job_cpu_limit = rng.lognormal(0.03, 0.7);
    let memory_share = 0.5 + 0.4 * rng.uniform();
    let cpu_share = 0.3 * rng.uniform();
    let phase = rng.uniform() * TAU;
    let mut written = 0;
    let mut instance = 0;
    while written < rows {
        let n = ROWS_PER_INSTANCE.min(rows - written);
        let machine = rng.below(400_000_000_000);
        let assigned = quantise(job_assigned * rng.lognormal(1.0, 0.08));
        let cpu_limit = quantise(job_cpu_limit * rng.lognormal(1.0, 0.08));
        let base_mem = assigned * memory_share * rng.lognormal(1.0, 0.04);
        let base_cpu = cpu_limit * cpu_share * rng.lognormal(1.0, 0.2);
        let mut t = STEP_US + rng.below(1000) * 1_000_000;
        let mut memory = MemoryProcess::default();
        for _ in 0..n {
            let load = daily(t as f64, phase);
            let mem = memory.step(&mut rng, base_mem, load);
            let avg_mem = quantise(mem.avg).max(QUANTUM);
            let max_mem = quantise(mem.max).max(avg_mem);
            // CPU follows the daily load and leads memory: a burst shows in CPU one window
            // before memory takes it up.
            let avg_cpu = quantise(
                base_cpu
                    * load
                    * rng.lognormal(1.0, 0.3)
                    * (1.0 + 3.0 * mem.burst + 8.0 * mem.announced),
            );
            let max_cpu = quantise(avg_cpu * (1.0 + rng.lognormal(2.0, 0.6)));
            let mut p: Vec<f64> = (0..19).map(|_| avg_cpu * rng.lognormal(0.9, 0.4)).collect();
            p.sort_by(f64::total_cmp);
            let sample_rate = if rng.chance(0.97) { 1.0 } else { 0.99 };
            write!(
                w,
                "{t},{collection}-{instance},{collection},{instance},200,3,{machine},0,-1,0,{avg_cpu:?},{avg_mem:?},{max_cpu:?},{max_mem:?},{rnd:?},{assigned:?},{sample_rate:?}",
                rnd = quantise(avg_cpu * rng.lognormal(1.0, 0.3)),
            )?;
            for v in &p {
                write!(w, ",{v:?}")?;
            }
            writeln!(w, ",{assigned:?},{cpu_limit:?},0.0,0.0")?;
            // Mostly regular windows; now and then a short one or a gap of missed windows.
            t += if rng.chance(0.005) {
                1_000_000 * (1 + rng.below(10))
            } else if rng.chance(0.002) {
                STEP_US * (2 + rng.below(5))
            } else {
                STEP_US
            };
        }
        written += n;
        instance += 1;
    }
    Ok(())
}

fn generate<W: Write>(format: Format, rows: usize, seed: u64, w: &mut W) -> std::io::Result<()> {
    match format {
        Format::Kaggle => write_kaggle(rows, seed, w),
        Format::InstanceUsage | Format::BigQuery => write_series(rows, seed, w),
    }
}

/// Writes `rows` generated records of `format` to `out` (BigQuery: see [`write_bigquery`]).
pub fn write(format: Format, rows: usize, seed: u64, out: &Path) -> Result<(), DataError> {
    if format == Format::BigQuery {
        return write_bigquery(rows, seed, out, ParquetCompression::default()).map(drop);
    }
    let file = std::fs::File::create(out).map_err(|e| DataError::io(out, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    generate(format, rows, seed, &mut w)
        .and_then(|_| w.flush())
        .map_err(|e| DataError::io(out, e))
}

/// The generated CSV as a spreadsheet re-saves it (`spreadsheet::resave`).
pub fn write_spreadsheet(
    format: Format,
    rows: usize,
    seed: u64,
    out: &Path,
) -> Result<(), DataError> {
    let mut csv = Vec::new();
    generate(format, rows, seed, &mut csv).map_err(|e| DataError::io(out, e))?;
    let sheet = super::spreadsheet::resave(&csv, out)?;
    std::fs::write(out, sheet).map_err(|e| DataError::io(out, e))
}

/// The generator's series rows as a BigQuery export, with the table's null and empty
/// cases added; the extension of `out` chooses the encoding (`bigquery::write`).
/// Returns the rows written.
pub fn write_bigquery(
    rows: usize,
    seed: u64,
    out: &Path,
    compression: ParquetCompression,
) -> Result<usize, DataError> {
    let mut csv = Vec::new();
    write_series(rows, seed, &mut csv).map_err(|e| DataError::io(out, e))?;
    let opts = ExportOptions {
        compression,
        quirks: Some(seed),
    };
    let label = PathBuf::from(format!("<generated series, seed {seed}>"));
    export_csv(&csv[..], &label, out, &opts)
}

/// The embedded default trace of `convformer train`: generated in memory and read back
/// through the same loader as real files (4,000 kaggle rows, or 8 instances × 600 windows).
pub fn default_trace(format: Format, seed: u64) -> Dataset {
    // A BigQuery source without files trains on the series rows it would hold.
    let format = match format {
        Format::BigQuery => Format::InstanceUsage,
        other => other,
    };
    let rows = match format {
        Format::Kaggle => 4000,
        Format::InstanceUsage | Format::BigQuery => 8 * ROWS_PER_INSTANCE,
    };
    let mut bytes = Vec::new();
    generate(format, rows, seed, &mut bytes).expect("writing to memory cannot fail");
    let name = PathBuf::from(format!("<generated {format} trace, seed {seed}>"));
    super::load_from_memory(&bytes, &name, format, &LoadOptions::default())
        .expect("the generator writes rows its own loader reads")
}
