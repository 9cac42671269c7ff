//! Per-blob progress reports, for docker-like progress bars.

use std::sync::Arc;

use crate::digest::Digest;

/// What happened to one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobEvent {
    /// The blob is queued.
    Waiting {
        /// Its size in bytes.
        total: u64,
    },
    /// The destination already has it; nothing is transferred.
    Exists,
    /// It was mounted from another repository of the same registry.
    Mounted {
        /// The repository it came from.
        from: String,
    },
    /// Bytes moved so far.
    Transferring {
        /// Bytes done.
        done: u64,
        /// Blob size.
        total: u64,
    },
    /// The transfer failed and is retried (from `resume_at` when the registry supports ranges).
    Retrying {
        /// The attempt about to start (2 = first retry).
        attempt: u32,
        /// Bytes kept from before.
        resume_at: u64,
        /// Why.
        reason: String,
    },
    /// Verified and committed (pull) or accepted by the registry (push).
    Done,
}

/// Receives progress events; called from the client's tasks, so keep it quick.
pub type ProgressFn = Arc<dyn Fn(&Digest, &BlobEvent) + Send + Sync>;

/// Calls `progress` if set.
pub(crate) fn report(progress: &Option<ProgressFn>, digest: &Digest, event: BlobEvent) {
    if let Some(f) = progress {
        f(digest, &event);
    }
}
