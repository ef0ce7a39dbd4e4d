//! The charts of a run: loss per epoch (train vs validation) and actual vs
//! predicted on the held-out split, as PNG via plotters.

use std::path::Path;

use plotters::prelude::*;

use super::history::EpochLog;
use crate::error::{Error, Result};

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("cannot draw {}: {e}", path.display()))
}

/// Train and validation loss per epoch, and the epoch whose weights the run
/// kept (`best_epoch`, from 1; 0 draws none).
pub fn loss_curve(path: &Path, history: &[EpochLog], best_epoch: usize) -> Result<()> {
    crate::font::ensure_registered();
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let values: Vec<f64> = history
        .iter()
        .flat_map(|h| [h.train_loss, h.val_loss])
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = values.iter().cloned().fold(0.0, f64::max);
    let (lo, hi) = if values.is_empty() {
        (0.0, 1.0)
    } else {
        (
            0.0f64.max(lo - 0.1 * (hi - lo)),
            hi + 0.1 * (hi - lo) + f64::EPSILON,
        )
    };
    let epochs = history.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption("Loss per epoch", (crate::font::FAMILY, 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0.5f64..epochs + 0.5, lo..hi)
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss (network units)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| crate::ticks::label(*v, 4))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    let series = |f: fn(&EpochLog) -> f64| -> Vec<(f64, f64)> {
        history
            .iter()
            .map(|h| (h.epoch as f64, f(h)))
            .filter(|(_, v)| v.is_finite() && *v > 0.0)
            .collect()
    };
    for (name, color, points) in [
        ("train", BLUE, series(|h| h.train_loss)),
        ("validation", RED, series(|h| h.val_loss)),
    ] {
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| plot_err(path, e))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| plot_err(path, e))?;
    }
    if (1..=history.len()).contains(&best_epoch) {
        let kept = RGBColor(90, 90, 90);
        let x = best_epoch as f64;
        chart
            .draw_series(LineSeries::new([(x, lo), (x, hi)], kept.stroke_width(1)))
            .map_err(|e| plot_err(path, e))?
            .label(format!("weights kept: epoch {best_epoch}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], kept));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))
}

/// Scatter of predicted against actual (trace units) with the y = x line.
pub fn actual_vs_predicted(path: &Path, actual: &[f32], predicted: &[f32]) -> Result<()> {
    crate::font::ensure_registered();
    let root = BitMapBackend::new(path, (700, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let all = actual
        .iter()
        .chain(predicted)
        .map(|&v| v as f64)
        .filter(|v| v.is_finite());
    let (mut lo, mut hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        (lo, hi) = (0.0, 1.0);
    } else if hi <= lo {
        (lo, hi) = (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (lo - pad, hi + pad);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Actual vs predicted ({} samples)", actual.len()),
            (crate::font::FAMILY, 24),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(lo..hi, lo..hi)
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("actual peak memory (trace units)")
        .y_desc("predicted")
        .x_label_formatter(&|v| crate::ticks::label(*v, 3))
        .y_label_formatter(&|v| crate::ticks::label(*v, 3))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    chart
        .draw_series(LineSeries::new(
            vec![(lo, lo), (hi, hi)],
            BLACK.mix(0.6).stroke_width(1),
        ))
        .map_err(|e| plot_err(path, e))?;
    chart
        .draw_series(
            actual
                .iter()
                .zip(predicted)
                .map(|(&a, &p)| Circle::new((a as f64, p as f64), 2, BLUE.mix(0.35).filled())),
        )
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))
}
