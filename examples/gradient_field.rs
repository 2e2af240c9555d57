//! The gradient field of f(x, y) = x² + y² on a grid: raw gradients ∇f = (2x, 2y) beside
//! the same gradients clipped by norm, each grid point a tensor of its own, clipped by
//! clipstep's per-tensor clip `g ← g · min(1, max_norm / (‖g‖ + 1e-6))`: arrows longer than
//! `max_norm` are cut to it, shorter ones untouched, directions kept. The contour of f is
//! underneath.
//!
//! Writes `gradient_field.png` to `--out` (default `out/`).
//!
//!     cargo run --release --example gradient_field -- --max-norm 1.5

use std::error::Error;
use std::path::PathBuf;

use clap::Parser;
use clipstep::{Context, Nonfinite, Norm, TensorSpec};
use clipstep_tools::support;
use plotters::prelude::*;

/// Command-line options.
#[derive(Parser, Debug, Clone)]
pub struct Args {
    /// Where the picture goes.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Largest gradient norm after clipping.
    #[arg(long, default_value_t = 1.5)]
    pub max_norm: f32,
    /// Grid points per side.
    #[arg(long, default_value_t = 13)]
    pub grid: usize,
}

/// Grid points, raw gradients and clipped gradients.
#[derive(serde::Serialize)]
pub struct Field {
    pub points: Vec<(f32, f32)>,
    pub raw: Vec<(f32, f32)>,
    pub clipped: Vec<(f32, f32)>,
}

const EXTENT: f32 = 2.0;

/// Computes the field on the best adapter and clips it through clipstep.
pub fn run(args: &Args) -> Result<Field, Box<dyn Error>> {
    let n = args.grid.max(2);
    let coord = |i: usize| -EXTENT + 2.0 * EXTENT * i as f32 / (n - 1) as f32;
    let points: Vec<(f32, f32)> = (0..n * n).map(|k| (coord(k % n), coord(k / n))).collect();
    let raw: Vec<(f32, f32)> = points.iter().map(|&(x, y)| (2.0 * x, 2.0 * y)).collect();
    let ctx = Context::new()?;
    let specs: Vec<TensorSpec> = (0..points.len())
        .map(|k| TensorSpec::new(format!("p{k}"), [2]))
        .collect();
    let mut set = ctx.param_set(&specs)?;
    let flat: Vec<f32> = raw.iter().flat_map(|&(gx, gy)| [gx, gy]).collect();
    set.upload_grads(&flat)?;
    set.clip_grad_norm_per_tensor(args.max_norm, Norm::L2, Nonfinite::Propagate)?;
    let clipped = set
        .download_grads()?
        .chunks(2)
        .map(|g| (g[0], g[1]))
        .collect();
    Ok(Field {
        points,
        raw,
        clipped,
    })
}

type Panel<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn panel(
    area: &Panel<'_>, title: &str, field: &Field, arrows: &[(f32, f32)], scale: f32,
) -> Result<(), Box<dyn Error>> {
    let range = -EXTENT - 0.55..EXTENT + 0.55;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 24))
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(range.clone(), range.clone())?;
    // f(x, y) = x² + y² as filled bands, darker inside.
    let cells = 90;
    let step = (range.end - range.start) / cells as f32;
    chart.draw_series((0..cells * cells).map(|k| {
        let (x0, y0) = (
            range.start + step * (k % cells) as f32,
            range.start + step * (k / cells) as f32,
        );
        let f = (x0 + step / 2.0).powi(2) + (y0 + step / 2.0).powi(2);
        let band = (f / 1.0).floor() / 12.0;
        let color = ViridisRGB::get_color(f64::from(band.min(1.0) * 0.8 + 0.15));
        Rectangle::new([(x0, y0), (x0 + step, y0 + step)], color.mix(0.35).filled())
    }))?;
    // Contours f = r² at a few levels.
    for level in [0.25f32, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0] {
        let r = level.sqrt();
        let circle: Vec<(f32, f32)> = (0..=96)
            .map(|k| {
                let a = k as f32 / 96.0 * std::f32::consts::TAU;
                (r * a.cos(), r * a.sin())
            })
            .collect();
        chart.draw_series([PathElement::new(circle, BLACK.mix(0.25).stroke_width(1))])?;
    }
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x")
        .y_desc("y")
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    for (&(x, y), &(gx, gy)) in field.points.iter().zip(arrows) {
        let (dx, dy) = (gx * scale, gy * scale);
        let tip = (x + dx, y + dy);
        let len = (dx * dx + dy * dy).sqrt().max(1e-6);
        let (ux, uy) = (dx / len, dy / len);
        let head = 0.09f32.min(len * 0.5);
        let wing = |s: f32| {
            (
                tip.0 - head * ux + s * head * 0.6 * uy,
                tip.1 - head * uy - s * head * 0.6 * ux,
            )
        };
        let style = BLACK.stroke_width(2);
        chart.draw_series([
            PathElement::new(vec![(x, y), tip], style),
            PathElement::new(vec![wing(1.0), tip, wing(-1.0)], style),
        ])?;
    }
    Ok(())
}

/// Draws raw and clipped fields side by side into `args.out/gradient_field.png`.
pub fn plot(args: &Args, field: &Field) -> Result<PathBuf, Box<dyn Error>> {
    support::register_font();
    let path = support::out_dir(&args.out)?.join("gradient_field.png");
    {
        let root = BitMapBackend::new(&path, (1400, 720)).into_drawing_area();
        draw(&root, args, field)?;
        root.present()?;
    }
    Ok(path)
}

fn draw(root: &Panel<'_>, args: &Args, field: &Field) -> Result<(), Box<dyn Error>> {
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(700);
    // One scale for both panels, so lengths compare: the longest raw arrow spans ~0.8 of a cell row.
    let scale = 0.08;
    panel(&left, "∇f of f(x, y) = x² + y²", field, &field.raw, scale)?;
    let title = format!("clipped per point to ‖g‖ ≤ {}", args.max_norm);
    panel(&right, &title, field, &field.clipped, scale)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let field = run(&args)?;
    let longest = |v: &[(f32, f32)]| {
        v.iter()
            .map(|&(x, y)| (x * x + y * y).sqrt())
            .fold(0.0, f32::max)
    };
    println!(
        "longest raw gradient {:.3}, longest clipped {:.3} (max_norm {})",
        longest(&field.raw),
        longest(&field.clipped),
        args.max_norm
    );
    println!("wrote {}", plot(&args, &field)?.display());
    support::write_json(&args.out, "gradient_field", &field)?;
    Ok(())
}
