//! Train / validation / test splits by ratio, seeded.

use super::{Dataset, Format};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SplitKind {
    /// Samples shuffled independently (what the original Keras project did).
    Random,
    /// Whole groups (collection_id, or one instance) on one side.
    Group,
    /// Earlier samples train, later ones test: per instance for series, by time for kaggle rows.
    Chronological,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Splits {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// SplitMix64: a tiny seeded generator, enough for shuffles.
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// Cut points for `n` items: train gets round(n·r0/Σ), val round(n·(r0+r1)/Σ) − that.
fn cuts(n: usize, ratios: (f64, f64, f64)) -> (usize, usize) {
    let clamp = |r: f64| if r.is_finite() && r > 0.0 { r } else { 0.0 };
    let (a, b, c) = (clamp(ratios.0), clamp(ratios.1), clamp(ratios.2));
    let sum = a + b + c;
    if sum == 0.0 {
        return (n, n);
    }
    let train = ((n as f64) * a / sum).round() as usize;
    let val_end = ((n as f64) * (a + b) / sum).round() as usize;
    (train.min(n), val_end.clamp(train.min(n), n))
}

fn assign(order: &[usize], ratios: (f64, f64, f64)) -> Splits {
    let (t, v) = cuts(order.len(), ratios);
    Splits {
        train: order[..t].to_vec(),
        val: order[t..v].to_vec(),
        test: order[v..].to_vec(),
    }
}

/// A large group can take a later side's whole share (on the shared series one
/// instance holds up to 21% of the windows, twice validation's share), which left
/// test empty on some seeds. Each side asked for that got no group takes the last
/// group of the side with the most, while that side keeps one. Splits with every
/// side filled are unchanged.
fn give_every_side_a_group(sides: &mut [Vec<Vec<usize>>; 3], ratios: (f64, f64, f64)) {
    let wanted = [ratios.0, ratios.1, ratios.2].map(|r| r.is_finite() && r > 0.0);
    for empty in 0..3 {
        if !wanted[empty] || !sides[empty].is_empty() {
            continue;
        }
        let donor = (0..3).max_by_key(|&d| sides[d].len()).unwrap();
        if sides[donor].len() >= 2 {
            let g = sides[donor].pop().unwrap();
            sides[empty].push(g);
        }
    }
}

/// Splits sample indices of `ds`; ratios are normalised by their sum (negative or NaN count as 0).
/// Each side's indices come back sorted.
pub fn split(ds: &Dataset, kind: SplitKind, ratios: (f64, f64, f64), seed: u64) -> Splits {
    let n = ds.len();
    let mut out = match kind {
        SplitKind::Random => {
            let mut idx: Vec<usize> = (0..n).collect();
            SplitMix64::new(seed).shuffle(&mut idx);
            assign(&idx, ratios)
        }
        SplitKind::Group => {
            let mut members: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
            for (i, g) in ds.groups.iter().enumerate() {
                members.entry(*g).or_default().push(i);
            }
            let mut groups: Vec<Vec<usize>> = members.into_values().collect();
            SplitMix64::new(seed).shuffle(&mut groups);
            // Whole groups fill train, then val, by cumulative sample count.
            let (t, v) = cuts(n, ratios);
            let mut sides: [Vec<Vec<usize>>; 3] = Default::default();
            let mut taken = 0;
            for g in groups {
                let side = if taken < t {
                    0
                } else if taken < v {
                    1
                } else {
                    2
                };
                taken += g.len();
                sides[side].push(g);
            }
            give_every_side_a_group(&mut sides, ratios);
            let [train, val, test] = sides.map(|groups| groups.concat());
            Splits { train, val, test }
        }
        SplitKind::Chronological if ds.format == Format::Kaggle => {
            let mut idx: Vec<usize> = (0..n).collect();
            idx.sort_by_key(|&i| (ds.order[i], i));
            assign(&idx, ratios)
        }
        SplitKind::Chronological => {
            let mut members: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
            for (i, g) in ds.groups.iter().enumerate() {
                members.entry(*g).or_default().push(i);
            }
            let mut s = Splits::default();
            for mut idx in members.into_values() {
                idx.sort_by_key(|&i| (ds.order[i], i));
                let part = assign(&idx, ratios);
                s.train.extend(part.train);
                s.val.extend(part.val);
                s.test.extend(part.test);
            }
            s
        }
    };
    out.train.sort_unstable();
    out.val.sort_unstable();
    out.test.sort_unstable();
    out
}
