//! One sample of a watch: the kernel's socket dump and the processes' sockets, read
//! once; the selected sockets paired end to end (a loopback connection's two ends
//! are one connection); each connection's bytes, rates and quiet time tracked from
//! sample to sample and diagnosed by [`connection::diagnose`].

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::observe::connection::{self, Backlog, EndFigures, Health, Observed, Side};
use crate::observe::owners::{Owner, Owners};
use crate::observe::sockdiag::{Diag, state_name};
use crate::observe::sockets::{TcpSocket, Timer};
use crate::watch::model::{Connection, End, Frame, Listener, Stall, Summary};
use crate::watch::select::Selection;

/// Most stalls a summary lists (the rest are counted in `samples` only).
const MAX_STALLS: usize = 1000;

/// How a watch samples.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Connections a frame shows, the busiest first.
    pub top: usize,
    /// How long nothing may move, with data waiting, before a connection is stalled.
    pub stall_after: Duration,
}

/// A connection's identity: its first end's (local, remote).
type Key = (SocketAddr, SocketAddr);

/// What is remembered of a connection between samples.
struct Track {
    /// Bytes `a`→`b` and `b`→`a` at the last sample.
    moved: (u64, u64),
    /// When bytes last moved (or when it was first seen).
    moved_at: Instant,
    /// Since when `a`'s peer window has been closed, if it is.
    closed_window_since: Option<Instant>,
    /// Retransmits at the last sample.
    retransmits: u32,
    /// The diagnosis at the last sample, and since when.
    kind: Health,
    kind_since: Instant,
    /// Recorded as a stall already.
    stalled: bool,
    /// Seen in the latest sample.
    seen: bool,
    /// The latest row, shown once more as closed when the connection goes.
    last: Option<Connection>,
}

/// Samples the selected connections, one [`Frame`] at a time.
pub struct Sampler {
    diag: Diag,
    selection: Selection,
    opts: Options,
    started: Instant,
    last_sample: Option<Instant>,
    tracks: HashMap<Key, Track>,
    summary: Summary,
    /// Connections that stalled in the latest sample.
    new_stalls: Vec<String>,
    /// Who holds which socket, read again when a socket's owner is not known.
    owners: Owners,
}

impl Sampler {
    /// Opens the socket-diagnostics socket.
    pub fn new(selection: Selection, opts: Options) -> io::Result<Sampler> {
        Ok(Sampler {
            diag: Diag::new()?,
            selection,
            opts,
            started: Instant::now(),
            last_sample: None,
            tracks: HashMap::new(),
            summary: Summary::default(),
            new_stalls: Vec::new(),
            owners: Owners::scan(),
        })
    }

    /// What is watched.
    pub fn selection(&self) -> &Selection {
        &self.selection
    }

    /// The watch so far.
    pub fn summary(&self) -> Summary {
        let mut summary = self.summary.clone();
        summary.duration_seconds = self.started.elapsed().as_secs_f64();
        summary
    }

    /// Gives the words of the stall of connection `id` (its first diagnosis).
    pub fn describe_stall(&mut self, id: &str, words: &str) {
        if let Some(stall) = self
            .summary
            .stalls
            .iter_mut()
            .rev()
            .find(|s| s.id == id && s.summary.is_empty())
        {
            stall.summary = words.to_string();
        }
    }

    /// The ids of the connections that stalled in the latest sample.
    pub fn new_stalls(&self) -> &[String] {
        &self.new_stalls
    }

