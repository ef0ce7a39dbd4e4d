//! What `convformer data inspect` prints: counts, drops, missing values and per-feature ranges.

use super::{Dataset, Format, LoadReport};
use std::fmt;

/// Min / mean / max over the non-missing values of one feature.
#[derive(Clone, Debug, PartialEq)]
pub struct Range {
    pub present: usize,
    pub min: f64,
    pub mean: f64,
    pub max: f64,
}

impl Range {
    pub fn of(values: &[f32]) -> Range {
        let (mut n, mut sum, mut min, mut max) = (0usize, 0f64, f64::INFINITY, f64::NEG_INFINITY);
        for &v in values.iter().filter(|v| !v.is_nan()) {
            let v = v as f64;
            n += 1;
            sum += v;
            min = min.min(v);
            max = max.max(v);
        }
        if n == 0 {
            return Range {
                present: 0,
                min: f64::NAN,
                mean: f64::NAN,
                max: f64::NAN,
            };
        }
        Range {
            present: n,
            min,
            mean: sum / n as f64,
            max,
        }
    }
}

/// One column of values per feature, plus the target last. Kaggle: each sequence
/// position; series: each channel at the last step of every window (each row once,
/// except the first W−1 rows of every gap-free run).
pub fn feature_columns(ds: &Dataset) -> Vec<(String, Vec<f32>)> {
    let mut cols: Vec<(String, Vec<f32>)> = ds
        .feature_names
        .iter()
        .map(|n| (n.clone(), Vec::with_capacity(ds.len())))
        .collect();
    for i in 0..ds.len() {
        let s = ds.sample(i);
        let step = match ds.format {
            Format::Kaggle => s,
            Format::InstanceUsage | Format::BigQuery => &s[s.len() - ds.channels..],
        };
        for (col, &v) in cols.iter_mut().zip(step) {
            col.1.push(v);
        }
    }
    cols.push(("target".to_string(), ds.targets.clone()));
    cols
}

/// Skipped bad rows per column and reason, and integers read from rounded floats:
/// what a user must know of a load beyond its counts.
pub fn bad_row_lines(r: &LoadReport) -> Vec<String> {
    let mut lines = Vec::new();
    if !r.bad_cells.is_empty() {
        let per_column: Vec<String> = r
            .bad_cells
            .iter()
            .flat_map(|(column, reasons)| {
                reasons
                    .iter()
                    .map(move |(reason, n)| format!("{column}: {reason} {n}"))
            })
            .collect();
        lines.push(format!("skipped by column: {}", per_column.join(", ")));
    }
    if !r.rounded.is_empty() {
        let per_column: Vec<String> = r.rounded.iter().map(|(c, n)| format!("{c} {n}")).collect();
        lines.push(format!(
            "rounded integers: {} (floats with fewer digits than the number, as a \
             spreadsheet saves them: ids that differed may now be equal)",
            per_column.join(", ")
        ));
    }
    lines
}

/// The load as the training log shows it: counts, drops by reason and column, missing
/// values per feature (those with any), rounded integers.
pub fn load_log(ds: &Dataset) -> String {
    let r = &ds.report;
    let mut out = format!(
        "data: {} file(s), {} bytes, {} records, {} samples",
        r.files.len(),
        r.bytes,
        r.records,
        ds.len()
    );
    if !r.dropped.is_empty() {
        let reasons: Vec<String> = r.dropped.iter().map(|(k, n)| format!("{k} {n}")).collect();
        out += &format!("\n  dropped {}: {}", r.dropped_total(), reasons.join(", "));
    }
    for line in bad_row_lines(r) {
        out += &format!("\n  {line}");
    }
    // Runs of three or more neighbours missing alike (the CPU percentiles of windows
    // without a distribution) are shown as one range.
    let mut missing: Vec<String> = Vec::new();
    let names = &ds.feature_names;
    let mut i = 0;
    while i < r.missing.len().min(names.len()) {
        let n = r.missing[i];
        let end = (i..r.missing.len().min(names.len()))
            .find(|&j| r.missing[j] != n)
            .unwrap_or(r.missing.len().min(names.len()));
        if n > 0 {
            if end - i >= 3 {
                missing.push(format!("{}…{} {n} each", names[i], names[end - 1]));
            } else {
                missing.extend((i..end).map(|j| format!("{} {n}", names[j])));
            }
        }
        i = end;
    }
    if !missing.is_empty() {
        out += &format!("\n  missing values: {}", missing.join(", "));
    }
    out
}

