//! SVG charts of measured figures, drawn with plotters: line charts (a
//! series per contender against callers) and bar charts (grouped or
//! stacked), several panels side by side in one file. The load tester and
//! the comparison runner write them next to their tables.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

/// One axis: its label (with the unit) and whether it is logarithmic.
#[derive(Debug, Clone)]
pub struct Axis {
    /// The label, unit included: "calls/s", "p99 latency (ms)".
    pub label: String,
    /// A log scale, for ranges over more than a decade or two.
    pub log: bool,
}

impl Axis {
    /// A linear axis.
    pub fn linear(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            log: false,
        }
    }

    /// A logarithmic axis.
    pub fn log(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            log: true,
        }
    }
}

/// A named line of (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// The points, in x order.
    pub points: Vec<(f64, f64)>,
}

/// Bars for each category, one per series: side by side, or stacked.
#[derive(Debug, Clone)]
pub struct Bars {
    /// The categories along x.
    pub categories: Vec<String>,
    /// Each series' value per category, in the categories' order.
    pub series: Vec<(String, Vec<f64>)>,
    /// Stack the series (parts of one whole) instead of grouping them.
    pub stacked: bool,
}

/// What a panel shows.
#[derive(Debug, Clone)]
pub enum Plot {
    /// Lines with their points marked.
    Lines(Vec<Series>),
    /// Bars by category.
    Bars(Bars),
}

/// One chart: a title, two axes, and what it plots.
#[derive(Debug, Clone)]
pub struct Panel {
    /// The title above the plot.
    pub title: String,
    /// The x axis (ignored for bars, whose x is the categories).
    pub x: Axis,
    /// The y axis.
    pub y: Axis,
    /// The data.
    pub plot: Plot,
}

