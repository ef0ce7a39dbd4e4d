//! One Hyperband bracket as a successive-halving state machine: what it can
//! hand out next, and promotion once a stage has all its results.

use super::hyperband::{bracket_plan, promote, BracketPlan};
use super::model::Origin;
use super::space::Config;

/// One successive-halving stage of a bracket.
#[derive(Clone)]
pub(super) struct Stage {
    /// Indices into the bracket's configurations.
    pub members: Vec<usize>,
    /// Per member: `None` while pending, then the loss (`None` if failed).
    pub losses: Vec<Option<Option<f64>>>,
    pub sent: usize,
}

#[derive(Clone)]
pub(super) struct Bracket {
    pub plan: BracketPlan,
    pub configs: Vec<(Config, Origin)>,
    pub stage: usize,
    pub current: Stage,
    done: bool,
}

pub(super) enum Next {
    /// Run position `slot` of the current stage; `propose` = needs a new config.
    Run {
        slot: usize,
        propose: bool,
    },
    Wait,
    Done,
}

impl Bracket {
    pub fn new(plan: BracketPlan) -> Self {
        Bracket {
            plan,
            configs: Vec::new(),
            stage: 0,
            current: Stage {
                members: Vec::new(),
                losses: Vec::new(),
                sent: 0,
            },
            done: false,
        }
    }

    /// What this bracket can hand out now; advances successive halving when a
    /// stage has all its results.
    pub fn next(&mut self) -> Next {
        loop {
            if self.done {
                return Next::Done;
            }
            let target = if self.stage == 0 {
                self.plan.sizes[0]
            } else {
                self.current.members.len()
            };
            if self.current.sent < target {
                return Next::Run {
                    slot: self.current.sent,
                    propose: self.stage == 0,
                };
            }
            if self.current.losses.iter().any(Option::is_none) {
                return Next::Wait;
            }
            if self.stage + 1 == self.plan.sizes.len() {
                self.done = true;
                continue;
            }
            let losses: Vec<Option<f64>> =
                self.current.losses.iter().map(|l| l.flatten()).collect();
            let keep = promote(&losses, self.plan.sizes[self.stage + 1]);
            if keep.is_empty() {
                self.done = true;
                continue;
            }
            let members: Vec<usize> = keep.iter().map(|&k| self.current.members[k]).collect();
            self.current = Stage {
                losses: vec![None; members.len()],
                members,
                sent: 0,
            };
            self.stage += 1;
        }
    }
}

/// The next runnable slot `(bracket, slot, propose)`: the first open bracket
/// that can hand something out, else a new bracket while fewer than
/// `iterations` exist; `None` while every open bracket waits (or all are done).
pub(super) fn next_run(
    brackets: &mut Vec<Bracket>,
    ladder: &[f64],
    eta: u32,
    iterations: usize,
) -> Option<(usize, usize, bool)> {
    for (b, bracket) in brackets.iter_mut().enumerate() {
        if let Next::Run { slot, propose } = bracket.next() {
            return Some((b, slot, propose));
        }
    }
    if brackets.len() < iterations {
        brackets.push(Bracket::new(bracket_plan(ladder, eta, brackets.len())));
        let b = brackets.len() - 1;
        if let Next::Run { slot, propose } = brackets[b].next() {
            return Some((b, slot, propose));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bohb::space::Value;

    fn config(i: usize) -> (Config, Origin) {
        (
            Config::from([("i".to_string(), Value::Int(i as i64))]),
            Origin::Random,
        )
    }

    /// Hands out stage-0 slots the way the master does.
    fn propose_all(bracket: &mut Bracket) -> usize {
        let mut handed = 0;
        while let Next::Run {
            slot,
            propose: true,
        } = bracket.next()
        {
            assert_eq!(slot, handed);
            bracket.configs.push(config(slot));
            bracket.current.members.push(slot);
            bracket.current.losses.push(None);
            bracket.current.sent += 1;
            handed += 1;
        }
        handed
    }

    #[test]
    fn stages_wait_for_results_then_promote_the_best_finite() {
        let mut bracket = Bracket::new(BracketPlan {
            s: 2,
            sizes: vec![6, 2, 1],
            budgets: vec![1.0, 3.0, 9.0],
        });
        assert_eq!(propose_all(&mut bracket), 6);
        assert!(matches!(bracket.next(), Next::Wait));
        let losses = [Some(5.0), None, Some(1.0), Some(0.5), None, Some(2.0)];
        for (i, l) in losses.iter().enumerate().take(5) {
            bracket.current.losses[i] = Some(*l);
        }
        assert!(
            matches!(bracket.next(), Next::Wait),
            "one result still missing"
        );
        bracket.current.losses[5] = Some(losses[5]);
        // Stage 1 runs configs 3 and 2 (losses 0.5 and 1.0), best first.
        assert!(matches!(
            bracket.next(),
            Next::Run {
                slot: 0,
                propose: false
            }
        ));
        assert_eq!(bracket.stage, 1);
        assert_eq!(bracket.current.members, [3, 2]);
        bracket.current.sent = 2;
        bracket.current.losses = vec![Some(None), Some(None)];
        // Both failed at stage 1: nothing to promote, the bracket ends early.
        assert!(matches!(bracket.next(), Next::Done));
    }

    #[test]
    fn the_last_stage_finishes_the_bracket() {
        let mut bracket = Bracket::new(BracketPlan {
            s: 0,
            sizes: vec![2],
            budgets: vec![9.0],
        });
        assert_eq!(propose_all(&mut bracket), 2);
        bracket.current.losses = vec![Some(Some(1.0)), Some(Some(2.0))];
        assert!(matches!(bracket.next(), Next::Done));
    }
}
