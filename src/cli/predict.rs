//! `convformer predict`: predictions of a trained run as CSV.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::train::baselines::Predictor;
use crate::train::reserve::column_name;
use crate::train::run::forecasts;

use super::eval::RunInput;

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub input: RunInput,
    /// CSV to write: id, actual, prediction and one reserved_qNN column per
    /// calibrated level (trace units).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: &PredictArgs) -> Result<()> {
    let (run, ds) = args.input.open()?;
    // Every window as the test split, forecast as `eval` does: nothing is fitted on it.
    let data = run.prepare_all(&ds)?;
    let (baselines, batch) = (&run.baselines, run.run.train.eval_batch_size);
    let spread = Some(&baselines.spread);
    let fc = forecasts(
        &run.model,
        &run.store,
        &data,
        &baselines.ridge,
        spread,
        &data.test,
        batch,
    )?;
    let pred = &fc.model;
    let reserved: Vec<(f64, Vec<f32>)> = baselines
        .levels
        .iter()
        .filter_map(|&q| {
            let margin = baselines
                .margin(Predictor::Convformer, q)?
                .margin
                .as_ref()?;
            Some((q, fc.reserved(Predictor::Convformer, Some(margin))))
        })
        .collect();
    let fail = |e: csv::Error| Error::Invalid(format!("cannot write {}: {e}", args.out.display()));
    let mut w = csv::Writer::from_path(&args.out).map_err(fail)?;
    let mut header = vec!["id".to_string(), "actual".into(), "prediction".into()];
    header.extend(reserved.iter().map(|(q, _)| column_name(*q)));
    w.write_record(&header).map_err(fail)?;
    for (i, ((id, actual), p)) in ds.ids.iter().zip(&ds.targets).zip(pred).enumerate() {
        let actual = if actual.is_finite() {
            actual.to_string()
        } else {
            String::new()
        };
        let mut record = vec![id.clone(), actual, p.to_string()];
        record.extend(reserved.iter().map(|(_, v)| v[i].to_string()));
        w.write_record(&record).map_err(fail)?;
    }
    w.flush()
        .map_err(|e| Error::Invalid(format!("cannot write {}: {e}", args.out.display())))?;
    println!("wrote {} predictions to {}", pred.len(), args.out.display());
    Ok(())
}
