//! Splits and train-only preprocessing, on the real sets.

use convformer::data::{self, Format, PreprocessOptions, Preprocessor, SplitKind, Splits};
use std::collections::{BTreeMap, BTreeSet};

#[path = "support/real_rows.rs"]
mod real_rows;
use real_rows::{real_kaggle as kaggle, real_series as series};

fn assert_partition(s: &Splits, n: usize) {
    let mut all: Vec<usize> = s
        .train
        .iter()
        .chain(&s.val)
        .chain(&s.test)
        .cloned()
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..n).collect::<Vec<_>>());
}

#[test]
fn random_split_partitions_by_ratio_and_seed() {
    let ds = kaggle();
    let s = data::split(&ds, SplitKind::Random, (0.7, 0.15, 0.15), 7);
    assert_partition(&s, ds.len());
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (279, 60, 60));
    assert_eq!(s, data::split(&ds, SplitKind::Random, (0.7, 0.15, 0.15), 7));
    assert_ne!(s, data::split(&ds, SplitKind::Random, (0.7, 0.15, 0.15), 8));
    // Ratios are normalised by their sum.
    assert_eq!(
        s,
        data::split(&ds, SplitKind::Random, (70.0, 15.0, 15.0), 7)
    );
}

#[test]
fn group_split_keeps_each_group_on_one_side() {
    for ds in [kaggle(), series()] {
        let s = data::split(&ds, SplitKind::Group, (0.6, 0.2, 0.2), 3);
        assert_partition(&s, ds.len());
        let side: Vec<BTreeSet<u64>> = [&s.train, &s.val, &s.test]
            .iter()
            .map(|idx| idx.iter().map(|&i| ds.groups[i]).collect())
            .collect();
        assert!(
            side[0].is_disjoint(&side[1])
                && side[0].is_disjoint(&side[2])
                && side[1].is_disjoint(&side[2])
        );
        assert!(!s.train.is_empty() && !s.test.is_empty());
    }
}

#[test]
fn chronological_split_is_per_instance_for_series() {
    let ds = series();
    let s = data::split(&ds, SplitKind::Chronological, (0.8, 0.0, 0.2), 0);
    assert_partition(&s, ds.len());
    let mut last_train: BTreeMap<u64, u64> = BTreeMap::new();
    for &i in &s.train {
        let e = last_train.entry(ds.groups[i]).or_default();
        *e = (*e).max(ds.order[i]);
    }
    assert_eq!(
        last_train.len(),
        10,
        "every instance contributes to training"
    );
    for &i in &s.test {
        assert!(ds.order[i] > last_train[&ds.groups[i]]);
    }
    let frac = s.train.len() as f64 / ds.len() as f64;
    assert!((frac - 0.8).abs() < 0.01, "{frac}");
}

#[test]
fn preprocessing_never_sees_validation_or_test_rows() {
    let ds = kaggle();
    let s = data::split(&ds, SplitKind::Random, (0.7, 0.15, 0.15), 1);
    let opts = PreprocessOptions {
        missing_indicators: true,
        ..PreprocessOptions::default()
    };
    let fitted = Preprocessor::fit(&ds, &s.train, &opts);
    // Poison every non-training sample: the fit must not move.
    let mut poisoned = ds.clone();
    for &i in s.val.iter().chain(&s.test) {
        let n = poisoned.sample_size();
        poisoned.inputs[i * n..(i + 1) * n].fill(1e6);
        poisoned.targets[i] = 1e6;
    }
    assert_eq!(fitted, Preprocessor::fit(&poisoned, &s.train, &opts));
    // The training side lands in [0, 1], with imputed values at the training mean.
    let (x, oc) = fitted.transform_inputs(&ds, &s.train);
    assert_eq!(oc, 2);
    assert_eq!(x.len(), s.train.len() * ds.seq_len * 2);
    for v in x.chunks_exact(2) {
        assert!((0.0..=1.0).contains(&v[0]), "{v:?}");
        assert!(v[1] == 0.0 || v[1] == 1.0);
    }
    let cpi = data::KAGGLE_FEATURES
        .iter()
        .position(|f| *f == "cycles_per_instruction")
        .unwrap();
    let i = *s
        .train
        .iter()
        .find(|&&i| ds.sample(i)[cpi].is_nan())
        .unwrap();
    let pos = s.train.iter().position(|&t| t == i).unwrap();
    let step = &x[(pos * ds.seq_len + cpi) * 2..][..2];
    let f = &fitted.features[cpi];
    assert_eq!(step[1], 1.0);
    assert!((step[0] - (f.mean - f.min) / (f.max - f.min)).abs() < 1e-6);
    let train_cpi: Vec<f64> = s
        .train
        .iter()
        .map(|&i| ds.sample(i)[cpi])
        .filter(|v| !v.is_nan())
        .map(f64::from)
        .collect();
    let mean = train_cpi.iter().sum::<f64>() / train_cpi.len() as f64;
    assert!((f.mean as f64 - mean).abs() < 1e-5);
    // Targets scale into [0, 1] on train and invert back to trace units.
    let y = fitted.transform_targets(&ds, &s.train);
    assert!(y.iter().all(|v| (0.0..=1.0).contains(v)));
    for (&i, &v) in s.train.iter().zip(&y) {
        assert!((fitted.inverse_target(v) - ds.targets[i]).abs() <= 1e-7);
    }
}

