//! Draws an engine operation's [`Event`]s on standard error as kiln always has: a build's
//! steps through the [`Printer`] (ticking every 150 ms so the tty view's timers move), pulls
//! and pushes as docker's per-layer lines, cache and image lines as BuildKit prints them.
//!
//! The engine calls its [`Progress`] from any thread; the events go through a channel to
//! one drawing thread, so lines never interleave and keep the order they were sent in.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kiln_engine::events::short_digest;
use kiln_engine::{Event, LayerStatus, Progress, Transfer};

use crate::commands::layer_progress::LayerLines;
use crate::progress::{Mode, Printer};

/// How often the live view redraws when nothing happens.
const TICK: Duration = Duration::from_millis(150);

/// What a command shows of its events (each flag mirrors a `-q` or `--progress` rule).
#[derive(Debug, Clone, Copy)]
pub struct View {
    /// How build steps are shown.
    pub steps: Mode,
    /// Pull lines (`Pulling from`, layers, `Digest:`, `Status:`, the no-tag warning).
    pub pulls: bool,
    /// Push lines (`The push refers to`, layers, `digest: ... size:`, notes).
    pub pushes: bool,
    /// `importing cache manifest ...` and `exporting cache ...`.
    pub cache: bool,
    /// `writing image ... done` and `naming to ... done`.
    pub written: bool,
    /// The image ID on standard output once written (`build -q`).
    pub id_on_stdout: bool,
    /// The unused build args warning.
    pub unused_build_args: bool,
}

impl View {
    /// Pull or push lines only (`kiln pull`, `kiln push`), unless quiet.
    pub fn transfer(quiet: bool) -> View {
        View {
            steps: Mode::Quiet,
            pulls: !quiet,
            pushes: !quiet,
            cache: false,
            written: false,
            id_on_stdout: false,
            unused_build_args: false,
        }
    }
}

/// A drawing thread and the [`Progress`] that feeds it.
pub struct Rendering {
    progress: Progress,
    thread: JoinHandle<()>,
}

