//! Progress: what an operation reports while it runs, as typed events.
//!
//! The engine never prints. Each operation takes a [`Progress`] and sends it [`Event`]s;
//! the CLI draws them on a terminal (BuildKit's step log, docker's per-layer lines), the API
//! service writes them as Docker's JSON message stream. Events are sent whatever the face's
//! verbosity: a quiet face drops what it does not show (warnings are usually still shown).

use std::collections::HashMap;
use std::sync::Arc;

use kiln_solver::graph::VertexId;

/// One thing that happened during an operation.
#[derive(Debug, Clone)]
pub enum Event {
    /// The build's steps, by vertex, before any of them runs. An empty name marks internal
    /// plumbing that progress does not show (BuildKit does not either).
    BuildSteps(Arc<HashMap<VertexId, String>>),
    /// A build step started, was cached, wrote output, finished or failed.
    Step(kiln_solver::scheduler::Event),
    /// The build's image was written to the store (`writing image sha256:... done`).
    ImageWritten {
        /// The image ID (config digest).
        id: String,
        /// The names it was given, normalized (`docker.io/library/app:1`).
        names: Vec<String>,
    },
    /// A pull starts: `1.0: Pulling from library/busybox`.
    PullStarted {
        /// The tag or digest pulled (`latest`, `sha256:...`).
        reference: String,
        /// The repository path (`library/busybox`).
        repository: String,
    },
    /// A pull ended: `Digest: ...`, then `Status: ...`.
    PullFinished {
        /// The manifest's digest.
        digest: String,
        /// The name shown for the image.
        name: String,
        /// Whether the store already had this manifest under that name.
        up_to_date: bool,
    },
    /// A push starts: `The push refers to repository [host/repo]`.
    PushStarted {
        /// The repository (`127.0.0.1:5000/app`).
        repository: String,
    },
    /// A push ended: `TAG: digest: sha256:... size: N`.
    PushFinished {
        /// The tag pushed.
        tag: String,
        /// The manifest's digest.
        digest: String,
        /// The manifest's size in bytes.
        size: usize,
    },
    /// A layer of a pull or push moved on.
    Layer {
        /// Pull or push.
        transfer: Transfer,
        /// The blob's digest (`sha256:...`); faces show its first 12 hex digits.
        digest: String,
        /// What happened to it.
        status: LayerStatus,
    },
    /// A build cache manifest was read (`--cache-from`).
    CacheImported {
        /// Where from, as the user wrote it.
        source: String,
        /// Records it held.
        records: usize,
        /// Layers it named.
        layers: usize,
    },
    /// A build cache was written (`--cache-to`).
    CacheExported {
        /// Where to, as the user wrote it.
        target: String,
        /// Records written.
        records: usize,
        /// Layers named.
        layers: usize,
        /// The cache manifest's digest.
        digest: String,
    },
    /// Something the user should know that does not stop the operation.
    Warning(String),
    /// An informational line (`note: ...`).
    Note(String),
    /// The build's steps are done (sent after the last [`Event::Step`], before the image is
    /// written): what the face may tell about the solve, in the order BuildKit tells it.
    BuildSolved {
        /// With `--explain-cache`: why each step that ran missed the cache, one line each.
        explanations: Vec<String>,
        /// Build args no step used (`[Warning] One or more build-args ... were not
        /// consumed`).
        unused_build_args: Vec<String>,
    },
}

/// Which way layers move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// From a registry into the store.
    Pull,
    /// From the store to a registry.
    Push,
}

/// What happened to one layer of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerStatus {
    /// Queued (`Pulling fs layer`; a push's `Waiting`).
    Queued,
    /// The destination has it already (`Already exists`, `Layer already exists`).
    Exists,
    /// Mounted from another repository of the same registry.
    Mounted {
        /// The repository it came from.
        from: String,
    },
    /// A push started on a layer the store keeps uncompressed: it is being compressed and
    /// uploaded, with no byte counts (docker's `Pushing`).
    Compressing,
    /// Bytes moved so far.
    Transferring {
        /// Bytes done.
        done: u64,
        /// Blob size.
        total: u64,
    },
    /// The transfer failed and is retried.
    Retrying {
        /// The attempt about to start (2 = first retry).
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// Verified and committed (`Pull complete`) or accepted (`Pushed`).
    Done,
}

