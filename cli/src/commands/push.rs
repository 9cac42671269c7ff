//! `kiln push [-q] REF`: send an image of the local store to a registry.
//!
//! The store keeps the layers it builds as plain tars (no time spent compressing at build
//! time); push gzips each of them in parallel blocks while it uploads, then pushes a manifest
//! naming the compressed blobs (same config, so the diff IDs are unchanged). Layers already
//! compressed go as they are.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use kiln_cache::layer::Compression;
use kiln_cache::Store;
use kiln_registry::{BlobEvent, Client, ProgressFn};

use super::display::store as open_store;
use super::layer_progress::LayerLines;
use super::pull::{client, parse_reference, runtime, short_digest};
use crate::registry_store::{gzip_stream, to_registry_digest, RegistryStore};
use crate::Globals;

/// Flags of `kiln push`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print only the image's name.
    #[arg(short, long)]
    pub quiet: bool,
    /// Require HTTPS and verify certificates (loopback registries use plain HTTP).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", value_name = "BOOL")]
    pub tls_verify: bool,
    /// The image: `[host[:port]/]repo[:tag]`, as named in the local store.
    pub reference: String,
}

/// How a push runs.
#[derive(Debug, Clone, Copy)]
pub struct PushOptions {
    /// Verify TLS certificates.
    pub tls_verify: bool,
    /// No progress lines.
    pub quiet: bool,
}

/// Pushes and prints the name when quiet.
pub fn run(g: &Globals, args: Args) -> Result<ExitCode> {
    let store = open_store(g)?;
    let opts = PushOptions {
        tls_verify: args.tls_verify,
        quiet: args.quiet,
    };
    push_image(&store, &args.reference, &opts)?;
    if args.quiet {
        println!("{}", parse_reference(&args.reference)?.familiar());
    }
    Ok(ExitCode::SUCCESS)
}

/// The pushed form of a layer the store keeps uncompressed: gzip, in the manifest's family
/// of media types.
fn gzip_media_type(manifest_media_type: &str) -> &'static str {
    if manifest_media_type == kiln_cache::image::DOCKER_MANIFEST {
        Compression::Gzip.docker_media_type()
    } else {
        Compression::Gzip.oci_media_type()
    }
}

/// Pushes the stored image `input` to the registry it names; returns the manifest digest.
pub fn push_image(store: &Store, input: &str, opts: &PushOptions) -> Result<kiln_registry::Digest> {
    let reference = parse_reference(input)?;
    if reference.digest().is_some() {
        bail!("{input}: push needs a tag, not a digest");
    }
    let tag = reference.tag().unwrap_or("latest").to_string();
    let image = store.image(input).map_err(|e| match e {
        kiln_cache::Error::ImageNotFound(_) => anyhow!(
            "An image does not exist locally with the tag: {}",
            reference.familiar()
        ),
        e => anyhow!(e),
    })?;
    if !opts.quiet {
        eprintln!("The push refers to repository [{}]", reference.name());
    }

    // Layers the client pushes from the store (already compressed): these get progress lines.
    let shown: Arc<Mutex<HashSet<String>>> = Arc::default();
    let lines = (!opts.quiet).then(|| Arc::new(LayerLines::new()));
    let progress: Option<ProgressFn> = lines.clone().map(|lines| {
        let shown = Arc::clone(&shown);
        let progress: ProgressFn = Arc::new(move |digest, event| {
            if !shown.lock().expect("shown lock").contains(digest.as_str()) {
                return;
            }
            let short = short_digest(digest.as_str());
            match event {
                BlobEvent::Exists => lines.status(short, "Layer already exists"),
                BlobEvent::Mounted { from } => lines.status(short, &format!("Mounted from {from}")),
                BlobEvent::Done => lines.status(short, "Pushed"),
                BlobEvent::Retrying {
                    attempt, reason, ..
                } => lines.status(short, &format!("Retrying (attempt {attempt}): {reason}")),
                BlobEvent::Transferring { done, total } => {
                    lines.bytes(short, "Pushing", *done, *total)
                }
                BlobEvent::Waiting { .. } => lines.transient(short, "Waiting"),
            }
        });
        progress
    });
    let client = client(opts.tls_verify, progress)?;
    let rt = runtime()?;
    let memo = GzipMemo::new(store);
    let job = PushJob {
        layers: LayerPusher {
            store,
            client: &client,
            reference: &reference,
            shown: &shown,
            memo: &memo,
            lines: lines.as_deref(),
        },
        image: &image,
    };
    let (digest, size) = match rt.block_on(job.push(true)) {
        Ok(done) => done,
        // A remembered gzip digest the compressor no longer reproduces (another zlib
        // version): forget those and compress everything afresh.
        Err(e) if memo.used() => {
            if !opts.quiet {
                eprintln!("note: {e:#}; compressing every layer again");
            }
            memo.forget_used();
            rt.block_on(job.push(false))?
        }
        Err(e) => return Err(e),
    };
    if !opts.quiet {
        eprintln!("{tag}: digest: {digest} size: {size}");
    }
    Ok(digest)
}

