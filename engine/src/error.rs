//! The engine's one error type.
//!
//! Each variant says what kind of failure it is, because the two faces need that and not
//! only a message: the CLI picks exit codes and renderings by kind (a Dockerfile parse error
//! is drawn with its source excerpt), and the API service picks the HTTP status (a missing
//! image is a 404, so the docker CLI pulls it; a name in use is a 409). Messages never repeat
//! their cause: the cause is `source()`, and a face prints the chain once.

use std::path::PathBuf;

/// What went wrong in an engine operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request or the flags are wrong: a malformed spec, an unknown option, a bad name.
    /// (HTTP 400.)
    #[error("{0}")]
    Invalid(String),
    /// What the operation names does not exist: an image, a container, a volume. (HTTP 404.)
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with the current state: a name in use, an image a container
    /// uses. (HTTP 409.)
    #[error("{0}")]
    Conflict(String),
    /// The Dockerfile does not parse; the error carries its file, line, column and excerpt.
    #[error(transparent)]
    Parse(#[from] kiln_parser::ParseError),
    /// A build step failed.
    #[error("failed to solve: {}", .0.message)]
    Solve(Box<SolveFailure>),
    /// A container's program could not be started (docker's exit codes 125-127 apply).
    #[error("{message}")]
    Start {
        /// Exit code the CLI uses: 126 (not executable), 127 (not found), 125 (other).
        code: i32,
        /// What failed.
        message: String,
    },
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] kiln_cache::Error),
    /// The registry client failed.
    #[error(transparent)]
    Registry(#[from] kiln_registry::Error),
    /// The runtime failed.
    #[error(transparent)]
    Executor(#[from] kiln_executor::Error),
    /// The build's worker failed outside a step (materializing a result, reading the
    /// cache); a failed step is [`Error::Solve`].
    #[error(transparent)]
    Worker(#[from] kiln_solver::worker::WorkerError),
    /// A system call failed with no more specific variant; see [`Error::io`] for one that
    /// names its path.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A file or directory could not be read, written or made.
    #[error("{action} {path}", path = .path.display())]
    Path {
        /// What was being done (`reading`, `creating`, ...).
        action: &'static str,
        /// The path acted on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// JSON that could not be read or written.
    #[error("json")]
    Json(#[from] serde_json::Error),
    /// Something the engine relies on did not hold (a bug, or state changed underneath).
    #[error("{0}")]
    Internal(String),
    /// The caller cancelled the operation (an API client went away): nothing was committed.
    #[error("{0}")]
    Cancelled(String),
    /// An error with what the engine was doing when it happened.
    #[error("{context}")]
    Context {
        /// What the engine was doing.
        context: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
}

/// A failed build step: which step, where it came from, and why.
#[derive(Debug)]
pub struct SolveFailure {
    /// The step's name as the progress shows it (`[2/3] RUN make`).
    pub step: String,
    /// The Dockerfile's name and the step's line in it, when the step has an origin.
    pub origin: Option<(String, usize)>,
    /// The Dockerfile's bytes, for showing the lines around `origin`.
    pub dockerfile: Vec<u8>,
    /// The error, as text.
    pub message: String,
    /// The failed RUN's exit status, when the step was a RUN that exited non-zero (docker's
    /// `errorDetail.code`).
    pub exit_code: Option<i32>,
}

impl Error {
    /// An I/O error on `path` while doing `action`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Path {
            action,
            path: path.into(),
            source,
        }
    }

    /// A bad-input error.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid(message.into())
    }

    /// Wraps the error in what the engine was doing.
    pub fn context(self, context: impl Into<String>) -> Error {
        Error::Context {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// The innermost engine error under any [`Error::Context`] layers: what kind of failure
    /// this is, whatever was being done.
    pub fn kind(&self) -> &Error {
        match self {
            Error::Context { source, .. } => source.kind(),
            other => other,
        }
    }

    /// The message and its causes, `: `-separated (as anyhow's `{:#}` prints a chain): for
    /// text that goes on in one line, such as a warning.
    pub fn display_chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }

    /// Whether this is (under its context) a not-found error, from the engine, the store or
    /// a registry (no such manifest or blob).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.kind(),
            Error::NotFound(_)
                | Error::Store(kiln_cache::Error::ImageNotFound(_))
                | Error::Registry(kiln_registry::Error::NotFound { .. })
        )
    }

    /// Whether a registry refused the credentials (or their absence), under any context.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self.kind(), Error::Registry(e) if e.is_unauthorized())
    }
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `.context(...)` on any result whose error becomes an engine [`Error`], as anyhow's.
pub trait ResultExt<T> {
    /// Wraps an error in what was being done.
    fn context(self, context: impl Into<String>) -> Result<T>;
    /// Wraps an error in what was being done, computed only on error.
    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> ResultExt<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(context()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut cur = e.source();
        while let Some(s) = cur {
            out.push_str(": ");
            out.push_str(&s.to_string());
            cur = s.source();
        }
        out
    }

    #[test]
    fn causes_print_once_along_the_chain() {
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        let e = Error::io("reading", "/x/Dockerfile", io).context("preparing the build");
        assert_eq!(
            chain(&e),
            "preparing the build: reading /x/Dockerfile: No such file or directory (os error 2)"
        );
        assert_eq!(e.display_chain(), chain(&e));
    }

    #[test]
    fn kind_looks_under_context() {
        let e: std::result::Result<(), _> = Err(kiln_cache::Error::ImageNotFound("app:1".into()));
        let e = e.context("FROM app:1").unwrap_err();
        assert!(e.is_not_found());
        assert!(!Error::invalid("bad").context("x").is_not_found());
    }
}
