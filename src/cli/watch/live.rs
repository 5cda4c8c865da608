//! `tcplab watch` on a terminal: each sample redrawn in place on the alternate
//! screen — a header with the counts per diagnosis, each listener's accept queue,
//! and per connection both ends' owners and queue bars and the diagnosis, lit up
//! while it is new — until q, Esc or Ctrl-C. [`render`] makes the lines (pure, so
//! tested without a terminal); [`Live`] draws them with crossterm.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::style::{Attribute, Color, Print, SetAttribute, SetForegroundColor};
use crossterm::terminal::{self, ClearType};
use crossterm::{cursor, execute, queue};

use tcplab::human;
use tcplab::observe::connection::Health;
use tcplab::watch::model::{Connection, End, Frame, Listener, Owner};

/// A diagnosis younger than this is drawn lit up: it just changed.
const FRESH_SECONDS: f64 = 2.0;

/// Characters inside a queue bar's brackets.
const BAR_WIDTH: usize = 10;

/// How a line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// As it is.
    Plain,
    /// The header: bold.
    Title,
    /// A diagnosis that changed in the last [`FRESH_SECONDS`]: reverse video, bold.
    Fresh,
    /// A diagnosis that needs someone to act: bold red.
    Trouble,
    /// Bytes move: green.
    Good,
    /// Less important (what did not fit): dim.
    Faint,
}

/// One line of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its text, at most the terminal's width.
    pub text: String,
    /// How it is drawn.
    pub style: Style,
}

/// Set while a [`Live`] holds the terminal, so that a panic's message is printed
/// on a restored one.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The terminal, in raw mode on the alternate screen with the cursor hidden, until
/// dropped.
pub struct Live {
    out: io::Stdout,
    /// The header's title: the command as typed, which says what is watched.
    title: String,
}

impl Live {
    /// Takes the terminal: the alternate screen, raw mode (keys one at a time,
    /// Ctrl-C a key), the cursor hidden.
    pub fn start() -> io::Result<Live> {
        install_panic_hook();
        let mut live = Live {
            out: io::stdout(),
            title: std::env::args()
                .skip(1)
                .fold("tcplab".into(), |t, a| t + " " + &a),
        };
        // From here a failure still restores the terminal: `live` is dropped.
        ACTIVE.store(true, Ordering::SeqCst);
        terminal::enable_raw_mode()?;
        execute!(live.out, terminal::EnterAlternateScreen, cursor::Hide)?;
        live.out.flush()?;
        Ok(live)
    }

    /// Draws one sample over the last, fitted to the terminal's size now.
    pub fn draw(&mut self, frame: &Frame) -> io::Result<()> {
        let (width, height) = terminal::size()?;
        let lines = render(frame, &self.title, width, height);
        // One write per frame: no half-drawn screen shows.
        let mut buf = Vec::with_capacity(usize::from(width) * usize::from(height) * 2);
        for (row, line) in (0u16..).zip(&lines) {
            queue!(buf, cursor::MoveTo(0, row))?;
            let (attributes, colour): (&[Attribute], _) = match line.style {
                Style::Plain => (&[], None),
                Style::Title => (&[Attribute::Bold], None),
                Style::Fresh => (&[Attribute::Reverse, Attribute::Bold], None),
                Style::Trouble => (&[Attribute::Bold], Some(Color::Red)),
                Style::Good => (&[], Some(Color::Green)),
                Style::Faint => (&[Attribute::Dim], None),
            };
            for &a in attributes {
                queue!(buf, SetAttribute(a))?;
            }
            if let Some(colour) = colour {
                queue!(buf, SetForegroundColor(colour))?;
            }
            queue!(
                buf,
                Print(&line.text),
                SetAttribute(Attribute::Reset),
                terminal::Clear(ClearType::UntilNewLine)
            )?;
        }
        let below = u16::try_from(lines.len()).unwrap_or(u16::MAX);
        if below < height {
            queue!(
                buf,
                cursor::MoveTo(0, below),
                terminal::Clear(ClearType::FromCursorDown)
            )?;
        }
        self.out.write_all(&buf)?;
        self.out.flush()
    }

    /// Waits up to `timeout` for a key; true when it is q, Q, Esc or Ctrl-C (quit).
    /// Other keys and resizes are passed over (the next draw takes the new size).
    pub fn wait_key(&mut self, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if !event::poll(left)? {
                return Ok(false);
            }
            if let Event::Key(key) = event::read()?
                && key.kind != KeyEventKind::Release
                && quits(key.code, key.modifiers)
            {
                return Ok(true);
            }
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        restore();
    }
}

/// True for the keys that end the watch.
fn quits(code: KeyCode, modifiers: KeyModifiers) -> bool {
    match code {
        KeyCode::Char('q' | 'Q') | KeyCode::Esc => true,
        KeyCode::Char('c' | 'C') => modifiers.contains(KeyModifiers::CONTROL),
        _ => false,
    }
}