/// Twelve distinct colours, enough for every contender of the comparison
/// to have its own: the Okabe–Ito palette (apart for colour-blind readers;
/// its pale yellow darkened to be seen on white), then four more.
fn colour(index: usize) -> RGBColor {
    const PALETTE: [RGBColor; 12] = [
        RGBColor(0, 114, 178),
        RGBColor(230, 159, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(86, 180, 233),
        RGBColor(213, 94, 0),
        RGBColor(0, 0, 0),
        RGBColor(190, 170, 0),
        RGBColor(128, 128, 128),
        RGBColor(140, 86, 75),
        RGBColor(148, 103, 189),
        RGBColor(120, 0, 40),
    ];
    PALETTE[index % PALETTE.len()]
}

/// Writes `panels` side by side into one SVG file at `path`, each
/// `width` × `height` pixels.
///
/// # Errors
///
/// A message when a panel has nothing to draw or the file cannot be written.
pub fn write_svg(path: &Path, panels: &[Panel], width: u32, height: u32) -> Result<(), String> {
    let columns = u32::try_from(panels.len().max(1)).unwrap_or(1);
    let root = SVGBackend::new(path, (width * columns, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (panel, area) in panels.iter().zip(&areas) {
        match &panel.plot {
            Plot::Lines(series) => draw_lines(area, panel, series)?,
            Plot::Bars(bars) => draw_bars(area, panel, bars)?,
        }
    }
    root.present()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The range of `values` with some room around it, on a log or linear scale.
fn range(
    values: impl Iterator<Item = f64>,
    log: bool,
    from_zero: bool,
) -> Result<(f64, f64), String> {
    let (mut low, mut high) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
        (low, high) = (low.min(v), high.max(v));
    }
    if low > high {
        return Err("nothing to plot".to_owned());
    }
    Ok(if log {
        (low / 1.5, high * 1.5)
    } else {
        let low = if from_zero { low.min(0.0) } else { low };
        let pad = ((high - low) * 0.08).max(high.abs() * 0.05).max(1e-9);
        (if from_zero { low } else { low - pad }, high + pad)
    })
}

fn draw_lines(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: &Panel,
    series: &[Series],
) -> Result<(), String> {
    let points = || series.iter().flat_map(|s| s.points.iter().copied());
    let x = range(points().map(|p| p.0), panel.x.log, false)?;
    let y = range(points().map(|p| p.1), panel.y.log, true)?;
    // Each axis kind is its own coordinate type, so each pair is drawn by
    // the same generic body.
    match (panel.x.log, panel.y.log) {
        (false, false) => lines_on(area, panel, series, x.0..x.1, y.0..y.1),
        (true, false) => lines_on(area, panel, series, (x.0..x.1).log_scale(), y.0..y.1),
        (false, true) => lines_on(area, panel, series, x.0..x.1, (y.0..y.1).log_scale()),
        (true, true) => lines_on(
            area,
            panel,
            series,
            (x.0..x.1).log_scale(),
            (y.0..y.1).log_scale(),
        ),
    }
}

fn lines_on<X, Y>(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: &Panel,
    series: &[Series],
    x: X,
    y: Y,
) -> Result<(), String>
where
    X: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    Y: plotters::coord::ranged1d::AsRangedCoord<Value = f64>,
    X::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
    Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(75)
        .build_cartesian_2d(x, y)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(panel.x.label.as_str())
        .y_desc(panel.y.label.as_str())
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| e.to_string())?;
    for (index, line) in series.iter().enumerate() {
        let color = colour(index);
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(line.name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        chart
            .draw_series(
                line.points
                    .iter()
                    .map(|&p| Circle::new(p, 3, color.filled())),
            )
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())
}

/// Bars lie along x, a category per row, so that long category names (the
/// contenders') are read across, never over each other.
fn draw_bars(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: &Panel,
    bars: &Bars,
) -> Result<(), String> {
    let count = bars.categories.len();
    if count == 0 || bars.series.is_empty() {
        return Err("nothing to plot".to_owned());
    }
    let totals = (0..count).map(|c| {
        let values = bars
            .series
            .iter()
            .map(|(_, v)| v.get(c).copied().unwrap_or(0.0));
        if bars.stacked {
            values.sum()
        } else {
            values.fold(0.0, f64::max)
        }
    });
    // Room on the right for the legend, clear of the longest bar.
    let (_, top) = range(totals, false, true)?;
    let longest = bars
        .categories
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0);
    let label_width = u32::try_from(longest * 7 + 16).unwrap_or(200).min(320);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(label_width)
        .build_cartesian_2d(0f64..top * 1.45, 0f64..count as f64)
        .map_err(|e| e.to_string())?;
    let names = bars.categories.clone();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(count * 2 + 1)
        .y_label_formatter(&|v| {
            // Labels sit at the middle of each category's row, the first
            // category at the top.
            let slot = v - v.floor();
            if (slot - 0.5).abs() < 1e-6 {
                let row = count.saturating_sub(1 + v.floor() as usize);
                names.get(row).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .x_desc(panel.y.label.as_str())
        .x_label_formatter(&|v| short(*v))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| e.to_string())?;
    let groups = bars.series.len() as f64;
    for (index, (name, values)) in bars.series.iter().enumerate() {
        let color = colour(index);
        let rectangles = values.iter().enumerate().map(|(c, &value)| {
            let row = (count - 1 - c) as f64;
            let (bottom, top, start) = if bars.stacked {
                let before: f64 = bars.series[..index]
                    .iter()
                    .map(|(_, v)| v.get(c).copied().unwrap_or(0.0))
                    .sum();
                (row + 0.15, row + 0.85, before)
            } else {
                // The first series on top within the row.
                let height = 0.7 / groups;
                let top = row + 0.85 - height * index as f64;
                (top - height, top, 0.0)
            };
            Rectangle::new([(start, bottom), (start + value, top)], color.filled())
        });
        chart
            .draw_series(rectangles)
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| e.to_string())
}

/// A tick label: 1.2M, 35k, 0.5, 12.
pub fn short(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 1e6 {
        format!("{}M", trim(value / 1e6))
    } else if magnitude >= 1e3 {
        format!("{}k", trim(value / 1e3))
    } else {
        trim(value)
    }
}

fn trim(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_bars_render_with_their_titles_labels_and_legends() {
        let path = std::env::temp_dir().join(format!("chart-{}.svg", std::process::id()));
        let panels = [
            Panel {
                title: "throughput".to_owned(),
                x: Axis::log("callers"),
                y: Axis::log("calls/s"),
                plot: Plot::Lines(vec![Series {
                    name: "batched".to_owned(),
                    points: vec![(1.0, 100.0), (8.0, 700.0), (64.0, 2_000.0)],
                }]),
            },
            Panel {
                title: "burst".to_owned(),
                x: Axis::linear(""),
                y: Axis::linear("time (ms)"),
                plot: Plot::Bars(Bars {
                    categories: vec!["ours".to_owned(), "theirs".to_owned()],
                    series: vec![
                        ("running".to_owned(), vec![3.0, 3.1]),
                        ("waiting".to_owned(), vec![0.2, 0.5]),
                    ],
                    stacked: true,
                }),
            },
        ];
        write_svg(&path, &panels, 400, 300).unwrap_or_else(|e| panic!("{e}"));
        let svg = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        for text in [
            "throughput",
            "calls/s",
            "batched",
            "burst",
            "time (ms)",
            "ours",
            "theirs",
            "waiting",
            "2k",
        ] {
            assert!(svg.contains(text), "{text} is missing from the chart");
        }
        let nothing = Panel {
            title: "empty".to_owned(),
            x: Axis::linear("x"),
            y: Axis::log("y"),
            plot: Plot::Lines(vec![Series {
                name: "none".to_owned(),
                points: vec![(1.0, 0.0)],
            }]),
        };
        assert!(
            write_svg(&path, &[nothing], 400, 300).is_err(),
            "a log axis with no positive value"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(short(1_250_000.0), "1.25M");
        assert_eq!(short(35_000.0), "35k");
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(12.0), "12");
    }
}
