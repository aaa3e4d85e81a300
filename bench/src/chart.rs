//! The results as an SVG bar chart: one row per scenario, a bar for its rate as a share of the
//! floor of what it cannot avoid (storage, or a password hash), and a thinner one for its share
//! of hello, with the p99 latency written beside it.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::Row;
use crate::scenarios::Floor;

const ROW_HEIGHT: usize = 26;
const LABEL_WIDTH: usize = 230;
const BAR_WIDTH: usize = 520;
const TOP: usize = 60;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn svg(rows: &[Row], floors: &HashMap<Floor, f64>, connections: usize) -> String {
    let height = TOP + rows.len() * ROW_HEIGHT + 40;
    let width = LABEL_WIDTH + BAR_WIDTH + 220;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="20" font-size="15" font-weight="bold">Requests/s as % of the platform floor, {connections} connection(s), under Spin</text>"#
    );
    let _ = writeln!(
        svg,
        r##"<text x="10" y="40" fill="#555">thick bar: % of the scenario's floor (kv-get, sqlite-read or argon2-verify; hello when it needs none); thin bar: % of hello</text>"##
    );
    for percent in [0, 25, 50, 75, 100] {
        let x = LABEL_WIDTH + BAR_WIDTH * percent / 100;
        let _ = writeln!(
            svg,
            r##"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{}" stroke="#ddd"/><text x="{x}" y="{}" text-anchor="middle" fill="#777">{percent}%</text>"##,
            height - 30,
            height - 15
        );
    }
    for (index, row) in rows.iter().enumerate() {
        let y = TOP + index * ROW_HEIGHT;
        let rate = row.measurement.requests_per_second();
        let of_floor = rate / floors[&row.scenario.floor];
        let of_hello = rate / floors[&Floor::Hello];
        let bar = |share: f64| (BAR_WIDTH as f64 * share.min(1.2)).round() as usize;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LABEL_WIDTH - 8,
            y + 15,
            escape(row.scenario.name)
        );
        let _ = writeln!(
            svg,
            r##"<rect x="{LABEL_WIDTH}" y="{}" width="{}" height="12" fill="#3b7dd8"/>"##,
            y + 4,
            bar(of_floor)
        );
        let _ = writeln!(
            svg,
            r##"<rect x="{LABEL_WIDTH}" y="{}" width="{}" height="4" fill="#f0a030"/>"##,
            y + 18,
            bar(of_hello)
        );
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{}" fill="#333">{:.0}/s, {:.0}% of {}, p99 {:.1} ms</text>"##,
            LABEL_WIDTH + bar(of_floor).max(bar(of_hello)) + 6,
            y + 15,
            rate,
            100.0 * of_floor,
            row.scenario.floor.scenario(),
            row.measurement.percentile_ms(0.99)
        );
    }
    svg.push_str("</svg>\n");
    svg
}
