//! The kaggle loader on the real head of the extract (Google ClusterData 2019, CC-BY 4.0).
// The literals are the exact text of the file; f32 rounding of them is what is checked.
#![allow(clippy::excessive_precision)]

use convformer::data::{self, Format, KAGGLE_FEATURES};
use std::path::Path;

#[path = "support/real_rows.rs"]
mod real_rows;
use real_rows::{kaggle_from_memory, real_kaggle, KAGGLE_HEAD as HEAD};

fn feature(name: &str) -> usize {
    KAGGLE_FEATURES.iter().position(|f| *f == name).unwrap()
}

#[test]
fn head400_counts_match_the_readme() {
    let ds = real_kaggle();
    assert_eq!(ds.report.records, 400);
    assert_eq!(ds.len(), 399);
    assert_eq!(ds.report.samples, 399);
    assert_eq!(ds.report.dropped.get("missing target"), Some(&1));
    assert_eq!(ds.report.dropped_total(), 1);
    assert_eq!((ds.seq_len, ds.channels), (36, 1));
    assert_eq!(ds.inputs.len(), 399 * 36);
    assert_eq!(ds.report.missing[feature("cycles_per_instruction")], 125);
    assert_eq!(
        ds.report.missing[feature("memory_accesses_per_instruction")],
        125
    );
    assert_eq!(ds.report.missing[feature("cpu_usage_distribution[0]")], 24);
    assert_eq!(
        ds.report.missing[feature("tail_cpu_usage_distribution[8]")],
        24
    );
    // Two rows have an empty resource_request cell.
    assert_eq!(ds.report.missing[feature("resource_request.memory")], 2);
    let max = ds.targets.iter().cloned().fold(f32::MIN, f32::max);
    assert_eq!(max, 0.129_638_671_875);
    assert_eq!(ds.targets.iter().filter(|&&t| t == 0.0).count(), 14);
    assert_eq!(
        data::detect_format(Path::new(HEAD)).unwrap(),
        Format::Kaggle
    );
}

#[test]
fn head400_first_row_is_exact() {
    let ds = real_kaggle();
    let s = ds.sample(0);
    let expect: [(&str, f32); 16] = [
        ("average_usage.cpus", 0.004_661_560_058_593_75),
        ("average_usage.memory", 0.005_920_410_156_25),
        ("maximum_usage.cpus", 0.011_901_855_468_75),
        ("random_sample_usage.cpus", 0.004_348_754_882_812_5),
        ("resource_request.cpus", 0.020_660_400_390_625),
        ("resource_request.memory", 0.014_434_814_453_125),
        ("assigned_memory", 0.014_434_814_453_125),
        ("page_cache_memory", 0.000_414_848_327_636_7),
        ("sample_rate", 1.0),
        ("priority", 200.0),
        ("scheduling_class", 3.0),
        ("collection_type", 1.0),
        ("instance_events_type", 2.0),
        ("duration_s", 300.0),
        ("cpu_usage_distribution[0]", 0.003_143_31),
        ("tail_cpu_usage_distribution[8]", 0.011_367_8),
    ];
    for (name, v) in expect {
        assert_eq!(s[feature(name)], v, "{name}");
    }
    assert!(s[feature("cycles_per_instruction")].is_nan());
    assert!(s[feature("memory_accesses_per_instruction")].is_nan());
    let dist: Vec<f32> = (0..11)
        .map(|i| s[feature(&format!("cpu_usage_distribution[{i}]"))])
        .collect();
    assert_eq!(
        dist,
        [
            0.00314331, 0.00381088, 0.00401306, 0.00415039, 0.00432587, 0.00449371, 0.00463104,
            0.00478363, 0.00498962, 0.00530243, 0.01194763
        ]
    );
    assert_eq!(ds.targets[0], 0.005_935_668_945_312_5);
    assert_eq!(ds.naive[0], 0.005_920_410_156_25);
    assert_eq!(ds.ids[0], "94591244395/144@0");
    assert_eq!(ds.groups[0], 94_591_244_395);
    assert_eq!(ds.order[0], 0);
    // Second record: values written as 1.23977661e-05 across wrapped lines.
    assert_eq!(
        ds.sample(1)[feature("cpu_usage_distribution[10]")],
        1.239_776_61e-5
    );
    assert_eq!(ds.order[1], 2_517_305_308_183);
}

