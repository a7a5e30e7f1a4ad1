//! Line charts as inline SVG, so the HTML report is one self-contained file that opens
//! anywhere — no script, no network.

use std::fmt::Write;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    pub label: &'a str,
    pub color: &'a str,
    /// Dashed, for a reference line (what was offered) under a measured one.
    pub dashed: bool,
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 44.0;
const BOTTOM: f64 = 36.0;
const Y_TICKS: usize = 5;

/// A chart of `lines` over seconds, the y axis in `unit` from zero to a round maximum.
pub fn line_chart(title: &str, unit: &str, lines: &[Line<'_>]) -> String {
    let all = || lines.iter().flat_map(|line| line.points.iter());
    let x_max = all().map(|(x, _)| *x).fold(1.0, f64::max);
    let y_max = round_up(all().map(|(_, y)| *y).fold(0.0, f64::max));
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let x_at = |x: f64| LEFT + x / x_max * plot_width;
    let y_at = |y: f64| TOP + plot_height - y / y_max * plot_height;

    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{title}" xmlns="http://www.w3.org/2000/svg">"#,
        title = escape(title),
    );
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="18" class="title">{}</text>"#,
        escape(title)
    );
    for tick in 0..=Y_TICKS {
        let value = y_max * tick as f64 / Y_TICKS as f64;
        let y = y_at(value);
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            short_number(value)
        );
    }
    let x_step = round_up(x_max / 10.0).max(1.0).ceil();
    let mut x = 0.0;
    while x <= x_max {
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" class="tick" text-anchor="middle">{}s</text>"#,
            x_at(x),
            HEIGHT - BOTTOM + 16.0,
            x
        );
        x += x_step;
    }
    let _ = write!(
        svg,
        r#"<text x="12" y="{:.1}" class="tick" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"#,
        TOP + plot_height / 2.0,
        TOP + plot_height / 2.0,
        escape(unit)
    );
    for (index, line) in lines.iter().enumerate() {
        let points: Vec<String> = line
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", x_at(*x), y_at(*y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.8"{dash} points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            escape(line.label),
            color = line.color,
            dash = if line.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            },
        );
        let legend_x = LEFT + 150.0 * index as f64;
        let _ = write!(
            svg,
            r#"<rect x="{legend_x:.0}" y="25" width="12" height="12" fill="{color}"/><text x="{:.0}" y="35" class="legend">{}</text>"#,
            legend_x + 16.0,
            escape(line.label),
            color = line.color,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The smallest round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10^k) at or above `value`
/// (1 for nothing to show).
fn round_up(value: f64) -> f64 {
    if !(value.is_finite() && value > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .into_iter()
        .map(|step| step * magnitude)
        .find(|candidate| *candidate >= value * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

fn short_number(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 10.0 || value == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_round_up_to_readable_maxima() {
        assert_eq!(round_up(0.0), 1.0);
        assert_eq!(round_up(3.2), 4.0);
        assert_eq!(round_up(200.0), 200.0);
        assert_eq!(round_up(505.0), 600.0);
        assert!((round_up(0.07) - 0.08).abs() < 1e-12);
    }

    #[test]
    fn a_chart_has_one_polyline_per_line_and_escapes_labels() {
        let svg = line_chart(
            "Latency <ms>",
            "ms",
            &[
                Line {
                    label: "p50",
                    color: "#06c",
                    dashed: false,
                    points: vec![(0.0, 1.0), (1.0, 2.0)],
                },
                Line {
                    label: "p99 & max",
                    color: "#c30",
                    dashed: true,
                    points: vec![(0.0, 3.0), (1.0, 9.0)],
                },
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("Latency &lt;ms&gt;"));
        assert!(svg.contains("p99 &amp; max"));
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
