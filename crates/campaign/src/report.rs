//! The campaign report as data, and its renderings: a text table for the terminal, JSON and CSV
//! for scripts and spreadsheets, and a self-contained HTML page (no script, no external file;
//! the charts are inline SVG) a marketer opens in a browser.

use crate::stats::{Comparison, Proportion, two_proportion};
use clawbridge_core::time::{EpochMs, KST, timestamp};
use serde::Serialize;
use std::fmt::Write as _;

/// The campaign the report is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CampaignInfo {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `alimtalk`, `brand`, `whatsapp`.
    pub channel: String,
    /// Its state.
    pub state: String,
    /// When it was made.
    pub created_at: EpochMs,
    /// The A/B test, when it has one (`10% first, the winner by CTR after 2 h: B`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<String>,
}

/// Recipient counts of the whole campaign or of one variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Recipients of the campaign (after duplicates were removed).
    pub recipients: u64,
    /// Left out: on the suppression list.
    pub suppressed: u64,
    /// Not handed to the senders yet (or cancelled before).
    pub pending: u64,
    /// Accepted by the dealer or WhatsApp (delivered ones included).
    pub accepted: u64,
    /// Delivered.
    pub delivered: u64,
    /// Failed (refused at the send, or reported failed).
    pub failed: u64,
    /// Delivered by SMS/LMS fallback instead.
    pub fallbacks: u64,
    /// Recipients who clicked at least one tracked link.
    pub unique_clicks: u64,
    /// Clicks in total.
    pub clicks: u64,
}

impl Counts {
    /// Unique clicks of delivered messages.
    pub fn ctr(&self) -> Proportion {
        Proportion::new(self.unique_clicks, self.delivered.max(self.unique_clicks))
    }

    /// Deliveries of accepted messages.
    pub fn delivery(&self) -> Proportion {
        Proportion::new(self.delivered, self.accepted)
    }
}

/// One variant of an A/B test.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantReport {
    /// `A`, `B`.
    pub name: String,
    /// What it sends (`template=SALE_B`).
    pub description: String,
    /// Its counts.
    pub counts: Counts,
    /// Click-through rate (unique clicks / delivered).
    pub ctr: f64,
    /// Its 95 % interval.
    pub ctr_interval: (f64, f64),
    /// Delivery rate (delivered / accepted).
    pub delivery_rate: f64,
}

impl VariantReport {
    /// The report line of a variant from its counts.
    pub fn new(name: impl Into<String>, description: impl Into<String>, counts: Counts) -> Self {
        let ctr = counts.ctr();
        Self {
            name: name.into(),
            description: description.into(),
            counts,
            ctr: ctr.rate(),
            ctr_interval: ctr.interval95(),
            delivery_rate: counts.delivery().rate(),
        }
    }
}

/// Failures with one code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureCount {
    /// The result or error code (`3019`, `131049`).
    pub code: String,
    /// What it means.
    pub reason: String,
    /// How many recipients.
    pub count: u64,
}

/// Deliveries and clicks in one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    /// The hour's start.
    pub start: EpochMs,
    /// Deliveries reported in it.
    pub delivered: u64,
    /// First clicks in it.
    pub clicks: u64,
}

/// The test of the first variant against the others by CTR.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantTest {
    /// The baseline (`A`).
    pub baseline: String,
    /// The variant compared (`B`).
    pub variant: String,
    /// The test; `None` when there is nothing to compare yet.
    pub result: Option<Comparison>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The campaign.
    pub campaign: CampaignInfo,
    /// All recipients.
    pub totals: Counts,
    /// Per variant (one for a campaign without A/B test).
    pub variants: Vec<VariantReport>,
    /// Failures by code, most frequent first.
    pub failures: Vec<FailureCount>,
    /// Deliveries and clicks per hour.
    pub timeline: Vec<Bucket>,
    /// Each variant after the first against the first.
    pub tests: Vec<VariantTest>,
}

