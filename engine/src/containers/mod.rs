//! Containers: their configuration's syntaxes, their life (stop, kill, remove, wait), their
//! listing and their logs, as engine operations over the records under `ROOT/containers`.

pub mod config;
mod lifecycle;
mod list;
mod logs;

pub use lifecycle::{is_running, wait_exited};
pub use logs::LogsOptions;

use crate::Error;

/// The executor's error as an engine error of the right kind: a missing container or volume
/// is [`Error::NotFound`] and a bad name [`Error::Invalid`] (HTTP 404 and 400 later), with the
/// executor's text unchanged; anything else stays an executor error.
pub(crate) fn from_executor(e: kiln_executor::Error) -> Error {
    match e {
        kiln_executor::Error::NotFound(m) => Error::NotFound(m),
        e @ kiln_executor::Error::Invalid { .. } => Error::Invalid(e.to_string()),
        e => Error::Executor(e),
    }
}
