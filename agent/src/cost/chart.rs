//! A hand-written SVG chart of the projection: monthly cost with the lifecycle rules (bars)
//! against everything in STANDARD (line). Pure; no dependencies.
//!
//! Floor 4: may import modules of floors 0 to 3 only; it imports `cost::projection`.

use super::projection::Projection;

const W: f64 = 760.0;
const H: f64 = 400.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" axis maximum (1, 2, 2.5 or 5 times a power of ten) at or above `v`.
pub fn nice_max(v: f64) -> f64 {
    if !v.is_finite() || v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v * (1.0 - 1e-12) {
            return m * p;
        }
    }
    10.0 * p
}

fn money(v: f64) -> String {
    if v >= 100.0 {
        format!("${v:.0}")
    } else if v >= 1.0 {
        format!("${v:.2}")
    } else {
        format!("${v:.4}")
    }
}

/// Renders the chart; `title` is escaped.
pub fn render(p: &Projection, title: &str) -> String {
    let n = p.months.len().max(1);
    let max = p
        .months
        .iter()
        .map(|m| m.lifecycle_usd.max(m.standard_usd))
        .fold(0.0, f64::max);
    let top = nice_max(max);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x_step = plot_w / n as f64;
    let y = |v: f64| TOP + plot_h * (1.0 - v / top);

    let mut s = String::new();
    s.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n"
    ));
    s.push_str(&format!("<title>{}</title>\n", esc(title)));
    s.push_str(&format!(
        "<rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>\n"
    ));
    s.push_str(&format!(
        "<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
        W / 2.0,
        esc(title)
    ));
    // Grid and y labels.
    for i in 0..=4 {
        let v = top * f64::from(i) / 4.0;
        let yy = y(v);
        s.push_str(&format!(
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#dddddd\"/>\n",
            W - RIGHT
        ));
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            LEFT - 6.0,
            yy + 4.0,
            money(v)
        ));
    }
    // Bars: lifecycle cost per month.
    for (i, m) in p.months.iter().enumerate() {
        let x = LEFT + x_step * i as f64 + x_step * 0.15;
        let bw = x_step * 0.7;
        let yy = y(m.lifecycle_usd);
        s.push_str(&format!(
            "<rect x=\"{x:.1}\" y=\"{yy:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"#4e79a7\"><title>month {}: {} with lifecycle, {} all STANDARD</title></rect>\n",
            (TOP + plot_h - yy).max(0.0),
            m.month,
            money(m.lifecycle_usd),
            money(m.standard_usd)
        ));
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">M{}</text>\n",
            x + bw / 2.0,
            TOP + plot_h + 16.0,
            m.month
        ));
    }
    // Line: everything in STANDARD.
    let points: Vec<String> = p
        .months
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "{:.1},{:.1}",
                LEFT + x_step * (i as f64 + 0.5),
                y(m.standard_usd)
            )
        })
        .collect();
    s.push_str(&format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#e15759\" stroke-width=\"2\"/>\n",
        points.join(" ")
    ));
    // Axes.
    s.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{:.1}\" stroke=\"#333333\"/>\n",
        TOP + plot_h
    ));
    s.push_str(&format!(
        "<line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333333\"/>\n",
        TOP + plot_h,
        W - RIGHT,
        TOP + plot_h
    ));
    // Legend and totals.
    let ly = H - 18.0;
    s.push_str(&format!(
        "<rect x=\"{LEFT}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"#4e79a7\"/><text x=\"{:.1}\" y=\"{ly:.1}\">with lifecycle rules: {}</text>\n",
        ly - 10.0,
        LEFT + 16.0,
        money(p.lifecycle_total_usd)
    ));
    s.push_str(&format!(
        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#e15759\" stroke-width=\"2\"/><text x=\"{:.1}\" y=\"{ly:.1}\">all STANDARD: {} (saving {}, {:.1}%)</text>\n",
        LEFT + 260.0,
        ly - 4.0,
        LEFT + 276.0,
        ly - 4.0,
        LEFT + 282.0,
        money(p.standard_total_usd),
        money(p.saving_usd),
        p.saving_pct
    ));
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::projection::MonthCost;
    use chrono::Utc;
    use rstest::rstest;

    #[rstest]
    #[case(0.0, 1.0)]
    #[case(0.7, 1.0)]
    #[case(1.0, 1.0)]
    #[case(1.2, 2.0)]
    #[case(2.2, 2.5)]
    #[case(3.0, 5.0)]
    #[case(0.0031, 0.005)]
    #[case(730.0, 1000.0)]
    fn nice_maxima(#[case] v: f64, #[case] expected: f64) {
        assert!(
            (nice_max(v) - expected).abs() < 1e-12,
            "{v} -> {}",
            nice_max(v)
        );
    }

    #[test]
    fn renders_one_bar_per_month_and_escapes_the_title() {
        let months = (1..=12)
            .map(|m| MonthCost {
                month: m,
                start: Utc::now(),
                lifecycle_usd: 1.0 / f64::from(m),
                standard_usd: 1.0,
                early_charges_usd: 0.0,
                stored_bytes_end: 0,
            })
            .collect();
        let p = Projection {
            months,
            lifecycle_total_usd: 3.1,
            standard_total_usd: 12.0,
            saving_usd: 8.9,
            saving_pct: 74.2,
            notes: vec![],
        };
        let svg = render(&p, "bucket <a&b>");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("fill=\"#4e79a7\"><title>month").count(), 12);
        assert!(svg.contains("bucket &lt;a&amp;b&gt;"));
        assert!(!svg.contains("<a&b>"));
        assert!(!svg.contains("NaN"));
    }
}
