//! The contention curves as a self-contained SVG, written by hand: no plotting
//! library, no fonts needed to build it (text is SVG `<text>`, drawn by the viewer).

use std::fmt::Write;

/// One line of a panel: a label and its (x, y) points.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// Points, x ascending; y > 0 (log scale).
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (the unsafe baseline).
    pub dashed: bool,
}

/// A chart panel: log-scale axes, one line per series.
#[derive(Clone, Debug)]
pub struct Panel {
    /// Title above the panel.
    pub title: String,
    /// Label of the y axis.
    pub y_label: String,
    /// Formats a y tick value.
    pub y_format: fn(f64) -> String,
    /// The lines.
    pub series: Vec<Series>,
}

/// Distinct colours, one per series of a chart (a chart has about 15).
const PALETTE: [&str; 20] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
    "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#000000",
];

const PANEL_W: f64 = 460.0;
const PANEL_H: f64 = 320.0;
const MARGIN_L: f64 = 78.0;
const MARGIN_T: f64 = 40.0;
const PLOT_W: f64 = 350.0;
const PLOT_H: f64 = 230.0;

/// The x axis every panel of a chart shares.
#[derive(Clone, Copy, Debug)]
pub struct XAxis<'a> {
    /// What it measures.
    pub label: &'a str,
    /// Logarithmic (base 2) rather than linear.
    pub log: bool,
    /// Formats a tick value.
    pub format: fn(f64) -> String,
}

