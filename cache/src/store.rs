//! [`Store`]: the façade over content, metadata and snapshots that the CLI,
//! the solver and the runtime use.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;

use crate::content::ContentStore;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::image::{self, Manifest, MediaTypes, Parsed, MAX_JSON};
use crate::layer::{
    self, ApplyMode, ApplyOptions, CompressOptions, Compression, DiffSource, LayerInfo, TarOptions,
};
use crate::metadata::{CacheRecord, ImageRecord, Lease, Metadata, Reader, SnapshotRecord, Table};
use crate::offthread::OffThreadWriter;
use crate::snapshot::{self, RootfsLayout, Snapshots};

/// The local store under one `--root`.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    content: ContentStore,
    meta: Metadata,
    snapshots: Snapshots,
}

/// An image resolved from the store: its manifest and config, parsed.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image ID: the config's digest (what docker shows).
    pub id: Digest,
    /// Names pointing at this manifest.
    pub names: Vec<String>,
    /// The manifest's digest.
    pub manifest_digest: Digest,
    /// The manifest's size in bytes.
    pub manifest_size: u64,
    /// The manifest.
    pub manifest: Manifest,
    /// The config exactly as stored (its sha256 is `id`).
    pub config_raw: Vec<u8>,
    /// The config, parsed.
    pub config: ImageConfiguration,
    /// `rootfs.diff_ids`, bottom first.
    pub diff_ids: Vec<Digest>,
}

impl Image {
    /// Layers as (blob digest, size, media type), bottom first.
    pub fn layers(&self) -> Result<Vec<(Digest, u64, String)>> {
        self.manifest.layers()
    }
    /// The total size of config and layer blobs.
    pub fn size(&self) -> Result<u64> {
        Ok(self.layers()?.iter().map(|l| l.1).sum::<u64>() + self.config_raw.len() as u64)
    }
}

/// A lease held while this value lives; dropping it releases the lease.
#[derive(Debug)]
pub struct LeaseGuard {
    store: Store,
    id: String,
}

impl LeaseGuard {
    /// The lease's ID.
    pub fn id(&self) -> &str {
        &self.id
    }
    /// Adds blobs and snapshots to the lease.
    pub fn add(&self, blobs: &[Digest], snapshots: &[Digest]) -> Result<()> {
        self.store.meta.write(|w| {
            let mut l: Lease = w.get(Table::Leases, &self.id)?.unwrap_or_default();
            l.blobs.extend_from_slice(blobs);
            l.snapshots.extend_from_slice(snapshots);
            w.put(Table::Leases, &self.id, &l)
        })
    }
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let _ = self.store.meta.write(|w| w.remove(Table::Leases, &self.id));
    }
}

