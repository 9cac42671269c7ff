//! The local store seen by the registry client: [`kiln_registry::BlobSink`] (pulled blobs go
//! through the content store's temp-file writer and appear only once verified) and
//! [`kiln_registry::BlobSource`] (pushed blobs stream out of their files), plus a gzip stream
//! over a stored blob for layers the store keeps uncompressed.
//!
//! The traits live in kiln-registry and the store in kiln-cache; neither crate depends on the
//! other, so the glue is a newtype here.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use kiln_cache::content::{BlobWriter as ContentWriter, ContentStore};
use kiln_cache::layer::{CompressOptions, Compression, Encoder};
use kiln_cache::Store;
use kiln_registry::{BlobSink, BlobSource, BlobWriter, StoreError};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

/// The store as a blob sink and source for the registry client.
#[derive(Clone)]
pub struct RegistryStore {
    store: Store,
    /// Serializes updates of the repository lists.
    sources: Arc<Mutex<()>>,
    /// gzip blobs served by compressing a stored plain blob again (gzip digest -> plain).
    gzip_of: Arc<Mutex<HashMap<String, kiln_cache::Digest>>>,
}

impl RegistryStore {
    /// Wraps `store`.
    pub fn new(store: Store) -> RegistryStore {
        RegistryStore {
            store,
            sources: Arc::default(),
            gzip_of: Arc::default(),
        }
    }

    /// Where the repositories known to hold a blob are listed, one `host/path` a line: small
    /// files outside the content store, so a later push can mount instead of upload.
    fn sources_file(&self, digest: &kiln_registry::Digest) -> std::path::PathBuf {
        self.store.root().join("blob-sources").join(format!(
            "{}-{}",
            digest.algorithm().name(),
            digest.hex()
        ))
    }

    /// Repositories (`host/path`) known to hold `digest`.
    pub fn repositories(&self, digest: &kiln_registry::Digest) -> Vec<String> {
        std::fs::read_to_string(self.sources_file(digest))
            .map(|t| t.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Notes that `repository` (`host/path`) holds `digest`. Best effort: a lost note only
    /// costs an upload later.
    pub fn remember_repository(&self, digest: &kiln_registry::Digest, repository: &str) {
        let _guard = self.sources.lock().expect("sources lock");
        let mut repos = self.repositories(digest);
        if repos.iter().any(|r| r == repository) || repository.contains('\n') {
            return;
        }
        repos.push(repository.to_string());
        // Keep the newest few: mounts are tried in turn, and each costs a round trip.
        let keep = repos.len().saturating_sub(8);
        let path = self.sources_file(digest);
        let Some(dir) = path.parent() else { return };
        let _ = std::fs::create_dir_all(dir);
        let tmp = dir.join(format!(".{}.{}.tmp", digest.hex(), std::process::id()));
        if std::fs::write(&tmp, repos[keep..].join("\n") + "\n").is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }

    /// Serves the blob `gzip` by compressing the stored blob `plain` (whose parallel gzip
    /// was seen to have that digest before; the registry checks it again).
    pub fn serve_gzip(&self, gzip: &kiln_registry::Digest, plain: kiln_cache::Digest) {
        self.gzip_of
            .lock()
            .expect("gzip map lock")
            .insert(gzip.to_string(), plain);
    }

    /// The wrapped store.
    #[cfg(test)]
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// The store's digest for a registry digest: the store keeps sha256 only.
pub fn to_store_digest(d: &kiln_registry::Digest) -> Result<kiln_cache::Digest, StoreError> {
    if d.algorithm().name() != "sha256" {
        return Err(format!("{d}: the store keeps sha256 digests only").into());
    }
    Ok(kiln_cache::Digest::from_hex(d.hex())?)
}

/// The registry's digest for a store digest.
pub fn to_registry_digest(d: &kiln_cache::Digest) -> kiln_registry::Digest {
    kiln_registry::Digest::parse(&d.to_string()).expect("a store digest is a valid sha256 digest")
}

impl BlobSink for RegistryStore {
    type Writer = StoreBlobWriter;

    fn contains(&self, digest: &kiln_registry::Digest) -> Result<bool, StoreError> {
        let Ok(d) = to_store_digest(digest) else {
            return Ok(false);
        };
        let content = self.store.content();
        if content.contains(&d) {
            // The caller's lease spares blobs touched while it is held.
            content.touch(&d);
            return Ok(true);
        }
        Ok(false)
    }

    fn begin(
        &self,
        digest: &kiln_registry::Digest,
        size: u64,
    ) -> Result<StoreBlobWriter, StoreError> {
        let expected = to_store_digest(digest)?;
        let content = self.store.content().clone();
        let writer = content.writer()?;
        Ok(StoreBlobWriter {
            content,
            writer,
            expected,
            size,
        })
    }

    fn record_source(&self, digest: &kiln_registry::Digest, repository: &str) {
        self.remember_repository(digest, repository);
    }
}

/// A pulled blob on its way into the content store: a temp file in the ingest area, renamed
/// into place by [`BlobWriter::commit`] after the store re-checks digest and size. Dropped
/// uncommitted, the temp file goes.
pub struct StoreBlobWriter {
    content: ContentStore,
    writer: ContentWriter,
    expected: kiln_cache::Digest,
    size: u64,
}

impl BlobWriter for StoreBlobWriter {
    fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        if self.writer.len() + chunk.len() as u64 > self.size {
            return Err(format!(
                "blob {} is larger than the {} bytes announced",
                self.expected, self.size
            )
            .into());
        }
        self.writer.write_all(chunk)?;
        Ok(())
    }

    fn restart(&mut self) -> Result<(), StoreError> {
        // The old writer's temp file is removed when it is dropped here.
        self.writer = self.content.writer()?;
        Ok(())
    }

    fn commit(self) -> Result<(), StoreError> {
        self.writer
            .commit(Some((&self.expected, Some(self.size))))?;
        Ok(())
    }
}

/// A blob read for a push: a stored file, or the gzip of one.
pub enum SourceReader {
    /// The blob's own file.
    File(tokio::fs::File),
    /// Compressed on the fly from a stored plain blob.
    Gzip(GzipReader),
}

impl AsyncRead for SourceReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SourceReader::File(f) => Pin::new(f).poll_read(cx, buf),
            SourceReader::Gzip(g) => Pin::new(g).poll_read(cx, buf),
        }
    }
}