    /// Takes a sample.
    pub fn sample(&mut self) -> io::Result<Frame> {
        let now = Instant::now();
        let at_seconds = (now - self.started).as_secs_f64();
        let dt = self.last_sample.map(|t| (now - t).as_secs_f64());
        self.last_sample = Some(now);
        self.new_stalls.clear();
        let sockets = self.diag.dump()?;
        self.refresh_owners(&sockets);
        let inodes = self.selection.inodes(&self.owners);
        let by_names: HashMap<Key, &TcpSocket> = sockets
            .iter()
            .filter(|s| !s.is_listening())
            .map(|s| ((s.local, s.remote), s))
            .collect();
        let listening: HashSet<u16> = sockets
            .iter()
            .filter(|s| s.is_listening())
            .map(|s| s.local.port())
            .collect();
        for track in self.tracks.values_mut() {
            track.seen = false;
        }
        let mut frame = Frame {
            at_seconds,
            ..Frame::default()
        };
        let mut done: HashSet<Key> = HashSet::new();
        let mut pairs = Vec::new();
        for socket in &sockets {
            if !self.selection.matches(socket, &inodes) {
                continue;
            }
            if socket.is_listening() {
                frame
                    .listeners
                    .push(listener(socket, &self.owners, at_seconds));
                continue;
            }
            let peer = by_names.get(&(socket.remote, socket.local)).copied();
            let (a, b) = self.order(socket, peer, &inodes);
            let key = (a.local, a.remote);
            if !done.insert(key) {
                continue;
            }
            // A closed connection lingering in TIME_WAIT is shown only when it was
            // watched while open.
            if a.diag.inode == 0
                && b.is_none_or(|b| b.diag.inode == 0)
                && !self.tracks.contains_key(&key)
            {
                continue;
            }
            pairs.push(self.track(a, b, &listening, now, dt, at_seconds));
        }
        frame.total_connections = pairs.len();
        // Only the rows shown are built: thousands of connections cost their
        // figures, not their words.
        pairs.sort_by(|x, y| activity(y).total_cmp(&activity(x)));
        pairs.truncate(self.opts.top);
        for pair in pairs {
            let conn = self.row(pair, now, at_seconds);
            frame.connections.push(conn);
        }
        self.closed(&mut frame, at_seconds);
        frame.by_kind = self.kinds(&frame);
        let unknown_owner = frame
            .connections
            .iter()
            .flat_map(|c| &c.ends)
            .filter_map(|e| e.owner_unknown.as_deref())
            .chain(
                frame
                    .listeners
                    .iter()
                    .filter_map(|l| l.owner_unknown.as_deref()),
            )
            .find(|why| why.contains("root"));
        frame.note = if frame.total_connections == 0 && frame.listeners.is_empty() {
            Some(nothing_selected(&self.selection))
        } else {
            unknown_owner.map(|why| format!("some owners are not known: {why}"))
        };
        frame.sample_us = now.elapsed().as_micros().try_into().unwrap_or(u64::MAX);
        self.summary.samples += 1;
        self.summary.slowest_sample_us = self.summary.slowest_sample_us.max(frame.sample_us);
        Ok(frame)
    }

    /// Reads /proc again only when a socket that matters has no known owner: for a
    /// process's sockets, any socket at all (it may be the process's new one); for
    /// a port, the sockets on it.
    fn refresh_owners(&mut self, sockets: &[TcpSocket]) {
        let none = HashSet::new();
        let selection = &self.selection;
        let wanted = sockets
            .iter()
            .filter(|s| matches!(selection, Selection::Process(_)) || selection.matches(s, &none))
            .map(|s| u64::from(s.diag.inode))
            .filter(|&inode| inode != 0);
        self.owners.refresh(wanted);
    }

