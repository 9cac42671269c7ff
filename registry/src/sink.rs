//! What the client reads blobs from and writes blobs to: traits the store implements.
//!
//! The client never keeps a blob in memory and never decides where blobs live: a pull streams
//! each blob into a [`BlobWriter`] and commits it only after the size and digest were verified;
//! a push streams each blob out of a [`BlobSource`].

use crate::digest::Digest;
use crate::error::StoreError;

/// Where pulled blobs go (the store's content store).
pub trait BlobSink: Send + Sync {
    /// The in-progress write of one blob.
    type Writer: BlobWriter;

    /// Whether the blob is already present and committed (the pull then skips it).
    fn contains(&self, digest: &Digest) -> Result<bool, StoreError>;

    /// Starts writing a blob of `size` bytes that must hash to `digest`.
    ///
    /// Nothing written may become visible under `digest` before [`BlobWriter::commit`].
    fn begin(&self, digest: &Digest, size: u64) -> Result<Self::Writer, StoreError>;

    /// Notes that `digest` was pulled from `repository` (`host/path`); the store may keep
    /// this to offer cross-repository mounts on a later push. The default ignores it.
    fn record_source(&self, _digest: &Digest, _repository: &str) {}
}

/// One blob being written. Dropping it without [`commit`](BlobWriter::commit) must discard
/// everything written (a failed or interrupted pull leaves nothing behind).
///
/// Methods are called from the client's async tasks, so they should not block for long:
/// buffered writes to a local file are fine, network round trips are not.
pub trait BlobWriter: Send {
    /// Appends the next chunk of the blob.
    fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError>;

    /// Discards everything written so far: the download restarts from byte 0 (the registry
    /// ignored a range request).
    fn restart(&mut self) -> Result<(), StoreError>;

    /// Makes the blob visible. Called only after the client checked its size and digest; a
    /// store may verify again.
    fn commit(self) -> Result<(), StoreError>;
}

/// Where pushed blobs come from (the store's content store).
pub trait BlobSource: Send + Sync {
    /// A stream of one blob's bytes.
    type Reader: tokio::io::AsyncRead + Send + Unpin + 'static;

    /// Opens a blob for reading from its start. Called again for each retry.
    fn open(&self, digest: &Digest) -> Result<Self::Reader, StoreError>;

    /// Repositories (paths, without host) of `registry` known to hold `digest` already; the
    /// push then tries a cross-repository mount from each instead of uploading. The default
    /// knows none.
    fn mount_candidates(&self, _digest: &Digest, _registry: &str) -> Vec<String> {
        Vec::new()
    }
}
