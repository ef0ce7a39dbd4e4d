//! `trajectory.png`: the best loss found so far at each budget, against the
//! budget spent.

use super::Evaluation;
use crate::{Error, Result};
use plotters::prelude::*;
use std::path::Path;

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!(
        "{}: cannot draw the trajectory plot: {e}",
        path.display()
    ))
}

/// One line per budget: the best loss found so far at that budget, against
/// the budget spent (log x). Each line only falls. (The incumbent itself, the
/// best on the largest budget reached, can rise when a larger budget is
/// first reached; the per-budget lines show why.) Returns a warning when no
/// font was found and the axes carry no labels.
pub fn write_trajectory(
    path: &Path,
    evaluations: &[Evaluation],
    total_budget: f64,
) -> Result<Option<String>> {
    let lines = best_so_far_per_budget(evaluations);
    let with_text = crate::font::ensure_registered();
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
    let all = lines.iter().flat_map(|(_, pts)| pts.iter());
    let x_min = all
        .clone()
        .map(|p| p.0)
        .fold(f64::INFINITY, f64::min)
        .max(1e-9);
    let x_min = if x_min.is_finite() { x_min } else { 1.0 };
    let x_max = total_budget.max(x_min * 1.01);
    let (mut y_min, mut y_max) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    if !y_min.is_finite() {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(1e-9);
    let mut builder = ChartBuilder::on(&root);
    builder.margin(16);
    if with_text {
        builder
            .caption(
                "BOHB: best loss so far, per budget",
                (crate::font::FAMILY, 24),
            )
            .x_label_area_size(48)
            .y_label_area_size(72);
    }
    let mut chart = builder
        .build_cartesian_2d((x_min..x_max).log_scale(), (y_min - pad)..(y_max + pad))
        .map_err(|e| plot_error(path, e))?;
    let mut mesh = chart.configure_mesh();
    if with_text {
        mesh.x_desc("cumulative budget")
            .y_desc("best loss at the budget")
            .x_label_formatter(&|v| crate::ticks::label(*v, 3))
            .y_label_formatter(&|v| crate::ticks::label(*v, 4));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(|e| plot_error(path, e))?;
    for (i, (budget, points)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        // Step line: the best holds its loss until the next improvement.
        let mut steps = Vec::with_capacity(points.len() * 2 + 1);
        for (k, p) in points.iter().enumerate() {
            if k > 0 {
                steps.push((p.0, points[k - 1].1));
            }
            steps.push(*p);
        }
        if let Some(last) = points.last() {
            steps.push((x_max, last.1));
        }
        let series = chart
            .draw_series(LineSeries::new(steps, color.stroke_width(2)))
            .map_err(|e| plot_error(path, e))?;
        if with_text {
            series
                .label(format!("budget {}", crate::ticks::label(*budget, 3)))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(|e| plot_error(path, e))?;
    }
    if with_text && !lines.is_empty() {
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()
            .map_err(|e| plot_error(path, e))?;
    }
    root.present().map_err(|e| plot_error(path, e))?;
    Ok((!with_text).then(|| {
        "the embedded font could not be registered: trajectory.png has no axis labels".to_string()
    }))
}

/// Per budget (ascending): (cumulative budget, best loss so far) at each
/// evaluation that improved that budget's best. Failed evaluations count
/// towards the budget spent but never improve.
pub fn best_so_far_per_budget(evaluations: &[Evaluation]) -> Vec<(f64, Vec<(f64, f64)>)> {
    let mut lines: Vec<(f64, Vec<(f64, f64)>)> = Vec::new();
    let mut spent = 0.0;
    for e in evaluations {
        spent += e.budget;
        let Some(loss) = e.loss.filter(|l| l.is_finite()) else {
            continue;
        };
        let line = match lines.iter_mut().position(|(b, _)| *b == e.budget) {
            Some(i) => &mut lines[i].1,
            None => {
                lines.push((e.budget, Vec::new()));
                &mut lines.last_mut().expect("just pushed").1
            }
        };
        if line.last().is_none_or(|&(_, best)| loss < best) {
            line.push((spent, loss));
        }
    }
    lines.sort_by(|a, b| a.0.total_cmp(&b.0));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bohb::Origin;

    fn eval(budget: f64, loss: Option<f64>) -> Evaluation {
        Evaluation {
            job: 0,
            bracket: 0,
            stage: 0,
            budget,
            origin: Origin::Random,
            config: Default::default(),
            loss,
            error: None,
            seconds: 0.0,
            replayed: false,
        }
    }

    #[test]
    fn one_falling_line_per_budget() {
        let evals = [
            eval(9.0, Some(0.5)),
            eval(1.0, Some(0.9)),
            eval(1.0, Some(0.95)),
            eval(1.0, None),
            eval(1.0, Some(0.7)),
            eval(9.0, Some(0.6)),
            eval(27.0, Some(0.8)),
            eval(9.0, Some(0.4)),
        ];
        let lines = best_so_far_per_budget(&evals);
        let budgets: Vec<f64> = lines.iter().map(|l| l.0).collect();
        assert_eq!(budgets, [1.0, 9.0, 27.0]);
        assert_eq!(lines[0].1, [(10.0, 0.9), (13.0, 0.7)]);
        assert_eq!(lines[1].1, [(9.0, 0.5), (58.0, 0.4)]);
        assert_eq!(lines[2].1, [(49.0, 0.8)]);
    }
}
