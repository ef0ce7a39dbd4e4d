//! `reservation.png`: mean slack against violation rate on the held-out
//! split, one curve per predictor, its margin calibrated on validation at a
//! sweep of levels Q. Lower and further left is better: a planner reads the
//! trade-off at a glance.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::baselines::{calibrated_margin, Predictor, SplitForecasts};
use super::reserve::{reserve_metrics, CalibrationRule};
use crate::error::{Error, Result};

/// The levels of the sweep: violation rates of about 20% down to 0.1%.
const LEVELS: [f64; 12] = [
    0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.993, 0.995, 0.998, 0.999,
];
const VIOLATIONS: std::ops::Range<f64> = 0.001..0.2;
/// Where the violation axis is labelled: 1-2-5 steps, so that the left half
/// (below 1%, where the levels planners ask for lie) has labels too.
const VIOLATION_TICKS: [f64; 8] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2];

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("cannot draw {}: {e}", path.display()))
}

/// One predictor's (violation rate, slack % of the mean peak) points on
/// `test`, margins calibrated on `val` by `rule`; the uncalibrated limit is one point.
pub fn tradeoff_points(
    p: Predictor,
    val: &SplitForecasts,
    test: &SplitForecasts,
    rule: CalibrationRule,
) -> Vec<(f64, f64)> {
    let levels: &[f64] = if p == Predictor::BorgLimit {
        &[0.5]
    } else {
        &LEVELS
    };
    let mut points = Vec::new();
    for &q in levels {
        let margin = calibrated_margin(p, q, val, rule);
        let m = reserve_metrics(&test.reserved(p, margin.as_ref()), &test.split.actual);
        if m.n > 0 && m.slack_pct.is_finite() {
            points.push((m.violation_rate, m.slack_pct));
        }
    }
    points
}

pub fn tradeoff(
    path: &Path,
    val: &SplitForecasts,
    test: &SplitForecasts,
    rule: CalibrationRule,
) -> Result<()> {
    let predictors: Vec<Predictor> = Predictor::ALL
        .into_iter()
        .filter(|&p| !test.base(p).iter().all(|v| !v.is_finite()))
        .collect();
    let mut curves = Vec::new();
    for &p in &predictors {
        curves.push((p, tradeoff_points(p, val, test, rule)));
    }
    let shown = |&(v, _): &(f64, f64)| VIOLATIONS.contains(&v.max(VIOLATIONS.start));
    let top = curves
        .iter()
        .flat_map(|(_, pts)| pts.iter().filter(|p| shown(p)).map(|p| p.1))
        .fold(0.0f64, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };

    crate::font::ensure_registered();
    let root = BitMapBackend::new(path, (960, 620)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Reservations on {} held-out windows", test.split.len()),
            (crate::font::FAMILY, 24),
        )
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(VIOLATIONS.log_scale(), 0.0..top)
        .map_err(|e| plot_err(path, e))?;
    chart
        .configure_mesh()
        .x_desc("violation rate (actual > reserved), log scale; a rate of 0 is drawn at 0.1%")
        .y_desc("mean slack, % of the mean peak")
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .y_label_formatter(&|v| format!("{}%", crate::ticks::label(*v, 3)))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    // The violation ticks by hand: a log axis labels its decades only.
    let grid = RGBColor(200, 200, 200);
    for &v in &VIOLATION_TICKS {
        chart
            .draw_series(LineSeries::new([(v, 0.0), (v, top)], grid.stroke_width(1)))
            .map_err(|e| plot_err(path, e))?;
        let (x, y) = chart.backend_coord(&(v, 0.0));
        let label = format!("{}%", crate::ticks::label(100.0 * v, 2));
        let style = TextStyle::from((crate::font::FAMILY, 14).into_font())
            .pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new(label, (x, y + 6), style))
            .map_err(|e| plot_err(path, e))?;
    }
    for (i, (p, points)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let width = if *p == Predictor::Convformer { 3 } else { 1 };
        let pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| shown(p))
            .map(|&(v, s)| (v.max(VIOLATIONS.start), s.min(top)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(width)))
            .map_err(|e| plot_err(path, e))?
            .label(p.label())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
            });
        chart
            .draw_series(pts.iter().map(|&pt| Circle::new(pt, 3, color.filled())))
            .map_err(|e| plot_err(path, e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(|e| plot_err(path, e))?;
    root.present().map_err(|e| plot_err(path, e))
}