/// Remembers, per plain layer, the digest and size of its parallel gzip once uploaded, so a
/// later push names that blob without compressing (the registry's HEAD then says it exists).
/// Kept as small files under `ROOT/push-gzip/`, outside the content store.
pub(crate) struct GzipMemo {
    dir: std::path::PathBuf,
    used: Mutex<Vec<kiln_cache::Digest>>,
}

impl GzipMemo {
    /// The memo of `store`.
    pub fn new(store: &Store) -> GzipMemo {
        GzipMemo {
            dir: store.root().join("push-gzip"),
            used: Mutex::default(),
        }
    }

    /// The remembered gzip digest and size of the plain blob `plain`.
    pub fn get(&self, plain: &kiln_cache::Digest) -> Option<(kiln_registry::Digest, u64)> {
        let text = std::fs::read_to_string(self.dir.join(plain.hex())).ok()?;
        let (digest, size) = text.trim().split_once(' ')?;
        let found = (
            kiln_registry::Digest::parse(digest).ok()?,
            size.parse().ok()?,
        );
        self.used.lock().expect("memo lock").push(plain.clone());
        Some(found)
    }

    /// Remembers that the gzip of `plain` is `gzip` (`size` bytes).
    pub fn put(&self, plain: &kiln_cache::Digest, gzip: &kiln_registry::Digest, size: u64) {
        // Best effort: without the memo the next push compresses again, nothing worse.
        let _ = std::fs::create_dir_all(&self.dir);
        let tmp = self
            .dir
            .join(format!(".{}.{}", plain.hex(), std::process::id()));
        if std::fs::write(&tmp, format!("{gzip} {size}\n")).is_ok() {
            let _ = std::fs::rename(&tmp, self.dir.join(plain.hex()));
        }
    }

    /// Whether a remembered digest was used since the last [`GzipMemo::forget_used`].
    pub fn used(&self) -> bool {
        !self.used.lock().expect("memo lock").is_empty()
    }

    /// Forgets every remembered digest that was used (one of them was wrong).
    pub fn forget_used(&self) {
        for d in self.used.lock().expect("memo lock").drain(..) {
            let _ = std::fs::remove_file(self.dir.join(d.hex()));
        }
    }
}

/// Uploads layers to one repository: plain layers gzip-compressed on the way (or named by
/// their remembered gzip blob), with progress lines.
pub(crate) struct LayerPusher<'a> {
    pub store: &'a Store,
    pub client: &'a Client,
    pub reference: &'a kiln_registry::Reference,
    /// Blobs (registry digests) that get progress lines from the client.
    pub shown: &'a Mutex<HashSet<String>>,
    pub memo: &'a GzipMemo,
    pub lines: Option<&'a LayerLines>,
}

