//! Property tests over drawn search spaces, ladders and loss vectors.

use convformer::bohb::hyperband::{bracket_plan, budget_ladder, promote};
use convformer::bohb::kde::Kde;
use convformer::bohb::rng::Rng;
use convformer::bohb::space::{Condition, DimKind, Domain, Param, Space, Value};
use proptest::prelude::*;

fn domain() -> impl Strategy<Value = Domain> {
    prop_oneof![
        (-50i64..50, 0i64..40, any::<bool>()).prop_map(|(low, span, log)| {
            let low = if log { low.abs() + 1 } else { low };
            Domain::Int {
                low,
                high: low + span,
                log,
            }
        }),
        (-10.0f64..10.0, 0.0f64..5.0, any::<bool>()).prop_map(|(low, span, log)| {
            let low = if log { low.abs() + 1e-3 } else { low };
            Domain::Float {
                low,
                high: low + span,
                log,
            }
        }),
        (1usize..7).prop_map(|n| Domain::Categorical {
            choices: (0..n).map(|i| Value::Str(format!("c{i}"))).collect()
        }),
        (1usize..6).prop_map(|n| Domain::Ordinal {
            values: (0..n).map(|i| Value::Int(i as i64 * 2)).collect()
        }),
        Just(Domain::Constant {
            value: Value::Float(0.5)
        }),
    ]
}

