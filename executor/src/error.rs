//! The executor's error type.

use std::path::PathBuf;

/// Everything that can go wrong while preparing, starting or tending a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `what` says which step.
    #[error("{what}: {source}")]
    Sys {
        /// The step that failed, e.g. "mount overlay on /x".
        what: String,
        /// The errno.
        source: nix::Error,
    },
    /// File I/O on the host failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The container failed during setup, before its program started.
    #[error("container setup failed: {0}")]
    Setup(String),
    /// The program could not be executed inside the container (docker exits 126/127 then).
    #[error("{message}")]
    Exec {
        /// Human-readable reason, e.g. `exec: "foo": executable file not found in $PATH`.
        message: String,
        /// The exit code docker gives for it (126 or 127).
        code: i32,
    },
    /// The spec or a user-supplied value is invalid.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was invalid (e.g. "port mapping").
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// No such container, volume or user.
    #[error("{0}")]
    NotFound(String),
    /// The seccomp filter could not be compiled.
    #[error("seccomp: {0}")]
    Seccomp(String),
    /// A state record could not be read or written.
    #[error("state {path}: {detail}")]
    State {
        /// The state file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

/// The executor's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an errno with the step that produced it.
    pub fn sys(what: impl Into<String>, source: nix::Error) -> Self {
        Error::Sys {
            what: what.into(),
            source,
        }
    }
    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
