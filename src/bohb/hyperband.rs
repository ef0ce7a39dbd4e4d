//! Hyperband's budget ladder, bracket plans and the successive-halving rule.

use crate::{Error, Result};

/// The budgets `max / eta^(s_max - i)` for `i = 0..=s_max`, where `s_max` is
/// the largest integer with `min * eta^s_max <= max` (up to rounding noise).
/// Computed with integer powers, so 9 -> 729 at eta 3 gives 9, 27, 81, 243, 729
/// and not the 4 levels a truncated `log(729/9)/log(3)` = 3.9999.. would give.
pub fn budget_ladder(min_budget: f64, max_budget: f64, eta: u32) -> Result<Vec<f64>> {
    if !(min_budget.is_finite() && max_budget.is_finite() && min_budget > 0.0) {
        return Err(Error::Invalid(format!(
            "budgets must be finite and positive (min {min_budget}, max {max_budget})"
        )));
    }
    if min_budget > max_budget {
        return Err(Error::Invalid(format!(
            "min budget {min_budget} exceeds max budget {max_budget}"
        )));
    }
    if eta < 2 {
        return Err(Error::Invalid(format!("eta must be at least 2, got {eta}")));
    }
    let eta = eta as f64;
    let tolerance = 1.0 + 1e-9;
    let mut s_max = 0i32;
    while min_budget * eta.powi(s_max + 1) <= max_budget * tolerance {
        s_max += 1;
    }
    Ok((0..=s_max)
        .map(|i| max_budget / eta.powi(s_max - i))
        .collect())
}

/// One successive-halving bracket: stage `i` runs `sizes[i]` configurations
/// at `budgets[i]`.
#[derive(Clone, Debug, PartialEq)]
pub struct BracketPlan {
    /// Hyperband's `s`: the number of halvings.
    pub s: usize,
    pub sizes: Vec<usize>,
    pub budgets: Vec<f64>,
}

/// The plan of Hyperband iteration `iteration` (0-based): brackets cycle
/// s = s_max, s_max - 1, .., 0, with `n0 = floor((s_max+1)/(s+1)) * eta^s`
/// and `n_i = max(floor(n0 / eta^i), 1)`.
pub fn bracket_plan(ladder: &[f64], eta: u32, iteration: usize) -> BracketPlan {
    let levels = ladder.len();
    let s_max = levels - 1;
    let s = s_max - iteration % levels;
    let eta = eta as usize;
    let n0 = (levels / (s + 1)) * eta.pow(s as u32);
    let sizes = (0..=s).map(|i| (n0 / eta.pow(i as u32)).max(1)).collect();
    BracketPlan {
        s,
        sizes,
        budgets: ladder[s_max - s..].to_vec(),
    }
}

/// Evaluations planned for `iterations` Hyperband iterations (an upper
/// bound: failed results promote fewer configurations).
pub fn planned_jobs(ladder: &[f64], eta: u32, iterations: usize) -> usize {
    (0..iterations)
        .map(|i| bracket_plan(ladder, eta, i).sizes.iter().sum::<usize>())
        .sum()
}

/// Successive halving's promotion: the indices of the `keep` lowest losses,
/// best first. Failed (`None`) and non-finite losses are never promoted, so
/// fewer than `keep` come back when fewer finite results exist. Ties keep the
/// earlier index, so the rule is deterministic.
pub fn promote(losses: &[Option<f64>], keep: usize) -> Vec<usize> {
    let mut finite: Vec<(usize, f64)> = losses
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.filter(|l| l.is_finite()).map(|l| (i, l)))
        .collect();
    finite.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    finite.into_iter().take(keep).map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ladders_match_hand_computed_tables() {
        assert_eq!(
            budget_ladder(9.0, 729.0, 3).unwrap(),
            [9.0, 27.0, 81.0, 243.0, 729.0]
        );
        assert_eq!(budget_ladder(1.0, 27.0, 3).unwrap(), [1.0, 3.0, 9.0, 27.0]);
        assert_eq!(
            budget_ladder(1.0, 81.0, 3).unwrap(),
            [1.0, 3.0, 9.0, 27.0, 81.0]
        );
        assert_eq!(
            budget_ladder(1.0, 16.0, 2).unwrap(),
            [1.0, 2.0, 4.0, 8.0, 16.0]
        );
        assert_eq!(
            budget_ladder(0.1, 1.0, 3).unwrap(),
            [1.0 / 9.0, 1.0 / 3.0, 1.0]
        );
        // Not a power: anchored at the max budget, as hpbandster does.
        assert_eq!(
            budget_ladder(1.0, 10.0, 3).unwrap(),
            [10.0 / 9.0, 10.0 / 3.0, 10.0]
        );
        assert_eq!(budget_ladder(5.0, 5.0, 3).unwrap(), [5.0]);
        assert!(budget_ladder(10.0, 1.0, 3).is_err());
        assert!(budget_ladder(0.0, 1.0, 3).is_err());
        assert!(budget_ladder(1.0, 9.0, 1).is_err());
    }

    #[test]
    fn brackets_match_hand_computed_hpbandster_tables() {
        // R = 81, eta = 3 with hpbandster's n0 = floor((s_max+1)/(s+1)) * eta^s
        // (by hand: 5/5*81, 5/4*27, 5/3*9, 5/2*3, 5/1*1), then n0 / eta^i.
        let ladder = budget_ladder(1.0, 81.0, 3).unwrap();
        let expected: [&[usize]; 5] = [
            &[81, 27, 9, 3, 1],
            &[27, 9, 3, 1],
            &[9, 3, 1],
            &[6, 2],
            &[5],
        ];
        for (it, sizes) in expected.iter().enumerate() {
            let plan = bracket_plan(&ladder, 3, it);
            assert_eq!(plan.s, 4 - it);
            assert_eq!(plan.sizes, *sizes, "bracket {it}");
            assert_eq!(plan.budgets, ladder[it..].to_vec());
        }
        // The cycle repeats.
        assert_eq!(bracket_plan(&ladder, 3, 5), bracket_plan(&ladder, 3, 0));
        // 9 -> 729: n0 of the first bracket is 81 at budget 9; eta 2 ladders too.
        let plan = bracket_plan(&budget_ladder(9.0, 729.0, 3).unwrap(), 3, 0);
        assert_eq!(plan.sizes, [81, 27, 9, 3, 1]);
        assert_eq!(plan.budgets, [9.0, 27.0, 81.0, 243.0, 729.0]);
        // 1 -> 27 at eta 3 (the CLI default): 4/4*27, 4/3*9, 4/2*3, 4/1*1.
        let ladder = budget_ladder(1.0, 27.0, 3).unwrap();
        let sizes: Vec<Vec<usize>> = (0..4).map(|i| bracket_plan(&ladder, 3, i).sizes).collect();
        assert_eq!(
            sizes,
            vec![vec![27, 9, 3, 1], vec![9, 3, 1], vec![6, 2], vec![4]]
        );
    }

    #[test]
    fn promotion_keeps_the_best_finite_losses() {
        let losses = [
            Some(3.0),
            None,
            Some(1.0),
            Some(f64::NAN),
            Some(2.0),
            Some(1.0),
        ];
        assert_eq!(promote(&losses, 2), [2, 5]);
        assert_eq!(promote(&losses, 3), [2, 5, 4]);
        // Only four finite results: asking for more never promotes a failure.
        assert_eq!(promote(&losses, 6), [2, 5, 4, 0]);
        assert_eq!(
            promote(&[None, Some(f64::INFINITY)], 1),
            Vec::<usize>::new()
        );
    }
}
