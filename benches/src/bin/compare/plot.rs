//! SVG plots of each scenario's costs against its size, log-log, one line per peer.

use std::path::Path;

use plotters::prelude::*;

use crate::report::{Cell, Figure, Scenario};

/// Writes `{scenario}-time.svg`, `-bytes.svg` and `-memory.svg` into `dir`.
pub fn scenario(dir: &Path, scenario: &Scenario, cells: &[Cell]) -> Result<(), String> {
    let plots: [(&str, &str, Figure); 3] = [
        (
            "time",
            "wall time, s",
            Box::new(|c: &Cell| c.median(|m| m.wall)),
        ),
        (
            "bytes",
            "bytes both ways",
            Box::new(|c: &Cell| c.total_bytes()),
        ),
        (
            "memory",
            "peak memory, MB",
            Box::new(|c: &Cell| c.median(|m| m.peak_mb)),
        ),
    ];
    for (name, label, f) in &plots {
        let path = dir.join(format!("{}-{name}.svg", scenario.name));
        let series: Vec<(&str, Vec<(f64, f64)>)> = scenario
            .peers
            .iter()
            .map(|&peer| {
                let points = cells
                    .iter()
                    .filter(|c| c.peer == peer && c.error.is_none() && c.size >= 1)
                    .filter_map(|c| f(c).map(|v| (c.size as f64, v)))
                    .filter(|(_, v)| v.is_finite() && *v > 0.0)
                    .collect();
                (peer, points)
            })
            .collect();
        draw(
            &path,
            &format!("{}: {label}", scenario.title),
            scenario.param,
            &series,
        )
        .map_err(|e| format!("cannot draw {}: {e}", path.display()))?;
    }
    Ok(())
}

fn draw(
    path: &Path,
    title: &str,
    param: &str,
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<(), Box<dyn std::error::Error>> {
    let all: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE)?;
    if all.is_empty() {
        root.titled(title, ("sans-serif", 16))?;
        root.present()?;
        return Ok(());
    }
    let (x0, x1) = bounds(all.iter().map(|p| p.0));
    let (y0, y1) = bounds(all.iter().map(|p| p.1));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
    chart
        .configure_mesh()
        .x_desc(param)
        .x_label_formatter(&|x| short(*x))
        .y_label_formatter(&|y| short(*y))
        .draw()?;
    for (i, (peer, points)) in series.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let color = Palette99::pick(i).to_rgba();
        let style = if peer.starts_with("chum") {
            color.stroke_width(3)
        } else if *peer == "floor" {
            BLACK.mix(0.5).stroke_width(1)
        } else {
            color.stroke_width(1)
        };
        chart
            .draw_series(LineSeries::new(points.iter().copied(), style))?
            .label(*peer)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        chart.draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 3, style.color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}

/// A log axis' range around the values, a little wider than them.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if hi <= lo {
        hi = lo * 10.0;
    }
    (lo / 1.5, hi * 1.5)
}

fn short(x: f64) -> String {
    let a = x.abs();
    if a >= 1e9 {
        format!("{:.3}G", x / 1e9)
    } else if a >= 1e6 {
        format!("{:.3}M", x / 1e6)
    } else if a >= 1e3 {
        format!("{:.3}k", x / 1e3)
    } else if a >= 1.0 {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
    .replace(".000", "")
}