impl Report {
    /// A report from its parts; the tests are computed from the variants.
    pub fn new(
        campaign: CampaignInfo,
        totals: Counts,
        variants: Vec<VariantReport>,
        mut failures: Vec<FailureCount>,
        timeline: Vec<Bucket>,
    ) -> Self {
        failures.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.code.cmp(&b.code)));
        let tests = match variants.split_first() {
            Some((base, rest)) => rest
                .iter()
                .map(|v| VariantTest {
                    baseline: base.name.clone(),
                    variant: v.name.clone(),
                    result: two_proportion(base.counts.ctr(), v.counts.ctr()),
                })
                .collect(),
            None => Vec::new(),
        };
        Self { campaign, totals, variants, failures, timeline, tests }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A table for the terminal.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let c = &self.campaign;
        let _ = writeln!(out, "campaign {} \"{}\" ({}, {})", c.id, c.name, c.channel, c.state);
        if let Some(test) = &c.test {
            let _ = writeln!(out, "A/B test: {test}");
        }
        let header = ["", "recipients", "accepted", "delivered", "failed", "fallback", "clicks", "CTR", "95% CI"];
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
        let line = |name: &str, counts: &Counts| {
            let ctr = counts.ctr();
            let (lo, hi) = ctr.interval95();
            vec![
                name.to_owned(),
                counts.recipients.to_string(),
                counts.accepted.to_string(),
                counts.delivered.to_string(),
                counts.failed.to_string(),
                counts.fallbacks.to_string(),
                counts.unique_clicks.to_string(),
                percent(ctr.rate()),
                format!("{}–{}", percent(lo), percent(hi)),
            ]
        };
        rows.push(line("total", &self.totals));
        if self.variants.len() > 1 {
            for v in &self.variants {
                rows.push(line(&format!("{} {}", v.name, v.description), &v.counts));
            }
        }
        let widths: Vec<usize> =
            (0..header.len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    let pad = widths[i] - cell.chars().count();
                    if i == 0 { format!("{cell}{}", " ".repeat(pad)) } else { format!("{}{cell}", " ".repeat(pad)) }
                })
                .collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        if self.totals.suppressed > 0 || self.totals.pending > 0 {
            let _ = writeln!(
                out,
                "suppressed (opted out): {}, not sent yet: {}",
                self.totals.suppressed, self.totals.pending
            );
        }
        for t in &self.tests {
            let _ = match &t.result {
                Some(r) => writeln!(
                    out,
                    "{} vs {}: CTR {:+.2} points, {}: {}",
                    t.variant,
                    t.baseline,
                    r.difference * 100.0,
                    p_text(r.p_value),
                    if r.significant { "significant at 95 %" } else { "not significant" }
                ),
                None => writeln!(out, "{} vs {}: not enough clicks to compare yet", t.variant, t.baseline),
            };
        }
        if !self.failures.is_empty() {
            let _ = writeln!(out, "failures:");
            for f in &self.failures {
                let _ = writeln!(out, "  {:>6}  {:>7}  {}", f.code, f.count, f.reason);
            }
        }
        out
    }

    /// One row per scope (total, each variant) and a row per failure code.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "scope,description,recipients,suppressed,pending,accepted,delivered,failed,fallbacks,unique_clicks,clicks,ctr,ctr_low,ctr_high\n",
        );
        let mut line = |scope: &str, description: &str, c: &Counts| {
            let ctr = c.ctr();
            let (lo, hi) = ctr.interval95();
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{:.6},{:.6},{:.6}",
                csv_cell(scope),
                csv_cell(description),
                c.recipients,
                c.suppressed,
                c.pending,
                c.accepted,
                c.delivered,
                c.failed,
                c.fallbacks,
                c.unique_clicks,
                c.clicks,
                ctr.rate(),
                lo,
                hi
            );
        };
        line("total", &self.campaign.name, &self.totals);
        for v in &self.variants {
            line(&format!("variant {}", v.name), &v.description, &v.counts);
        }
        for f in &self.failures {
            let _ = writeln!(
                out,
                "{},{},,,,,,{},,,,,,",
                csv_cell(&format!("failure {}", f.code)),
                csv_cell(&f.reason),
                f.count
            );
        }
        out
    }

    /// A self-contained HTML page with the charts as inline SVG.
    pub fn to_html(&self) -> String {
        let c = &self.campaign;
        let mut out = String::new();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"ko\"><head><meta charset=\"utf-8\"><title>{} — campaign report</title>\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<style>\n\
             body{{font-family:system-ui,-apple-system,'Apple SD Gothic Neo','Malgun Gothic',sans-serif;margin:2rem;color:#1d1d1f;max-width:60rem}}\n\
             table{{border-collapse:collapse;margin:1rem 0}}th,td{{padding:.35rem .7rem;border-bottom:1px solid #ddd;text-align:right}}\n\
             th:first-child,td:first-child,.text{{text-align:left}}h2{{margin-top:2rem}}.muted{{color:#666}}\n\
             .sig{{color:#0a7d32;font-weight:600}}figure{{margin:1rem 0}}</style></head><body>\n",
            escape_html(&c.name)
        );
        let _ = writeln!(
            out,
            "<h1>{}</h1>\n<p class=\"muted\">campaign <code>{}</code> · {} · {} · created {}</p>",
            escape_html(&c.name),
            escape_html(&c.id),
            escape_html(&c.channel),
            escape_html(&c.state),
            escape_html(&kst_time(c.created_at))
        );
        if let Some(test) = &c.test {
            let _ = writeln!(out, "<p>A/B test: {}</p>", escape_html(test));
        }
        out.push_str("<h2>Totals</h2>\n<table><tr><th></th><th>recipients</th><th>accepted</th><th>delivered</th><th>failed</th><th>fallback</th><th>unique clicks</th><th>CTR (95 % CI)</th></tr>\n");
        let mut row = |name: &str, counts: &Counts| {
            let ctr = counts.ctr();
            let (lo, hi) = ctr.interval95();
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({}–{})</td></tr>",
                escape_html(name),
                counts.recipients,
                counts.accepted,
                counts.delivered,
                counts.failed,
                counts.fallbacks,
                counts.unique_clicks,
                percent(ctr.rate()),
                percent(lo),
                percent(hi)
            );
        };
        row("total", &self.totals);
        if self.variants.len() > 1 {
            for v in &self.variants {
                row(&format!("{} · {}", v.name, v.description), &v.counts);
            }
        }
        out.push_str("</table>\n");
        let _ = writeln!(
            out,
            "<p class=\"muted\">suppressed (opted out): {} · not sent yet: {}. CTR = recipients who clicked / delivered.</p>",
            self.totals.suppressed, self.totals.pending
        );
        if self.variants.len() > 1 {
            out.push_str("<h2>Variants</h2>\n<figure>");
            out.push_str(&variant_chart(&self.variants));
            out.push_str("<figcaption class=\"muted\">CTR per variant with its 95 % interval; delivery rate beside it.</figcaption></figure>\n");
            for t in &self.tests {
                let _ = match &t.result {
                    Some(r) if r.significant => writeln!(
                        out,
                        "<p class=\"sig\">{} vs {}: {:+.2} points of CTR, {} — significant at 95 %.</p>",
                        escape_html(&t.variant),
                        escape_html(&t.baseline),
                        r.difference * 100.0,
                        p_text(r.p_value)
                    ),
                    Some(r) => writeln!(
                        out,
                        "<p>{} vs {}: {:+.2} points of CTR, {} — not significant.</p>",
                        escape_html(&t.variant),
                        escape_html(&t.baseline),
                        r.difference * 100.0,
                        p_text(r.p_value)
                    ),
                    None => writeln!(
                        out,
                        "<p>{} vs {}: not enough data to compare yet.</p>",
                        escape_html(&t.variant),
                        escape_html(&t.baseline)
                    ),
                };
            }
        }
        out.push_str("<h2>Deliveries and clicks over time</h2>\n<figure>");
        out.push_str(&timeline_chart(&self.timeline));
        out.push_str("<figcaption class=\"muted\">Per hour (KST): deliveries (blue) and first clicks (orange).</figcaption></figure>\n");
        if !self.failures.is_empty() {
            out.push_str(
                "<h2>Failures</h2>\n<table><tr><th>code</th><th class=\"text\">reason</th><th>recipients</th></tr>\n",
            );
            for f in &self.failures {
                let _ = writeln!(
                    out,
                    "<tr><td>{}</td><td class=\"text\">{}</td><td>{}</td></tr>",
                    escape_html(&f.code),
                    escape_html(&f.reason),
                    f.count
                );
            }
            out.push_str("</table>\n");
        }
        out.push_str("</body></html>\n");
        out
    }
}

