//! The build cache in a registry: a manifest under the cache reference, pushed and pulled
//! with kiln's registry client (blobs streamed and verified, plain layers gzipped on the way,
//! cross-repository mounts).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::{Error, Result, ResultExt};
use kiln_cache::layer::Compression;
use kiln_cache::{Digest, Store};
use kiln_registry::{BlobInfo, Reference};
use kiln_solver::worker::Layer;

use super::format::{Blob, CacheConfig, CONFIG_MEDIA_TYPE, MAX_CONFIG};
use super::{cache_manifest, Imported};
use crate::events::Progress;
use crate::pull::{client, parse_reference, runtime};
use crate::push::{GzipMemo, LayerPusher};
use crate::registry_store::{to_registry_digest, to_store_digest, RegistryStore};

/// The cache reference, which must name a tag (the manifest is pushed under it).
fn reference_of(input: &str) -> Result<Reference> {
    let reference = parse_reference(input)?;
    if reference.digest().is_some() {
        return Err(Error::invalid(format!(
            "{input}: a cache reference needs a tag, not a digest"
        )));
    }
    Ok(reference)
}

/// Pushes `layers` (unique by stored blob) and a cache manifest for `records` to `input`.
pub fn export(
    store: &Store,
    input: &str,
    records: &[(String, kiln_solver::worker::Output)],
    layers: &[Layer],
) -> Result<kiln_registry::Digest> {
    let reference = reference_of(input)?;
    let client = client(true, None, None)?;
    let rt = runtime()?;
    let memo = GzipMemo::new(store);
    let shown = Mutex::new(HashSet::new());
    let pusher = LayerPusher {
        store,
        client: &client,
        reference: &reference,
        shown: &shown,
        memo: &memo,
        // A cache export shows one line when done, no layer lines.
        progress: &Progress::none(),
    };
    let attempt = |use_memo: bool| -> Result<kiln_registry::Digest> {
        rt.block_on(async {
            let source = RegistryStore::new(store.clone());
            let list: Vec<(Digest, u64, String)> = layers
                .iter()
                .map(|l| (l.blob.clone(), l.size, l.media_type.clone()))
                .collect();
            let gzipped = pusher.gzip_layers(&source, &list, use_memo).await?;
            let remote: HashMap<Digest, Blob> = layers
                .iter()
                .map(|l| {
                    let blob = match gzipped.get(&l.blob) {
                        Some((gz, size)) => Blob {
                            media_type: Compression::Gzip.oci_media_type().into(),
                            digest: to_store_digest(gz)
                                .map_err(|e| Error::invalid(e.to_string()))?,
                            size: *size,
                        },
                        // Already compressed (a pulled base layer): it goes as it is.
                        None => Blob {
                            media_type: oci_layer_type(&l.media_type),
                            digest: l.blob.clone(),
                            size: l.size,
                        },
                    };
                    Ok((l.blob.clone(), blob))
                })
                .collect::<Result<_>>()?;
            let config = serde_json::to_vec(&CacheConfig::new(records, &remote)?)?;
            // The client reads every blob the manifest names from the store, the config too.
            let config_digest = store.content().put_bytes(&config)?;
            let manifest = cache_manifest(&config_digest, config.len() as u64, &remote, layers)?;
            let digest = client
                .push(
                    &reference,
                    &source,
                    &manifest,
                    kiln_registry::manifest::OCI_MANIFEST,
                )
                .await
                .with_context(|| format!("pushing the cache manifest {}", reference.familiar()))?;
            let repository = format!("{}/{}", reference.domain(), reference.path());
            for blob in remote.values() {
                source.remember_repository(&to_registry_digest(&blob.digest), &repository);
            }
            Ok(digest)
        })
    };
    match attempt(true) {
        Ok(d) => Ok(d),
        // A remembered gzip digest the compressor no longer reproduces: compress afresh.
        Err(_) if memo.used() => {
            memo.forget_used();
            attempt(false)
        }
        Err(e) => Err(e),
    }
}

/// The OCI media type of a layer blob (docker's names mapped to OCI's).
fn oci_layer_type(media_type: &str) -> String {
    match Compression::from_media_type(media_type) {
        Some(c) => c.oci_media_type().to_string(),
        None => media_type.to_string(),
    }
}

/// Fetches the cache manifest and config of `input`. `Ok(None)`: the registry has no such
/// manifest (a first build).
pub fn import(store: &Store, input: &str) -> Result<Option<Imported>> {
    let reference = reference_of(input)?;
    let client = client(true, None, None)?;
    let rt = runtime()?;
    let config = rt.block_on(async {
        let manifest = match client
            .fetch_manifest(&reference, &reference.manifest_reference())
            .await
        {
            Ok(m) => m,
            Err(kiln_registry::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(Error::from(e).context("fetching the cache manifest")),
        };
        let json: serde_json::Value = serde_json::from_slice(&manifest.bytes)?;
        let config = &json["config"];
        let media_type = config["mediaType"].as_str().unwrap_or("");
        if media_type != CONFIG_MEDIA_TYPE {
            return Err(Error::invalid(format!(
                "not a kiln build cache (its config is {media_type:?}, not {CONFIG_MEDIA_TYPE})"
            )));
        }
        let digest = config["digest"]
            .as_str()
            .ok_or_else(|| Error::invalid("the cache manifest's config has no digest"))?;
        let size = config["size"]
            .as_u64()
            .ok_or_else(|| Error::invalid("the cache manifest's config has no size"))?;
        if size > MAX_CONFIG {
            return Err(Error::invalid(format!(
                "the cache config is {size} bytes, more than kiln reads"
            )));
        }
        let info = BlobInfo {
            digest: kiln_registry::Digest::parse(digest)
                .map_err(|e| Error::invalid(format!("config digest {digest}: {e}")))?,
            size,
            media_type: media_type.to_string(),
        };
        client
            .fetch_blob(&reference, &info, &RegistryStore::new(store.clone()))
            .await
            .context("fetching the cache config")?;
        let stored = to_store_digest(&info.digest).map_err(|e| Error::invalid(e.to_string()))?;
        let bytes = store.content().read_bytes(&stored, MAX_CONFIG)?;
        Ok(Some(
            CacheConfig::parse(&bytes).context("reading the cache config")?,
        ))
    })?;
    Ok(config.map(|config| Imported {
        config,
        origin: Arc::new(super::fetch::Origin::Registry { client, reference }),
    }))
}
