//! The console's charts: line charts drawn server-side as SVG by plotters (no bitmap backend,
//! no font files: the SVG carries its text as `<text>`, which the browser renders in its own
//! fonts, Korean included).

use plotters::prelude::*;

/// One line of a chart: its legend and its points (`None` where there is no value).
#[derive(Clone, Debug)]
pub struct Series {
    /// The legend text.
    pub label: &'static str,
    /// Its colour.
    pub color: RGBColor,
    /// One value per x position; gaps are skipped.
    pub values: Vec<Option<f64>>,
}

/// The colours the console uses, readable on white and for common colour blindness.
pub const BLUE: RGBColor = RGBColor(0x1f, 0x6f, 0xb4);
/// Second series.
pub const ORANGE: RGBColor = RGBColor(0xe0, 0x7b, 0x1a);
/// Third series.
pub const PURPLE: RGBColor = RGBColor(0x7a, 0x3e, 0x9d);

const SIZE: (u32, u32) = (640, 240);

/// A line chart of `series` over `x_labels.len()` positions, labelled by `x_label(i)`; `y_unit`
/// formats the axis values. Returns the SVG document, or a short note if drawing failed.
pub fn line_chart(
    series: &[Series],
    positions: usize,
    x_label: &dyn Fn(usize) -> String,
    y_unit: &dyn Fn(f64) -> String,
) -> String {
    let mut svg = String::new();
    let drawn = draw(&mut svg, series, positions, x_label, y_unit);
    match drawn {
        Ok(()) => svg,
        Err(e) => {
            tracing::warn!(error = %e, "cannot draw a console chart");
            "<p class=\"muted\">chart unavailable</p>".to_owned()
        }
    }
}

fn draw(
    svg: &mut String,
    series: &[Series],
    positions: usize,
    x_label: &dyn Fn(usize) -> String,
    y_unit: &dyn Fn(f64) -> String,
) -> Result<(), Box<dyn std::error::Error>> {
    let last = i32::try_from(positions.saturating_sub(1)).unwrap_or(i32::MAX).max(1);
    let top = series.iter().flat_map(|s| s.values.iter().flatten()).fold(0.0_f64, |a, &b| a.max(b));
    let top = if top > 0.0 { top * 1.15 } else { 1.0 };
    {
        let root = SVGBackend::with_string(svg, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(26)
            .y_label_area_size(52)
            .build_cartesian_2d(0..last, 0.0..top)?;
        let format_x = |i: &i32| x_label(usize::try_from(*i).unwrap_or(0));
        let format_y = |v: &f64| y_unit(*v);
        chart
            .configure_mesh()
            .x_labels(7)
            .y_labels(5)
            .x_label_formatter(&format_x)
            .y_label_formatter(&format_y)
            .light_line_style(RGBColor(0xee, 0xee, 0xee))
            .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
            .axis_style(RGBColor(0x99, 0x99, 0x99))
            .label_style(("sans-serif", 12).into_font().color(&RGBColor(0x44, 0x44, 0x44)))
            .draw()?;
        for s in series {
            let color = s.color;
            let points = s
                .values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| Some((i32::try_from(i).ok()?, (*v)?)))
                .collect::<Vec<_>>();
            // A point with no neighbour draws no line: mark it, so one busy minute shows.
            let lonely: Vec<(i32, f64)> = s
                .values
                .iter()
                .enumerate()
                .filter(|(i, v)| {
                    let before = i.checked_sub(1).and_then(|j| s.values.get(j)).copied().flatten();
                    let after = s.values.get(i + 1).copied().flatten();
                    v.is_some() && before.is_none() && after.is_none()
                })
                .filter_map(|(i, v)| Some((i32::try_from(i).ok()?, (*v)?)))
                .collect();
            chart.draw_series(lonely.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(s.label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(0xcc, 0xcc, 0xcc))
            .label_font(("sans-serif", 12).into_font())
            .draw()?;
        root.present()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_svg_with_a_line_and_its_korean_legend() {
        let series = [
            Series { label: "수신 in", color: BLUE, values: vec![Some(1.0), Some(3.0), None, Some(2.0)] },
            Series { label: "발신 out", color: ORANGE, values: vec![Some(0.0); 4] },
        ];
        let svg = line_chart(&series, 4, &|i| format!("-{}m", 3 - i), &|v| format!("{v:.0}"));
        assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{svg}");
        assert!(svg.contains("<polyline") || svg.contains("<path"), "{svg}");
        assert!(svg.contains("수신 in"), "the legend is text the browser renders");
    }

    #[test]
    fn an_empty_chart_still_draws() {
        let series = [Series { label: "p50", color: PURPLE, values: vec![None; 60] }];
        let svg = line_chart(&series, 60, &|i| i.to_string(), &|v| format!("{v:.1}s"));
        assert!(svg.contains("<svg"), "{svg}");
    }
}
