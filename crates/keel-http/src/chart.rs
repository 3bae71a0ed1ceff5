//! Traffic charts drawn on the server as SVG (guide §24.5; issue 5: "drawn server-side").
//!
//! Only presentation attributes are used (no `style`), so the admin pages' strict
//! Content-Security-Policy allows the chart inline. Text is XML-escaped.

use keel_core::traffic::Chart;

const W: f64 = 760.0;
const H: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 36.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// 1, 2, 5 × 10^n at or above `v` (at least 1): a y-axis top that reads well.
fn nice_top(v: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let top = step.saturating_mul(m);
            if top >= v.max(1) {
                return top;
            }
        }
        match step.checked_mul(10) {
            Some(s) => step = s,
            None => return u64::MAX,
        }
    }
}

fn time_label(t: i64, span: i64) -> String {
    let Some(d) = chrono::DateTime::from_timestamp(t, 0) else {
        return String::new();
    };
    if span <= 86_400 {
        d.format("%H:%M").to_string()
    } else {
        d.format("%b %d").to_string()
    }
}

/// The chart as a standalone SVG document; `y_max` fixes the top of the y axis (guide
/// §24.5 "Chart Settings"), else it follows the data.
pub fn render_svg(chart: &Chart, y_max: Option<u64>) -> String {
    let n = chart.points.len().max(1);
    let peak = chart.points.iter().map(|p| p.1).max().unwrap_or(0);
    let top = y_max.filter(|&m| m > 0).unwrap_or_else(|| nice_top(peak));
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x = |i: usize| LEFT + plot_w * (i as f64 + 0.5) / n as f64;
    let y = |v: u64| TOP + plot_h - plot_h * (v.min(top) as f64 / top as f64);
    let total: u64 = chart.points.iter().map(|p| p.1).sum();
    let title = format!(
        "{} — {} per {} s, {} in all",
        chart.label, chart.range, chart.step_secs, total
    );
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"100%\" \
         role=\"img\" aria-label=\"{}\" class=\"chart\" data-total=\"{total}\" data-points=\"{}\">\
         <title>{}</title>",
        esc(&title),
        chart.points.len(),
        esc(&title)
    );
    out.push_str(&format!(
        "<rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>"
    ));
    // Horizontal grid and y labels at even steps of the top.
    let ticks = [4u64, 5, 2]
        .into_iter()
        .find(|t| top.is_multiple_of(*t) && top >= *t)
        .unwrap_or(1);
    for k in 0..=ticks {
        let v = top / ticks * k;
        let gy = y(v);
        out.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{gy:.1}\" x2=\"{:.1}\" y2=\"{gy:.1}\" stroke=\"#d8dee6\" \
             stroke-width=\"1\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" \
             font-family=\"sans-serif\" text-anchor=\"end\" fill=\"#4a5563\">{v}</text>",
            W - RIGHT,
            LEFT - 6.0,
            gy + 4.0
        ));
    }
    // Six time labels along the x axis (UTC).
    let span = chart.step_secs * n as i64;
    for k in 0..6usize {
        let i = k * (n - 1) / 5;
        if let Some(p) = chart.points.get(i) {
            out.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" font-family=\"sans-serif\" \
                 text-anchor=\"middle\" fill=\"#4a5563\">{}</text>",
                x(i),
                H - BOTTOM + 16.0,
                esc(&time_label(p.0, span))
            ));
        }
    }
    out.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" font-family=\"sans-serif\" \
         text-anchor=\"end\" fill=\"#6b7480\">UTC · {} s per point</text>",
        W - RIGHT,
        H - 4.0,
        chart.step_secs
    ));
    // The data: a filled area under a line.
    let mut line = String::new();
    for (i, p) in chart.points.iter().enumerate() {
        line.push_str(&format!("{:.1},{:.1} ", x(i), y(p.1)));
    }
    let base = y(0);
    out.push_str(&format!(
        "<polygon points=\"{:.1},{base:.1} {}{:.1},{base:.1}\" fill=\"#1f6fb2\" \
         fill-opacity=\"0.18\"/><polyline points=\"{}\" fill=\"none\" stroke=\"#1f6fb2\" \
         stroke-width=\"1.5\"/>",
        x(0),
        line,
        x(n - 1),
        line.trim_end()
    ));
    out.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{base:.1}\" x2=\"{:.1}\" y2=\"{base:.1}\" stroke=\"#4a5563\" \
         stroke-width=\"1\"/></svg>",
        W - RIGHT
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn y_axis_tops_read_well() {
        assert_eq!(nice_top(0), 1);
        assert_eq!(nice_top(3), 5);
        assert_eq!(nice_top(7), 10);
        assert_eq!(nice_top(11), 20);
        assert_eq!(nice_top(4999), 5000);
    }

    #[test]
    fn the_svg_has_one_vertex_per_point_and_escapes_text() {
        let chart = Chart {
            series: "connections.imap",
            label: "Connections / IMAP <&>",
            range: "2h",
            step_secs: 20,
            points: (0..360)
                .map(|i| (1_700_000_000 + i * 20, (i % 7) as u64))
                .collect(),
        };
        let svg = render_svg(&chart, None);
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("Connections / IMAP &lt;&amp;&gt;"));
        assert!(!svg.contains("style="));
        let line = svg
            .split("<polyline points=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("polyline");
        assert_eq!(line.split(' ').count(), 360);
        assert!(svg.contains("data-total=\"1074\""), "{svg}");
        let fixed = render_svg(&chart, Some(3));
        assert!(fixed.contains(">3</text>"));
    }
}
