//! `tcplab watch --plot`: the busiest connection's queues and bytes over the watch,
//! drawn as the upper-case client's plot is, its stall marked.

use std::collections::HashMap;
use std::path::Path;

use tcplab::observe::queues::Queues;
use tcplab::observe::watchdog::{Point, Timeline};
use tcplab::report::plot::write_svg_marked;
use tcplab::watch::model::{Connection, Frame, Summary};

/// Most connections whose timelines are kept (the first ones seen moving).
const TRACKED: usize = 16;

/// The timelines of the connections that may turn out the busiest.
#[derive(Default)]
pub struct Busiest {
    timelines: HashMap<String, (Timeline, u64)>,
}

impl Busiest {
    /// Adds a sample.
    pub fn push(&mut self, frame: &Frame) {
        for conn in &frame.connections {
            let moved = conn.observed.a_to_b + conn.observed.b_to_a;
            if !self.timelines.contains_key(&conn.id) {
                if self.timelines.len() >= TRACKED || moved == 0 {
                    continue;
                }
                self.timelines.insert(conn.id.clone(), (Timeline::new(), 0));
            }
            if let Some((timeline, most)) = self.timelines.get_mut(&conn.id) {
                timeline.push(point(conn));
                *most = (*most).max(moved);
            }
        }
    }

    /// Draws the busiest connection (an empty chart when none moved a byte).
    pub fn write(&self, path: &Path, summary: &Summary) -> tcplab::Result<()> {
        let busiest = self.timelines.iter().max_by_key(|(_, (_, most))| *most);
        let (title, points, stall) = match busiest {
            Some((id, (timeline, _))) => (
                format!("tcplab watch: {id}"),
                timeline.points(),
                summary
                    .stalls
                    .iter()
                    .find(|s| &s.id == id)
                    .map(|s| s.at_seconds),
            ),
            None => (
                "tcplab watch: no connection moved a byte".to_string(),
                &[][..],
                None,
            ),
        };
        write_svg_marked(path, &title, points, stall)
    }
}

fn point(conn: &Connection) -> Point {
    let a = &conn.ends[0];
    Point {
        t: conn.at_seconds,
        sent: conn.observed.a_to_b,
        received: conn.observed.b_to_a,
        recv_queue: a.recv_queue,
        send_queue: a.send_queue,
        rcvbuf: a.rcvbuf,
        sndbuf: a.sndbuf,
        server: conn.ends.get(1).map(|b| Queues {
            recv_queue: b.recv_queue,
            send_queue: b.send_queue,
            rcvbuf: b.rcvbuf,
            sndbuf: b.sndbuf,
        }),
    }
}