/// Gives the terminal back as it was, once, if a [`Live`] holds it: the main
/// screen, the cursor, cooked mode. Errors are passed over: there is nowhere
/// left to report them.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let mut out = io::stdout();
        let _ = execute!(out, SetAttribute(Attribute::Reset), cursor::Show);
        let _ = execute!(out, terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
        let _ = out.flush();
    }
}

/// Restores the terminal before a panic's message is printed (dropping the
/// [`Live`] while unwinding would come after it, and raw mode on the alternate
/// screen would garble or hide it). Installed once.
fn install_panic_hook() {
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    if INSTALLED.swap(true, Ordering::SeqCst) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}

/// The view of one sample as lines at most `width` characters long and at most
/// `height` of them: the header (`title` first), the listeners, then as many whole connections
/// as fit (the busiest first, as the frame has them) and "… N more connections"
/// for the rest.
pub fn render(frame: &Frame, title: &str, width: u16, height: u16) -> Vec<Line> {
    let height = usize::from(height);
    let mut lines = header(frame, title);
    let width = usize::from(width);
    for listener in &frame.listeners {
        lines.extend(listener_lines(listener, width));
    }
    let mut shown = 0;
    for (i, conn) in frame.connections.iter().enumerate() {
        let block = connection_lines(conn, width);
        let more_after = frame.total_connections.max(frame.connections.len()) > i + 1;
        if lines.len() + block.len() + usize::from(more_after) > height {
            break;
        }
        lines.extend(block);
        shown += 1;
    }
    let more = frame.total_connections.max(frame.connections.len()) - shown;
    if more > 0 {
        lines.truncate(height.saturating_sub(1));
        let words = human::count(more as u64, "more connection", "more connections");
        lines.push(line(format!("… {words}"), Style::Faint));
    }
    lines.truncate(height);
    for l in &mut lines {
        l.text = fit(&l.text, width);
    }
    lines
}

/// A diagnosis, `  → ` and its words wrapped at spaces to `width`, at most
/// [`SAID_LINES`] lines (the last cut), continued lines indented under the words.
fn said_lines(summary: &str, kind: Health, style: Style, width: usize) -> Vec<Line> {
    let text = said(summary, kind);
    let room = width.saturating_sub(4).max(20);
    let mut rows: Vec<String> = Vec::new();
    let mut row = String::new();
    for word in text.split(' ') {
        if !row.is_empty() && row.chars().count() + 1 + word.chars().count() > room {
            rows.push(std::mem::take(&mut row));
        }
        if !row.is_empty() {
            row.push(' ');
        }
        row.push_str(word);
    }
    rows.push(row);
    if rows.len() > SAID_LINES {
        let rest = rows.split_off(SAID_LINES - 1).join(" ");
        rows.push(rest);
    }
    rows.into_iter()
        .enumerate()
        .map(|(i, r)| {
            line(
                format!("{}{r}", if i == 0 { "  → " } else { "    " }),
                style,
            )
        })
        .collect()
}

/// Most lines a diagnosis takes.
const SAID_LINES: usize = 3;

/// The title, when, how many, and how many of each diagnosis.
fn header(frame: &Frame, title: &str) -> Vec<Line> {
    let mut lines = vec![line(
        format!(
            "{title}  {:.1} s  {}, {}  sample {:.1} ms  (q quits)",
            frame.at_seconds,
            human::count(frame.total_connections as u64, "connection", "connections"),
            human::count(frame.listeners.len() as u64, "listener", "listeners"),
            frame.sample_us as f64 / 1000.0,
        ),
        Style::Title,
    )];
    if !frame.by_kind.is_empty() {
        let counts: Vec<String> = frame
            .by_kind
            .iter()
            .map(|(kind, n)| format!("{} {n}", kind_name(*kind)))
            .collect();
        lines.push(line(counts.join(" · "), Style::Plain));
    }
    if let Some(note) = &frame.note {
        lines.push(line(note.clone(), Style::Plain));
    }
    lines.push(line(String::new(), Style::Plain));
    lines
}

/// A listener: its address, owner and accept queue, then its diagnosis.
fn listener_lines(l: &Listener, width: usize) -> Vec<Line> {
    let kind = l.diagnosis.kind;
    let mut lines = vec![line(
        format!(
            "listening {}  {}  accept queue {} {}/{}",
            l.local,
            owner_words(l.owner.as_ref(), l.owner_unknown.as_deref()),
            bar(l.accept_queue, l.backlog),
            l.accept_queue,
            l.backlog
        ),
        Style::Plain,
    )];
    lines.extend(said_lines(&l.summary, kind, kind_style(kind, None), width));
    lines.push(line(String::new(), Style::Plain));
    lines
}