impl BlobSource for RegistryStore {
    type Reader = SourceReader;

    fn open(&self, digest: &kiln_registry::Digest) -> Result<SourceReader, StoreError> {
        let plain = self
            .gzip_of
            .lock()
            .expect("gzip map lock")
            .get(digest.as_str())
            .cloned();
        if let Some(plain) = plain {
            return Ok(SourceReader::Gzip(gzip_stream(&self.store, &plain)?));
        }
        let d = to_store_digest(digest)?;
        let file = self.store.content().open_blob(&d)?;
        Ok(SourceReader::File(tokio::fs::File::from_std(file)))
    }

    fn mount_candidates(&self, digest: &kiln_registry::Digest, registry: &str) -> Vec<String> {
        self.repositories(digest)
            .iter()
            .filter_map(|r| r.strip_prefix(registry)?.strip_prefix('/'))
            .map(str::to_string)
            .collect()
    }
}

/// Chunks in flight between the compressor thread and the upload: bounds memory.
const GZIP_CHANNEL_CHUNKS: usize = 8;
/// Read size from the blob file.
const READ_CHUNK: usize = 1 << 20;

/// The gzip of a stored (uncompressed) blob as an async stream: a thread reads the blob and
/// compresses it in parallel blocks while the upload reads the other end. Memory stays
/// bounded by the channel; dropping the reader stops the thread at its next write.
/// Parallel gzip output depends only on the input and the level, so a retry yields the same
/// bytes (and digest).
pub fn gzip_stream(store: &Store, digest: &kiln_cache::Digest) -> Result<GzipReader, StoreError> {
    let mut file = store.content().open_blob(digest)?;
    let (tx, rx) = mpsc::channel::<io::Result<Vec<u8>>>(GZIP_CHANNEL_CHUNKS);
    let what = digest.to_string();
    std::thread::Builder::new()
        .name("kiln-push-gzip".into())
        .spawn(move || {
            let result = (|| -> io::Result<()> {
                let opts = CompressOptions {
                    compression: Compression::Gzip,
                    level: None,
                    threads: 0,
                };
                let mut encoder = Encoder::new(ChannelWriter { tx: tx.clone() }, &opts)?;
                let mut buf = vec![0u8; READ_CHUNK];
                loop {
                    let n = file.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    encoder.write_all(&buf[..n])?;
                }
                encoder.finish()?.flush()
            })();
            if let Err(e) = result {
                // Nobody listening means the upload gave up: nothing to report to.
                let _ = tx.blocking_send(Err(io::Error::new(
                    e.kind(),
                    format!("compressing {what}: {e}"),
                )));
            }
        })?;
    Ok(GzipReader {
        rx,
        pending: Vec::new(),
        offset: 0,
    })
}

