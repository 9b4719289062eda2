//! Plots as hand-written SVG: grouped horizontal bars and line charts over
//! categorical x positions (linear or log y). No plotting crate needed.

use std::fmt::Write as _;

use crate::report::si;

const PALETTE: &[&str] =
    &["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const FONT: &str = r#"font-family="sans-serif" font-size="12""#;

fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
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

fn header(w: f64, h: f64, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" {FONT}>"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    s
}

fn no_data(s: &mut String, x: f64, y: f64) {
    let _ = writeln!(s, r##"<text x="{x}" y="{y}" text-anchor="middle" fill="#888">no data</text>"##);
}

/// Horizontal bars, one row per label, one bar per series in each row.
pub fn bars(title: &str, series: &[&str], rows: &[(String, Vec<f64>)]) -> String {
    let k = series.len().max(1) as f64;
    let (bar, gap) = (9.0, 8.0);
    let row_h = k * bar + gap;
    let (left, right, top) = (230.0, 860.0, 62.0);
    let w = 960.0;
    let h = top + row_h * rows.len().max(1) as f64 + 40.0;
    let mut s = header(w, h, title);
    for (i, name) in series.iter().enumerate() {
        let x = left + i as f64 * 120.0;
        let _ = writeln!(s, r#"<rect x="{x}" y="32" width="12" height="12" fill="{}"/>"#, color(i));
        let _ = writeln!(s, r#"<text x="{}" y="42">{}</text>"#, x + 16.0, esc(name));
    }
    let max = nice_max(rows.iter().flat_map(|(_, v)| v.iter().copied()).fold(0.0, f64::max));
    let scale = |v: f64| left + (right - left) * (v / max).clamp(0.0, 1.0);
    let bottom = h - 40.0;
    for t in 0..=5 {
        let v = max * t as f64 / 5.0;
        let x = scale(v);
        let _ = writeln!(s, r##"<line x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="#ddd"/>"##);
        let _ = writeln!(s, r#"<text x="{x}" y="{}" text-anchor="middle">{}</text>"#, bottom + 16.0, si(Some(v)));
    }
    if rows.is_empty() {
        no_data(&mut s, (left + right) / 2.0, top + 20.0);
    }
    for (r, (label, values)) in rows.iter().enumerate() {
        let y0 = top + r as f64 * row_h + gap / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y0 + k * bar / 2.0 + 4.0,
            esc(label)
        );
        for (i, v) in values.iter().enumerate() {
            let y = y0 + i as f64 * bar;
            let x1 = scale(*v);
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{y}" width="{:.1}" height="{}" fill="{}"><title>{} {}: {:.0}</title></rect>"#,
                x1 - left,
                bar - 1.0,
                color(i),
                esc(label),
                esc(series.get(i).copied().unwrap_or("")),
                v
            );
            let _ =
                writeln!(s, r#"<text x="{}" y="{}" font-size="9">{}</text>"#, x1 + 3.0, y + bar - 2.0, si(Some(*v)));
        }
    }
    let _ = writeln!(s, r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/>"#);
    s + "</svg>\n"
}

pub struct Series {
    pub label: String,
    /// One value per x position; None leaves a gap.
    pub points: Vec<Option<f64>>,
    pub dashed: bool,
    pub color: usize,
}

/// Lines over categorical x positions. `log_y`: decades on the y axis;
/// `ms`: tick labels as milliseconds rather than SI counts.
pub fn lines(title: &str, xs: &[String], series: &[Series], log_y: bool, ms: bool) -> String {
    let legend_h = 40.0 + 16.0 * series.len() as f64;
    let longest = series.iter().map(|c| c.label.chars().count()).max().unwrap_or(0) as f64;
    let (w, h) = ((710.0 + 7.0 * longest + 20.0).max(960.0), legend_h.max(460.0));
    let (left, right, top, bottom) = (80.0, 660.0, 50.0, h - 50.0);
    let mut s = header(w, h, title);
    let values: Vec<f64> =
        series.iter().flat_map(|c| c.points.iter().flatten().copied()).filter(|v| *v > 0.0).collect();
    let n = xs.len().max(1) as f64;
    let xpos = |i: usize| left + (right - left) * (i as f64 + 0.5) / n;
    let fmt = |v: f64| {
        if ms {
            if v >= 1.0 {
                format!("{v}")
            } else {
                format!("{v:.3}").trim_end_matches('0').to_string()
            }
        } else {
            si(Some(v))
        }
    };
    let (lo, hi) = if log_y {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(0.0, f64::max);
        if values.is_empty() {
            (0.0, 1.0)
        } else {
            let (a, b) = (min.log10().floor(), max.log10().ceil());
            (a, if b > a { b } else { a + 1.0 })
        }
    } else {
        (0.0, nice_max(values.iter().copied().fold(0.0, f64::max)))
    };
    let ypos = |v: f64| {
        let t = if log_y { (v.log10() - lo) / (hi - lo) } else { (v - lo) / (hi - lo) };
        bottom - (bottom - top) * t.clamp(0.0, 1.0)
    };
    // Grid and ticks.
    let ticks: Vec<f64> = if log_y {
        (lo as i32..=hi as i32).map(|e| 10f64.powi(e)).collect()
    } else {
        (0..=5).map(|t| hi * t as f64 / 5.0).collect()
    };
    for t in ticks {
        let y = ypos(t);
        let _ = writeln!(s, r##"<line x1="{left}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#ddd"/>"##);
        let _ = writeln!(s, r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#, left - 6.0, y + 4.0, fmt(t));
    }
    for (i, x) in xs.iter().enumerate() {
        let _ = writeln!(s, r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#, xpos(i), bottom + 18.0, esc(x));
    }
    let _ = writeln!(s, r#"<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/>"#);
    let _ = writeln!(s, r#"<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>"#);
    if values.is_empty() {
        no_data(&mut s, (left + right) / 2.0, (top + bottom) / 2.0);
    }
    for (j, c) in series.iter().enumerate() {
        let col = color(c.color);
        let dash = if c.dashed { r#" stroke-dasharray="6 4""# } else { "" };
        // Polyline segments over consecutive present points.
        let mut seg: Vec<String> = Vec::new();
        let flush = |seg: &mut Vec<String>, s: &mut String| {
            if seg.len() > 1 {
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{col}" stroke-width="2"{dash}/>"#,
                    seg.join(" ")
                );
            }
            seg.clear();
        };
        for (i, p) in c.points.iter().enumerate() {
            match p {
                Some(v) if *v > 0.0 || !log_y => {
                    let (x, y) = (xpos(i), ypos(*v));
                    seg.push(format!("{x:.1},{y:.1}"));
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{col}"><title>{} {}: {}</title></circle>"#,
                        esc(&c.label),
                        esc(&xs[i]),
                        fmt(*v)
                    );
                }
                _ => flush(&mut seg, &mut s),
            }
        }
        flush(&mut seg, &mut s);
        let ly = top + 10.0 + 16.0 * j as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{col}" stroke-width="2"{dash}/>"#,
            right + 20.0,
            right + 44.0
        );
        let _ = writeln!(s, r#"<text x="{}" y="{}">{}</text>"#, right + 50.0, ly + 4.0, esc(&c.label));
    }
    s + "</svg>\n"
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
        let s = bars("t", &["a", "b"], &[("x<y".into(), vec![1.0, 2.0])]);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>") && s.contains("x&lt;y"));
        let c = Series { label: "l".into(), points: vec![Some(0.5), None, Some(20.0)], dashed: true, color: 0 };
        let s = lines("t", &["p50".into(), "p90".into(), "p99".into()], &[c], true, true);
        assert!(s.contains("<circle") && s.contains(">0.1<") && s.contains(">100<"));
    }
}