/// Spaces of mixed parameters; a parameter drawn as conditional depends on
/// the nearest earlier categorical or ordinal one taking its first choice.
fn space() -> impl Strategy<Value = Space> {
    prop::collection::vec((domain(), any::<bool>()), 1..9).prop_map(|drawn| {
        let mut params: Vec<Param> = Vec::new();
        for (i, (domain, conditional)) in drawn.into_iter().enumerate() {
            let parent = params.iter().rev().find_map(|p| match &p.domain {
                Domain::Categorical { choices } | Domain::Ordinal { values: choices } => {
                    Some(Condition {
                        parent: p.name.clone(),
                        values: vec![choices[0].clone()],
                    })
                }
                _ => None,
            });
            params.push(Param {
                name: format!("p{i}"),
                domain,
                condition: parent.filter(|_| conditional),
            });
        }
        Space::new(params).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any vector in the unit cube decodes to a valid configuration whose
    /// encoding decodes back to the same configuration.
    #[test]
    fn decode_encode_decode_is_stable(space in space(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let dims = space.dims();
        for _ in 0..20 {
            let vector: Vec<f64> = dims.iter().map(|d| match d {
                DimKind::Continuous => rng.uniform(),
                DimKind::Categorical(n) | DimKind::Ordinal(n) => rng.below(*n) as f64,
            }).collect();
            let config = space.decode(&vector);
            let encoded = space.encode(&config).unwrap();
            prop_assert_eq!(encoded.len(), dims.len());
            let again = space.decode(&encoded);
            // The same parameters are active; inactive ones encode as NaN.
            prop_assert!(again.keys().eq(config.keys()));
            let active = space.params().iter()
                .filter(|p| config.contains_key(&p.name) && !matches!(p.domain, Domain::Constant { .. }))
                .count();
            prop_assert_eq!(encoded.iter().filter(|v| !v.is_nan()).count(), active);
            for (name, value) in &config {
                match (value, &again[name]) {
                    (Value::Float(a), Value::Float(b)) => prop_assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0)),
                    (a, b) => prop_assert_eq!(a, b),
                }
            }
        }
    }

    /// Ladders are geometric with ratio eta, end at max, start at or above
    /// min and less than eta times min.
    #[test]
    fn ladders_are_geometric(min in 0.01f64..50.0, factor in 1.0f64..1000.0, eta in 2u32..6) {
        let max = min * factor;
        let ladder = budget_ladder(min, max, eta).unwrap();
        prop_assert_eq!(*ladder.last().unwrap(), max);
        prop_assert!(ladder[0] >= min * (1.0 - 1e-9) && ladder[0] < min * eta as f64);
        for w in ladder.windows(2) {
            prop_assert!((w[1] / w[0] - eta as f64).abs() < 1e-9);
        }
        for it in 0..ladder.len() {
            let plan = bracket_plan(&ladder, eta, it);
            prop_assert_eq!(plan.sizes.len(), plan.budgets.len());
            prop_assert!(plan.sizes.windows(2).all(|w| w[1] <= w[0] && w[1] >= 1));
        }
    }

    /// Promotion returns the k smallest finite losses, best first.
    #[test]
    fn promotion_is_the_k_smallest_finite(
        losses in prop::collection::vec(prop::option::of(prop_oneof![-1e3f64..1e3, Just(f64::NAN), Just(f64::INFINITY)]), 0..40),
        keep in 0usize..45,
    ) {
        let chosen = promote(&losses, keep);
        let finite: Vec<f64> = losses.iter().flatten().copied().filter(|l| l.is_finite()).collect();
        prop_assert_eq!(chosen.len(), keep.min(finite.len()));
        let values: Vec<f64> = chosen.iter().map(|&i| losses[i].unwrap()).collect();
        prop_assert!(values.iter().all(|v| v.is_finite()));
        prop_assert!(values.windows(2).all(|w| w[0] <= w[1]));
        if let Some(worst_kept) = values.last() {
            let left_out_better = losses.iter().enumerate()
                .filter(|(i, _)| !chosen.contains(i))
                .filter_map(|(_, l)| *l)
                .any(|l| l.is_finite() && l < *worst_kept);
            prop_assert!(!left_out_better);
        }
    }

    /// A product KDE over any mix of kinds integrates to one: discrete
    /// dimensions summed exactly, continuous ones by a fine Riemann sum over
    /// a range wide enough to hold the Gaussian mass.
    #[test]
    fn kde_mass_is_one(
        kinds in prop::collection::vec(prop_oneof![Just(DimKind::Continuous), (2usize..5).prop_map(DimKind::Categorical), (2usize..5).prop_map(DimKind::Ordinal)], 1..3),
        n in 1usize..6,
        seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let rows: Vec<Vec<f64>> = (0..n).map(|_| kinds.iter().map(|k| match k {
            DimKind::Continuous => rng.uniform(),
            DimKind::Categorical(c) | DimKind::Ordinal(c) => rng.below(*c) as f64,
        }).collect()).collect();
        let refs: Vec<&[f64]> = rows.iter().map(|r| r.as_slice()).collect();
        let bandwidths: Vec<f64> = kinds.iter().map(|k| match k {
            DimKind::Continuous => 0.05 + 0.2 * rng.uniform(),
            DimKind::Categorical(_) | DimKind::Ordinal(_) => 0.05 + 0.4 * rng.uniform(),
        }).collect();
        let kde = Kde::with_bandwidths(&kinds, &refs, bandwidths);
        // Grid per dimension: (points, weight).
        let grids: Vec<Vec<(f64, f64)>> = kinds.iter().map(|k| match k {
            DimKind::Continuous => {
                let steps = 400;
                let (lo, hi) = (-1.5, 2.5);
                let h = (hi - lo) / steps as f64;
                (0..steps).map(|i| (lo + (i as f64 + 0.5) * h, h)).collect()
            }
            DimKind::Categorical(c) | DimKind::Ordinal(c) => (0..*c).map(|v| (v as f64, 1.0)).collect(),
        }).collect();
        let mut total = 0.0;
        let mut index = vec![0usize; kinds.len()];
        'outer: loop {
            let x: Vec<f64> = index.iter().zip(&grids).map(|(&i, g)| g[i].0).collect();
            let w: f64 = index.iter().zip(&grids).map(|(&i, g)| g[i].1).product();
            total += kde.pdf(&x) * w;
            for d in 0..index.len() {
                index[d] += 1;
                if index[d] < grids[d].len() {
                    continue 'outer;
                }
                index[d] = 0;
            }
            break;
        }
        prop_assert!((total - 1.0).abs() < 1e-3, "mass {}", total);
    }
}