impl Rendering {
    /// Starts drawing `view` of the events sent to [`Rendering::progress`].
    pub fn start(view: View) -> Rendering {
        let started = Instant::now();
        let (tx, rx) = mpsc::channel::<Event>();
        let progress = Progress::new(move |event| {
            // The drawing thread only stops once every sender is gone.
            let _ = tx.send(event);
        });
        let thread = std::thread::spawn(move || {
            let mut screen = Screen {
                view,
                started,
                printer: None,
                layers: None,
                in_pull: false,
            };
            loop {
                match rx.recv_timeout(TICK) {
                    Ok(event) => screen.event(event),
                    Err(mpsc::RecvTimeoutError::Timeout) => screen.tick(),
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
            screen.finish_steps();
        });
        Rendering { progress, thread }
    }

    /// Where the operation sends its events.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Waits until everything sent has been drawn (the operation has returned, so it holds
    /// no sender any more).
    pub fn finish(self) {
        drop(self.progress);
        let _ = self.thread.join();
    }
}

/// The drawing thread's state.
struct Screen {
    view: View,
    started: Instant,
    /// The build's step printer, from [`Event::BuildSteps`] until the solve ends.
    printer: Option<Printer<std::io::Stderr>>,
    /// The current pull's or push's layer lines.
    layers: Option<LayerLines>,
    /// Between a pull's start and finish (its warnings are lower-case, as pull prints them).
    in_pull: bool,
}

impl Screen {
    fn tick(&mut self) {
        if let Some(printer) = &mut self.printer {
            printer.tick(self.started.elapsed());
        }
    }

    fn finish_steps(&mut self) {
        if let Some(mut printer) = self.printer.take() {
            printer.finish(self.started.elapsed());
        }
    }

    fn event(&mut self, event: Event) {
        let view = self.view;
        match event {
            Event::BuildSteps(names) => {
                self.printer = Some(Printer::new(
                    view.steps,
                    std::io::stderr(),
                    names.as_ref().clone(),
                ));
            }
            Event::Step(step) => {
                if let Some(printer) = &mut self.printer {
                    printer.event(&step, self.started.elapsed());
                }
            }
            Event::BuildSolved {
                explanations,
                unused_build_args,
            } => {
                self.finish_steps();
                for line in explanations {
                    eprintln!("{line}");
                }
                if !unused_build_args.is_empty() && view.unused_build_args {
                    eprintln!(
                        "[Warning] One or more build-args {unused_build_args:?} were not consumed"
                    );
                }
            }
            Event::ImageWritten { id, names } => {
                if view.id_on_stdout {
                    println!("{id}");
                }
                if view.written {
                    eprintln!("writing image {id} done");
                    for name in names {
                        eprintln!("naming to {name} done");
                    }
                }
            }
            Event::PullStarted {
                reference,
                repository,
            } => {
                self.in_pull = true;
                if view.pulls {
                    eprintln!("{reference}: Pulling from {repository}");
                    self.layers = Some(LayerLines::new());
                }
            }
            Event::PullFinished {
                digest,
                name,
                up_to_date,
            } => {
                self.in_pull = false;
                self.layers = None;
                if view.pulls {
                    eprintln!("Digest: {digest}");
                    if up_to_date {
                        eprintln!("Status: Image is up to date for {name}");
                    } else {
                        eprintln!("Status: Downloaded newer image for {name}");
                    }
                }
            }
            Event::PushStarted { repository } => {
                if view.pushes {
                    eprintln!("The push refers to repository [{repository}]");
                    self.layers = Some(LayerLines::new());
                }
            }
            Event::PushFinished { tag, digest, size } => {
                self.layers = None;
                if view.pushes {
                    eprintln!("{tag}: digest: {digest} size: {size}");
                }
            }
            Event::Layer {
                transfer,
                digest,
                status,
            } => {
                if let Some(lines) = &self.layers {
                    layer_line(lines, transfer, short_digest(&digest), &status);
                }
            }
            Event::CacheImported {
                source,
                records,
                layers,
            } => {
                if view.cache {
                    eprintln!(
                        "importing cache manifest from {source}: {records} records, {layers} layers"
                    );
                }
            }
            Event::CacheExported {
                target,
                records,
                layers,
                digest,
            } => {
                if view.cache {
                    eprintln!(
                        "exporting cache to {target}: {records} records, {layers} layers, manifest {digest} done"
                    );
                }
            }
            Event::Warning(message) if self.in_pull => {
                if view.pulls {
                    eprintln!("warning: {message}");
                }
            }
            Event::Warning(message) => eprintln!("WARNING: {message}"),
            Event::Note(message) => {
                if view.pushes {
                    eprintln!("note: {message}");
                }
            }
        }
    }
}

/// One layer's line, in the words `docker pull` and `docker push` use.
fn layer_line(lines: &LayerLines, transfer: Transfer, short: &str, status: &LayerStatus) {
    match (transfer, status) {
        (_, LayerStatus::Retrying { attempt, reason }) => {
            lines.status(short, &format!("Retrying (attempt {attempt}): {reason}"))
        }
        (Transfer::Pull, LayerStatus::Queued) => lines.status(short, "Pulling fs layer"),
        (Transfer::Pull, LayerStatus::Exists) => lines.status(short, "Already exists"),
        (Transfer::Pull, LayerStatus::Transferring { done, total }) => {
            lines.bytes(short, "Downloading", *done, *total)
        }
        (Transfer::Pull, LayerStatus::Done) => lines.status(short, "Pull complete"),
        (Transfer::Pull, LayerStatus::Mounted { .. } | LayerStatus::Compressing) => {}
        (Transfer::Push, LayerStatus::Queued) => lines.transient(short, "Waiting"),
        (Transfer::Push, LayerStatus::Compressing) => lines.transient(short, "Pushing"),
        (Transfer::Push, LayerStatus::Exists) => lines.status(short, "Layer already exists"),
        (Transfer::Push, LayerStatus::Mounted { from }) => {
            lines.status(short, &format!("Mounted from {from}"))
        }
        (Transfer::Push, LayerStatus::Transferring { done, total }) => {
            lines.bytes(short, "Pushing", *done, *total)
        }
        (Transfer::Push, LayerStatus::Done) => lines.status(short, "Pushed"),
    }
}
