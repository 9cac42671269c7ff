//! Per-layer status lines for pull and push, as docker prints them: on a terminal one line
//! per layer, redrawn in place with a progress bar; elsewhere one line per status change.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::display::human_size;

/// Shortest pause between two redraws for byte counts.
const REDRAW_EVERY: Duration = Duration::from_millis(100);
/// Width of the bar between the brackets.
const BAR_WIDTH: u64 = 50;

/// The layers' lines on standard error.
pub struct LayerLines {
    tty: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// (short digest, status) in first-seen order.
    lines: Vec<(String, String)>,
    /// Lines drawn last time (the cursor sits below them).
    drawn: usize,
    last_draw: Option<Instant>,
}

impl LayerLines {
    /// Lines on standard error, redrawn in place when it is a terminal.
    pub fn new() -> LayerLines {
        LayerLines {
            tty: std::io::stderr().is_terminal(),
            state: Mutex::default(),
        }
    }

    /// Sets a layer's status (`Pull complete`, `Pushed`, ...).
    pub fn status(&self, short: &str, status: &str) {
        let mut state = self.state.lock().expect("progress lock");
        state.set(short, status.to_string());
        if self.tty {
            state.draw();
        } else {
            eprintln!("{short}: {status}");
        }
    }

    /// Sets a passing status (`Pushing`), shown on a terminal only.
    pub fn transient(&self, short: &str, status: &str) {
        if self.tty {
            let mut state = self.state.lock().expect("progress lock");
            state.set(short, status.to_string());
            state.draw();
        }
    }

    /// Shows bytes moved, on a terminal only (a log would get a line per chunk).
    pub fn bytes(&self, short: &str, verb: &str, done: u64, total: u64) {
        if !self.tty {
            return;
        }
        let mut state = self.state.lock().expect("progress lock");
        state.set(short, bar(verb, done, total));
        if state
            .last_draw
            .is_none_or(|t| t.elapsed() >= REDRAW_EVERY || done >= total)
        {
            state.draw();
        }
    }
}

impl State {
    fn set(&mut self, short: &str, status: String) {
        match self.lines.iter_mut().find(|(s, _)| s == short) {
            Some(line) => line.1 = status,
            None => self.lines.push((short.to_string(), status)),
        }
    }

    fn draw(&mut self) {
        let mut out = std::io::stderr().lock();
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A", self.drawn);
        }
        for (short, status) in &self.lines {
            let _ = writeln!(out, "\x1b[2K{short}: {status}");
        }
        let _ = out.flush();
        self.drawn = self.lines.len();
        self.last_draw = Some(Instant::now());
    }
}

/// `Downloading [=====>      ]  1.2MB/3.4MB`, docker's bar.
fn bar(verb: &str, done: u64, total: u64) -> String {
    let filled = (done.min(total) * BAR_WIDTH)
        .checked_div(total)
        .unwrap_or(0);
    let mut bar = "=".repeat(filled as usize);
    if filled < BAR_WIDTH {
        bar.push('>');
    }
    format!(
        "{verb} [{bar:<width$}] {:>7}/{}",
        human_size(done),
        human_size(total),
        width = BAR_WIDTH as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_with_the_bytes() {
        let half = bar("Downloading", 50, 100);
        assert!(
            half.starts_with("Downloading [=========================>"),
            "{half}"
        );
        assert!(half.ends_with("50B/100B"), "{half}");
        let full = bar("Downloading", 100, 100);
        assert!(full.contains(&"=".repeat(50)), "{full}");
        assert!(!full.contains('>'), "{full}");
        assert!(bar("Downloading", 0, 0).contains("[>"));
    }
}