#[test]
fn series_scaling_is_per_channel_and_round_trips_through_json() {
    let ds = series();
    let s = data::split(&ds, SplitKind::Chronological, (0.7, 0.1, 0.2), 0);
    let p = Preprocessor::fit(&ds, &s.train, &PreprocessOptions::default());
    assert_eq!(p.features.len(), ds.channels);
    let (x, oc) = p.transform_inputs(&ds, &s.test[..5]);
    assert_eq!(oc, ds.channels + p.relative.len());
    assert_eq!(x.len(), 5 * ds.seq_len * oc);
    let raw = ds.sample(s.test[0]);
    let f = &p.features[3];
    assert!((x[3] - (raw[3] - f.min) / (f.max - f.min)).abs() < 1e-6);
    let path = std::env::temp_dir().join(format!("convformer-prep-{}.json", std::process::id()));
    p.save_json(&path).unwrap();
    let back = Preprocessor::load_json(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back, p);
    assert_eq!(back.transform_inputs(&ds, &s.test[..5]).0, x);
}

/// The memory channels restated against the window's last peak: each value is
/// (raw − last max_memory_usage − mean) / std with the training mean and std,
/// which standardise the training steps.
#[test]
fn series_memory_channels_are_restated_against_the_last_peak() {
    let ds = series();
    let s = data::split(&ds, SplitKind::Chronological, (0.7, 0.1, 0.2), 0);
    let p = Preprocessor::fit(&ds, &s.train, &PreprocessOptions::default());
    let name = |k: usize| ds.feature_names[k].as_str();
    let restated: Vec<&str> = p.relative.iter().map(|r| name(r.channel)).collect();
    assert_eq!(
        restated,
        [
            "avg_memory_usage",
            "max_memory_usage",
            "assigned_memory",
            "memory_limit"
        ]
    );
    let (c, t, oc) = (ds.channels, ds.seq_len, p.out_channels());
    let peak = ds
        .feature_names
        .iter()
        .position(|f| f == "max_memory_usage")
        .unwrap();
    let (x, _) = p.transform_inputs(&ds, &s.train);
    let mut moments = vec![(0f64, 0f64); p.relative.len()];
    for (pos, &i) in s.train.iter().enumerate() {
        let raw = ds.sample(i);
        let last = raw[(t - 1) * c + peak];
        for step in 0..t {
            let got = &x[(pos * t + step) * oc + c..][..p.relative.len()];
            for (r, (&v, m)) in p.relative.iter().zip(got.iter().zip(&mut moments)) {
                let value = raw[step * c + r.channel];
                if !value.is_nan() && !last.is_nan() {
                    let want = (value - last - r.mean) / r.std;
                    assert!(
                        (v - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{v} vs {want}"
                    );
                }
                *m = (m.0 + v as f64, m.1 + (v as f64).powi(2));
            }
        }
    }
    let n = (s.train.len() * t) as f64;
    for (r, (sum, sum_sq)) in p.relative.iter().zip(moments) {
        let (mean, var) = (sum / n, sum_sq / n - (sum / n).powi(2));
        assert!(mean.abs() < 1e-3, "{}: mean {mean}", name(r.channel));
        // A channel that never moves keeps unit std and maps to 0.
        assert!(
            var < 1e-6 || (var - 1.0).abs() < 1e-3,
            "{}: var {var}",
            name(r.channel)
        );
    }
    // At the last step the restated peak is the peak minus itself: one value.
    let last_peak = p.relative.iter().position(|r| r.channel == peak).unwrap();
    let at_last: Vec<f32> = (0..s.train.len())
        .map(|pos| x[(pos * t + t - 1) * oc + c + last_peak])
        .collect();
    assert!(at_last.iter().all(|&v| v == at_last[0]));
}

/// A run saved before the restated channels existed loads without them, so
/// its network still sees the channels it was trained on.
#[test]
fn a_preprocessor_saved_without_restated_channels_still_loads() {
    let ds = series();
    let s = data::split(&ds, SplitKind::Chronological, (0.7, 0.1, 0.2), 0);
    let opts = PreprocessOptions {
        window_relative: false,
        ..PreprocessOptions::default()
    };
    let p = Preprocessor::fit(&ds, &s.train, &opts);
    assert!(p.relative.is_empty());
    let mut json: serde_json::Value = serde_json::to_value(&p).unwrap();
    json.as_object_mut().unwrap().remove("relative");
    json["options"]
        .as_object_mut()
        .unwrap()
        .remove("window_relative");
    let path =
        std::env::temp_dir().join(format!("convformer-prep-old-{}.json", std::process::id()));
    std::fs::write(&path, json.to_string()).unwrap();
    let back = Preprocessor::load_json(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(back, p);
    assert_eq!(back.out_channels(), ds.channels);
}

fn synthetic(format: Format, groups: &[u64], seq_len: usize, channels: usize) -> data::Dataset {
    let n = groups.len();
    let size = seq_len * channels;
    data::Dataset {
        format,
        seq_len,
        channels,
        // Distinct, ragged values with some missing ones.
        inputs: (0..n * size)
            .map(|i| {
                if i % 7 == 3 {
                    f32::NAN
                } else {
                    ((i * 37) % 101) as f32 * 0.5
                }
            })
            .collect(),
        targets: (0..n).map(|i| ((i * 13) % 29) as f32 * 1e-3).collect(),
        naive: vec![0.0; n],
        ids: (0..n).map(|i| i.to_string()).collect(),
        groups: groups.to_vec(),
        order: (0..n as u64).map(|i| (i * 7919) % 1009).collect(),
        feature_names: (0..if format == Format::Kaggle {
            size
        } else {
            channels
        })
            .map(|i| format!("f{i}"))
            .collect(),
        report: Default::default(),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn splits_partition_and_keep_groups_whole(
        groups in proptest::collection::vec(0u64..13, 1..300),
        train in 0.0f64..5.0, val in 0.0f64..5.0, test in 0.0f64..5.0,
        seed in proptest::prelude::any::<u64>(),
        series in proptest::prelude::any::<bool>(),
    ) {
        let format = if series { Format::InstanceUsage } else { Format::Kaggle };
        let ds = synthetic(format, &groups, 3, 2);
        for kind in [SplitKind::Random, SplitKind::Group, SplitKind::Chronological] {
            let s = data::split(&ds, kind, (train, val, test), seed);
            assert_partition(&s, ds.len());
            if kind == SplitKind::Group {
                let side = |idx: &[usize]| idx.iter().map(|&i| ds.groups[i]).collect::<BTreeSet<u64>>();
                proptest::prop_assert!(side(&s.train).is_disjoint(&side(&s.val)));
                proptest::prop_assert!(side(&s.train).is_disjoint(&side(&s.test)));
                proptest::prop_assert!(side(&s.val).is_disjoint(&side(&s.test)));
                // Every side asked for gets a group while there are enough of them.
                let distinct = side(&(0..ds.len()).collect::<Vec<_>>()).len();
                let wanted = [train, val, test].iter().filter(|&&r| r > 0.0).count();
                if distinct >= wanted {
                    for (r, idx) in [(train, &s.train), (val, &s.val), (test, &s.test)] {
                        proptest::prop_assert!(r == 0.0 || !idx.is_empty(), "{:?} {:?}", (train, val, test), s);
                    }
                }
            }
            if kind == SplitKind::Random && train + val + test > 0.0 {
                let want = (ds.len() as f64 * train / (train + val + test)).round() as usize;
                proptest::prop_assert_eq!(s.train.len(), want);
            }
        }
    }

    #[test]
    fn transformed_shapes_and_target_inverse_hold_for_ragged_sizes(
        n in 1usize..40, seq_len in 1usize..9, channels in 1usize..6,
        indicators in proptest::prelude::any::<bool>(), series in proptest::prelude::any::<bool>(),
    ) {
        let format = if series { Format::InstanceUsage } else { Format::Kaggle };
        let ds = synthetic(format, &vec![0; n], seq_len, channels);
        let train: Vec<usize> = (0..n).step_by(2).collect();
        let p = Preprocessor::fit(&ds, &train, &PreprocessOptions { missing_indicators: indicators, ..PreprocessOptions::default() });
        let all: Vec<usize> = (0..n).collect();
        let (x, oc) = p.transform_inputs(&ds, &all);
        proptest::prop_assert_eq!(oc, channels * if indicators { 2 } else { 1 });
        proptest::prop_assert_eq!(x.len(), n * seq_len * oc);
        proptest::prop_assert!(x.iter().all(|v| v.is_finite()));
        for (k, y) in p.transform_targets(&ds, &all).into_iter().enumerate() {
            proptest::prop_assert!((p.inverse_target(y) - ds.targets[k]).abs() < 1e-6);
        }
        // Indicator channels flag exactly the missing raw values.
        if indicators {
            for (step, raw) in x.chunks_exact(oc).zip(ds.inputs.chunks_exact(channels)) {
                for c in 0..channels {
                    proptest::prop_assert_eq!(step[channels + c] == 1.0, raw[c].is_nan());
                }
            }
        }
    }
}

/// On the shared series the five large instances hold 12–21% of the windows
/// each, so filling the sides in turn used to leave test empty on some seeds
/// (`train --split group --seed 6` and `--seed 8` had no test split).
#[test]
fn a_group_split_of_the_real_series_has_test_instances_on_every_seed() {
    let ds = series();
    for seed in 1..=40 {
        let s = convformer::train::run::split_for(&ds, seed, Some(SplitKind::Group));
        assert_partition(&s, ds.len());
        for (name, side) in [("train", &s.train), ("val", &s.val), ("test", &s.test)] {
            assert!(!side.is_empty(), "seed {seed}: empty {name}");
        }
    }
}
