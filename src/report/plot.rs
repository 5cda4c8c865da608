//! `--plot FILE.svg`: bytes sent and received, and the client's two queue sizes, over
//! time, so a stall is visible in a lab report.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::observe::watchdog::Point;

const MIB: f64 = 1024.0 * 1024.0;

/// Draws the timeline as an SVG file: progress on top, queues below.
pub fn write_svg(path: &Path, title: &str, points: &[Point]) -> Result<()> {
    draw(path, title, points).map_err(|e| Error::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn draw(
    path: &Path,
    title: &str,
    points: &[Point],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (960, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let (top, bottom) = root.split_vertically(400);
    let t_max = points.last().map_or(1.0, |p| p.t).max(0.001);

    let y_max = points
        .iter()
        .map(|p| p.sent.max(p.received))
        .max()
        .unwrap_or(0) as f64
        / MIB;
    series_chart(
        &top,
        "bytes so far (MiB)",
        t_max,
        y_max,
        &[
            ("sent", &BLUE, &|p: &Point| p.sent),
            ("received", &RED, &|p: &Point| p.received),
        ],
        points,
    )?;
    let q_max = points
        .iter()
        .map(|p| p.send_queue.max(p.recv_queue))
        .max()
        .unwrap_or(0) as f64
        / MIB;
    series_chart(
        &bottom,
        "client socket queues (MiB)",
        t_max,
        q_max,
        &[
            ("send queue (SIOCOUTQ)", &GREEN, &|p: &Point| p.send_queue),
            ("receive queue (SIOCINQ)", &MAGENTA, &|p: &Point| {
                p.recv_queue
            }),
        ],
        points,
    )?;
    root.present()?;
    Ok(())
}

type Series<'a> = (&'a str, &'a RGBColor, &'a dyn Fn(&Point) -> u64);

fn series_chart(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    caption: &str,
    t_max: f64,
    y_max: f64,
    series: &[Series],
    points: &[Point],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..(y_max * 1.05).max(0.001))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("MiB")
        .draw()?;
    for (name, color, value) in series {
        let color = **color;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.t, value(p) as f64 / MIB)),
                color.stroke_width(2),
            ))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    Ok(())
}
