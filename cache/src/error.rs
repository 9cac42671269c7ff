//! The one error type of the store.

use std::path::PathBuf;

use crate::digest::Digest;

/// What went wrong in the store. Messages name the thing (file, digest, image)
/// they are about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed; `context` says what the store was doing.
    #[error("{context}: {source}")]
    Io {
        /// What the store was doing, with the path it acted on.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A string that should be an OCI digest is not one kiln can use.
    #[error("invalid digest {0:?}: want sha256:<64 lowercase hex>")]
    InvalidDigest(String),
    /// The content store has no blob with this digest.
    #[error("blob {0} is not in the store")]
    BlobNotFound(Digest),
    /// Content did not hash to the digest it was promised to have.
    #[error("content of {what} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being checked.
        what: String,
        /// The digest it should have.
        expected: Digest,
        /// The digest it has.
        actual: Digest,
    },
    /// Content did not have the size it was promised to have.
    #[error("{what} has {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// What was being checked.
        what: String,
        /// The size it should have.
        expected: u64,
        /// The size it has.
        actual: u64,
    },
    /// No image with this name or ID.
    #[error("no such image: {0}")]
    ImageNotFound(String),
    /// An image name the store cannot parse.
    #[error("invalid reference format {0:?}: {1}")]
    InvalidReference(String, &'static str),
    /// The embedded database failed.
    #[error("metadata database {path}: {message}", path = .path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// redb's message.
        message: String,
    },
    /// An archive entry tries to write or point outside the target root, or is
    /// otherwise refused for safety.
    #[error("refusing archive entry {path:?}: {reason}")]
    UnsafeEntry {
        /// The entry's name as written in the archive.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// An archive (layer, image tar) is malformed.
    #[error("bad archive {what}: {message}")]
    Archive {
        /// Which archive.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// A manifest, index or config is malformed or unsupported.
    #[error("image format: {0}")]
    Format(String),
    /// The thing cannot be removed or changed because something uses it.
    #[error("{0}")]
    Conflict(String),
    /// JSON that could not be read or written.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds "what we were doing" to I/O errors.
pub(crate) trait IoContext<T> {
    /// Wraps an I/O error with a context message built lazily.
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: f(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| Error::Io {
            context: f(),
            source: e.into(),
        })
    }
}

impl Error {
    /// An I/O error with context, for places that build one by hand.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
    /// An unsafe-entry error.
    pub(crate) fn unsafe_entry(path: impl Into<String>, reason: impl Into<String>) -> Self {
        let mut path: String = path.into();
        // A hostile name can be megabytes long; the message shows its start.
        if path.len() > 256 {
            let mut cut = 256;
            while !path.is_char_boundary(cut) {
                cut -= 1;
            }
            path.truncate(cut);
            path.push('…');
        }
        Error::UnsafeEntry {
            path,
            reason: reason.into(),
        }
    }
}
