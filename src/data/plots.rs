//! The charts of the original project, as PNG: feature histograms, assigned memory
//! against CPU usage, and a correlation heatmap of features and target.

use super::inspect::feature_columns;
use super::{DataError, Dataset, Format};
use crate::font::FAMILY;
use plotters::prelude::*;
use plotters::style::FontTransform;
use std::path::{Path, PathBuf};

const BINS: usize = 30;
const MAX_POINTS: usize = 20_000;

fn register_font() -> Result<(), DataError> {
    if crate::font::ensure_registered() {
        Ok(())
    } else {
        Err(DataError::Invalid(
            "the embedded font cannot be read".into(),
        ))
    }
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::file(path, format!("cannot draw: {e}"))
}

/// Writes histograms.png, scatter_assigned_memory_vs_cpu.png and correlation.png into `out`.
pub fn write_all(ds: &Dataset, out: &Path) -> Result<Vec<PathBuf>, DataError> {
    if ds.is_empty() {
        return Err(DataError::Invalid("no samples to plot".into()));
    }
    register_font()?;
    std::fs::create_dir_all(out).map_err(|e| DataError::io(out, e))?;
    let columns = feature_columns(ds);
    let files = [
        out.join("histograms.png"),
        out.join("scatter_assigned_memory_vs_cpu.png"),
        out.join("correlation.png"),
    ];
    histograms(&columns, &files[0]).map_err(|e| draw_err(&files[0], e))?;
    scatter(ds, &columns, &files[1]).map_err(|e| draw_err(&files[1], e))?;
    correlation(&columns, &files[2]).map_err(|e| draw_err(&files[2], e))?;
    Ok(files.to_vec())
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn finite(values: &[f32]) -> Vec<f64> {
    values
        .iter()
        .filter(|v| v.is_finite())
        .map(|&v| v as f64)
        .collect()
}

fn histograms(columns: &[(String, Vec<f32>)], path: &Path) -> DrawResult {
    let cols = 6;
    let rows = columns.len().div_ceil(cols);
    let root = BitMapBackend::new(path, (cols as u32 * 330, rows as u32 * 230)).into_drawing_area();
    root.fill(&WHITE)?;
    for ((name, values), area) in columns.iter().zip(root.split_evenly((rows, cols))) {
        let v = finite(values);
        let (lo, hi) = v
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                (a.min(x), b.max(x))
            });
        let caption = format!("{name} (n={})", v.len());
        if v.is_empty() {
            area.titled(&caption, (FAMILY, 13))?;
            continue;
        }
        let width = if hi > lo {
            (hi - lo) / BINS as f64
        } else {
            1.0
        };
        let mut counts = [0u32; BINS];
        for x in &v {
            counts[(((x - lo) / width) as usize).min(BINS - 1)] += 1;
        }
        let top = *counts.iter().max().unwrap_or(&1) as f64 * 1.05;
        let mut chart = ChartBuilder::on(&area)
            .caption(&caption, (FAMILY, 13))
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(40)
            .build_cartesian_2d(lo..lo + width * BINS as f64, 0.0..top.max(1.0))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(4)
            .y_labels(4)
            .x_label_formatter(&|x| crate::ticks::label(*x, 3))
            .label_style((FAMILY, 10))
            .draw()?;
        chart.draw_series(counts.iter().enumerate().map(|(b, &c)| {
            let x0 = lo + b as f64 * width;
            Rectangle::new([(x0, 0.0), (x0 + width, c as f64)], BLUE.mix(0.6).filled())
        }))?;
    }
    root.present()?;
    Ok(())
}

fn column<'a>(columns: &'a [(String, Vec<f32>)], name: &str) -> &'a [f32] {
    columns
        .iter()
        .find(|(n, _)| n == name)
        .map_or(&[], |(_, v)| v)
}