/// No input position may carry the target: maximum_usage['memory'] is excluded (it is
/// the target), and so is random_sample_usage['memory'] (always None). Average memory
/// stays: it is measured over the same window but is not a component of the maximum.
#[test]
fn no_feature_leaks_the_target() {
    let ds = real_kaggle();
    assert!(!KAGGLE_FEATURES
        .iter()
        .any(|f| f.contains("maximum_usage.memory")));
    assert!(!KAGGLE_FEATURES
        .iter()
        .any(|f| f.contains("random_sample_usage.memory")));
    for (f, name) in KAGGLE_FEATURES.iter().enumerate() {
        let equal = (0..ds.len())
            .filter(|&i| ds.sample(i)[f] == ds.targets[i])
            .count();
        assert!(
            equal < ds.len() / 2,
            "feature {name} equals the target in {equal} rows"
        );
    }
}

#[test]
fn spreadsheet_resaved_rows_load_as_the_same_records_within_the_rounding() {
    // The real rows as a spreadsheet saves them: integers as `d.ddddE+nn` (ids and
    // timestamps lose their tail), other numbers with nine significant digits.
    let original_text = std::fs::read(HEAD).unwrap();
    let sheet_text = data::spreadsheet::resave(&original_text, Path::new(HEAD)).unwrap();
    let text = String::from_utf8(sheet_text.clone()).unwrap();
    assert!(
        text.contains("E+11") && text.contains("E+12"),
        "ids and times were rewritten"
    );
    let sheet = kaggle_from_memory(&sheet_text, "sheet.csv").unwrap();
    let original = real_kaggle();
    assert_eq!(sheet.report.records, 400);
    assert_eq!(sheet.len(), original.len());
    // The target sits in dict text, which a spreadsheet leaves alone.
    assert_eq!(sheet.targets, original.targets);
    // Every feature within the rounding: nine digits (and f32's own) for plain numbers;
    // the duration from two times each rounded to five digits (half a unit of each).
    let duration = feature("duration_s");
    let mut reader = csv::ReaderBuilder::new().from_path(HEAD).unwrap();
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (start, end) = (col("start_time"), col("end_time"));
    let half_unit = |v: f64| {
        if v == 0.0 {
            0.0
        } else {
            0.5 * 10f64.powi(v.log10().floor() as i32 - 4)
        }
    };
    let (maximum, mut i) = (col("maximum_usage"), 0);
    for record in reader.records() {
        let record = record.unwrap();
        // Samples are the records with a target.
        if record[maximum].is_empty() || record[maximum].contains("'memory': None") {
            continue;
        }
        let time = |c: usize| record[c].parse::<f64>().unwrap();
        for (j, name) in data::KAGGLE_FEATURES.iter().enumerate() {
            let (a, b) = (sheet.sample(i)[j] as f64, original.sample(i)[j] as f64);
            if a.is_nan() || b.is_nan() {
                assert!(a.is_nan() && b.is_nan(), "row {i} {name}: {a} vs {b}");
                continue;
            }
            let tolerance = if j == duration {
                (half_unit(time(start)) + half_unit(time(end))) * 1e-6 + 1e-3
            } else {
                b.abs() * (5e-9 + f32::EPSILON as f64)
            };
            assert!((a - b).abs() <= tolerance, "row {i} {name}: {a} vs {b}");
        }
        i += 1;
    }
    assert_eq!(i, sheet.len());
    // The rounded ids are counted, so a user knows instances may now share one: every
    // value of six or more digits lost digits to the five kept; shorter ones kept all.
    let mut reader = csv::ReaderBuilder::new().from_path(HEAD).unwrap();
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    for column in [
        "collection_id",
        "instance_index",
        "time",
        "start_time",
        "end_time",
    ] {
        let c = col(column);
        // Per record read, as the missing counts (the one without a target included).
        let long = records.iter().filter(|r| r[c].len() >= 6).count();
        assert_eq!(
            sheet.report.rounded.get(column).copied().unwrap_or(0),
            long,
            "{column}"
        );
        assert!(column == "instance_index" || long > 300, "{column}: {long}");
    }
    assert!(original.report.rounded.is_empty());
}
