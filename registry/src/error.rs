//! The client's error type.

use crate::digest::{Digest, DigestError};
use crate::reference::ReferenceError;

/// An error from a blob sink or source (the store), kept opaque to the client.
pub type StoreError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reference does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A digest from the registry or a manifest does not parse.
    #[error("invalid digest {value:?}: {source}")]
    Digest {
        /// The offending string.
        value: String,
        /// Why it is invalid.
        source: DigestError,
    },
    /// The registry answered with an error status (after retries for 5xx).
    #[error("{method} {url}: {status}{}", fmt_message(.code, .message))]
    Status {
        /// The HTTP method.
        method: String,
        /// The request URL.
        url: String,
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The first error code of the registry's JSON error body, if any (`MANIFEST_UNKNOWN`).
        code: Option<String>,
        /// The registry's message, or the start of the body.
        message: Option<String>,
    },
    /// The registry refused our credentials (or we had none and it needs some).
    #[error("{registry}: authentication required or denied{}", fmt_message(&None, .message))]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The registry's or token server's message.
        message: Option<String>,
    },
    /// A login's `GET /v2/` was refused: dockerd's words, `login attempt to
    /// http://host/v2/ failed with status: 401 Unauthorized`.
    #[error("login attempt to {url} failed with status: {status}")]
    LoginFailed {
        /// The `/v2/` URL asked.
        url: String,
        /// What the registry answered.
        status: reqwest::StatusCode,
    },
    /// The manifest or blob does not exist.
    #[error("{what} not found in {repository}{}", fmt_message(&None, .message))]
    NotFound {
        /// What was asked for (`manifest latest`, `blob sha256:...`).
        what: String,
        /// The repository (`host/path`).
        repository: String,
        /// The registry's message.
        message: Option<String>,
    },
    /// The network failed (connect, reset, timeout) and retries ran out.
    #[error("{url}: {}", error_chain(.error))]
    Transport {
        /// The request URL.
        url: String,
        /// The underlying error; its causes are in the message (not a `source`, so that error
        /// reports do not print them twice).
        error: reqwest::Error,
    },
    /// Content did not hash to the digest it was asked for by.
    #[error("digest mismatch for {expected}: got {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// Content had another size than its descriptor says.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The bytes received.
        actual: u64,
    },
    /// A manifest, index or token response is not what the spec says.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// What was being read (`manifest`, `token response`).
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The manifest's media type is not one kiln understands.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// No manifest in the index matches the wanted platform.
    #[error("no image for platform {wanted} in {reference} (available: {available})")]
    NoMatchingPlatform {
        /// The reference.
        reference: String,
        /// The wanted platform (`linux/amd64`).
        wanted: String,
        /// The platforms the index lists.
        available: String,
    },
    /// The blob sink or source (the store) failed.
    #[error("store: {0}")]
    Store(StoreError),
    /// Reading or writing credentials failed.
    #[error(transparent)]
    Credentials(#[from] crate::auth::CredentialError),
    /// A local file (kiln config) could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// An error and its causes, joined (reqwest's own message hides the cause: "connection reset").
fn error_chain(err: &reqwest::Error) -> String {
    // reqwest repeats the URL ("error sending request for url (...)"); the variant has it.
    let mut text = match err.url() {
        Some(url) => err.to_string().replace(&format!(" for url ({url})"), ""),
        None => err.to_string(),
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

/// Whether the request failed because the blob source gave bad data (an io error of kind
/// InvalidData among the causes): the same source fails the same way on a retry.
fn source_is_invalid(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::InvalidData {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

fn fmt_message(code: &Option<String>, message: &Option<String>) -> String {
    match (code, message) {
        (Some(c), Some(m)) => format!(" ({c}: {m})"),
        (Some(c), None) => format!(" ({c})"),
        (None, Some(m)) => format!(": {m}"),
        (None, None) => String::new(),
    }
}

impl Error {
    /// Whether the registry refused the credentials (or their absence).
    pub fn is_unauthorized(&self) -> bool {
        match self {
            Error::Unauthorized { .. } => true,
            Error::LoginFailed { status, .. } => {
                *status == reqwest::StatusCode::UNAUTHORIZED
                    || *status == reqwest::StatusCode::FORBIDDEN
            }
            _ => false,
        }
    }

    /// Whether retrying the same request may succeed (5xx, connection reset, timeout, truncation).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Status { status, .. } => status.is_server_error() || status.as_u16() == 429,
            Error::Transport { error, .. } => !source_is_invalid(error),
            _ => false,
        }
    }
}

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