    /// How many connections and listeners have each diagnosis.
    fn kinds(&self, frame: &Frame) -> Vec<(Health, usize)> {
        let mut kinds: Vec<(Health, usize)> = Vec::new();
        for kind in self
            .tracks
            .values()
            .filter(|t| t.seen)
            .map(|t| t.kind)
            .chain(frame.listeners.iter().map(|l| l.diagnosis.kind))
        {
            match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((kind, 1)),
            }
        }
        kinds
    }

    /// Which end is `a`: the client's (the end away from the selected port), or the
    /// selected process's, or the lower address.
    fn order<'s>(
        &self,
        socket: &'s TcpSocket,
        peer: Option<&'s TcpSocket>,
        inodes: &HashSet<u64>,
    ) -> (&'s TcpSocket, Option<&'s TcpSocket>) {
        let Some(peer) = peer else {
            return (socket, None);
        };
        let socket_first = match self.selection.port() {
            Some(port) if socket.local.port() != peer.local.port() => socket.local.port() != port,
            _ if self.selection.port().is_none() => {
                let mine = |s: &TcpSocket| inodes.contains(&u64::from(s.diag.inode));
                match (mine(socket), mine(peer)) {
                    (true, false) => true,
                    (false, true) => false,
                    _ => socket.local <= peer.local,
                }
            }
            _ => socket.local <= peer.local,
        };
        if socket_first {
            (socket, Some(peer))
        } else {
            (peer, Some(socket))
        }
    }

    /// Brings a connection's track up to date and diagnoses it.
    fn track<'s>(
        &mut self,
        a: &'s TcpSocket,
        b: Option<&'s TcpSocket>,
        listening: &HashSet<u16>,
        now: Instant,
        dt: Option<f64>,
        at_seconds: f64,
    ) -> Pair<'s> {
        let key = (a.local, a.remote);
        // The server's end is the one on a listening port.
        let client = match (
            listening.contains(&a.local.port()),
            listening.contains(&a.remote.port()),
        ) {
            (true, false) => Some(Side::B),
            (false, true) => Some(Side::A),
            _ => None,
        };
        let moved = match b {
            Some(b) => (sent(a).max(received(b)), sent(b).max(received(a))),
            None => (sent(a), received(a)),
        };
        let retransmits = retransmits(a) + b.map_or(0, retransmits);
        let closed_window = window_closed(a) || b.is_some_and(window_closed);
        if !self.tracks.contains_key(&key) {
            self.summary.connections_seen += 1;
        }
        let track = self.tracks.entry(key).or_insert_with(|| Track {
            moved,
            moved_at: now,
            closed_window_since: None,
            retransmits,
            kind: Health::Idle,
            kind_since: now,
            stalled: false,
            seen: true,
            last: None,
        });
        track.seen = true;
        let delta = (
            moved.0.saturating_sub(track.moved.0),
            moved.1.saturating_sub(track.moved.1),
        );
        if delta != (0, 0) {
            track.moved_at = now;
        }
        let per_sec = |n: u64| dt.filter(|&d| d > 0.0).map_or(0.0, |d| n as f64 / d);
        track.closed_window_since = match (closed_window, track.closed_window_since) {
            (false, _) => None,
            (true, None) => Some(now),
            (true, since) => since,
        };
        let observed = Observed {
            a: figures(a),
            b: b.map(figures),
            backlog: None,
            quiet_for: now - track.moved_at,
            zero_window_for: track
                .closed_window_since
                .map_or(Duration::ZERO, |t| now - t),
            a_to_b: moved.0,
            b_to_a: moved.1,
            rate: per_sec(delta.0 + delta.1),
            rate_a_to_b: per_sec(delta.0),
            rate_b_to_a: per_sec(delta.1),
            retransmits_rising: retransmits > track.retransmits,
            stall_after: self.opts.stall_after,
            client,
        };
        track.moved = moved;
        track.retransmits = retransmits;
        let diagnosis = connection::diagnose(&observed);
        if diagnosis.kind != track.kind {
            track.kind = diagnosis.kind;
            track.kind_since = now;
        }
        if is_stall(diagnosis.kind) && !track.stalled {
            track.stalled = true;
            let id = format!("{}-{}", a.local, a.remote);
            self.new_stalls.push(id.clone());
            if self.summary.stalls.len() < MAX_STALLS {
                self.summary.stalls.push(Stall {
                    at_seconds,
                    id,
                    diagnosis,
                    summary: String::new(),
                });
            }
        }
        Pair {
            a,
            b,
            observed,
            diagnosis,
            rates: (per_sec(delta.0), per_sec(delta.1)),
        }
    }

    /// The row shown for a connection.
    fn row(&mut self, pair: Pair<'_>, now: Instant, at_seconds: f64) -> Connection {
        let Pair {
            a,
            b,
            observed,
            diagnosis,
            rates,
        } = pair;
        let mut ends = vec![end(a, &self.owners, rates.0, rates.1)];
        if let Some(b) = b {
            ends.push(end(b, &self.owners, rates.1, rates.0));
        }
        let track = self.tracks.get_mut(&(a.local, a.remote));
        let conn = Connection {
            at_seconds,
            id: format!("{}-{}", a.local, a.remote),
            ends,
            one_sided: b.is_none(),
            diagnosis,
            summary: String::new(),
            diagnosis_for_seconds: track
                .as_ref()
                .map_or(0.0, |t| (now - t.kind_since).as_secs_f64()),
            observed,
        };
        if let Some(track) = track {
            track.last = Some(conn.clone());
        }
        conn
    }

    /// Connections that were watched and are gone: shown once more, closed.
    fn closed(&mut self, frame: &mut Frame, at_seconds: f64) {
        let gone: Vec<Key> = self
            .tracks
            .iter()
            .filter(|(_, t)| !t.seen)
            .map(|(k, _)| *k)
            .collect();
        for key in gone {
            let Some(mut conn) = self.tracks.remove(&key).and_then(|t| t.last) else {
                continue;
            };
            conn.at_seconds = at_seconds;
            for end in &mut conn.ends {
                end.state = "CLOSE";
                end.send_rate_bytes_per_sec = 0.0;
                end.recv_rate_bytes_per_sec = 0.0;
            }
            conn.diagnosis = connection::ConnectionDiagnosis {
                kind: Health::Closing,
                culprit: None,
            };
            conn.diagnosis_for_seconds = 0.0;
            conn.observed.a.state = 7;
            if let Some(b) = &mut conn.observed.b {
                b.state = 7;
            }
            frame.connections.push(conn);
        }
    }
}

