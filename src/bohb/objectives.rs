//! Synthetic objectives that check the tuner itself: the BOHB paper's
//! counting-ones problem and the Branin function.

use super::rng::Rng;
use super::space::{Config, Domain, Param, Space, Value};
use super::{EvalContext, EvalError, EvalResult, Objective};
use std::time::Duration;

/// Counting ones (Falkner et al. 2018, §5.1): `n_cat` binary categorical and
/// `n_cont` continuous parameters in [0, 1]. At budget `b` the loss is
/// `-(Σ cat + Σ_j mean of b Bernoulli(x_j) draws)`: a noisy estimate whose
/// noise shrinks as the budget grows. The optimum is `-(n_cat + n_cont)`.
#[derive(Clone, Debug)]
pub struct CountingOnes {
    pub n_cat: usize,
    pub n_cont: usize,
    /// Sleep per evaluation, to stand in for real training time.
    pub delay: Duration,
}

impl CountingOnes {
    pub fn new(n_cat: usize, n_cont: usize) -> Self {
        CountingOnes {
            n_cat,
            n_cont,
            delay: Duration::ZERO,
        }
    }

    pub fn space(&self) -> Space {
        let cat = (0..self.n_cat).map(|i| Param {
            name: format!("cat_{i:02}"),
            domain: Domain::Categorical {
                choices: vec![Value::Int(0), Value::Int(1)],
            },
            condition: None,
        });
        let cont = (0..self.n_cont).map(|i| Param {
            name: format!("cont_{i:02}"),
            domain: Domain::Float {
                low: 0.0,
                high: 1.0,
                log: false,
            },
            condition: None,
        });
        Space::new(cat.chain(cont).collect()).expect("names are unique")
    }

    fn sums(&self, config: &Config) -> (f64, Vec<f64>) {
        let cat = (0..self.n_cat)
            .map(|i| config[&format!("cat_{i:02}")].as_f64().unwrap_or(0.0))
            .sum();
        let cont = (0..self.n_cont)
            .map(|i| config[&format!("cont_{i:02}")].as_f64().unwrap_or(0.0))
            .collect();
        (cat, cont)
    }

    /// The noise-free loss `-(Σ cat + Σ x)`.
    pub fn true_loss(&self, config: &Config) -> f64 {
        let (cat, cont) = self.sums(config);
        -(cat + cont.iter().sum::<f64>())
    }

    /// The paper's normalised regret: `true_loss / (n_cat + n_cont) + 1`.
    pub fn regret(&self, config: &Config) -> f64 {
        self.true_loss(config) / (self.n_cat + self.n_cont) as f64 + 1.0
    }
}

impl Objective for CountingOnes {
    fn evaluate(
        &self,
        config: &Config,
        budget: f64,
        ctx: &EvalContext,
    ) -> Result<EvalResult, EvalError> {
        pause(self.delay);
        let draws = budget.round().max(1.0) as usize;
        let mut rng = Rng::new(ctx.seed);
        let (cat, cont) = self.sums(config);
        let noisy: f64 = cont
            .iter()
            .map(|&p| (0..draws).filter(|_| rng.bernoulli(p)).count() as f64 / draws as f64)
            .sum();
        Ok(EvalResult {
            loss: -(cat + noisy),
        })
    }
}

/// Sleeps `delay` unless it is zero (even a zero sleep is a syscall that
/// costs more than a whole synthetic evaluation).
fn pause(delay: Duration) {
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
}

/// The Branin function on x1 ∈ [-5, 10], x2 ∈ [0, 15]; global minimum
/// 0.397887 at three points. The budget does not change it.
#[derive(Clone, Debug, Default)]
pub struct Branin {
    pub delay: Duration,
}

pub const BRANIN_MINIMUM: f64 = 0.397_887_357_729_738;

impl Branin {
    pub fn space() -> Space {
        let float = |name: &str, low, high| Param {
            name: name.into(),
            domain: Domain::Float {
                low,
                high,
                log: false,
            },
            condition: None,
        };
        Space::new(vec![float("x1", -5.0, 10.0), float("x2", 0.0, 15.0)]).expect("valid")
    }

    pub fn value(x1: f64, x2: f64) -> f64 {
        use std::f64::consts::PI;
        let b = 5.1 / (4.0 * PI * PI);
        let c = 5.0 / PI;
        let t = 1.0 / (8.0 * PI);
        (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
    }
}

impl Objective for Branin {
    fn evaluate(
        &self,
        config: &Config,
        _budget: f64,
        _ctx: &EvalContext,
    ) -> Result<EvalResult, EvalError> {
        pause(self.delay);
        let get = |k: &str| {
            config
                .get(k)
                .and_then(Value::as_f64)
                .ok_or_else(|| format!("missing {k}"))
        };
        Ok(EvalResult {
            loss: Branin::value(get("x1")?, get("x2")?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branin_minima_are_where_the_literature_says() {
        use std::f64::consts::PI;
        for (x1, x2) in [(-PI, 12.275), (PI, 2.275), (9.42478, 2.475)] {
            assert!((Branin::value(x1, x2) - BRANIN_MINIMUM).abs() < 1e-5);
        }
        assert!((Branin::value(0.0, 0.0) - 55.6021).abs() < 1e-3);
    }

    #[test]
    fn counting_ones_noise_shrinks_with_budget_and_is_unbiased() {
        let problem = CountingOnes::new(2, 2);
        let config = problem.space().decode(&[1.0, 0.0, 0.3, 0.8]);
        assert_eq!(problem.true_loss(&config), -(1.0 + 0.3 + 0.8));
        assert!((problem.regret(&config) - (1.0 - 2.1 / 4.0)).abs() < 1e-12);
        let spread = |budget: f64| {
            let losses: Vec<f64> = (0..400)
                .map(|seed| {
                    let ctx = EvalContext {
                        job: 0,
                        bracket: 0,
                        stage: 0,
                        seed,
                    };
                    problem.evaluate(&config, budget, &ctx).unwrap().loss
                })
                .collect();
            let mean = losses.iter().sum::<f64>() / 400.0;
            let sd = (losses.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / 400.0).sqrt();
            (mean, sd)
        };
        let (mean9, sd9) = spread(9.0);
        let (mean729, sd729) = spread(729.0);
        assert!((mean729 + 2.1).abs() < 0.01 && (mean9 + 2.1).abs() < 0.05);
        assert!(sd729 < sd9 / 5.0, "{sd9} vs {sd729}");
    }
}