impl From<&kiln_registry::BlobEvent> for LayerStatus {
    fn from(e: &kiln_registry::BlobEvent) -> LayerStatus {
        use kiln_registry::BlobEvent as B;
        match e {
            B::Waiting { .. } => LayerStatus::Queued,
            B::Exists => LayerStatus::Exists,
            B::Mounted { from } => LayerStatus::Mounted { from: from.clone() },
            B::Transferring { done, total } => LayerStatus::Transferring {
                done: *done,
                total: *total,
            },
            B::Retrying {
                attempt, reason, ..
            } => LayerStatus::Retrying {
                attempt: *attempt,
                reason: reason.clone(),
            },
            B::Done => LayerStatus::Done,
        }
    }
}

/// Where an operation sends its events: a face's renderer, or nowhere.
///
/// Cheap to clone; called from any thread, so a renderer that needs order or a single
/// writer forwards events into a channel of its own.
#[derive(Clone, Default)]
pub struct Progress {
    sink: Option<Arc<dyn Fn(Event) + Send + Sync>>,
}

impl Progress {
    /// Events go nowhere.
    pub fn none() -> Progress {
        Progress { sink: None }
    }

    /// Events go to `sink`.
    pub fn new(sink: impl Fn(Event) + Send + Sync + 'static) -> Progress {
        Progress {
            sink: Some(Arc::new(sink)),
        }
    }

    /// Sends one event.
    pub fn emit(&self, event: Event) {
        if let Some(sink) = &self.sink {
            sink(event);
        }
    }

    /// Sends a warning.
    pub fn warn(&self, message: impl Into<String>) {
        self.emit(Event::Warning(message.into()));
    }

    /// Whether events go anywhere (so an operation may skip building them).
    pub fn is_listening(&self) -> bool {
        self.sink.is_some()
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("listening", &self.is_listening())
            .finish()
    }
}

/// A duration as docker's go-units `HumanDuration` words it ("Less than a second",
/// "About a minute", "3 hours"): `docker ps` statuses and "N ago" columns, in both faces.
pub fn human_duration(secs: u64) -> String {
    let hours = (secs as f64 / 3600.0 + 0.5) as u64;
    if secs < 1 {
        "Less than a second".to_string()
    } else if secs == 1 {
        "1 second".to_string()
    } else if secs < 60 {
        format!("{secs} seconds")
    } else if secs / 60 == 1 {
        "About a minute".to_string()
    } else if secs / 60 < 60 {
        format!("{} minutes", secs / 60)
    } else if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", secs / 3600 / 24 / 365)
    }
}

/// A byte count as docker's go-units shows it: SI units and `significant` digits with no
/// trailing zeros (Go's `%.Ng`). docker's tables use 3 (`4.26MB`); its JSON progress messages
/// use 4 (`1.024kB`), so both faces format sizes here.
pub fn human_size(bytes: u64, significant: usize) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    // Digits before the point, truncated (not rounded): 99.94 keeps one decimal at 3.
    let integer_digits = (value.trunc() as u64).to_string().len();
    let text = format!(
        "{value:.prec$}",
        prec = significant.saturating_sub(integer_digits)
    );
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    format!("{text}{}", UNITS[unit])
}

/// The 12 hex digits docker shows for a blob or image.
pub fn short_digest(d: &str) -> &str {
    let hex = d.split_once(':').map_or(d, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn sizes_have_the_significant_digits_asked_for() {
        assert_eq!(human_size(0, 3), "0B");
        assert_eq!(human_size(4_261_234, 3), "4.26MB");
        assert_eq!(human_size(99_940, 3), "99.9kB");
        assert_eq!(human_size(99_960, 3), "100kB");
        assert_eq!(human_size(1_024, 4), "1.024kB");
        assert_eq!(human_size(5_000_000, 4), "5MB");
        assert_eq!(human_size(999_999_600, 4), "1000MB");
    }

    #[test]
    fn short_digests_are_twelve_hex_digits() {
        assert_eq!(short_digest("sha256:0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short_digest("abc"), "abc");
    }

    #[test]
    fn a_sink_sees_every_event_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let progress = Progress::new(move |e| {
            if let Event::Warning(w) = e {
                s.lock().unwrap().push(w)
            }
        });
        progress.warn("one");
        progress.clone().warn("two");
        Progress::none().warn("lost");
        assert_eq!(*seen.lock().unwrap(), ["one", "two"]);
    }
}