/// Bars of CTR (with interval whiskers) and delivery rate per variant.
fn variant_chart(variants: &[VariantReport]) -> String {
    let (width, height, left, bottom, top) = (640.0, 260.0, 48.0, 40.0, 16.0);
    let plot_h = height - bottom - top;
    // Headroom above the highest interval, so its whisker is not cut by the frame.
    let max = (variants.iter().flat_map(|v| [v.ctr_interval.1, v.ctr]).fold(0.01f64, f64::max) * 1.15).min(1.0);
    let slot = (width - left - 16.0) / variants.len().max(1) as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"CTR per variant\">"
    );
    let y = |v: f64| top + plot_h * (1.0 - (v / max).min(1.0));
    for tick in 0..=4 {
        let v = max * f64::from(tick) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#666\">{}</text>",
            width - 8.0,
            left - 6.0,
            y(v) + 4.0,
            percent(v),
            y = y(v)
        );
    }
    for (i, v) in variants.iter().enumerate() {
        let x = left + slot * i as f64 + slot * 0.25;
        let w = slot * 0.5;
        let _ = write!(
            svg,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"#2f6fde\"><title>{} CTR {}</title></rect>",
            y(v.ctr),
            (top + plot_h - y(v.ctr)).max(0.0),
            escape_html(&v.name),
            percent(v.ctr)
        );
        let cx = x + w / 2.0;
        let _ = write!(
            svg,
            "<line x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#111\" stroke-width=\"1.5\"/>",
            y(v.ctr_interval.0),
            y(v.ctr_interval.1)
        );
        let _ = write!(
            svg,
            "<text x=\"{cx:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">{} · {} (delivered {})</text>",
            height - bottom + 18.0,
            escape_html(&v.name),
            percent(v.ctr),
            percent(v.delivery_rate)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Deliveries and clicks per hour as two lines.
fn timeline_chart(buckets: &[Bucket]) -> String {
    let (width, height, left, bottom, top) = (640.0, 240.0, 48.0, 36.0, 12.0);
    let right = 48.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"deliveries and clicks per hour\">"
    );
    if buckets.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#666\">no deliveries or clicks yet</text></svg>",
            width / 2.0,
            height / 2.0
        );
        return svg;
    }
    let max = buckets.iter().map(|b| b.delivered.max(b.clicks)).max().unwrap_or(1).max(1) as f64;
    let plot_w = width - left - right;
    let plot_h = height - bottom - top;
    let step = if buckets.len() > 1 { plot_w / (buckets.len() - 1) as f64 } else { 0.0 };
    let point = |i: usize, v: u64| (left + step * i as f64, top + plot_h * (1.0 - v as f64 / max));
    for tick in 0..=4 {
        let v = max * f64::from(tick) / 4.0;
        let y = top + plot_h * (1.0 - v / max);
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#666\">{}</text>",
            width - 8.0,
            left - 6.0,
            y + 4.0,
            v.round()
        );
    }
    for (series, color) in [(0usize, "#2f6fde"), (1, "#e8811a")] {
        let points: Vec<String> = buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (x, y) = point(i, if series == 0 { b.delivered } else { b.clicks });
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            points.join(" ")
        );
        for (i, b) in buckets.iter().enumerate() {
            let v = if series == 0 { b.delivered } else { b.clicks };
            let (x, y) = point(i, v);
            let _ = write!(
                svg,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\" fill=\"{color}\"><title>{} {v}</title></circle>",
                escape_html(&kst_time(b.start))
            );
        }
    }
    let label_every = buckets.len().div_ceil(8).max(1);
    for (i, b) in buckets.iter().enumerate().step_by(label_every) {
        let (x, _) = point(i, 0);
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#666\">{}</text>",
            height - bottom + 16.0,
            KST.to_datetime(timestamp(b.start)).strftime("%m-%d %H:00")
        );
    }
    svg.push_str("</svg>");
    svg
}

