//! The instance_usage loader on the ten real series (Google ClusterData 2019, CC-BY 4.0).

use convformer::data::{self, Format, LoadOptions, SERIES_CHANNELS};
use std::collections::BTreeMap;
use std::path::Path;

#[path = "support/real_rows.rs"]
mod real_rows;
use real_rows::{real_series, SERIES_DIR as DIR};

/// Rows of each file read with plain `csv`: (time, max_memory_usage), keyed by unique_id.
fn raw_series() -> BTreeMap<String, Vec<(u64, f32, Vec<String>)>> {
    let mut out: BTreeMap<String, Vec<(u64, f32, Vec<String>)>> = BTreeMap::new();
    for entry in std::fs::read_dir(DIR).unwrap() {
        let mut r = csv::Reader::from_path(entry.unwrap().path()).unwrap();
        let h = r.headers().unwrap().clone();
        let col = |n: &str| h.iter().position(|x| x == n).unwrap();
        let (t, id, mm) = (col("time"), col("unique_id"), col("max_memory_usage"));
        for rec in r.records() {
            let rec = rec.unwrap();
            out.entry(rec[id].to_string()).or_default().push((
                rec[t].parse().unwrap(),
                rec[mm].parse().unwrap(),
                rec.iter().map(String::from).collect(),
            ));
        }
        let _ = h;
    }
    for rows in out.values_mut() {
        rows.sort_by_key(|r| r.0);
    }
    out
}

/// Windows expected with history w and horizon h: per gap-free run of n rows
/// (steps of at most 450 s apart), max(0, n − w − h + 1).
fn expected_windows(w: usize, h: usize) -> usize {
    let mut total = 0;
    for rows in raw_series().values() {
        let mut run: usize = 1;
        for pair in rows.windows(2) {
            if pair[1].0 - pair[0].0 > 450_000_000 {
                total += (run + 1).saturating_sub(w + h);
                run = 1;
            } else {
                run += 1;
            }
        }
        total += (run + 1).saturating_sub(w + h);
    }
    total
}

#[test]
fn window_counts_match_an_independent_count() {
    for (w, h) in [(12, 1), (1, 1), (24, 3), (7, 2)] {
        let opts = LoadOptions {
            window: w,
            horizon: h,
            ..LoadOptions::default()
        };
        let ds = data::load(Path::new(DIR), Format::InstanceUsage, &opts).unwrap();
        assert_eq!(ds.len(), expected_windows(w, h), "W={w} H={h}");
        assert_eq!((ds.seq_len, ds.channels), (w, SERIES_CHANNELS.len()));
        assert_eq!(ds.inputs.len(), ds.len() * w * SERIES_CHANNELS.len());
        assert_eq!(ds.report.records, 30_080);
        assert_eq!(ds.report.files.len(), 10);
        assert!(ds.report.dropped.is_empty());
    }
    assert_eq!(
        data::detect_format(Path::new(DIR)).unwrap(),
        Format::InstanceUsage
    );
}

#[test]
fn first_window_holds_the_first_rows_and_the_next_max() {
    let opts = LoadOptions {
        window: 12,
        horizon: 3,
        ..LoadOptions::default()
    };
    let ds = data::load(Path::new(DIR), Format::InstanceUsage, &opts).unwrap();
    let series = raw_series();
    let (key, rows) = series.iter().next().unwrap();
    // BTreeMap order of keys "collection-instance" matches unique_id order.
    assert!(
        ds.ids[0].starts_with(&format!("{key}@")),
        "{} vs {key}",
        ds.ids[0]
    );
    let header: Vec<String> = csv::Reader::from_path(
        std::fs::read_dir(DIR)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap()
    .headers()
    .unwrap()
    .iter()
    .map(String::from)
    .collect();
    let s = ds.sample(0);
    for step in 0..12 {
        for (c, name) in SERIES_CHANNELS.iter().enumerate() {
            let j = header.iter().position(|h| h == name).unwrap();
            let want: f32 = rows[step].2[j].parse().unwrap();
            assert_eq!(
                s[step * SERIES_CHANNELS.len() + c],
                want,
                "step {step} {name}"
            );
        }
    }
    let target = rows[12..15].iter().map(|r| r.1).fold(f32::MIN, f32::max);
    assert_eq!(ds.targets[0], target);
    assert_eq!(ds.naive[0], rows[11].1);
    assert_eq!(ds.order[0], rows[12].0);
    // Every sample's group is one instance: ids of one group share the key.
    for i in 1..ds.len() {
        if ds.groups[i] == ds.groups[0] {
            assert!(ds.ids[i].starts_with(&format!("{key}@")));
        }
    }
}

#[test]
fn percentile_sentinels_are_missing_values() {
    let ds = real_series();
    // Eight rows write -1 (no CPU distribution) in all 19 percentiles: read as missing.
    for (c, name) in SERIES_CHANNELS.iter().enumerate() {
        let want = if name.starts_with('p') { 8 } else { 0 };
        assert_eq!(ds.report.missing[c], want, "{name}");
    }
    assert!(ds
        .inputs
        .iter()
        .all(|v| v.is_nan() || (v.is_finite() && *v >= 0.0)));
    let mean = ds.targets.iter().map(|&t| t as f64).sum::<f64>() / ds.len() as f64;
    // The README quotes a mean target of about 5.2e-3.
    assert!((4.5e-3..6e-3).contains(&mean), "mean target {mean}");
}

#[test]
fn several_files_load_like_their_directory() {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let opts = LoadOptions::default();
    let dir = data::load(Path::new(DIR), Format::InstanceUsage, &opts).unwrap();
    let all = data::load_paths(&files, Format::InstanceUsage, &opts).unwrap();
    assert_eq!(
        (all.len(), &all.ids, &all.targets),
        (dir.len(), &dir.ids, &dir.targets)
    );
    // The five tasks of job 382 alone: fewer windows, all from that collection.
    let job382: Vec<_> = files
        .iter()
        .filter(|f| f.to_string_lossy().contains("job382"))
        .cloned()
        .collect();
    let part = data::load_paths(&job382, Format::InstanceUsage, &opts).unwrap();
    assert_eq!(part.report.files.len(), 5);
    assert!(part.ids.iter().all(|id| id.starts_with("382417448240-")));
    assert!(data::load_paths(&[], Format::InstanceUsage, &opts).is_err());
}