impl Store {
    /// Opens the store under `root`, creating its layout when missing.
    pub fn open(root: &Path) -> Result<Store> {
        fs::create_dir_all(root).ctx(|| format!("create {}", root.display()))?;
        let builds = root.join("builds");
        fs::create_dir_all(&builds).ctx(|| format!("create {}", builds.display()))?;
        fsutil::mark_top_dir(&builds);
        Ok(Store {
            root: root.to_path_buf(),
            content: ContentStore::open(root)?,
            meta: Metadata::open(root)?,
            snapshots: Snapshots::open(root)?,
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The content store.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }
    /// The metadata database.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }
    /// The snapshot directories.
    pub fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }

    /// Where a build step keeps its container's state and mount scratch dirs
    /// (`ROOT/builds/<id>`, made by the step, removed when it ends).
    pub fn step_state_dir(&self, id: &str) -> PathBuf {
        self.root.join("builds").join(id)
    }

    /// A private scratch directory on the store's file system.
    pub fn scratch(&self) -> Result<PathBuf> {
        let d = self.root.join("tmp").join(fsutil::temp_name("scratch"));
        fs::create_dir_all(&d).ctx(|| format!("create {}", d.display()))?;
        // An unpacked context can be as big as a build's tree (see `mark_top_dir`).
        fsutil::mark_top_dir(&self.root.join("tmp"));
        Ok(d)
    }

    // ---------------------------------------------------------------- images

    /// Every image name, sorted.
    pub fn images(&self) -> Result<Vec<ImageRecord>> {
        Ok(self
            .meta
            .read(|r| r.all::<ImageRecord>(Table::Images))?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Reads and parses the image with this manifest.
    pub fn load_image(&self, manifest_digest: &Digest, names: Vec<String>) -> Result<Image> {
        let mbytes = self.content.read_bytes(manifest_digest, MAX_JSON)?;
        let manifest = match image::parse_manifest(&mbytes)? {
            Parsed::Manifest(m) => *m,
            Parsed::Index(_) => {
                return Err(Error::Format(format!(
                    "{manifest_digest} is an index, not an image manifest"
                )))
            }
        };
        let id = manifest.config_digest()?;
        let config_raw = self.content.read_bytes(&id, MAX_JSON)?;
        let config = image::parse_config(&config_raw)?;
        let diff_ids = image::diff_ids(&config)?;
        if diff_ids.len() != manifest.inner.layers().len() {
            return Err(Error::Format(format!(
                "image {id}: config lists {} diff IDs for {} layers",
                diff_ids.len(),
                manifest.inner.layers().len()
            )));
        }
        Ok(Image {
            id,
            names,
            manifest_digest: manifest_digest.clone(),
            manifest_size: mbytes.len() as u64,
            manifest,
            config_raw,
            config,
            diff_ids,
        })
    }

    /// Finds an image by name (`busybox`, `busybox:1`), full ID
    /// (`sha256:<hex>`) or unique ID prefix, as docker does.
    pub fn image(&self, reference: &str) -> Result<Image> {
        let all = self.images()?;
        let names_of = |m: &Digest| -> Vec<String> {
            all.iter()
                .filter(|r| &r.manifest == m)
                .map(|r| r.name.clone())
                .collect()
        };
        if let Ok(name) = image::normalize_name(reference) {
            if let Some(r) = all.iter().find(|r| r.name == name) {
                return self.load_image(&r.manifest, names_of(&r.manifest));
            }
        }
        let prefix = reference.strip_prefix("sha256:").unwrap_or(reference);
        if !prefix.is_empty() && prefix.len() <= 64 && prefix.bytes().all(|b| b.is_ascii_hexdigit())
        {
            let mut hits: Vec<&ImageRecord> = all
                .iter()
                .filter(|r| {
                    r.config.hex().starts_with(prefix)
                        || r.manifest.hex().starts_with(prefix) && prefix.len() == 64
                })
                .collect();
            hits.dedup_by(|a, b| a.manifest == b.manifest);
            let mut ids: Vec<&Digest> = hits.iter().map(|r| &r.config).collect();
            ids.sort();
            ids.dedup();
            match ids.len() {
                0 => {}
                1 => return self.load_image(&hits[0].manifest, names_of(&hits[0].manifest)),
                _ => {
                    return Err(Error::Conflict(format!(
                        "{reference:?} matches more than one image ID"
                    )))
                }
            }
        }
        Err(Error::ImageNotFound(reference.to_string()))
    }

    /// Points `name` at the image with this manifest (replacing what it named).
    pub fn set_name(&self, name: &str, manifest_digest: &Digest) -> Result<ImageRecord> {
        let name = image::normalize_name(name)?;
        let img = self.load_image(manifest_digest, Vec::new())?;
        for (d, _, _) in img.layers()? {
            if !self.content.contains(&d) {
                return Err(Error::BlobNotFound(d));
            }
        }
        let rec = ImageRecord {
            name: name.clone(),
            manifest: manifest_digest.clone(),
            media_type: img.manifest.media_type.clone(),
            config: img.id.clone(),
            tagged_at: fsutil::now_unix(),
        };
        self.meta.write(|w| w.put(Table::Images, &name, &rec))?;
        Ok(rec)
    }

    /// `docker tag SOURCE TARGET`.
    pub fn tag(&self, source: &str, target: &str) -> Result<ImageRecord> {
        let img = self.image(source)?;
        self.set_name(target, &img.manifest_digest)
    }

    /// `docker rmi`: removes a name, or every name of an ID. Removing an ID
    /// that several names point at needs `force`. Returns the names removed;
    /// the blobs go at the next garbage collection.
    pub fn remove_image(
        &self,
        reference: &str,
        force: bool,
    ) -> Result<(Vec<String>, Option<Digest>)> {
        let img = self.image(reference)?;
        let by_name = image::normalize_name(reference)
            .ok()
            .filter(|n| img.names.contains(n));
        let remove: Vec<String> = match by_name {
            Some(n) => vec![n],
            None if img.names.len() > 1 && !force => {
                return Err(Error::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    img.id.short()
                )))
            }
            None => img.names.clone(),
        };
        let left = self.meta.write(|w| {
            for n in &remove {
                w.remove(Table::Images, n)?;
            }
            let rest: Vec<(String, ImageRecord)> = w.all(Table::Images)?;
            Ok(rest.iter().any(|(_, r)| r.manifest == img.manifest_digest))
        })?;
        Ok((remove, if left { None } else { Some(img.id) }))
    }

    /// Stores a config and a manifest for `layers` (blobs already in the
    /// store) and, when given, names the image. Returns (manifest, config) digests.
    pub fn commit_image(
        &self,
        name: Option<&str>,
        config: &[u8],
        layers: &[(Digest, u64, String)],
        types: MediaTypes,
    ) -> Result<(Digest, Digest)> {
        let cfg = image::parse_config(config)?;
        if image::diff_ids(&cfg)?.len() != layers.len() {
            return Err(Error::Format(
                "config diff_ids and layers differ in number".into(),
            ));
        }
        let config_digest = self.content.put_bytes(config)?;
        let manifest = image::build_manifest(types, (&config_digest, config.len() as u64), layers)?;
        let manifest_digest = self.content.put_bytes(&manifest)?;
        if let Some(name) = name {
            self.set_name(name, &manifest_digest)?;
        }
        Ok((manifest_digest, config_digest))
    }

    // ---------------------------------------------------------------- layers

    /// Writes the layer for `source` into the content store (one streaming
    /// pass: tar, diff ID, compression, blob digest). With
    /// `Compression::None` the blob is the tar and its digest the diff ID.
    pub fn create_layer(
        &self,
        source: DiffSource<'_>,
        tar: &TarOptions,
        compress: &CompressOptions,
    ) -> Result<LayerInfo> {
        // A plain tar's digest is its diff ID, which `write_layer` computes anyway; the
        // blob is written on a second thread while this one reads the tree and hashes.
        let plain = compress.compression == Compression::None;
        let w = match plain {
            true => self.content.writer_prehashed()?,
            false => self.content.writer()?,
        };
        let w = OffThreadWriter::new(w).ctx(|| "start the blob writer".to_string())?;
        let (w, info) = layer::write_layer(source, tar, compress, w)?;
        let w = w.finish().ctx(|| "write the layer blob".to_string())?;
        match plain {
            true => w.commit_prehashed(info.digest.clone(), info.size)?,
            false => w.commit(Some((&info.digest, Some(info.size))))?,
        };
        Ok(info)
    }

    /// Unpacks the snapshot `chain` from a layer blob (when not already
    /// unpacked), checking the blob's diff ID.
    pub fn ensure_snapshot(
        &self,
        chain: &Digest,
        parent: Option<&Digest>,
        diff_id: &Digest,
        blob: &Digest,
    ) -> Result<PathBuf> {
        if self.snapshots.exists(chain) {
            return Ok(self.snapshots.fs_dir(chain));
        }
        let temp = self.snapshots.temp()?;
        let result = (|| {
            let f = self.content.open_blob(blob)?;
            let stats = layer::apply_layer(
                BufReader::with_capacity(1 << 20, f),
                &temp.join("fs"),
                &ApplyOptions {
                    mode: ApplyMode::Overlay,
                    ..ApplyOptions::default()
                },
            )?;
            if &stats.diff_id != diff_id {
                return Err(Error::DigestMismatch {
                    what: format!("layer {blob} (uncompressed)"),
                    expected: diff_id.clone(),
                    actual: stats.diff_id,
                });
            }
            Ok(())
        })();
        if let Err(e) = result {
            let _ = fsutil::remove_tree(&temp);
            return Err(e);
        }
        let size = Snapshots::du(&temp);
        let path = self.snapshots.commit(&temp, chain)?;
        let rec = SnapshotRecord {
            chain_id: chain.clone(),
            parent: parent.cloned(),
            diff_id: diff_id.clone(),
            size,
            created: fsutil::now_unix(),
        };
        self.meta
            .write(|w| w.put(Table::Snapshots, chain.hex(), &rec))?;
        Ok(path)
    }

    /// Unpacks every layer of `image` that is not unpacked yet; returns the
    /// snapshot directories, bottom first.
    pub fn unpack(&self, image: &Image) -> Result<Vec<PathBuf>> {
        let chains = snapshot::chain_ids(&image.diff_ids);
        let layers = image.layers()?;
        let mut out = Vec::new();
        for (i, chain) in chains.iter().enumerate() {
            let parent = if i == 0 { None } else { Some(&chains[i - 1]) };
            out.push(self.ensure_snapshot(chain, parent, &image.diff_ids[i], &layers[i].0)?);
        }
        Ok(out)
    }

    /// Prepares a root file system for a container or build step: the
    /// image's unpacked layers (unpacking missing ones) plus a fresh upper and
    /// work dir under `ROOT/rootfs/<id>`. A lease keeps them from GC until
    /// [`Store::remove_rootfs`]. Without overlayfs the tree is copied into
    /// `upper` instead (`copied`).
    pub fn prepare_rootfs(&self, image: &Image, id: &str) -> Result<RootfsLayout> {
        let dir = self.snapshots.rootfs_dir(id)?;
        if dir.exists() {
            return Err(Error::Conflict(format!("rootfs {id} already exists")));
        }
        let chains = snapshot::chain_ids(&image.diff_ids);
        let lease = Lease {
            id: format!("rootfs-{id}"),
            pid: std::process::id(),
            pid_start: crate::metadata::proc_start_time(std::process::id()).unwrap_or(0),
            created: fsutil::now_unix(),
            blobs: image.layers()?.into_iter().map(|l| l.0).collect(),
            snapshots: chains.clone(),
            rootfs: vec![id.to_string()],
        };
        self.meta
            .write(|w| w.put(Table::Leases, &lease.id, &lease))?;
        let upper = dir.join("upper");
        let work = dir.join("work");
        for d in [&upper, &work] {
            fs::create_dir_all(d).ctx(|| format!("create {}", d.display()))?;
        }
        if !snapshot::overlay_supported() {
            for (i, (blob, _, _)) in image.layers()?.iter().enumerate() {
                let f = self.content.open_blob(blob)?;
                let stats = layer::apply_layer(
                    BufReader::with_capacity(1 << 20, f),
                    &upper,
                    &ApplyOptions {
                        mode: ApplyMode::Merged,
                        ..ApplyOptions::default()
                    },
                )?;
                if stats.diff_id != image.diff_ids[i] {
                    return Err(Error::DigestMismatch {
                        what: format!("layer {blob}"),
                        expected: image.diff_ids[i].clone(),
                        actual: stats.diff_id,
                    });
                }
            }
            return Ok(RootfsLayout {
                id: id.to_string(),
                lowers: Vec::new(),
                upper,
                work,
                copied: true,
            });
        }
        let mut lowers = self.unpack(image)?;
        if lowers.is_empty() {
            // overlayfs needs one lower dir; an image without layers gets an empty one.
            let empty = dir.join("empty");
            fs::create_dir_all(&empty).ctx(|| format!("create {}", empty.display()))?;
            lowers.push(empty);
        }
        lowers.reverse();
        Ok(RootfsLayout {
            id: id.to_string(),
            lowers,
            upper,
            work,
            copied: false,
        })
    }

    /// Keeps a finished step's upper dir as the snapshot of the layer made
    /// from it (see [`Store::create_layer`] with [`DiffSource::OverlayUpper`]),
    /// stacked on `parent_diff_ids`: the next step mounts it as a lower dir
    /// without unpacking anything. The upper dir already holds overlayfs's
    /// whiteouts and opaque markers, the snapshot format, so this is a rename.
    /// The rootfs is removed. Returns the new snapshot's chain ID.
    pub fn commit_rootfs(
        &self,
        id: &str,
        parent_diff_ids: &[Digest],
        diff_id: &Digest,
    ) -> Result<Digest> {
        let dir = self.snapshots.rootfs_dir(id)?;
        let mut diffs = parent_diff_ids.to_vec();
        diffs.push(diff_id.clone());
        let chains = snapshot::chain_ids(&diffs);
        let chain = chains.last().expect("at least one layer").clone();
        let record = if self.snapshots.exists(&chain) {
            None
        } else {
            let temp = self.snapshots.temp()?;
            let fs_dir = temp.join("fs");
            fs::remove_dir(&fs_dir).ctx(|| format!("remove {}", fs_dir.display()))?;
            let upper = dir.join("upper");
            fs::rename(&upper, &fs_dir)
                .ctx(|| format!("rename {} to {}", upper.display(), fs_dir.display()))?;
            let size = Snapshots::du(&fs_dir);
            self.snapshots.commit(&temp, &chain)?;
            Some(SnapshotRecord {
                chain_id: chain.clone(),
                parent: chains.len().checked_sub(2).map(|i| chains[i].clone()),
                diff_id: diff_id.clone(),
                size,
                created: fsutil::now_unix(),
            })
        };
        // The record and the end of the rootfs lease in one commit: a step's fsyncs are most of
        // what a small RUN costs.
        self.remove_rootfs_then(id, |w| match &record {
            Some(rec) => w.put(Table::Snapshots, chain.hex(), rec),
            None => Ok(()),
        })?;
        Ok(chain)
    }

    /// Removes a prepared rootfs (its upper and work dirs) and its lease. The
    /// caller unmounts first.
    pub fn remove_rootfs(&self, id: &str) -> Result<()> {
        self.remove_rootfs_then(id, |_| Ok(()))
    }

    /// [`Store::remove_rootfs`], with `also` written in the transaction that ends the lease.
    fn remove_rootfs_then(
        &self,
        id: &str,
        also: impl FnOnce(&mut crate::metadata::Writer) -> Result<()>,
    ) -> Result<()> {
        let dir = self.snapshots.rootfs_dir(id)?;
        fsutil::remove_tree(&dir)?;
        self.meta.write(|w| {
            also(w)?;
            w.remove(Table::Leases, &format!("rootfs-{id}"))?;
            Ok(())
        })
    }

    // ---------------------------------------------------------------- leases and cache

    /// Takes a lease for this process: every blob written or touched while it
    /// is held, and what is added to it, survives garbage collection.
    pub fn lease(&self, id: &str) -> Result<LeaseGuard> {
        let pid = std::process::id();
        let lease = Lease {
            id: id.to_string(),
            pid,
            pid_start: crate::metadata::proc_start_time(pid).unwrap_or(0),
            created: fsutil::now_unix(),
            ..Lease::default()
        };
        self.meta.write(|w| w.put(Table::Leases, id, &lease))?;
        Ok(LeaseGuard {
            store: self.clone(),
            id: id.to_string(),
        })
    }

    /// The build-cache record for `key`, if any.
    pub fn cache_get(&self, key: &str) -> Result<Option<CacheRecord>> {
        self.meta.read(|r| r.get(Table::Cache, key))
    }

    /// Records a build-cache result; its blobs and snapshots must exist.
    pub fn cache_put(&self, key: &str, record: &CacheRecord) -> Result<()> {
        self.cache_put_all(&[(key, record)])
    }

    /// Records several build-cache results in one transaction (one commit's fsyncs instead of
    /// one per record); their blobs and snapshots must exist.
    pub fn cache_put_all(&self, records: &[(&str, &CacheRecord)]) -> Result<()> {
        for (_, record) in records {
            for b in &record.blobs {
                if !self.content.contains(b) {
                    return Err(Error::BlobNotFound(b.clone()));
                }
            }
            for s in &record.snapshots {
                if !self.snapshots.exists(s) {
                    return Err(Error::Conflict(format!("snapshot {s} does not exist")));
                }
            }
        }
        self.meta.write(|w| {
            for (key, record) in records {
                w.put(Table::Cache, key, record)?;
            }
            Ok(())
        })
    }

    /// Removes a build-cache record.
    pub fn cache_remove(&self, key: &str) -> Result<bool> {
        self.meta.write(|w| w.remove(Table::Cache, key))
    }
}
