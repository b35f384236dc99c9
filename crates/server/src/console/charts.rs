//! Line charts drawn by the server as SVG (SPEC §12: real pictures, not tables),
//! with `plotters`. Long histories are thinned to at most [`MAX_POINTS`] points per
//! series, so a chart costs the same after a million cycles as after a thousand.

use maud::{html, Markup, PreEscaped};
use plotters::prelude::*;

/// The most points one series is drawn with.
pub const MAX_POINTS: usize = 400;

const WIDTH: u32 = 720;
const HEIGHT: u32 = 260;

/// The colours of a chart's series, in order.
const PALETTE: [RGBColor; 5] = [
    RGBColor(0x1f, 0x6f, 0xb4),
    RGBColor(0xd9, 0x5f, 0x02),
    RGBColor(0x1b, 0x9e, 0x77),
    RGBColor(0x75, 0x70, 0xb3),
    RGBColor(0xa6, 0x76, 0x1d),
];

/// One line: its name in the legend and its (x, y) points in x order.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points: thin(points, MAX_POINTS),
        }
    }
}

/// Every k-th point so that at most `max` remain, always keeping the last.
fn thin(points: Vec<(f64, f64)>, max: usize) -> Vec<(f64, f64)> {
    if points.len() <= max || max < 2 {
        return points;
    }
    let step = points.len().div_ceil(max - 1);
    let last = points[points.len() - 1];
    let mut out: Vec<(f64, f64)> = points.into_iter().step_by(step).collect();
    if out.last() != Some(&last) {
        out.push(last);
    }
    out
}

/// A line chart as an inline `<svg>` inside a `<figure>` with a caption; an empty
/// history gives a note instead of an empty frame.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Markup {
    let points = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, 0.0f64, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return html! {
            figure.chart { figcaption { (title) } p.empty { "No history yet: charts fill in as cycles run." } }
        };
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let y1 = y1 + (y1 - y0) * 0.05;
    let svg = match draw(title, x_label, y_label, series, (x0..x1, y0..y1)) {
        Ok(svg) => svg,
        Err(e) => {
            return html! { figure.chart { figcaption { (title) } p.error { "chart failed: " (e) } } }
        }
    };
    html! {
        figure.chart {
            figcaption { (title) }
            (PreEscaped(svg))
        }
    }
}

type Range = (std::ops::Range<f64>, std::ops::Range<f64>);

fn draw(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    (xs, ys): Range,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(xs, ys)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_labels(8)
            .y_labels(6)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| short(*y))
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?
                .label(s.name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(RGBColor(0xcc, 0xcc, 0xcc))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    // The chart is described by its caption for screen readers.
    Ok(svg.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{}\" ", attr(title)),
        1,
    ))
}

/// Escapes text for an attribute value.
fn attr(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A y-axis label: 1.2k, 3.4M, 0.05.
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if a >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{line_chart, short, thin, Series};

    #[test]
    fn axis_labels_are_short() {
        assert_eq!(short(2.0), "2");
        assert_eq!(short(2.5), "2.500");
        assert_eq!(short(15_000.0), "15.0k");
        assert_eq!(short(2_500_000.0), "2.5M");
        assert_eq!(short(0.0001), "1.0e-4");
    }

    #[test]
    fn thinning_keeps_the_ends_and_the_bound() {
        let pts: Vec<(f64, f64)> = (0..10_000).map(|i| (i as f64, i as f64)).collect();
        let t = thin(pts, 400);
        assert!(t.len() <= 401, "{}", t.len());
        assert_eq!(t.first(), Some(&(0.0, 0.0)));
        assert_eq!(t.last(), Some(&(9_999.0, 9_999.0)));
    }

    #[test]
    fn a_chart_is_an_svg_with_its_series() {
        let s = vec![
            Series::new(
                "price",
                (0..50).map(|i| (i as f64, (i * i) as f64)).collect(),
            ),
            Series::new("other", (0..50).map(|i| (i as f64, i as f64)).collect()),
        ];
        let html = line_chart("Price of <cpu>", "cycle", "credits", &s).into_string();
        assert!(html.contains("<svg"), "{html}");
        assert!(
            html.contains("<polyline") || html.contains("<path"),
            "no line drawn"
        );
        assert!(html.contains("Price of &lt;cpu&gt;"));
        assert!(!html.contains("<cpu>"));
    }

    #[test]
    fn no_history_is_a_note() {
        let html = line_chart("t", "x", "y", &[Series::new("a", vec![])]).into_string();
        assert!(html.contains("No history yet"));
    }
}