/// `p = 0.049`, `p < 0.001`.
fn p_text(p: f64) -> String {
    if p < 0.001 { "p < 0.001".to_owned() } else { format!("p = {p:.3}") }
}

/// `12.34%`.
fn percent(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

/// `2026-12-24 09:00 KST`.
fn kst_time(at: EpochMs) -> String {
    KST.to_datetime(timestamp(at)).strftime("%Y-%m-%d %H:%M KST").to_string()
}

/// Text escaped for HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A CSV cell, quoted when it needs to be; a leading `=`, `+`, `-`, `@` is prefixed with `'` so a
/// spreadsheet does not run it as a formula.
fn csv_cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let a = Counts {
            recipients: 1_000,
            accepted: 990,
            delivered: 950,
            failed: 40,
            unique_clicks: 95,
            clicks: 120,
            ..Counts::default()
        };
        let b = Counts {
            recipients: 1_000,
            accepted: 995,
            delivered: 960,
            failed: 35,
            fallbacks: 3,
            unique_clicks: 150,
            clicks: 170,
            ..Counts::default()
        };
        let mut totals = Counts::default();
        for c in [a, b] {
            totals.recipients += c.recipients;
            totals.accepted += c.accepted;
            totals.delivered += c.delivered;
            totals.failed += c.failed;
            totals.fallbacks += c.fallbacks;
            totals.unique_clicks += c.unique_clicks;
            totals.clicks += c.clicks;
        }
        totals.suppressed = 4;
        Report::new(
            CampaignInfo {
                id: "c1".into(),
                name: "겨울 세일 <VIP>".into(),
                channel: "brand".into(),
                state: "done".into(),
                created_at: 1_798_070_400_000,
                test: Some("10% first, the winner by CTR after 2 h: B".into()),
            },
            totals,
            vec![VariantReport::new("A", "text", a), VariantReport::new("B", "template=SALE_B", b)],
            vec![
                FailureCount { code: "3019".into(), reason: "not a KakaoTalk user".into(), count: 50 },
                FailureCount { code: "3018".into(), reason: "cannot send".into(), count: 25 },
            ],
            vec![
                Bucket { start: 1_798_070_400_000, delivered: 1_500, clicks: 120 },
                Bucket { start: 1_798_074_000_000, delivered: 410, clicks: 125 },
            ],
        )
    }

    #[test]
    fn the_table_has_totals_variants_the_test_and_failures() {
        let table = sample().to_table();
        assert!(table.contains("campaign c1 \"겨울 세일 <VIP>\" (brand, done)"), "{table}");
        assert!(table.contains("A/B test: 10% first, the winner by CTR after 2 h: B"), "{table}");
        assert!(table.lines().any(|l| l.starts_with("total") && l.contains("1910") && l.contains("12.83%")), "{table}");
        assert!(table.contains("B vs A: CTR +5.62 points"), "{table}");
        assert!(table.contains("significant at 95 %"), "{table}");
        let failures = table.split("failures:").nth(1).unwrap();
        assert!(failures.find("3019").unwrap() < failures.find("3018").unwrap(), "most frequent first");
    }

    #[test]
    fn json_and_csv_carry_the_same_numbers() {
        let report = sample();
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["totals"]["uniqueClicks"], 245);
        assert_eq!(json["variants"][1]["counts"]["fallbacks"], 3);
        assert_eq!(json["tests"][0]["result"]["significant"], true);
        let csv = report.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 1 + 3 + 2);
        assert!(lines[1].starts_with("total,겨울 세일 <VIP>,2000,4,"), "{}", lines[1]);
        assert!(lines[3].starts_with("variant B,template=SALE_B,1000,"), "{}", lines[3]);
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), r#""'=HYPERLINK(""x"")""#);
    }

    #[test]
    fn the_html_page_is_self_contained_and_escaped() {
        let page = sample().to_html();
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("겨울 세일 &lt;VIP&gt;"));
        assert!(!page.contains("<VIP>"));
        assert_eq!(page.matches("<svg").count(), 2, "variant and timeline charts");
        assert!(!page.contains("<script"), "no script");
        assert!(!page.contains("src="), "no external resource");
        assert!(page.contains("class=\"sig\""));
        assert!(page.trim_end().ends_with("</html>"));
        let empty = Report::new(CampaignInfo::default(), Counts::default(), vec![], vec![], vec![]);
        assert!(empty.to_html().contains("no deliveries or clicks yet"));
    }
}