/// Why nothing is shown: nothing there yet, a process gone, or one whose sockets
/// this user may not see.
fn nothing_selected(selection: &Selection) -> String {
    if let Selection::Process(pid) = selection {
        if !crate::observe::owners::exists(*pid) {
            return format!("process {pid} has exited");
        }
        if let Err(e) = std::fs::read_dir(format!("/proc/{pid}/fd"))
            && e.kind() == io::ErrorKind::PermissionDenied
        {
            return format!(
                "process {pid}'s sockets cannot be seen: another user's process: run as root"
            );
        }
    }
    format!("no connection on {} yet", selection.describe())
}

/// Kinds that are a stall: something should move and does not.
pub fn is_stall(kind: Health) -> bool {
    matches!(
        kind,
        Health::Deadlock | Health::ReceiverNotReading | Health::WaitingForEndOfStream
    )
}

/// A connection sampled: its sockets, figures and diagnosis, before its row is built.
struct Pair<'s> {
    a: &'s TcpSocket,
    b: Option<&'s TcpSocket>,
    observed: Observed,
    diagnosis: connection::ConnectionDiagnosis,
    /// Bytes per second `a`→`b` and `b`→`a`.
    rates: (f64, f64),
}

/// How busy a connection is, for choosing the top ones: stalls first, then its
/// rate, then what its queues hold.
fn activity(p: &Pair<'_>) -> f64 {
    let queues = |f: &EndFigures| f.queues.recv_queue + f.queues.send_queue;
    let queued = queues(&p.observed.a) + p.observed.b.as_ref().map_or(0, queues);
    let stalled = if is_stall(p.diagnosis.kind) {
        1e15
    } else {
        0.0
    };
    stalled + p.observed.rate + queued as f64 * 1e-3
}

/// Bytes `s` sent that its peer acknowledged (the kernel counts the SYN, and a FIN,
/// as one byte each; both are left out).
fn sent(s: &TcpSocket) -> u64 {
    let acked = s.info.and_then(|i| i.bytes_acked).unwrap_or(0);
    let fin = u64::from(s.shut_wr && s.diag.queues.send_queue == 0 && acked > 1);
    acked.saturating_sub(1 + fin)
}

