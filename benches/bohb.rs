//! Proposal overhead: one model-based BOHB proposal (fit good/bad KDEs on the
//! largest budget + 64 candidates scored by l/g) at 8+8 dimensions with 200
//! observations. Target: under 2 ms.

use convformer::bohb::model::{Model, ModelSettings};
use convformer::bohb::objectives::CountingOnes;
use convformer::bohb::rng::Rng;
use convformer::bohb::{EvalContext, Objective};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn model_with(observations: usize, random_fraction: f64) -> Model {
    let problem = CountingOnes::new(8, 8);
    let space = problem.space();
    let settings = ModelSettings {
        random_fraction,
        ..ModelSettings::default()
    };
    let mut model = Model::new(space.clone(), settings);
    let mut rng = Rng::new(1);
    for job in 0..observations as u64 {
        let config = space.sample_uniform(&mut rng);
        let ctx = EvalContext {
            job,
            bracket: 0,
            stage: 0,
            seed: job,
        };
        let loss = problem.evaluate(&config, 9.0, &ctx).unwrap().loss;
        model.observe(&config, 9.0, Some(loss));
    }
    model
}

fn proposal_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("bohb_propose_8+8");
    for observations in [50, 200, 800] {
        let model = model_with(observations, 0.0);
        assert!(
            model.fit(&mut Rng::new(0)).is_some(),
            "the model is fitted, so proposals are model-based"
        );
        let mut rng = Rng::new(2);
        group.bench_function(format!("model_based_{observations}_obs"), |b| {
            b.iter(|| black_box(model.propose(&mut rng)))
        });
    }
    let model = model_with(200, 1.0);
    let mut rng = Rng::new(3);
    group.bench_function("uniform_random", |b| {
        b.iter(|| black_box(model.propose(&mut rng)))
    });
    group.finish();
}

criterion_group!(benches, proposal_overhead);
criterion_main!(benches);
