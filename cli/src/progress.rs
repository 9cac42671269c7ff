//! Build progress for people and tools, in buildx's modes: `plain` (the
//! BuildKit log format CI users grep, with `CACHED` marks), `tty` (a live
//! view: one line per running step with its timer and output tail),
//! `rawjson` (one JSON event per line, with timestamps) and `quiet`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use kiln_solver::graph::VertexId;
use kiln_solver::scheduler::Event;

/// `--progress` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `tty` when stderr is a terminal, else `plain`.
    Auto,
    /// A live view that redraws in place.
    Tty,
    /// Line-oriented logs.
    Plain,
    /// One JSON object per event.
    Rawjson,
    /// Nothing.
    Quiet,
}

impl Mode {
    /// Resolves `auto` against whether stderr is a terminal.
    pub fn resolve(self) -> Mode {
        match self {
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Tty,
            Mode::Auto => Mode::Plain,
            m => m,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Running { since: Duration },
    Cached,
    Done { took: Duration },
    Failed,
}

struct Step {
    number: usize,
    name: String,
    state: State,
    /// Bytes of output after the last newline, per stream.
    partial: [Vec<u8>; 2],
    /// Last lines of output, for the live view.
    tail: Vec<String>,
}

/// Lines of output kept per running step in the live view.
const TAIL_LINES: usize = 6;

/// Turns solver events into progress output on a writer.
pub struct Printer<W: Write> {
    mode: Mode,
    out: W,
    names: HashMap<VertexId, String>,
    steps: HashMap<VertexId, Step>,
    order: Vec<VertexId>,
    /// Lines the live view drew last time, to move back over them.
    drawn: usize,
}

impl<W: Write> Printer<W> {
    /// A printer in `mode` (already resolved) for vertices named by `names`.
    pub fn new(mode: Mode, out: W, names: HashMap<VertexId, String>) -> Self {
        Printer {
            mode,
            out,
            names,
            steps: HashMap::new(),
            order: Vec::new(),
            drawn: 0,
        }
    }

    fn step(&mut self, vertex: VertexId, now: Duration) -> &mut Step {
        let number = self.steps.len() + 1;
        let name = self
            .names
            .get(&vertex)
            .cloned()
            .unwrap_or_else(|| format!("vertex {}", vertex.0));
        if !self.steps.contains_key(&vertex) {
            self.order.push(vertex);
        }
        self.steps.entry(vertex).or_insert(Step {
            number,
            name,
            state: State::Running { since: now },
            partial: [Vec::new(), Vec::new()],
            tail: Vec::new(),
        })
    }

    /// Shows one event that happened `now` after the build started.
    /// Output errors are ignored: progress must never fail a build.
    pub fn event(&mut self, event: &Event, now: Duration) {
        let vertex = event.vertex();
        // Unnamed vertices are internal plumbing (the empty filesystem
        // under a COPY --link): BuildKit does not show them either.
        if self.names.get(&vertex).is_some_and(String::is_empty) {
            return;
        }
        let _ = match self.mode {
            Mode::Quiet => Ok(()),
            Mode::Rawjson => self.json(event, now),
            Mode::Plain => self.plain(event, now),
            Mode::Tty | Mode::Auto => self.live(event, now),
        };
    }

    /// Redraws the live view so its timers move (tty mode only).
    pub fn tick(&mut self, now: Duration) {
        if matches!(self.mode, Mode::Tty | Mode::Auto) {
            let _ = self.redraw(now);
        }
    }

    /// Flushes what is left (partial lines) at the end of the build.
    pub fn finish(&mut self, now: Duration) {
        if matches!(self.mode, Mode::Tty | Mode::Auto) {
            let _ = self.redraw(now);
        }
        let _ = self.out.flush();
    }

    fn plain(&mut self, event: &Event, now: Duration) -> std::io::Result<()> {
        let vertex = event.vertex();
        let announced = self.steps.contains_key(&vertex);
        if !announced && !matches!(event, Event::Started { .. } | Event::Cached { .. }) {
            let s = self.step(vertex, now);
            let (n, name) = (s.number, s.name.clone());
            writeln!(self.out, "#{n} {name}")?;
        }
        match event {
            Event::Started { vertex } => {
                let s = self.step(*vertex, now);
                let (n, name) = (s.number, s.name.clone());
                writeln!(self.out, "#{n} {name}")
            }
            Event::Cached { vertex } => {
                let s = self.step(*vertex, now);
                s.state = State::Cached;
                let (n, name) = (s.number, s.name.clone());
                write!(self.out, "#{n} {name}\n#{n} CACHED\n\n")
            }
            Event::Log {
                vertex,
                stream,
                data,
            } => {
                let s = self.step(*vertex, now);
                let since = match s.state {
                    State::Running { since } => now.saturating_sub(since),
                    _ => Duration::ZERO,
                };
                let n = s.number;
                let lines = take_lines(&mut s.partial[stream_index(*stream)], data);
                for line in lines {
                    writeln!(self.out, "#{n} {:.3} {line}", since.as_secs_f64())?;
                }
                Ok(())
            }
            Event::Finished { vertex, elapsed } => {
                let s = self.step(*vertex, now);
                s.state = State::Done { took: *elapsed };
                let n = s.number;
                let rest = flush_partial(s);
                for line in rest {
                    writeln!(self.out, "#{n} {line}")?;
                }
                write!(self.out, "#{n} DONE {:.1}s\n\n", elapsed.as_secs_f64())
            }
            Event::Failed { vertex, message } => {
                let s = self.step(*vertex, now);
                s.state = State::Failed;
                let n = s.number;
                let rest = flush_partial(s);
                for line in rest {
                    writeln!(self.out, "#{n} {line}")?;
                }
                write!(self.out, "#{n} ERROR: {message}\n\n")
            }
        }
    }

    fn json(&mut self, event: &Event, now: Duration) -> std::io::Result<()> {
        let ms = now.as_secs_f64() * 1000.0;
        let (vertex, kind, extra) = match event {
            Event::Started { vertex } => (*vertex, "started", serde_json::json!({})),
            Event::Cached { vertex } => (*vertex, "cached", serde_json::json!({})),
            Event::Log {
                vertex,
                stream,
                data,
            } => (
                *vertex,
                "log",
                serde_json::json!({"stream": stream, "data": String::from_utf8_lossy(data)}),
            ),
            Event::Finished { vertex, elapsed } => (
                *vertex,
                "done",
                serde_json::json!({"elapsedMs": elapsed.as_secs_f64() * 1000.0}),
            ),
            Event::Failed { vertex, message } => {
                (*vertex, "error", serde_json::json!({"error": message}))
            }
        };
        let s = self.step(vertex, now);
        let mut obj = serde_json::json!({
            "timeMs": ms,
            "step": s.number,
            "vertex": vertex.0,
            "name": s.name,
            "event": kind,
        });
        if let (Some(o), serde_json::Value::Object(e)) = (obj.as_object_mut(), extra) {
            o.extend(e);
        }
        writeln!(self.out, "{obj}")
    }

    fn live(&mut self, event: &Event, now: Duration) -> std::io::Result<()> {
        match event {
            Event::Started { vertex } => {
                self.step(*vertex, now);
            }
            Event::Cached { vertex } => self.step(*vertex, now).state = State::Cached,
            Event::Log {
                vertex,
                stream,
                data,
            } => {
                let s = self.step(*vertex, now);
                let lines = take_lines(&mut s.partial[stream_index(*stream)], data);
                s.tail.extend(lines);
                let extra = s.tail.len().saturating_sub(TAIL_LINES);
                s.tail.drain(..extra);
            }
            Event::Finished { vertex, elapsed } => {
                self.step(*vertex, now).state = State::Done { took: *elapsed }
            }
            Event::Failed { vertex, .. } => self.step(*vertex, now).state = State::Failed,
        }
        self.redraw(now)
    }

    /// Finished steps scroll away above; running ones stay in a live area
    /// at the bottom that is redrawn in place.
    fn redraw(&mut self, now: Duration) -> std::io::Result<()> {
        let mut text = String::new();
        if self.drawn > 0 {
            text.push_str(&format!("\x1b[{}A\x1b[J", self.drawn));
        }
        let mut live_lines = 0;
        let mut settled = Vec::new();
        for v in &self.order {
            let s = &self.steps[v];
            match &s.state {
                State::Cached => settled.push(format!(" => CACHED {}\n", s.name)),
                State::Done { took } => {
                    settled.push(format!(" => {} {:.1}s\n", s.name, took.as_secs_f64()))
                }
                State::Failed => settled.push(format!(" => ERROR {}\n", s.name)),
                State::Running { since } => {
                    text.push_str(&format!(
                        " => {} {:.1}s\n",
                        s.name,
                        now.saturating_sub(*since).as_secs_f64()
                    ));
                    live_lines += 1;
                    for line in &s.tail {
                        text.push_str(&format!(" => > {line}\n"));
                        live_lines += 1;
                    }
                }
            }
        }
        // Settled steps are printed once, before the live area, and dropped
        // from the redraw set.
        let settled_text: String = settled.concat();
        self.order
            .retain(|v| matches!(self.steps[v].state, State::Running { .. }));
        let prefix_len = if self.drawn > 0 {
            format!("\x1b[{}A\x1b[J", self.drawn).len()
        } else {
            0
        };
        text.insert_str(prefix_len, &settled_text);
        self.drawn = live_lines;
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }
}

fn stream_index(stream: u8) -> usize {
    usize::from(stream == 2)
}

/// Appends `data` to `partial` and returns the complete lines it now holds.
fn take_lines(partial: &mut Vec<u8>, data: &[u8]) -> Vec<String> {
    partial.extend_from_slice(data);
    let Some(last_nl) = partial.iter().rposition(|&b| b == b'\n') else {
        return Vec::new();
    };
    let rest = partial.split_off(last_nl + 1);
    let whole = std::mem::replace(partial, rest);
    String::from_utf8_lossy(&whole[..whole.len() - 1])
        .split('\n')
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect()
}

fn flush_partial(step: &mut Step) -> Vec<String> {
    step.partial
        .iter_mut()
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(&std::mem::take(p)).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> HashMap<VertexId, String> {
        [
            (VertexId(0), "[1/3] FROM busybox".to_string()),
            (VertexId(1), "[2/3] RUN echo hi".to_string()),
            (VertexId(2), "[3/3] COPY a /a".to_string()),
        ]
        .into_iter()
        .collect()
    }

    fn run(mode: Mode) -> String {
        let mut p = Printer::new(mode, Vec::new(), names());
        let ms = Duration::from_millis;
        p.event(
            &Event::Cached {
                vertex: VertexId(0),
            },
            ms(1),
        );
        p.event(
            &Event::Started {
                vertex: VertexId(1),
            },
            ms(10),
        );
        p.event(
            &Event::Log {
                vertex: VertexId(1),
                stream: 1,
                data: b"h".to_vec(),
            },
            ms(20),
        );
        p.event(
            &Event::Log {
                vertex: VertexId(1),
                stream: 1,
                data: b"i\nthere\nno newline".to_vec(),
            },
            ms(260),
        );
        p.event(
            &Event::Finished {
                vertex: VertexId(1),
                elapsed: ms(300),
            },
            ms(310),
        );
        p.event(
            &Event::Failed {
                vertex: VertexId(2),
                message: "no source files were specified".into(),
            },
            ms(320),
        );
        p.finish(ms(330));
        String::from_utf8(p.out).unwrap()
    }

    #[test]
    fn plain_matches_buildkits_log_format() {
        assert_eq!(
            run(Mode::Plain),
            "#1 [1/3] FROM busybox\n#1 CACHED\n\n\
             #2 [2/3] RUN echo hi\n\
             #2 0.250 hi\n#2 0.250 there\n#2 no newline\n#2 DONE 0.3s\n\n\
             #3 [3/3] COPY a /a\n#3 ERROR: no source files were specified\n\n"
        );
    }

    #[test]
    fn rawjson_is_one_object_per_event_with_times() {
        let out = run(Mode::Rawjson);
        let events: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let kinds: Vec<&str> = events
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["cached", "started", "log", "log", "done", "error"]);
        assert_eq!(events[1]["timeMs"], 10.0);
        assert_eq!(events[1]["name"], "[2/3] RUN echo hi");
        assert_eq!(events[3]["data"], "i\nthere\nno newline");
        assert_eq!(events[4]["elapsedMs"], 300.0);
    }

    #[test]
    fn quiet_prints_nothing() {
        assert_eq!(run(Mode::Quiet), "");
    }

    #[test]
    fn the_live_view_settles_finished_steps_and_shows_running_output() {
        let out = run(Mode::Tty);
        assert!(out.contains(" => CACHED [1/3] FROM busybox\n"), "{out}");
        assert!(out.contains(" => > there\n"), "{out}");
        assert!(out.contains(" => [2/3] RUN echo hi 0.3s\n"), "{out}");
        assert!(out.contains(" => ERROR [3/3] COPY a /a\n"), "{out}");
        // Each settled step is printed once.
        assert_eq!(out.matches("CACHED [1/3]").count(), 1, "{out}");
    }
}