/// The compressor's side of the channel.
struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Vec<u8>>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.tx
            .blocking_send(Ok(buf.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The upload's side: compressed bytes as they come out of the compressor.
pub struct GzipReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    pending: Vec<u8>,
    offset: usize,
}

impl AsyncRead for GzipReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.offset == this.pending.len() {
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    this.pending = chunk;
                    this.offset = 0;
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                // The sender is gone after the last chunk: end of stream.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = buf.remaining().min(this.pending.len() - this.offset);
        buf.put_slice(&this.pending[this.offset..this.offset + n]);
        this.offset += n;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn sha(bytes: &[u8]) -> kiln_registry::Digest {
        kiln_registry::Digest::sha256_of(bytes)
    }

    #[test]
    fn pulled_blob_is_visible_only_after_commit() {
        let dir = tempfile::tempdir().unwrap();
        let rs = RegistryStore::new(Store::open(dir.path()).unwrap());
        let data = b"layer bytes".to_vec();
        let d = sha(&data);
        assert!(!rs.contains(&d).unwrap());
        let mut w = rs.begin(&d, data.len() as u64).unwrap();
        w.write(&data[..4]).unwrap();
        assert!(!rs.contains(&d).unwrap());
        w.restart().unwrap();
        w.write(&data).unwrap();
        assert!(!rs.contains(&d).unwrap());
        w.commit().unwrap();
        assert!(rs.contains(&d).unwrap());
        let cd = to_store_digest(&d).unwrap();
        assert_eq!(rs.store().content().read_bytes(&cd, 100).unwrap(), data);
        // Only the committed blob: no temp file left behind by the restart.
        assert_eq!(
            std::fs::read_dir(rs.store().content().ingest_dir())
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn wrong_content_or_size_is_never_stored() {
        let dir = tempfile::tempdir().unwrap();
        let rs = RegistryStore::new(Store::open(dir.path()).unwrap());
        let d = sha(b"expected");
        let mut w = rs.begin(&d, 8).unwrap();
        w.write(b"tampered").unwrap();
        assert!(w.commit().is_err());
        let mut w = rs.begin(&d, 4).unwrap();
        assert!(w.write(b"expected").is_err());
        drop(w);
        let mut w = rs.begin(&d, 8).unwrap();
        w.write(b"expec").unwrap();
        drop(w);
        assert!(!rs.contains(&d).unwrap());
        assert!(rs.store().content().list().unwrap().is_empty());
        assert_eq!(
            std::fs::read_dir(rs.store().content().ingest_dir())
                .unwrap()
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn source_streams_a_blob_and_gzip_stream_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // More than one parallel-gzip block, not too compressible.
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let cd = store.content().put_bytes(&data).unwrap();
        let rs = RegistryStore::new(store.clone());
        let mut out = Vec::new();
        rs.open(&to_registry_digest(&cd))
            .unwrap()
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert_eq!(out, data);

        let mut gz = Vec::new();
        gzip_stream(&store, &cd)
            .unwrap()
            .read_to_end(&mut gz)
            .await
            .unwrap();
        let mut again = Vec::new();
        gzip_stream(&store, &cd)
            .unwrap()
            .read_to_end(&mut again)
            .await
            .unwrap();
        assert_eq!(gz, again, "a retried upload must send the same bytes");
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, data);
    }
}
