//! The build cache in a directory, as an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/`): the same manifest and config as in a registry, the manifest named by
//! the `org.opencontainers.image.ref.name` annotation. Every file appears by rename once
//! complete, blobs first and `index.json` last, so a reader never sees half a cache.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Error, Result, ResultExt};
use kiln_cache::digest::HashingWriter;
use kiln_cache::layer::{CompressOptions, Compression, Encoder};
use kiln_cache::{Digest, Store};
use kiln_solver::worker::{Layer, Output};

use super::format::{Blob, CacheConfig, CONFIG_MEDIA_TYPE, MAX_CONFIG};
use super::{cache_manifest, Imported};
use crate::push::GzipMemo;
use crate::registry_store::to_registry_digest;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs/sha256").join(digest.hex())
}

fn temp_path(dir: &Path, what: &str) -> PathBuf {
    dir.join(format!(
        ".kiln-tmp-{what}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ))
}

/// Writes `bytes` to `dest` through a temp file in `tmp_dir` and a rename.
fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(tmp_dir, "file");
    let result = (|| -> Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, dest)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", dest.display()))
}

/// Stores a small blob in the layout; returns its digest.
fn put_blob(dir: &Path, bytes: &[u8]) -> Result<Digest> {
    let digest = Digest::of(bytes);
    let dest = blob_path(dir, &digest);
    if !dest.exists() {
        write_atomic(&dir.join("blobs/sha256"), &dest, bytes)?;
    }
    Ok(digest)
}

/// Streams `source` through `encoder_opts` into the layout; returns the blob's digest and size.
fn put_stream(
    dir: &Path,
    mut source: impl Read,
    compression: Compression,
) -> Result<(Digest, u64)> {
    let blobs = dir.join("blobs/sha256");
    let tmp = temp_path(&blobs, "layer");
    let result = (|| -> Result<(Digest, u64)> {
        let file = fs::File::create(&tmp)?;
        let opts = CompressOptions {
            compression,
            ..CompressOptions::default()
        };
        let mut encoder = Encoder::new(HashingWriter::new(file), &opts)?;
        std::io::copy(&mut source, &mut encoder)?;
        let (file, digest, size) = encoder.finish()?.finish();
        file.sync_all()?;
        fs::rename(&tmp, blob_path(dir, &digest))?;
        Ok((digest, size))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes the layers (gzip for plain ones) and a cache manifest for `records` into the
/// layout at `dir` under `tag`; returns the manifest's digest.
pub fn export(
    store: &Store,
    dir: &Path,
    tag: &str,
    records: &[(String, Output)],
    layers: &[Layer],
) -> Result<Digest> {
    fs::create_dir_all(dir.join("blobs/sha256"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let layout = dir.join("oci-layout");
    if !layout.exists() {
        write_atomic(dir, &layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    }
    let memo = GzipMemo::new(store);
    let mut remote: HashMap<Digest, Blob> = HashMap::new();
    for l in layers {
        let compression = Compression::from_media_type(&l.media_type);
        let blob = if compression == Some(Compression::None) {
            // A gzip made for an earlier push or export, when the layout still has it.
            let known = memo.get(&l.blob).and_then(|(gz, size)| {
                let d = kiln_cache::Digest::from_hex(gz.hex()).ok()?;
                let on_disk = fs::metadata(blob_path(dir, &d)).ok()?.len();
                (on_disk == size).then_some((d, size))
            });
            let (digest, size) = match known {
                Some(found) => found,
                None => {
                    let plain = store.content().open_blob(&l.blob)?;
                    let made = put_stream(dir, std::io::BufReader::new(plain), Compression::Gzip)
                        .with_context(|| format!("compressing layer {}", l.blob))?;
                    memo.put(&l.blob, &to_registry_digest(&made.0), made.1);
                    made
                }
            };
            Blob {
                media_type: Compression::Gzip.oci_media_type().into(),
                digest,
                size,
            }
        } else {
            if !blob_path(dir, &l.blob).exists() {
                let f = store.content().open_blob(&l.blob)?;
                let (digest, _) = put_stream(dir, f, Compression::None)?;
                if digest != l.blob {
                    return Err(Error::invalid(format!(
                        "layer {} changed while it was copied",
                        l.blob
                    )));
                }
            }
            Blob {
                media_type: compression
                    .map_or(l.media_type.clone(), |c| c.oci_media_type().to_string()),
                digest: l.blob.clone(),
                size: l.size,
            }
        };
        remote.insert(l.blob.clone(), blob);
    }
    let config = serde_json::to_vec(&CacheConfig::new(records, &remote)?)?;
    let config_digest = put_blob(dir, &config)?;
    let manifest = cache_manifest(&config_digest, config.len() as u64, &remote, layers)?;
    let manifest_digest = put_blob(dir, &manifest)?;

    // index.json last: the cache appears (or changes) in one rename.
    let mut index: serde_json::Value = match fs::read(dir.join("index.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{}/index.json is not JSON", dir.display()))?,
        Err(_) => serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}),
    };
    let manifests = index["manifests"].as_array_mut().ok_or_else(|| {
        Error::invalid(format!(
            "{}/index.json has no manifests list",
            dir.display()
        ))
    })?;
    manifests.retain(|m| m["annotations"][REF_NAME].as_str() != Some(tag));
    manifests.push(serde_json::json!({
        "mediaType": OCI_MANIFEST,
        "digest": manifest_digest.to_string(),
        "size": manifest.len(),
        "annotations": {REF_NAME: tag},
    }));
    write_atomic(
        dir,
        &dir.join("index.json"),
        &serde_json::to_vec_pretty(&index)?,
    )?;
    Ok(manifest_digest)
}

/// Reads a layout blob, checking its digest.
fn read_blob(dir: &Path, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
    let path = blob_path(dir, digest);
    let mut bytes = Vec::new();
    fs::File::open(&path)
        .with_context(|| format!("opening {}", path.display()))?
        .take(limit + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(Error::invalid(format!(
            "{} is larger than kiln reads",
            path.display()
        )));
    }
    if &Digest::of(&bytes) != digest {
        return Err(Error::invalid(format!(
            "{} does not match its digest",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Reads the cache tagged `tag` from the layout at `dir`. `Ok(None)`: no layout there, or
/// no such tag in it.
pub fn import(dir: &Path, tag: &str) -> Result<Option<Imported>> {
    let index = match fs::read(dir.join("index.json")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading", dir.join("index.json"), e)),
    };
    let index: serde_json::Value = serde_json::from_slice(&index)
        .with_context(|| format!("{}/index.json is not JSON", dir.display()))?;
    let Some(entry) = index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"][REF_NAME].as_str() == Some(tag))
    else {
        return Ok(None);
    };
    let digest = |v: &serde_json::Value| -> Result<Digest> {
        v.as_str()
            .ok_or_else(|| Error::invalid("a descriptor has no digest"))?
            .parse::<Digest>()
            .map_err(|e| Error::invalid(e.to_string()))
    };
    let manifest = read_blob(dir, &digest(&entry["digest"])?, kiln_cache::image::MAX_JSON)?;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest)?;
    let media_type = manifest["config"]["mediaType"].as_str().unwrap_or("");
    if media_type != CONFIG_MEDIA_TYPE {
        return Err(Error::invalid(format!(
            "not a kiln build cache (its config is {media_type:?}, not {CONFIG_MEDIA_TYPE})"
        )));
    }
    let config = read_blob(dir, &digest(&manifest["config"]["digest"])?, MAX_CONFIG)?;
    Ok(Some(Imported {
        config: CacheConfig::parse(&config).context("reading the cache config")?,
        origin: Arc::new(super::fetch::Origin::Local {
            dir: dir.to_path_buf(),
        }),
    }))
}