impl LayerPusher<'_> {
    /// Uploads the gzip form of each plain layer among `layers` (blob, size, media type),
    /// several at a time, and returns plain digest -> (gzip digest, size). A layer whose gzip
    /// digest is remembered (with `use_memo`) is not compressed: `source` serves it, compressed
    /// afresh, only if the manifest push that follows finds the registry lacks it. Compressed
    /// layers are left to that push (they go as they are).
    pub async fn gzip_layers(
        &self,
        source: &RegistryStore,
        layers: &[(kiln_cache::Digest, u64, String)],
        use_memo: bool,
    ) -> Result<HashMap<kiln_cache::Digest, (kiln_registry::Digest, u64)>> {
        let mut compressed: HashMap<kiln_cache::Digest, (kiln_registry::Digest, u64)> =
            HashMap::new();
        let mut plain: Vec<kiln_cache::Digest> = Vec::new();
        for (d, _, mt) in layers {
            if Compression::from_media_type(mt) != Some(Compression::None) {
                self.shown.lock().expect("shown lock").insert(d.to_string());
                continue;
            }
            if compressed.contains_key(d) || plain.contains(d) {
                continue;
            }
            match self.memo.get(d).filter(|_| use_memo) {
                Some((gz, size)) => {
                    // The client HEADs it; if this registry lacks it, it is compressed again.
                    source.serve_gzip(&gz, d.clone());
                    self.shown
                        .lock()
                        .expect("shown lock")
                        .insert(gz.to_string());
                    compressed.insert(d.clone(), (gz, size));
                }
                None => plain.push(d.clone()),
            }
        }

        // Compress and upload the remaining plain layers, several at a time.
        let concurrency = self.client.config().concurrency.max(1);
        let uploaded: Vec<(kiln_cache::Digest, (kiln_registry::Digest, u64))> =
            futures::stream::iter(plain.iter().map(|d| async move {
                let store = self.store.clone();
                if let Some(lines) = self.lines {
                    lines.transient(d.short(), "Pushing");
                }
                let pushed = self
                    .client
                    .push_blob_stream(self.reference, || gzip_stream(&store, d))
                    .await
                    .with_context(|| format!("pushing layer {d}"))?;
                self.memo.put(d, &pushed.0, pushed.1);
                if let Some(lines) = self.lines {
                    lines.status(d.short(), "Pushed");
                }
                anyhow::Ok((d.clone(), pushed))
            }))
            .buffer_unordered(concurrency)
            .try_collect()
            .await?;
        compressed.extend(uploaded);
        Ok(compressed)
    }
}

/// One image push: its layers compressed as needed, then the manifest.
struct PushJob<'a> {
    layers: LayerPusher<'a>,
    image: &'a kiln_cache::store::Image,
}

impl PushJob<'_> {
    /// Returns the manifest's digest and size.
    async fn push(&self, use_memo: bool) -> Result<(kiln_registry::Digest, usize)> {
        let pusher = &self.layers;
        let source = RegistryStore::new(pusher.store.clone());
        let layers = self.image.layers()?;
        let compressed = pusher.gzip_layers(&source, &layers, use_memo).await?;

        // The manifest as stored, with each uncompressed layer swapped for its gzip blob.
        let stored = pusher
            .store
            .content()
            .read_bytes(&self.image.manifest_digest, kiln_cache::image::MAX_JSON)?;
        let media_type = self.image.manifest.media_type.clone();
        let manifest_bytes = if compressed.is_empty() {
            stored
        } else {
            let mut manifest: serde_json::Value = serde_json::from_slice(&stored)?;
            let entries = manifest
                .get_mut("layers")
                .and_then(|l| l.as_array_mut())
                .ok_or_else(|| anyhow!("manifest {} has no layers", self.image.manifest_digest))?;
            for (entry, (d, _, _)) in entries.iter_mut().zip(&layers) {
                if let Some((digest, size)) = compressed.get(d) {
                    entry["digest"] = serde_json::Value::from(digest.to_string());
                    entry["size"] = serde_json::Value::from(*size);
                    entry["mediaType"] = serde_json::Value::from(gzip_media_type(&media_type));
                }
            }
            serde_json::to_vec(&manifest)?
        };
        let digest = pusher
            .client
            .push(pusher.reference, &source, &manifest_bytes, &media_type)
            .await
            .with_context(|| format!("pushing {}", pusher.reference.familiar()))?;
        // Every blob the manifest names is now in this repository: a later push of an image
        // sharing them to another repository of this registry mounts them.
        let repository = format!("{}/{}", pusher.reference.domain(), pusher.reference.path());
        let config = to_registry_digest(&self.image.id);
        source.remember_repository(&config, &repository);
        for (d, _, _) in &layers {
            let blob = match compressed.get(d) {
                Some((gz, _)) => gz.clone(),
                None => to_registry_digest(d),
            };
            source.remember_repository(&blob, &repository);
        }
        Ok((digest, manifest_bytes.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_layers_follow_the_manifest_family() {
        assert_eq!(
            gzip_media_type(kiln_cache::image::OCI_MANIFEST),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(
            gzip_media_type(kiln_cache::image::DOCKER_MANIFEST),
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
    }
}
