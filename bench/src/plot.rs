//! Plots of a fleet boot: how many instances are registered as time goes
//! on, one line per setting, against the least time the quota allows.
//!
//! SVG, so that no font is needed on the machine: plotters without its
//! `ttf` feature writes text as `<text>` elements and estimates its width.

use std::path::Path;

use plotters::prelude::*;

/// One line: a label and the sorted times at which instances registered.
pub struct Series<'a> {
    pub label: String,
    pub registered: &'a [f64],
}

const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

/// Draws the registered-instances curves to `path`, with the quota's least
/// time and 1.5 times it as dashed-looking vertical marks.
pub fn registered_over_time(
    path: &Path,
    title: &str,
    instances: u32,
    minimum: f64,
    series: &[Series],
) -> Result<(), Box<dyn std::error::Error>> {
    let end = series
        .iter()
        .filter_map(|line| line.registered.last().copied())
        .fold(minimum * 1.6, f64::max)
        * 1.05;
    let root = SVGBackend::new(path, (900, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..f64::from(instances) * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the fleet booted")
        .y_desc("instances registered")
        .draw()?;

    for (bound, label) in [(minimum, "quota minimum"), (minimum * 1.5, "1.5 x minimum")] {
        chart
            .draw_series(LineSeries::new(
                [(bound, 0.0), (bound, f64::from(instances))],
                BLACK.mix(0.4).stroke_width(1),
            ))?
            .label(format!("{label} ({bound:.0} s)"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));
    }
    for (index, line) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let points = std::iter::once((0.0, 0.0)).chain(
            line.registered
                .iter()
                .enumerate()
                .map(|(count, time)| (*time, (count + 1) as f64)),
        );
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(line.label.clone())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}
