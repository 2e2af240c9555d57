//! Shared by the examples: the output folder, the embedded font, line charts, and the
//! CLI's harness (deterministic data, error measures). The training examples' wgpu
//! plumbing is [`crate::gpu`], their model [`crate::mlp`].

pub use crate::harness;

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;

/// DejaVu Sans, shipped in `assets/` so text renders on headless machines without fonts
/// (license in `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Registers the embedded font as plotters' "sans-serif" (once).
pub fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            panic!("the embedded DejaVu Sans font failed to load");
        }
    });
}

/// Creates `dir` if needed and returns it.
pub fn out_dir(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    Ok(dir.to_path_buf())
}

/// Writes `value` as `dir/<name>.json`: what the example measured, for a reader and for
/// `tests/examples.rs`, which runs each example and checks it.
pub fn write_json(
    dir: &Path, name: &str, value: &impl serde::Serialize,
) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let path = out_dir(dir)?.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(value)?)?;
    Ok(path)
}

/// A line of a chart: its legend label, colour and points.
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

/// Colour `shade` (0 darkest .. 2 lightest) of family `family` (0 red, 1 blue, 2 green, ...).
pub fn shade(family: usize, shade: usize) -> RGBColor {
    use plotters::style::full_palette::*;
    const FAMILIES: [[RGBColor; 3]; 4] = [
        [RED_900, RED_500, RED_200],
        [BLUE_900, BLUE_500, BLUE_200],
        [GREEN_900, GREEN_500, GREEN_200],
        [PURPLE_900, PURPLE_500, PURPLE_200],
    ];
    FAMILIES[family % FAMILIES.len()][shade.min(2)]
}

/// Chart options.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    /// Logarithmic y axis.
    pub log_y: bool,
    /// A dashed horizontal reference line: (y, legend label).
    pub threshold: Option<(f64, &'a str)>,
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

/// Draws `series` as lines with a legend into a 1000×640 PNG at `path`. Non-finite and
/// non-positive (on a log axis) points end a line: a diverged run stops where it diverged.
pub fn line_chart(path: &Path, chart: &Chart<'_>, series: &[Series]) -> PlotResult {
    register_font();
    let usable = |y: f64| y.is_finite() && (!chart.log_y || y > 0.0);
    let clean: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .copied()
                .take_while(|&(_, y)| usable(y))
                .collect()
        })
        .collect();
    let xs = clean.iter().flatten().map(|p| p.0);
    let ys = clean
        .iter()
        .flatten()
        .map(|p| p.1)
        .chain(chart.threshold.map(|t| t.0));
    let x_max = xs.fold(1.0f64, f64::max);
    let (y_min, y_max) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
        (lo.min(y), hi.max(y))
    });
    let root = BitMapBackend::new(path, (1000, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(chart.title, ("sans-serif", 26))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80);
    macro_rules! draw {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| {
                    if chart.log_y {
                        format!("{y:.0e}")
                    } else {
                        format!("{y:.3}")
                    }
                })
                .x_desc(chart.x_label)
                .y_desc(chart.y_label)
                .label_style(("sans-serif", 16))
                .axis_desc_style(("sans-serif", 18))
                .draw()?;
            for (s, points) in series.iter().zip(&clean) {
                let color = s.color;
                ctx.draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(s.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3))
                });
            }
            if let Some((y, label)) = chart.threshold {
                let style = BLACK.stroke_width(2);
                ctx.draw_series(DashedLineSeries::new(
                    vec![(0.0, y), (x_max, y)],
                    8,
                    6,
                    style,
                ))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            }
            ctx.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 15))
                .position(SeriesLabelPosition::UpperRight)
                .draw()?;
        }};
    }
    if chart.log_y {
        let (lo, hi) = (y_min.max(1e-12) / 2.0, y_max * 2.0);
        draw!(builder.build_cartesian_2d(0.0..x_max, (lo..hi).log_scale())?);
    } else {
        let pad = (y_max - y_min).abs().max(1e-9) * 0.05;
        draw!(builder.build_cartesian_2d(0.0..x_max, (y_min - pad)..(y_max + pad))?);
    }
    root.present()?;
    Ok(())
}
