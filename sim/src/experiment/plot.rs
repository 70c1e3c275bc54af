//! SVG line charts of experiment results, drawn with plotters: one line per series, each
//! point its mean, with a whisker from the min to the max over the seeds.

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use std::path::Path;

/// One line: its name and its points `(x, mean, min, max)`.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64, f64, f64)>,
}

impl Series {
    /// A line over simulated time from `(ms, value)` points, on seconds, without whiskers;
    /// values are floored at 0.5 so that a log axis can show a zero.
    pub fn over_time(name: &str, points: impl Iterator<Item = (f64, f64)>) -> Series {
        Series {
            name: name.to_string(),
            points: points
                .map(|(ms, v)| (ms / 1e3, v.max(0.5), v.max(0.5), v.max(0.5)))
                .collect(),
        }
    }
}

/// What a chart shows.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub log_x: bool,
    pub log_y: bool,
    /// Put the legend in the upper left corner (else the upper right).
    pub legend_left: bool,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// A chart of lines over simulated time on a log scale: the experiments' timelines.
pub fn time_chart(path: &Path, title: &str, y_label: &str, series: &[Series]) -> Result<()> {
    let chart = Chart {
        title,
        x_label: "simulated time (s)",
        y_label,
        log_x: false,
        log_y: true,
        legend_left: false,
    };
    line_chart(path, &chart, series)
}

/// Draws `series` into an SVG file at `path`.
pub fn line_chart(path: &Path, chart: &Chart, series: &[Series]) -> Result<()> {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1) = bounds(all().map(|p| p.0), chart.log_x);
    let (mut y0, mut y1) = bounds(all().flat_map(|p| [p.2, p.3, p.1]), chart.log_y);
    if x0 == x1 {
        (x0, x1) = (x0 * 0.9 - 1e-9, x1 * 1.1 + 1e-9);
    }
    if y0 == y1 {
        (y0, y1) = (y0 * 0.9 - 1e-9, y1 * 1.1 + 1.0);
    }
    if !chart.log_y {
        y0 = y0.min(0.0);
        y1 *= 1.05;
    }
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| anyhow!("plot {}: {e}", path.display()))?;
    let result = match (chart.log_x, chart.log_y) {
        (false, false) => draw(&root, chart, series, x0..x1, y0..y1),
        (true, false) => draw(&root, chart, series, (x0..x1).log_scale(), y0..y1),
        (false, true) => draw(&root, chart, series, x0..x1, (y0..y1).log_scale()),
        (true, true) => draw(
            &root,
            chart,
            series,
            (x0..x1).log_scale(),
            (y0..y1).log_scale(),
        ),
    };
    result.map_err(|e| anyhow!("plot {}: {e}", path.display()))?;
    root.present()
        .map_err(|e| anyhow!("plot {}: {e}", path.display()))
}

fn bounds(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let floor = if log { 1e-6 } else { f64::NEG_INFINITY };
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > floor)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    match (lo.is_finite(), log) {
        (false, _) => (1.0, 10.0),
        (true, true) => (lo / 1.5, hi * 1.5),
        (true, false) => (lo, hi),
    }
}

fn draw<X, Y>(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    chart: &Chart,
    series: &[Series],
    x: X,
    y: Y,
) -> Result<(), Box<dyn std::error::Error>>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut ctx = ChartBuilder::on(root)
        .caption(chart.title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)?;
    let label = |v: &f64| super::fmt_num(*v);
    ctx.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .x_labels(10)
        .y_labels(10)
        .max_light_lines(1)
        .x_label_formatter(&label)
        .y_label_formatter(&label)
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
        ctx.draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
            .label(s.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        ctx.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))?;
        ctx.draw_series(
            s.points
                .iter()
                .filter(|p| p.2 < p.3)
                .map(|p| PathElement::new(vec![(p.0, p.2), (p.0, p.3)], color.stroke_width(1))),
        )?;
    }
    ctx.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(match chart.legend_left {
            true => SeriesLabelPosition::UpperLeft,
            false => SeriesLabelPosition::UpperRight,
        })
        .draw()?;
    Ok(())
}
