//! `--plot FILE.svg`: bytes sent and received over time, and the four queues of the
//! connection — this client's send and receive queues, the server end's receive and
//! send queues (from the kernel's socket diagnostics, when the server is on this
//! machine) — each against its SO_SNDBUF/SO_RCVBUF limit, with a stall marked on the
//! time axis. The deadlock then shows as four full queues from the stall on.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::observe::watchdog::Point;

const MIB: f64 = 1024.0 * 1024.0;

/// The stall marker's legend, also what a test looks for in the SVG.
pub const STALL_LABEL: &str = "stall: nothing moved from here on";

/// The queue series' legends, in the order they are drawn.
pub const QUEUE_LABELS: [&str; 4] = [
    "client send queue (SIOCOUTQ)",
    "client receive queue (SIOCINQ)",
    "server receive queue (Recv-Q)",
    "server send queue (Send-Q)",
];

/// Draws the timeline as an SVG file, with no stall marked.
pub fn write_svg(path: &Path, title: &str, points: &[Point]) -> Result<()> {
    write_svg_marked(path, title, points, None)
}

/// Draws the timeline as an SVG file: progress on top, then the client's two queues,
/// then the server's two; `stall_from` (seconds) marks where nothing moved any more.
pub fn write_svg_marked(
    path: &Path,
    title: &str,
    points: &[Point],
    stall_from: Option<f64>,
) -> Result<()> {
    draw(path, title, points, stall_from).map_err(|e| Error::Plot {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// One line of a chart: its legend, colour, dashed or not, and its value at a point
/// (`None` where it is not known).
struct Series<'a> {
    name: &'a str,
    color: RGBColor,
    dashed: bool,
    value: &'a dyn Fn(&Point) -> Option<u64>,
}

impl<'a> Series<'a> {
    fn solid(name: &'a str, color: RGBColor, value: &'a dyn Fn(&Point) -> Option<u64>) -> Self {
        Series {
            name,
            color,
            dashed: false,
            value,
        }
    }

    /// A buffer size, drawn dashed above its queue.
    fn dashed(name: &'a str, color: RGBColor, value: &'a dyn Fn(&Point) -> Option<u64>) -> Self {
        Series {
            name,
            color,
            dashed: true,
            value,
        }
    }
}

fn draw(
    path: &Path,
    title: &str,
    points: &[Point],
    stall_from: Option<f64>,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (960, 1080)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let (top, rest) = root.split_vertically(340);
    let (middle, bottom) = rest.split_vertically(350);
    let t_max = points.last().map_or(1.0, |p| p.t).max(0.001);
    // A stalled run is all in its first moments and then flat for the stall timeout:
    // on a logarithmic time axis both show.
    let axis = TimeAxis {
        log: stall_from.is_some(),
        t_max,
    };
    let orange = RGBColor(230, 140, 0);
    let teal = RGBColor(0, 140, 140);

    chart(
        &top,
        "bytes so far (MiB)",
        &axis,
        stall_from,
        &[
            Series::solid("sent", BLUE, &|p| Some(p.sent)),
            Series::solid("received", RED, &|p| Some(p.received)),
        ],
        points,
    )?;
    chart(
        &middle,
        "this client's socket queues (MiB), against their buffer sizes",
        &axis,
        stall_from,
        &[
            Series::solid(QUEUE_LABELS[0], GREEN, &|p| Some(p.send_queue)),
            Series::solid(QUEUE_LABELS[1], MAGENTA, &|p| Some(p.recv_queue)),
            Series::dashed("client SO_SNDBUF", GREEN, &|p| Some(p.sndbuf)),
            Series::dashed("client SO_RCVBUF", MAGENTA, &|p| Some(p.rcvbuf)),
        ],
        points,
    )?;
    let server_known = points.iter().any(|p| p.server.is_some());
    let caption = match server_known {
        true => {
            "the server end's socket queues (MiB, socket diagnostics), against its buffer sizes"
        }
        false => "the server end's socket queues: not known (the server is not on this machine)",
    };
    chart(
        &bottom,
        caption,
        &axis,
        stall_from,
        &[
            Series::solid(QUEUE_LABELS[2], orange, &|p| p.server.map(|s| s.recv_queue)),
            Series::solid(QUEUE_LABELS[3], teal, &|p| p.server.map(|s| s.send_queue)),
            Series::dashed("server SO_RCVBUF", orange, &|p| p.server.map(|s| s.rcvbuf)),
            Series::dashed("server SO_SNDBUF", teal, &|p| p.server.map(|s| s.sndbuf)),
        ],
        points,
    )?;
    root.present()?;
    Ok(())
}

/// The time axis: seconds, linear, or logarithmic from [`LOG_FROM`].
struct TimeAxis {
    log: bool,
    t_max: f64,
}

/// Where a logarithmic time axis starts: about the first sample.
const LOG_FROM: f64 = 1e-4;

impl TimeAxis {
    /// Where time `t` goes on the axis.
    fn x(&self, t: f64) -> f64 {
        match self.log {
            true => t.max(LOG_FROM).log10(),
            false => t,
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.x(0.0)..self.x(self.t_max).max(self.x(0.0) + 0.001)
    }

    fn label(&self, x: f64) -> String {
        match self.log {
            false => format!("{x:.1}"),
            true => {
                let t = 10f64.powf(x);
                let digits = (-t.log10()).ceil().max(0.0) as usize + 1;
                format!("{t:.digits$}")
            }
        }
    }
}

fn chart(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    caption: &str,
    axis: &TimeAxis,
    stall_from: Option<f64>,
    series: &[Series],
    points: &[Point],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let y_max = series
        .iter()
        .flat_map(|s| points.iter().filter_map(|p| (s.value)(p)))
        .max()
        .unwrap_or(0) as f64
        / MIB;
    let y_top = (y_max * 1.05).max(0.001);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(axis.range(), 0.0..y_top)?;
    let label = |x: &f64| axis.label(*x);
    chart
        .configure_mesh()
        .x_desc(match axis.log {
            true => "seconds (logarithmic: the first moments, then the stall)",
            false => "seconds",
        })
        .x_label_formatter(&label)
        .y_desc("MiB")
        .draw()?;
    for s in series {
        let color = s.color;
        let style = color.stroke_width(if s.dashed { 1 } else { 2 });
        let line: Vec<(f64, f64)> = points
            .iter()
            .filter_map(|p| (s.value)(p).map(|v| (axis.x(p.t), v as f64 / MIB)))
            .collect();
        if line.is_empty() {
            continue;
        }
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(line, 6, 4, style))?
        } else {
            chart.draw_series(LineSeries::new(line, style))?
        };
        anno.label(s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
    }
    if let Some(t) = stall_from {
        let x = axis.x(t);
        chart
            .draw_series(LineSeries::new(
                [(x, 0.0), (x, y_top)],
                BLACK.stroke_width(3),
            ))?
            .label(STALL_LABEL)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(match stall_from {
            // Full queues lie along the top and empty ones along the bottom.
            Some(_) => SeriesLabelPosition::MiddleRight,
            None => SeriesLabelPosition::UpperLeft,
        })
        .draw()?;
    Ok(())
}
