//! Push: send an image of the local store to a registry (`kiln push`, `POST
//! /images/{name}/push`, `kiln build --push`).
//!
//! The store keeps the layers it builds as plain tars (no time spent compressing at build
//! time); push gzips each of them in parallel blocks while it uploads, then pushes a manifest
//! naming the compressed blobs (same config, so the diff IDs are unchanged). Layers already
//! compressed go as they are.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use kiln_cache::layer::Compression;
use kiln_cache::Store;
use kiln_registry::auth::RegistryAuth;
use kiln_registry::{Client, Reference};

use crate::events::{Event, LayerStatus, Progress, Transfer};
use crate::pull::{client, given_for, layer_events, parse_reference, runtime};
use crate::registry_store::{gzip_stream, to_registry_digest, RegistryStore};
use crate::{Engine, Error, Result, ResultExt};

/// What to push and how.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// The image: `[host[:port]/]repo[:tag]`, as named in the local store.
    pub reference: String,
    /// Require HTTPS and verify certificates (loopback registries use plain HTTP).
    pub tls_verify: bool,
    /// Credentials for the reference's registry, for this push only (docker's
    /// `X-Registry-Auth`); `None` reads docker's credential files, as the CLI does. Given
    /// ones (even empty, meaning anonymous) are used instead of the files.
    pub credentials: Option<RegistryAuth>,
}

/// What a push sent.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The normalized reference pushed to.
    pub reference: Reference,
    /// The tag pushed.
    pub tag: String,
    /// The manifest's digest in the registry.
    pub digest: kiln_registry::Digest,
    /// The manifest's size in bytes.
    pub size: usize,
}

impl Engine {
    /// Pushes the stored image `opts.reference` to the registry it names. Sends
    /// [`Event::PushStarted`], [`Event::Layer`]s, perhaps a [`Event::Note`] (a remembered
    /// gzip digest went stale, so every layer is compressed again), then
    /// [`Event::PushFinished`].
    pub fn push(&self, opts: &PushOptions, progress: &Progress) -> Result<Pushed> {
        push_from(&self.store()?, opts, progress)
    }

    /// Pushes every tag the store has of the repository `opts.reference` names (`docker
    /// push --all-tags`), in name order, each as [`Engine::push`] does; a reference with a
    /// tag pushes that tag only (as dockerd reads a push's name). A digest is
    /// [`Error::Invalid`]; a repository with no tag here is [`Error::NotFound`].
    pub fn push_all_tags(&self, opts: &PushOptions, progress: &Progress) -> Result<Vec<Pushed>> {
        let store = self.store()?;
        let reference =
            kiln_registry::Reference::parse_normalized(&opts.reference).map_err(|e| {
                Error::invalid(format!(
                    "invalid reference format {:?}: {e}",
                    opts.reference
                ))
            })?;
        if reference.tag().is_some() {
            return Ok(vec![push_from(&store, opts, progress)?]);
        }
        let mut pushed = Vec::new();
        for name in repository_tags(&store, &opts.reference)? {
            let one = PushOptions {
                reference: name,
                ..opts.clone()
            };
            pushed.push(push_from(&store, &one, progress)?);
        }
        Ok(pushed)
    }
}

/// The store's names (`repo:tag`, sorted) in the repository `repository` (no tag).
fn repository_tags(store: &Store, repository: &str) -> Result<Vec<String>> {
    let reference = kiln_registry::Reference::parse_normalized(repository)
        .map_err(|e| Error::invalid(format!("invalid reference format {repository:?}: {e}")))?;
    if reference.tag().is_some() || reference.digest().is_some() {
        return Err(Error::invalid(format!(
            "{repository}: pushing every tag takes a repository, without a tag or digest"
        )));
    }
    // The store's names are normalized as `docker images` shows them: compare those forms.
    let wanted = kiln_cache::image::normalize_name(&reference.familiar())?;
    let (wanted, _) = kiln_cache::image::split_tag(&wanted);
    let mut names: Vec<String> = store
        .images()?
        .into_iter()
        .map(|record| record.name)
        .filter(|name| kiln_cache::image::split_tag(name).0 == wanted)
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(Error::NotFound(format!(
            "An image does not exist locally with the tag: {}",
            reference.familiar()
        )));
    }
    Ok(names)
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

/// Pushes the stored image `opts.reference` from `store`.
pub(crate) fn push_from(store: &Store, opts: &PushOptions, progress: &Progress) -> Result<Pushed> {
    let input = opts.reference.as_str();
    let reference = parse_reference(input)?;
    if reference.digest().is_some() {
        return Err(Error::invalid(format!(
            "{input}: push needs a tag, not a digest"
        )));
    }
    let tag = reference.tag().unwrap_or("latest").to_string();
    let image = store.image(input).map_err(|e| match e {
        kiln_cache::Error::ImageNotFound(_) => Error::NotFound(format!(
            "An image does not exist locally with the tag: {}",
            reference.familiar()
        )),
        e => e.into(),
    })?;
    progress.emit(Event::PushStarted {
        repository: reference.name().to_string(),
    });

    // Layers the client pushes from the store (already compressed): these get the client's
    // progress events; the plain layers compressed here get events from the pusher.
    let shown: Arc<Mutex<HashSet<String>>> = Arc::default();
    let client = {
        let shown = Arc::clone(&shown);
        let is_shown = move |digest: &str| shown.lock().expect("shown lock").contains(digest);
        client(
            opts.tls_verify,
            layer_events(progress, Transfer::Push, is_shown),
            given_for(&reference, opts.credentials.as_ref()),
        )?
    };
    let rt = runtime()?;
    let memo = GzipMemo::new(store);
    let job = PushJob {
        layers: LayerPusher {
            store,
            client: &client,
            reference: &reference,
            shown: &shown,
            memo: &memo,
            progress,
        },
        image: &image,
    };
    let (digest, size) = match rt.block_on(job.push(true)) {
        Ok(done) => done,
        // A remembered gzip digest the compressor no longer reproduces (another zlib
        // version): forget those and compress everything afresh.
        Err(e) if memo.used() => {
            progress.emit(Event::Note(format!(
                "{}; compressing every layer again",
                e.display_chain()
            )));
            memo.forget_used();
            rt.block_on(job.push(false))?
        }
        Err(e) => return Err(e),
    };
    progress.emit(Event::PushFinished {
        tag: tag.clone(),
        digest: digest.to_string(),
        size,
    });
    Ok(Pushed {
        reference,
        tag,
        digest,
        size,
    })
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
    /// Where the plain layers' events go.
    pub progress: &'a Progress,
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
                self.progress.emit(Event::Layer {
                    transfer: Transfer::Push,
                    digest: d.to_string(),
                    status: LayerStatus::Compressing,
                });
                let pushed = self
                    .client
                    .push_blob_stream(self.reference, || gzip_stream(&store, d))
                    .await
                    .with_context(|| format!("pushing layer {d}"))?;
                self.memo.put(d, &pushed.0, pushed.1);
                self.progress.emit(Event::Layer {
                    transfer: Transfer::Push,
                    digest: d.to_string(),
                    status: LayerStatus::Done,
                });
                Ok::<_, Error>((d.clone(), pushed))
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
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "manifest {} has no layers",
                        self.image.manifest_digest
                    ))
                })?;
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