/// Bytes `s` received (a FIN received is not counted by the kernel here).
fn received(s: &TcpSocket) -> u64 {
    s.info.and_then(|i| i.bytes_received).unwrap_or(0)
}

fn retransmits(s: &TcpSocket) -> u32 {
    s.info.map_or(0, |i| i.total_retrans)
}

/// The peer's window is closed: the persist timer probes it.
fn window_closed(s: &TcpSocket) -> bool {
    matches!(s.timer, Timer::Persist { .. }) || s.info.and_then(|i| i.snd_wnd) == Some(0)
}

/// Zero-window probes sent while the window stays closed. A peer that answers each
/// probe (with its window still zero) resets `tcpi_probes`; the persist timer's
/// backoff, which doubles its wait after each unanswered window, keeps counting.
fn probes(s: &TcpSocket) -> u8 {
    s.info.map_or(0, |i| i.probes.max(i.backoff))
}

fn figures(s: &TcpSocket) -> EndFigures {
    EndFigures {
        state: s.diag.state,
        queues: s.diag.queues,
        peer_window: s.info.and_then(|i| i.snd_wnd),
        zero_window_probes: matches!(s.timer, Timer::Persist { .. }).then(|| probes(s)),
        retransmits: retransmits(s),
        sent_fin: s.shut_wr,
    }
}

/// Who holds `s`, or why that is not known.
fn owner_of(s: &TcpSocket, owners: &Owners) -> (Option<Owner>, Option<String>) {
    if s.diag.inode == 0 {
        let why = match s.diag.state_name() {
            "TIME_WAIT" => "no process holds it: TIME_WAIT",
            "ESTABLISHED" | "SYN_RECV" | "NEW_SYN_RECV" | "CLOSE_WAIT" => {
                "no process holds it yet: it waits in the listener's accept queue"
            }
            _ => "no process holds it any more: its program closed it",
        };
        return (None, Some(why.to_string()));
    }
    match owners.owner(u64::from(s.diag.inode)) {
        Ok(owner) => (Some(owner.clone()), None),
        Err(why) => (None, Some(why.to_string())),
    }
}

fn end(s: &TcpSocket, owners: &Owners, send_rate: f64, recv_rate: f64) -> End {
    let (owner, owner_unknown) = owner_of(s, owners);
    let persist = matches!(s.timer, Timer::Persist { .. });
    End {
        local: s.local,
        remote: s.remote,
        state: state_name(s.diag.state),
        owner,
        owner_unknown,
        recv_queue: s.diag.queues.recv_queue,
        send_queue: s.diag.queues.send_queue,
        rcvbuf: s.diag.queues.rcvbuf,
        sndbuf: s.diag.queues.sndbuf,
        bytes_sent: sent(s),
        bytes_received: received(s),
        send_rate_bytes_per_sec: send_rate,
        recv_rate_bytes_per_sec: recv_rate,
        peer_window: s.info.and_then(|i| i.snd_wnd),
        rwnd_limited_us: s.info.and_then(|i| i.rwnd_limited),
        sndbuf_limited_us: s.info.and_then(|i| i.sndbuf_limited),
        persist_timer: persist,
        zero_window_probes: if persist { probes(s) } else { 0 },
        retransmits: retransmits(s),
        notsent_bytes: s.info.and_then(|i| i.notsent_bytes),
    }
}

fn listener(s: &TcpSocket, owners: &Owners, at_seconds: f64) -> Listener {
    let (owner, owner_unknown) = owner_of(s, owners);
    let backlog = Backlog {
        queued: s.diag.queues.recv_queue,
        limit: s.diag.queues.send_queue,
    };
    let diagnosis = connection::diagnose(&Observed {
        a: figures(s),
        backlog: Some(backlog),
        ..Observed::default()
    });
    Listener {
        at_seconds,
        local: s.local,
        owner,
        owner_unknown,
        accept_queue: backlog.queued,
        backlog: backlog.limit,
        diagnosis,
        summary: String::new(),
    }
}