fn scatter(ds: &Dataset, columns: &[(String, Vec<f32>)], path: &Path) -> DrawResult {
    let (cpu_name, mem_name) = match ds.format {
        Format::Kaggle => ("average_usage.cpus", "assigned_memory"),
        Format::InstanceUsage | Format::BigQuery => ("avg_cpu_usage", "assigned_memory"),
    };
    let (cpu, mem) = (column(columns, cpu_name), column(columns, mem_name));
    let step = (cpu.len() / MAX_POINTS).max(1);
    let points: Vec<(f64, f64)> = cpu
        .iter()
        .zip(mem)
        .step_by(step)
        .filter(|(c, m)| c.is_finite() && m.is_finite())
        .map(|(&c, &m)| (c as f64, m as f64))
        .collect();
    let max = |f: fn(&(f64, f64)) -> f64| points.iter().map(f).fold(0.0, f64::max).max(1e-9) * 1.05;
    let root = BitMapBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("assigned memory vs CPU usage ({} samples)", points.len()),
            (FAMILY, 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max(|p| p.0), 0.0..max(|p| p.1))?;
    chart
        .configure_mesh()
        .x_desc(cpu_name)
        .y_desc(mem_name)
        .x_label_formatter(&|x| crate::ticks::label(*x, 2))
        .y_label_formatter(&|y| crate::ticks::label(*y, 2))
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 15))
        .draw()?;
    chart.draw_series(
        points
            .iter()
            .map(|&p| Circle::new(p, 2, RED.mix(0.35).filled())),
    )?;
    root.present()?;
    Ok(())
}

/// Pearson correlation over the rows where both values are present; NaN when undefined.
pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .map(|(&x, &y)| (x as f64, y as f64))
        .collect();
    let n = pairs.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let (ma, mb) = pairs
        .iter()
        .fold((0.0, 0.0), |(s, t), p| (s + p.0 / n, t + p.1 / n));
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in &pairs {
        sab += (x - ma) * (y - mb);
        saa += (x - ma) * (x - ma);
        sbb += (y - mb) * (y - mb);
    }
    if saa == 0.0 || sbb == 0.0 {
        f64::NAN
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// Blue (−1) through white (0) to red (+1); grey where undefined.
fn diverging(r: f64) -> RGBColor {
    if !r.is_finite() {
        return RGBColor(200, 200, 200);
    }
    let t = r.clamp(-1.0, 1.0);
    let fade = |c: f64| (255.0 - (255.0 - c) * t.abs()) as u8;
    if t >= 0.0 {
        RGBColor(fade(200.0), fade(30.0), fade(30.0))
    } else {
        RGBColor(fade(30.0), fade(60.0), fade(200.0))
    }
}

fn correlation(columns: &[(String, Vec<f32>)], path: &Path) -> DrawResult {
    let n = columns.len();
    let cell = 24u32;
    // Room for the longest name at ~7 px a character (11 px text).
    let longest = columns
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let label_room = longest as u32 * 7 + 40;
    let size = (
        label_room + n as u32 * cell + 120,
        label_room + n as u32 * cell + 40,
    );
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    root.draw(&Text::new(
        "Pearson correlation (pairwise complete rows)",
        (10, 10),
        (FAMILY, 18),
    ))?;
    let font = (FAMILY, 11).into_font();
    for (i, (name, _)) in columns.iter().enumerate() {
        let at = (label_room + i as u32 * cell) as i32;
        root.draw(&Text::new(name.clone(), (6, at + 6), font.clone()))?;
        root.draw(&Text::new(
            name.clone(),
            (at + 6, 36),
            font.clone().transform(FontTransform::Rotate90),
        ))?;
        for (j, (_, other)) in columns.iter().enumerate() {
            let r = pearson(&columns[i].1, other);
            let x = (label_room + j as u32 * cell) as i32;
            root.draw(&Rectangle::new(
                [(x, at), (x + cell as i32 - 1, at + cell as i32 - 1)],
                diverging(r).filled(),
            ))?;
        }
    }
    // Colour key.
    let kx = (label_room + n as u32 * cell + 30) as i32;
    for k in 0..=20 {
        let r = 1.0 - k as f64 / 10.0;
        let y = label_room as i32 + k * 12;
        root.draw(&Rectangle::new(
            [(kx, y), (kx + 20, y + 12)],
            diverging(r).filled(),
        ))?;
        if k % 5 == 0 {
            root.draw(&Text::new(format!("{r:+.1}"), (kx + 25, y), font.clone()))?;
        }
    }
    root.present()?;
    Ok(())
}