pub struct Summary<'a> {
    ds: &'a Dataset,
    ranges: Vec<(String, Range)>,
}

pub fn summarize(ds: &Dataset) -> Summary<'_> {
    let ranges = feature_columns(ds)
        .into_iter()
        .map(|(name, v)| (name, Range::of(&v)))
        .collect();
    Summary { ds, ranges }
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ds = self.ds;
        let r = &ds.report;
        writeln!(f, "format:   {}", ds.format)?;
        let source = match r.source_format {
            Some(source) => format!(", read as {source}"),
            None => String::new(),
        };
        writeln!(f, "files:    {} ({} bytes{source})", r.files.len(), r.bytes)?;
        writeln!(f, "records:  {}", r.records)?;
        writeln!(
            f,
            "samples:  {} of shape ({}, {})",
            ds.len(),
            ds.seq_len,
            ds.channels
        )?;
        write!(f, "dropped:  {}", r.dropped_total())?;
        for (reason, n) in &r.dropped {
            write!(f, "  [{reason}: {n}]")?;
        }
        writeln!(f)?;
        for line in bad_row_lines(r) {
            writeln!(f, "{line}")?;
        }
        let groups: std::collections::BTreeSet<u64> = ds.groups.iter().copied().collect();
        let label = if ds.format == Format::Kaggle {
            "collections"
        } else {
            "instances"
        };
        writeln!(f, "{label}: {}", groups.len())?;
        let naive_mae = ds
            .naive
            .iter()
            .zip(&ds.targets)
            .filter(|(p, _)| !p.is_nan())
            .map(|(p, t)| (p - t).abs() as f64)
            .sum::<f64>()
            / ds.len().max(1) as f64;
        writeln!(f, "naive predictor MAE: {naive_mae:.4e}")?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<34} {:>8} {:>12} {:>12} {:>12}",
            "feature", "missing", "min", "mean", "max"
        )?;
        for (k, (name, range)) in self.ranges.iter().enumerate() {
            // Missing counts are per record read (the target's are the drops for it).
            let missing = match r.missing.get(k) {
                Some(m) => m.to_string(),
                None => r
                    .dropped
                    .get("missing target")
                    .copied()
                    .unwrap_or(0)
                    .to_string(),
            };
            writeln!(
                f,
                "{:<34} {:>8} {:>12.5e} {:>12.5e} {:>12.5e}",
                name, missing, range.min, range.mean, range.max
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_training_log_names_drops_by_column_and_groups_missing_runs() {
        let mut ds = crate::data::synth::default_trace(Format::InstanceUsage, 1);
        let r = &mut ds.report;
        r.missing = vec![0; ds.feature_names.len()];
        r.missing[0] = 4;
        for m in &mut r.missing[5..24] {
            *m = 8;
        }
        r.drop_bad("implausible value", Some("max_memory_usage"));
        r.count_rounded("collection_id");
        let log = load_log(&ds);
        assert!(log.contains("dropped 1: implausible value 1"), "{log}");
        assert!(
            log.contains("skipped by column: max_memory_usage: implausible value 1"),
            "{log}"
        );
        assert!(log.contains("rounded integers: collection_id 1"), "{log}");
        assert!(
            log.contains("missing values: avg_cpu_usage 4, p0_cpu_usage…p99_cpu_usage 8 each"),
            "{log}"
        );
    }
}
