//! Lazy layer fetches for results imported with `--cache-from`: the worker asks for a
//! layer only when a step that runs, or the export, needs it. A layer the exporter kept
//! as a plain tar is fetched in its gzip form and unpacked into the store on the fly (so
//! the store holds exactly what the exporter's held, and images come out byte-identical);
//! its gzip digest is remembered, so a later push or cache export sends nothing new.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kiln_cache::content::{BlobWriter as ContentWriter, ContentStore};
use kiln_cache::layer::Compression;
use kiln_cache::{Digest, Store};
use kiln_registry::{BlobInfo, BlobSink, BlobWriter, Client, Reference, StoreError};
use kiln_solver::worker::{Layer, LayerFetcher};

use super::format::CacheLayer;
use crate::push::GzipMemo;
use crate::registry_store::{to_registry_digest, RegistryStore};

/// Where an imported cache's blobs are.
pub enum Origin {
    /// A registry repository.
    Registry {
        /// A client for it.
        client: Client,
        /// The cache reference (its repository holds the blobs).
        reference: Reference,
    },
    /// An OCI layout directory (`blobs/sha256/HEX`).
    Local {
        /// The layout's directory.
        dir: PathBuf,
    },
}

/// Fetches layers of imported caches into the store.
pub struct Fetcher {
    /// Stored blob digest -> its layer in a cache, and that cache.
    layers: HashMap<Digest, (CacheLayer, Arc<Origin>)>,
    runtime: tokio::runtime::Runtime,
    /// One fetch at a time: two steps needing the same layer fetch it once.
    busy: Mutex<()>,
}

impl Fetcher {
    /// A fetcher with no layers yet.
    pub fn new() -> crate::Result<Fetcher> {
        Ok(Fetcher {
            layers: HashMap::new(),
            runtime: crate::pull::runtime()?,
            busy: Mutex::new(()),
        })
    }

    /// Adds the layers of one cache (earlier caches win for a layer both list).
    pub fn add(&mut self, layers: &[CacheLayer], origin: Arc<Origin>) {
        for l in layers {
            self.layers
                .entry(l.stored.digest.clone())
                .or_insert_with(|| (l.clone(), Arc::clone(&origin)));
        }
    }

    fn fetch_into<S: BlobSink>(
        &self,
        origin: &Origin,
        blob: &super::format::Blob,
        sink: &S,
    ) -> Result<(), String> {
        match origin {
            Origin::Registry { client, reference } => {
                let info = BlobInfo {
                    digest: to_registry_digest(&blob.digest),
                    size: blob.size,
                    media_type: blob.media_type.clone(),
                };
                // The worker calls from a blocking thread of the build's runtime: run this
                // runtime on a thread of its own.
                std::thread::scope(|s| {
                    s.spawn(|| {
                        self.runtime
                            .block_on(client.fetch_blob(reference, &info, sink))
                    })
                    .join()
                })
                .map_err(|_| "the fetch thread panicked".to_string())?
                .map_err(|e| format!("{e:#}"))
            }
            Origin::Local { dir } => copy_from_layout(dir, blob, sink),
        }
    }
}

/// Streams a layout blob into `sink`, checking its size and digest before the commit.
fn copy_from_layout<S: BlobSink>(
    dir: &std::path::Path,
    blob: &super::format::Blob,
    sink: &S,
) -> Result<(), String> {
    // The digest was parsed as sha256 hex: the path cannot leave blobs/sha256.
    let path = dir.join("blobs/sha256").join(blob.digest.hex());
    let mut file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut writer = sink
        .begin(&to_registry_digest(&blob.digest), blob.size)
        .map_err(|e| e.to_string())?;
    let mut hasher = kiln_cache::digest::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        if hasher.len() + n as u64 > blob.size {
            return Err(format!(
                "{} is larger than {} bytes",
                path.display(),
                blob.size
            ));
        }
        hasher.update(&buf[..n]);
        writer
            .write(&buf[..n])
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let size = hasher.len();
    let digest = hasher.finish();
    if digest != blob.digest || size != blob.size {
        return Err(format!(
            "{}: content is {digest} ({size} bytes), the cache says {} ({} bytes)",
            path.display(),
            blob.digest,
            blob.size
        ));
    }
    writer.commit().map_err(|e| e.to_string())
}

impl LayerFetcher for Fetcher {
    fn fetch(&self, store: &Store, layer: &Layer) -> Result<(), String> {
        let (cached, origin) = self
            .layers
            .get(&layer.blob)
            .ok_or_else(|| "no imported cache lists it".to_string())?;
        let _one_at_a_time = self.busy.lock().expect("fetch lock");
        if store.content().contains(&layer.blob) {
            return Ok(());
        }
        if cached.blob.digest == cached.stored.digest {
            return self.fetch_into(origin, &cached.blob, &RegistryStore::new(store.clone()));
        }
        if Compression::from_media_type(&cached.blob.media_type) != Some(Compression::Gzip) {
            return Err(format!(
                "the cache holds it as {}, which kiln cannot turn into {}",
                cached.blob.media_type, cached.stored.media_type
            ));
        }
        let sink = GunzipSink {
            content: store.content().clone(),
            plain: cached.stored.digest.clone(),
            plain_size: cached.stored.size,
        };
        self.fetch_into(origin, &cached.blob, &sink)?;
        let gz = to_registry_digest(&cached.blob.digest);
        GzipMemo::new(store).put(&cached.stored.digest, &gz, cached.blob.size);
        if let Origin::Registry { reference, .. } = &**origin {
            RegistryStore::new(store.clone())
                .remember_repository(&gz, &format!("{}/{}", reference.domain(), reference.path()));
        }
        Ok(())
    }
}

/// A sink that unpacks a gzip blob into the content store as the plain blob `plain`.
struct GunzipSink {
    content: ContentStore,
    plain: Digest,
    plain_size: u64,
}

impl BlobSink for GunzipSink {
    type Writer = GunzipWriter;

    fn contains(&self, _digest: &kiln_registry::Digest) -> Result<bool, StoreError> {
        // Asked only for layers the store lacks.
        Ok(false)
    }

    fn begin(
        &self,
        _digest: &kiln_registry::Digest,
        _size: u64,
    ) -> Result<GunzipWriter, StoreError> {
        Ok(GunzipWriter {
            decoder: flate2::write::MultiGzDecoder::new(self.content.writer()?),
            content: self.content.clone(),
            plain: self.plain.clone(),
            plain_size: self.plain_size,
        })
    }
}

/// The gzip stream on its way through the decompressor into a content-store temp file;
/// the client checks the gzip digest, the commit the plain one.
struct GunzipWriter {
    decoder: flate2::write::MultiGzDecoder<ContentWriter>,
    content: ContentStore,
    plain: Digest,
    plain_size: u64,
}

impl BlobWriter for GunzipWriter {
    fn write(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        self.decoder.write_all(chunk).map_err(|e| {
            format!(
                "the cache's gzip blob of layer {} does not unpack: {e}",
                self.plain
            )
        })?;
        if self.decoder.get_ref().len() > self.plain_size {
            return Err(format!(
                "layer {} unpacks to more than its {} bytes",
                self.plain, self.plain_size
            )
            .into());
        }
        Ok(())
    }

    fn restart(&mut self) -> Result<(), StoreError> {
        self.decoder = flate2::write::MultiGzDecoder::new(self.content.writer()?);
        Ok(())
    }

    fn commit(self) -> Result<(), StoreError> {
        let writer = self.decoder.finish()?;
        writer.commit(Some((&self.plain, Some(self.plain_size))))?;
        Ok(())
    }
}