/// A connection: its id and diagnosis kind, each end's owner and figures, its
/// diagnosis in words (lit up while new), a blank line.
fn connection_lines(c: &Connection, width: usize) -> Vec<Line> {
    let kind = c.diagnosis.kind;
    let mut lines = vec![line(
        format!(
            "{}  {} for {:.1} s",
            c.id.replacen('-', " ⇄ ", 1),
            kind_name(kind),
            c.diagnosis_for_seconds
        ),
        Style::Title,
    )];
    for end in &c.ends {
        lines.extend(end_lines(end));
    }
    if c.one_sided
        && let Some(end) = c.ends.first()
    {
        lines.push(line(
            format!("  {}  not on this machine (or not readable)", end.remote),
            Style::Plain,
        ));
    }
    lines.extend(said_lines(
        &c.summary,
        kind,
        kind_style(kind, Some(c.diagnosis_for_seconds)),
        width,
    ));
    lines.push(line(String::new(), Style::Plain));
    lines
}

/// One end: its address, state and owner; then its queues against its buffers,
/// the peer's window, the zero-window probes while the persist timer runs, rates,
/// retransmits.
fn end_lines(e: &End) -> [Line; 2] {
    let mut figures = format!(
        "    recv {} {}/{}  send {} {}/{}",
        bar(e.recv_queue, e.rcvbuf),
        human::bytes(e.recv_queue),
        human::bytes(e.rcvbuf),
        bar(e.send_queue, e.sndbuf),
        human::bytes(e.send_queue),
        human::bytes(e.sndbuf),
    );
    // What explains a stall first, so a narrow terminal still shows it.
    if let Some(window) = e.peer_window {
        figures += &format!("  window {}", human::bytes(u64::from(window)));
    }
    if e.persist_timer {
        figures += &format!("  probes {}", e.zero_window_probes);
    }
    figures += &format!(
        "  in {}/s  out {}/s  retransmits {}",
        human::bytes(e.recv_rate_bytes_per_sec.max(0.0) as u64),
        human::bytes(e.send_rate_bytes_per_sec.max(0.0) as u64),
        e.retransmits
    );
    if let Some(unsent) = e.notsent_bytes.filter(|&n| n > 0) {
        figures += &format!("  not sent {}", human::bytes(u64::from(unsent)));
    }
    let who = owner_words(e.owner.as_ref(), e.owner_unknown.as_deref());
    let at = format!("  {} {}  {who}", e.local, e.state);
    [line(at, Style::Plain), line(figures, Style::Plain)]
}

/// `python3 lab.py client … (pid 123)`, or why the owner is not known.
fn owner_words(owner: Option<&Owner>, unknown: Option<&str>) -> String {
    match (owner, unknown) {
        (Some(o), _) => format!(
            "{} (pid {})",
            super::lines::short_command(&o.command),
            o.pid
        ),
        (None, Some(why)) => format!("owner unknown: {why}"),
        (None, None) => "owner unknown".to_string(),
    }
}

/// `[#####-----]`: `used` of `of`, at least one mark when anything is used.
fn bar(used: u64, of: u64) -> String {
    let filled = if of == 0 || used == 0 {
        0
    } else {
        let share = (used as f64 / of as f64).min(1.0);
        ((share * BAR_WIDTH as f64).round() as usize).clamp(1, BAR_WIDTH)
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(BAR_WIDTH - filled))
}

/// How a diagnosis is drawn: lit up while younger than [`FRESH_SECONDS`], then by
/// what it means.
fn kind_style(kind: Health, age_seconds: Option<f64>) -> Style {
    if age_seconds.is_some_and(|a| a < FRESH_SECONDS) {
        return Style::Fresh;
    }
    match kind {
        Health::Healthy => Style::Good,
        Health::Idle | Health::Listening | Health::Closing | Health::HalfClosed => Style::Plain,
        Health::ReceiverNotReading
        | Health::Deadlock
        | Health::WaitingForEndOfStream
        | Health::NetworkLimited
        | Health::BacklogFull => Style::Trouble,
    }
}

/// A diagnosis kind in words: its JSON name (`receiver_not_reading`) spaced.
fn kind_name(kind: Health) -> String {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::String(name)) => name.replace('_', " "),
        _ => format!("{kind:?}"),
    }
}

/// The diagnosis in words, or its kind's name when it has none.
fn said(summary: &str, kind: Health) -> String {
    match summary {
        "" => kind_name(kind),
        words => words.to_string(),
    }
}

fn line(text: String, style: Style) -> Line {
    Line { text, style }
}

/// `text` cut to `width` characters, its last one `…` when cut.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    if width > 0 {
        cut.push('…');
    }
    cut
}

#[cfg(test)]
#[path = "live_tests.rs"]
mod tests;