/// Draws `panels` side by side with one shared legend (series are matched by
/// label across panels, so a strategy has the same colour everywhere).
pub fn render(title: &str, x_axis: XAxis<'_>, panels: &[Panel]) -> String {
    let mut labels: Vec<&str> = Vec::new();
    for s in panels.iter().flat_map(|p| &p.series) {
        if !labels.contains(&s.label.as_str()) {
            labels.push(&s.label);
        }
    }
    // Three legend columns, or two when a label is too long for a third of the width.
    let columns = if labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) > 38 { 2 } else { 3 };
    let legend_rows = labels.len().div_ceil(columns);
    let width = PANEL_W * panels.len().max(1) as f64 + 20.0;
    let height = 40.0 + PANEL_H + 20.0 + legend_rows as f64 * 18.0 + 10.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ =
        writeln!(svg, r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#, width / 2.0, esc(title));
    for (i, panel) in panels.iter().enumerate() {
        draw_panel(&mut svg, panel, 10.0 + i as f64 * PANEL_W, 36.0, x_axis, &labels);
    }
    let legend_top = 36.0 + PANEL_H + 14.0;
    for (i, label) in labels.iter().enumerate() {
        let x = 30.0 + (i % columns) as f64 * (width - 40.0) / columns as f64;
        let y = legend_top + (i / columns) as f64 * 18.0;
        let dashed = panels.iter().flat_map(|p| &p.series).any(|s| s.label == *label && s.dashed);
        let _ = writeln!(
            svg,
            r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="2.5"{}/><text x="{}" y="{}">{}</text>"#,
            x + 22.0,
            PALETTE[i % PALETTE.len()],
            if dashed { r#" stroke-dasharray="5,3""# } else { "" },
            x + 28.0,
            y + 4.0,
            esc(label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn draw_panel(svg: &mut String, panel: &Panel, left: f64, top: f64, x_axis: XAxis<'_>, labels: &[&str]) {
    let (x0, y0) = (left + MARGIN_L, top + MARGIN_T);
    let points: Vec<(f64, f64)> = panel.series.iter().flat_map(|s| s.points.iter().copied()).collect();
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="13" text-anchor="middle">{}</text>"#,
        x0 + PLOT_W / 2.0,
        top + 18.0,
        esc(&panel.title)
    );
    let _ =
        writeln!(svg, r##"<rect x="{x0}" y="{y0}" width="{PLOT_W}" height="{PLOT_H}" fill="none" stroke="#444"/>"##);
    if points.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">no data</text>"#,
            x0 + PLOT_W / 2.0,
            y0 + PLOT_H / 2.0
        );
        return;
    }
    // x: log2 or linear; y: log10, widened to whole decades.
    let xt = |x: f64| if x_axis.log { x.max(f64::MIN_POSITIVE).log2() } else { x };
    let xs: Vec<f64> = points.iter().map(|p| xt(p.0)).collect();
    let (xmin, xmax) = (xs.iter().copied().fold(f64::MAX, f64::min), xs.iter().copied().fold(f64::MIN, f64::max));
    let xspan = if xmax > xmin { xmax - xmin } else { 1.0 };
    let ys: Vec<f64> = points.iter().filter(|p| p.1 > 0.0).map(|p| p.1.log10()).collect();
    let ymin = ys.iter().copied().fold(f64::MAX, f64::min).floor();
    let ymax = ys.iter().copied().fold(f64::MIN, f64::max).ceil().max(ymin + 1.0);
    let px = |x: f64| x0 + 10.0 + (xt(x) - xmin) / xspan * (PLOT_W - 20.0);
    let py = |y: f64| y0 + PLOT_H - (y.max(f64::MIN_POSITIVE).log10() - ymin) / (ymax - ymin) * PLOT_H;

    for decade in (ymin as i32)..=(ymax as i32) {
        let v = 10f64.powi(decade);
        let y = py(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{y:.1}" x2="{}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            x0 + PLOT_W,
            x0 - 6.0,
            y + 4.0,
            esc(&(panel.y_format)(v))
        );
    }
    let mut ticks: Vec<f64> = points.iter().map(|p| p.0).collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    for t in ticks {
        let x = px(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            y0 + PLOT_H,
            y0 + PLOT_H + 16.0,
            esc(&(x_axis.format)(t))
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        x0 + PLOT_W / 2.0,
        y0 + PLOT_H + 34.0,
        esc(x_axis.label)
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">{}</text>"#,
        left + 14.0,
        y0 + PLOT_H / 2.0,
        esc(&panel.y_label)
    );
    for series in &panel.series {
        let colour = PALETTE[labels.iter().position(|l| *l == series.label).unwrap_or(0) % PALETTE.len()];
        let path: Vec<String> =
            series.points.iter().filter(|p| p.1 > 0.0).map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
        let dash = if series.dashed { r#" stroke-dasharray="5,3""# } else { "" };
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}><title>{}</title></polyline>"#,
            path.join(" "),
            esc(&series.label)
        );
        for p in &path {
            let (cx, cy) = p.split_once(',').expect("formatted above");
            let _ = writeln!(svg, r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{colour}"/>"#);
        }
    }
}

/// Escapes text for SVG.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_and_escapes_labels() {
        let panel = Panel {
            title: "throughput".into(),
            y_label: "ops/s".into(),
            y_format: |v| format!("{v}"),
            series: vec![
                Series { label: "a <b>".into(), points: vec![(1.0, 10.0), (2.0, 1000.0)], dashed: false },
                Series { label: "c".into(), points: vec![(1.0, 5.0)], dashed: true },
            ],
        };
        let axis = XAxis { label: "processes", log: true, format: |v| format!("{v}") };
        let svg = render("t", axis, &[panel.clone(), Panel { series: vec![], ..panel.clone() }]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("a &lt;b&gt;") && !svg.contains("a <b>"));
        assert!(svg.contains("no data"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        // A linear axis starting at zero draws too.
        let linear = XAxis { label: "skew", log: false, format: |v| format!("{v}") };
        let zero = Panel {
            series: vec![Series { label: "z".into(), points: vec![(0.0, 10.0), (1.2, 20.0)], dashed: false }],
            ..panel
        };
        let svg = render("t", linear, &[zero]);
        assert!(svg.contains(">0<") && svg.contains(">1.2<") && !svg.contains("NaN"));
    }
}
