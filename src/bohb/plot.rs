//! `trajectory.png`: the incumbent's loss against the budget spent.

use super::TrajectoryPoint;
use crate::{Error, Result};
use plotters::prelude::*;
use std::path::Path;

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!(
        "{}: cannot draw the trajectory plot: {e}",
        path.display()
    ))
}

/// Draws the incumbent loss as a step line over cumulative budget (log x).
/// Returns a warning when no font was found and the axes carry no labels.
pub fn write_trajectory(
    path: &Path,
    points: &[TrajectoryPoint],
    total_budget: f64,
) -> Result<Option<String>> {
    let with_text = crate::font::ensure_registered();
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let x_min = points
        .first()
        .map_or(1.0, |p| p.cumulative_budget)
        .max(1e-9);
    let x_max = total_budget.max(x_min * 1.01);
    let (mut y_min, mut y_max) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.loss), hi.max(p.loss))
        });
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(1e-9);
    let mut builder = ChartBuilder::on(&root);
    builder.margin(16);
    if with_text {
        builder
            .caption("BOHB incumbent", (crate::font::FAMILY, 24))
            .x_label_area_size(48)
            .y_label_area_size(72);
    }
    let mut chart = builder
        .build_cartesian_2d((x_min..x_max).log_scale(), (y_min - pad)..(y_max + pad))
        .map_err(|e| plot_error(path, e))?;
    let mut mesh = chart.configure_mesh();
    if with_text {
        mesh.x_desc("cumulative budget")
            .y_desc("incumbent loss (best on the largest budget reached)");
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| plot_error(path, e))?;
    // Step line: the incumbent holds its loss until the next improvement.
    let mut steps = Vec::with_capacity(points.len() * 2 + 1);
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            steps.push((p.cumulative_budget, points[i - 1].loss));
        }
        steps.push((p.cumulative_budget, p.loss));
    }
    if let Some(last) = points.last() {
        steps.push((x_max, last.loss));
    }
    chart
        .draw_series(LineSeries::new(steps, BLUE.stroke_width(2)))
        .map_err(|e| plot_error(path, e))?;
    chart
        .draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.cumulative_budget, p.loss), 3, BLUE.filled())),
        )
        .map_err(|e| plot_error(path, e))?;
    root.present().map_err(|e| plot_error(path, e))?;
    Ok((!with_text).then(|| {
        "the embedded font could not be registered: trajectory.png has no axis labels".to_string()
    }))
}
