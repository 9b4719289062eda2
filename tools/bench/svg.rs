//! The report's plots, drawn by plotters as SVG: grouped horizontal bars,
//! and lines over categorical x positions (linear or log y). SVG text needs
//! no font files, so nothing here depends on the machine's fonts.

use std::ops::Range;

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{SegmentValue, SegmentedCoord};
use plotters::coord::types::RangedCoordusize;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::si;

const PALETTE: [RGBColor; 10] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0xe3, 0x77, 0xc2),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0xbc, 0xbd, 0x22),
    RGBColor(0x17, 0xbe, 0xcf),
];
const FONT: &str = "sans-serif";
const TITLE_PX: u32 = 15;
const WIDTH_PX: u32 = 960;
/// Height of one bar, and the gap between two rows of bars.
const BAR_PX: u32 = 9;
const ROW_GAP_PX: u32 = 8;
const LINES_HEIGHT_PX: u32 = 460;
const DASH_PX: u32 = 6;
const DASH_GAP_PX: u32 = 4;

fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k at or above v.
fn nice_max(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || v.is_infinite() {
        return 1.0;
    }
    let e = 10f64.powf(v.log10().floor());
    for m in [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if m * e >= v * 0.999_999 {
            return m * e;
        }
    }
    10.0 * e
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Draws one plot of `size` pixels into an SVG document.
fn render(size: (u32, u32), draw: impl FnOnce(&Area) -> Result<()>) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        draw(&root)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn plot_error<E: std::error::Error + Send + Sync>(error: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("drawing a plot: {error}")
}

fn no_data(root: &Area) -> Result<()> {
    let (w, h) = root.dim_in_pixel();
    let style = TextStyle::from((FONT, 14).into_font()).color(&RGBColor(0x88, 0x88, 0x88));
    root.draw_text("no data", &style, (w as i32 / 2 - 25, h as i32 / 2)).map_err(plot_error)
}

/// Horizontal bars, one row per label, one bar per series in each row.
pub fn bars(title: &str, series: &[&str], rows: &[(String, Vec<f64>)]) -> Result<String> {
    let k = series.len().max(1);
    let slots = rows.len().max(1) * k;
    let height = 110 + rows.len().max(1) as u32 * (k as u32 * BAR_PX + ROW_GAP_PX);
    let max = nice_max(rows.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0, f64::max));
    // Slot of (row, series), counted from the bottom so the first row is on top.
    let slot = |row: usize, s: usize| slots - 1 - (row * k + s);
    render((WIDTH_PX, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, TITLE_PX))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(230)
            .build_cartesian_2d(0.0..max, (0..slots).into_segmented())
            .map_err(plot_error)?;
        let row_label = |v: &SegmentValue<usize>| match v {
            // A row's label sits at its middle bar.
            SegmentValue::CenterOf(i) if (slots - 1 - i) % k == k / 2 => {
                rows.get((slots - 1 - i) / k).map_or(String::new(), |(label, _)| label.clone())
            }
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(slots)
            .y_label_formatter(&row_label)
            .x_labels(6)
            .x_label_formatter(&|v| si(Some(*v)))
            .draw()
            .map_err(plot_error)?;
        for (s, name) in series.iter().enumerate() {
            let bars = rows.iter().enumerate().filter_map(move |(r, (_, values))| {
                let v = *values.get(s)?;
                let y = slot(r, s);
                Some(Rectangle::new(
                    [(0.0, SegmentValue::Exact(y)), (v.min(max), SegmentValue::Exact(y + 1))],
                    color(s).filled(),
                ))
            });
            chart
                .draw_series(bars)
                .map_err(plot_error)?
                .label(*name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color(s).filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        if rows.is_empty() {
            no_data(root)?;
        }
        Ok(())
    })
}

pub struct Series {
    pub label: String,
    /// One value per x position; None leaves a gap.
    pub points: Vec<Option<f64>>,
    pub dashed: bool,
    pub color: usize,
}

/// Tick labels: milliseconds as plain decimals, or SI counts.
fn tick(v: f64, ms: bool) -> String {
    if !ms {
        return si(Some(v));
    }
    if v >= 1.0 {
        format!("{v}")
    } else {
        format!("{v:.3}").trim_end_matches('0').to_string()
    }
}

/// Lines over categorical x positions. `log_y`: decades on the y axis;
/// `ms`: tick labels as milliseconds rather than SI counts.
pub fn lines(title: &str, xs: &[String], series: &[Series], log_y: bool, ms: bool) -> Result<String> {
    let values: Vec<f64> =
        series.iter().flat_map(|c| c.points.iter().flatten().copied()).filter(|v| *v > 0.0).collect();
    let y_range: Range<f64> = if log_y {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(0.0, f64::max);
        if values.is_empty() {
            1.0..10.0
        } else {
            let (a, b) = (min.log10().floor(), max.log10().ceil());
            10f64.powf(a)..10f64.powf(if b > a { b } else { a + 1.0 })
        }
    } else {
        0.0..nice_max(values.iter().copied().fold(0.0, f64::max))
    };
    let n = xs.len().max(1);
    let x_label = |x: &SegmentValue<usize>| match x {
        SegmentValue::CenterOf(i) => xs.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    render((WIDTH_PX, LINES_HEIGHT_PX), |root| {
        let builder = &mut ChartBuilder::on(root);
        builder.caption(title, (FONT, TITLE_PX)).margin(10).x_label_area_size(30).y_label_area_size(70);
        let x_axis = (0..n).into_segmented();
        if log_y {
            let mut chart = builder.build_cartesian_2d(x_axis, y_range.clone().log_scale()).map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_labels(n)
                .x_label_formatter(&x_label)
                .y_label_formatter(&|v| tick(*v, ms))
                .draw()
                .map_err(plot_error)?;
            draw_lines(&mut chart, series, log_y)?;
        } else {
            let mut chart = builder.build_cartesian_2d(x_axis, y_range.clone()).map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_labels(n)
                .x_label_formatter(&x_label)
                .y_labels(6)
                .y_label_formatter(&|v| tick(*v, ms))
                .draw()
                .map_err(plot_error)?;
            draw_lines(&mut chart, series, log_y)?;
        }
        if values.is_empty() {
            no_data(root)?;
        }
        Ok(())
    })
}

/// Each series as line segments over consecutive present points, with a
/// dot at every point, and one legend entry.
fn draw_lines<'a, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<SegmentedCoord<RangedCoordusize>, Y>>,
    series: &[Series],
    log_y: bool,
) -> Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    for c in series {
        let col = color(c.color);
        let style = col.stroke_width(2);
        let mut segments: Vec<Vec<(SegmentValue<usize>, f64)>> = vec![Vec::new()];
        for (i, point) in c.points.iter().enumerate() {
            match point {
                // A log axis has no place for zero.
                Some(v) if *v > 0.0 || !log_y => {
                    segments.last_mut().expect("one segment at least").push((SegmentValue::CenterOf(i), *v))
                }
                _ if segments.last().is_some_and(|s| !s.is_empty()) => segments.push(Vec::new()),
                _ => {}
            }
        }
        for segment in segments.iter().filter(|s| s.len() > 1) {
            if c.dashed {
                let dashed = DashedLineSeries::new(segment.clone(), DASH_PX, DASH_GAP_PX, style);
                chart.draw_series(dashed).map_err(plot_error)?;
            } else {
                chart.draw_series(LineSeries::new(segment.clone(), style)).map_err(plot_error)?;
            }
        }
        let dots = segments.iter().flatten().map(|(x, y)| Circle::new((x.clone(), *y), 3, col.filled()));
        chart
            .draw_series(dots)
            .map_err(plot_error)?
            .label(c.label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], col.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice() {
        assert_eq!(nice_max(7.0), 8.0);
        assert_eq!(nice_max(1.6e6), 2e6);
        assert_eq!(nice_max(5.8e6), 6e6);
        assert_eq!(nice_max(2.2e6), 2.5e6);
        assert_eq!(nice_max(0.0), 1.0);
    }

    #[test]
    fn well_formed() {
        let s = bars("t", &["a", "b"], &[("x<y".into(), vec![1.0, 2.0])]).unwrap();
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>") && s.contains("x&lt;y"), "{s}");
        let c = Series { label: "l".into(), points: vec![Some(0.5), None, Some(20.0)], dashed: true, color: 0 };
        let s = lines("t", &["p50".into(), "p90".into(), "p99".into()], &[c], true, true).unwrap();
        assert!(s.contains("<circle") && s.contains("<polyline") && s.contains("\np90\n"), "{s}");
        let empty = lines("t", &["1 partitions".into()], &[], false, false).unwrap();
        assert!(empty.contains("1 partitions") && empty.contains("no data"), "{empty}");
    }
}
