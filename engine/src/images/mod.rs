//! Images in the store: list, inspect, history, tag, remove, save, load and import.
//!
//! Results are typed; [`ImageInspect`] serializes to docker's `image inspect` object, which
//! both faces print as it is (the CLI's `kiln inspect`, the API's `GET /images/{name}/json`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use kiln_cache::image::{normalize_name, parse_rfc3339, split_tag};
use kiln_cache::store::Image;
use kiln_cache::transfer::{self, ImportOptions, SaveItem};
use kiln_cache::Digest;
use serde::Serialize;

use crate::{Engine, Error, Progress, Result, ResultExt};

mod filter;

pub use filter::{dangling_value, filter_flag_pairs, glob_match, ImageFilter, IMAGE_FILTER_KEYS};

/// One name of an image, as `docker images` lists it.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    /// The image ID (its config's digest).
    pub id: Digest,
    /// The name's repository (`busybox`, `127.0.0.1:5000/app`).
    pub repository: String,
    /// The name's tag.
    pub tag: String,
    /// The manifest's digest.
    pub manifest_digest: Digest,
    /// The config's `created`, as written there (RFC 3339), if any.
    pub created_at: Option<String>,
    /// `created` in unix seconds; 0 when unknown.
    pub created: i64,
    /// The layers' size in bytes, as stored.
    pub size: u64,
    /// The config's labels.
    pub labels: BTreeMap<String, String>,
}

/// One image (all its names) as docker's `GET /images/json` lists it (moby's
/// `image.Summary`). kiln keeps no parent images, and counts neither shared sizes nor
/// containers: those are docker's "not computed" values.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageListEntry {
    /// The image ID.
    pub id: String,
    /// Always empty.
    pub parent_id: String,
    /// The names listed (those the filter kept).
    pub repo_tags: Vec<String>,
    /// Registry digests (kiln records none yet, as in [`ImageInspect`]).
    pub repo_digests: Vec<String>,
    /// `created`, unix seconds.
    pub created: i64,
    /// The layers' size in bytes.
    pub size: u64,
    /// The same as `size` (docker's deprecated field).
    pub virtual_size: u64,
    /// -1: not computed.
    pub shared_size: i64,
    /// The config's labels.
    pub labels: BTreeMap<String, String>,
    /// -1: not computed.
    pub containers: i64,
}

impl ImageListEntry {
    /// The images of `names`, one entry per ID (first seen first), in their order.
    pub fn group(names: &[ImageSummary]) -> Vec<ImageListEntry> {
        let mut out: Vec<ImageListEntry> = Vec::new();
        for n in names {
            let tag = format!("{}:{}", n.repository, n.tag);
            let id = n.id.to_string();
            match out.iter_mut().find(|e| e.id == id) {
                Some(e) => e.repo_tags.push(tag),
                None => out.push(ImageListEntry {
                    id,
                    parent_id: String::new(),
                    repo_tags: vec![tag],
                    repo_digests: Vec::new(),
                    created: n.created,
                    size: n.size,
                    virtual_size: n.size,
                    shared_size: -1,
                    labels: n.labels.clone(),
                    containers: -1,
                }),
            }
        }
        out
    }
}

/// One entry of an image's history, newest first, as `docker history` shows it.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    /// The image ID on the newest entry; `None` (docker's `<missing>`) on the others, whose
    /// intermediate images kiln does not keep.
    pub id: Option<Digest>,
    /// When the step ran (RFC 3339), as written in the config.
    pub created_at: Option<String>,
    /// `created` in unix seconds, when it parses.
    pub created: Option<i64>,
    /// The instruction that made it.
    pub created_by: String,
    /// The size of the layer it added (0 for an empty layer).
    pub size: u64,
    /// The history comment.
    pub comment: String,
    /// Whether the step added no layer.
    pub empty_layer: bool,
}

/// What removing one image reference did.
#[derive(Debug, Clone, Default)]
pub struct RemovedImage {
    /// Names that were removed.
    pub untagged: Vec<String>,
    /// The image ID deleted, when its last name went.
    pub deleted: Option<Digest>,
}

/// What [`Engine::prune_images`] removes.
#[derive(Debug, Clone, Default)]
pub struct ImagePruneOptions {
    /// Remove every image no container uses (docker's `-a`, `dangling=false`).
    pub all: bool,
    /// Only images with these labels (`key` or `key=value`).
    pub labels: Vec<String>,
}

/// What [`Engine::prune_images`] did.
#[derive(Debug, Clone, Default)]
pub struct ImagePruneReport {
    /// The images removed.
    pub deleted: Vec<RemovedImage>,
    /// Bytes freed.
    pub space_reclaimed: u64,
}

/// docker's `image inspect` object.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    /// The image ID.
    pub id: String,
    /// Its names.
    pub repo_tags: Vec<String>,
    /// Registry digests (kiln records none yet).
    pub repo_digests: Vec<String>,
    /// Always empty: kiln keeps no parent images.
    pub parent: String,
    /// The config's `comment`.
    pub comment: serde_json::Value,
    /// The config's `created`.
    pub created: serde_json::Value,
    /// The config's `docker_version`.
    pub docker_version: serde_json::Value,
    /// The config's `author`.
    pub author: serde_json::Value,
    /// The config's `config` (Env, Cmd, Entrypoint, ...).
    pub config: serde_json::Value,
    /// The config's `architecture`.
    pub architecture: serde_json::Value,
    /// The config's `variant`, when it has one.
    pub variant: Option<serde_json::Value>,
    /// The config's `os`.
    pub os: serde_json::Value,
    /// The layers' size in bytes.
    pub size: u64,
    /// The diff IDs.
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
    /// The manifest's descriptor.
    pub descriptor: Descriptor,
    /// docker's metadata block.
    pub metadata: InspectMetadata,
}

/// `RootFS` of [`ImageInspect`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The diff IDs, bottom first.
    pub layers: Vec<String>,
}

/// An OCI descriptor, with OCI's field names.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type.
    pub media_type: String,
    /// The digest.
    pub digest: String,
    /// The size in bytes.
    pub size: u64,
}

/// `Metadata` of [`ImageInspect`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectMetadata {
    /// When the image was last tagged (kiln reports docker's zero time).
    pub last_tag_time: String,
}

impl ImageInspect {
    /// The inspect object of a loaded image.
    pub fn of(img: &Image) -> Result<ImageInspect> {
        let cfg: serde_json::Value = serde_json::from_slice(&img.config_raw)?;
        let field = |k: &str| cfg.get(k).cloned().unwrap_or_else(|| "".into());
        Ok(ImageInspect {
            id: img.id.to_string(),
            repo_tags: img.names.clone(),
            repo_digests: Vec::new(),
            parent: String::new(),
            comment: field("comment"),
            created: field("created"),
            docker_version: field("docker_version"),
            author: field("author"),
            config: cfg
                .get("config")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            architecture: field("architecture"),
            variant: cfg.get("variant").cloned(),
            os: field("os"),
            size: img.size()?,
            root_fs: RootFs {
                kind: "layers".into(),
                layers: img.diff_ids.iter().map(|d| d.to_string()).collect(),
            },
            descriptor: Descriptor {
                media_type: img.manifest.media_type.clone(),
                digest: img.manifest_digest.to_string(),
                size: img.manifest_size,
            },
            metadata: InspectMetadata {
                last_tag_time: "0001-01-01T00:00:00Z".into(),
            },
        })
    }
}

/// The archive formats of [`Engine::save_images`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchiveFormat {
    /// `docker save`'s docker-archive (the default).
    #[default]
    Docker,
    /// An OCI image layout in a tar.
    Oci,
}

/// Where [`Engine::import_rootfs`] reads a root filesystem from.
pub enum RootfsSource {
    /// A directory, taken as it is.
    Directory(PathBuf),
    /// A tar archive file (plain, gzip or zstd).
    File(PathBuf),
    /// A tar stream (plain, gzip or zstd), with the name errors should show for it.
    Stream {
        /// The stream.
        reader: Box<dyn Read + Send>,
        /// What to call it in messages (`-` for standard input).
        name: String,
    },
}

/// What [`Engine::load_images`] reads.
pub enum ArchiveSource {
    /// An OCI image layout directory.
    Directory(PathBuf),
    /// A file holding a docker-archive or OCI layout tar (optionally compressed).
    File(PathBuf),
    /// The same as a stream (an API request body, standard input).
    Stream(Box<dyn Read + Send>),
}

/// One image [`Engine::load_images`] stored.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// The name it got, if the archive named it.
    pub name: Option<String>,
    /// Its ID.
    pub id: Digest,
}

/// The 12 characters docker shows of a container ID.
fn short_id(id: &str) -> String {
    id.chars().take(12).collect()
}

/// The config's `created` in unix seconds; 0 when unknown.
fn created_seconds(img: &Image) -> i64 {
    img.config
        .created()
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or(0)
}

/// The config's labels.
pub fn image_labels(img: &Image) -> BTreeMap<String, String> {
    img.config
        .config()
        .as_ref()
        .and_then(|c| c.labels().as_ref())
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

impl Engine {
    /// The names of images in the store that pass `filter`, newest tag first. An image that
    /// cannot be read is skipped with a warning; a `before`/`since` image that does not
    /// exist is [`Error::NotFound`].
    pub fn list_images(
        &self,
        filter: &ImageFilter,
        progress: &Progress,
    ) -> Result<Vec<ImageSummary>> {
        let store = self.store()?;
        let created_of = |reference: &Option<String>| -> Result<Option<i64>> {
            let Some(r) = reference else { return Ok(None) };
            let img = self.image(r)?;
            Ok(Some(created_seconds(&img)))
        };
        let before = created_of(&filter.before)?;
        let since = created_of(&filter.since)?;
        let mut recs = store.images()?;
        recs.sort_by(|a, b| b.tagged_at.cmp(&a.tagged_at).then(a.name.cmp(&b.name)));
        let mut out = Vec::new();
        if filter.dangling == Some(true) {
            // Every image kiln keeps has a name.
            return Ok(out);
        }
        for rec in recs {
            if !filter.matches_name(&rec.name) {
                continue;
            }
            let (repo, tag) = split_tag(&rec.name);
            let img = match store.load_image(&rec.manifest, vec![rec.name.clone()]) {
                Ok(i) => i,
                Err(e) => {
                    progress.warn(format!("image {}: {e}", rec.name));
                    continue;
                }
            };
            let labels = image_labels(&img);
            let created = created_seconds(&img);
            if !filter.matches_labels(&labels)
                || before.is_some_and(|b| created >= b)
                || since.is_some_and(|s| created <= s)
            {
                continue;
            }
            out.push(ImageSummary {
                id: img.id.clone(),
                repository: repo.to_string(),
                tag: tag.unwrap_or("latest").to_string(),
                manifest_digest: rec.manifest.clone(),
                created,
                created_at: img.config.created().clone(),
                size: img.size()?,
                labels,
            });
        }
        Ok(out)
    }

    /// The images that pass `filter`, one entry per image ID with all its listed names, as
    /// docker's `GET /images/json` answers.
    pub fn list_image_entries(
        &self,
        filter: &ImageFilter,
        progress: &Progress,
    ) -> Result<Vec<ImageListEntry>> {
        let mut entries = ImageListEntry::group(&self.list_images(filter, progress)?);
        entries.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(entries)
    }

    /// The image a name or ID refers to.
    pub fn image(&self, reference: &str) -> Result<Image> {
        Ok(self.store()?.image(reference)?)
    }

    /// docker's `image inspect` object for a name or ID.
    pub fn inspect_image(&self, reference: &str) -> Result<ImageInspect> {
        ImageInspect::of(&self.image(reference)?)
    }

    /// The image's history, newest first; each entry that added a layer gets that layer's size.
    pub fn image_history(&self, reference: &str) -> Result<Vec<HistoryEntry>> {
        let img = self.image(reference)?;
        let layers = img.layers()?;
        let history = img.config.history().clone().unwrap_or_default();
        // Each non-empty history entry owns the next layer, bottom up.
        let mut next_layer = 0;
        let mut out: Vec<HistoryEntry> = history
            .iter()
            .map(|h| {
                let empty_layer = h.empty_layer().unwrap_or(false);
                let size = if empty_layer {
                    0
                } else {
                    next_layer += 1;
                    layers.get(next_layer - 1).map(|l| l.1).unwrap_or(0)
                };
                HistoryEntry {
                    id: None,
                    created_at: h.created().clone(),
                    created: h.created().as_deref().and_then(parse_rfc3339),
                    created_by: h.created_by().clone().unwrap_or_default(),
                    size,
                    comment: h.comment().clone().unwrap_or_default(),
                    empty_layer,
                }
            })
            .collect();
        out.reverse();
        if let Some(newest) = out.first_mut() {
            newest.id = Some(img.id.clone());
        }
        Ok(out)
    }

    /// Gives the image `source` (name or ID) the name `target` (`repo[:tag]`).
    pub fn tag_image(&self, source: &str, target: &str) -> Result<()> {
        let store = self.store()?;
        // The source first: a bad target name is the caller's input, a 400.
        store.image(source)?;
        store.tag(source, target).map_err(|e| match e {
            e @ kiln_cache::Error::InvalidReference(..) => Error::Invalid(e.to_string()),
            other => other.into(),
        })?;
        Ok(())
    }

    /// Removes images no container uses (with `all`; kiln keeps no unnamed images, so
    /// without it only unreferenced data goes), then reclaims what they held: docker's
    /// `image prune [-a]`.
    pub fn prune_images(&self, opts: &ImagePruneOptions) -> Result<ImagePruneReport> {
        let store = self.store()?;
        let mut deleted = Vec::new();
        if opts.all {
            let used: std::collections::HashSet<Digest> = self
                .containers()?
                .list()
                .iter()
                .filter_map(|c| store.image(&c.image).ok().map(|i| i.id))
                .collect();
            let filter = ImageFilter {
                labels: opts.labels.clone(),
                ..ImageFilter::default()
            };
            let images = self.list_images(&filter, &Progress::none())?;
            let mut ids: Vec<Digest> = images.into_iter().map(|i| i.id).collect();
            ids.dedup();
            for id in ids {
                if used.contains(&id) {
                    continue;
                }
                match store.remove_image(&id.to_string(), true) {
                    Ok((untagged, gone)) => deleted.push(RemovedImage {
                        untagged,
                        deleted: gone,
                    }),
                    // Removed meanwhile by someone else: nothing to report.
                    Err(kiln_cache::Error::ImageNotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let report = kiln_cache::gc::prune(&store, kiln_cache::gc::PruneOptions::default())?;
        Ok(ImagePruneReport {
            deleted,
            space_reclaimed: report.bytes,
        })
    }

    /// Removes a name (or, with `force`, an ID with all its names). An image whose last name
    /// goes is deleted, and with `prune` its blobs and snapshots no other image uses are
    /// reclaimed at once.
    ///
    /// Without `force`, an image a container (running or not) was made from is kept while
    /// that container exists: removing its last name is docker's 409 `conflict: unable to
    /// remove repository reference ...`.
    pub fn remove_image(&self, reference: &str, force: bool, prune: bool) -> Result<RemovedImage> {
        let store = self.store()?;
        if !force {
            let img = store.image(reference)?;
            let by_name = normalize_name(reference)
                .ok()
                .filter(|n| img.names.contains(n));
            // Untagging one of several names leaves the image, as docker allows.
            let deletes = by_name.is_none() || img.names.len() == 1;
            if deletes {
                if let Some(user) = self.container_using(&img.id)? {
                    let (container, image) = (short_id(&user), img.id.short().to_string());
                    return Err(Error::Conflict(match by_name {
                        Some(_) => format!(
                            "conflict: unable to remove repository reference \"{reference}\" \
                             (must force) - container {container} is using its referenced image {image}"
                        ),
                        None => format!(
                            "conflict: unable to delete {image} (must be forced) - image is \
                             being used by container {container}"
                        ),
                    }));
                }
            }
        }
        let (untagged, deleted) = store.remove_image(reference, force).map_err(|e| match e {
            // Docker's 409: several names and no force.
            kiln_cache::Error::Conflict(m) => Error::Conflict(m),
            other => other.into(),
        })?;
        if deleted.is_some() && prune {
            kiln_cache::gc::prune(&store, kiln_cache::gc::PruneOptions::default())?;
        }
        Ok(RemovedImage { untagged, deleted })
    }

    /// The ID of a container made from the image `id`, if any.
    fn container_using(&self, id: &Digest) -> Result<Option<String>> {
        let store = self.store()?;
        Ok(self
            .containers()?
            .list()
            .into_iter()
            .find(|c| store.image(&c.image).is_ok_and(|i| &i.id == id))
            .map(|c| c.id))
    }

    /// Writes the images (names or IDs) to `out` as one archive and returns the writer. An
    /// image named by one of its names is saved with that name; by ID, with none.
    pub fn save_images<W: Write + 'static>(
        &self,
        references: &[String],
        format: ArchiveFormat,
        out: W,
    ) -> Result<Box<dyn Write>> {
        let store = self.store()?;
        let mut items: Vec<SaveItem> = Vec::new();
        for r in references {
            let img = store.image(r)?;
            let names = match normalize_name(r) {
                Ok(n) if img.names.contains(&n) => vec![n],
                _ => Vec::new(),
            };
            match items
                .iter_mut()
                .find(|i| i.image.manifest_digest == img.manifest_digest)
            {
                Some(i) => i.names.extend(names),
                None => items.push(SaveItem { image: img, names }),
            }
        }
        let out: Box<dyn Write> = Box::new(out);
        Ok(match format {
            ArchiveFormat::Oci => transfer::save_oci(&store, &items, out)?,
            ArchiveFormat::Docker => transfer::save_docker(&store, &items, out)?,
        })
    }

    /// Saves the images to the file `path`: written beside it and renamed into place, so a
    /// failed save leaves no partial file.
    pub fn save_images_to(
        &self,
        references: &[String],
        format: ArchiveFormat,
        path: &Path,
    ) -> Result<()> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = dir.join(format!(
            ".{}.kiln-tmp-{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("save"),
            std::process::id()
        ));
        let file = std::fs::File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let written = self
            .save_images(
                references,
                format,
                std::io::BufWriter::with_capacity(1 << 20, file),
            )
            .and_then(|mut w| Ok(w.flush()?));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, path)
            .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))
    }

    /// Loads a docker-archive or OCI layout (tar, compressed tar or directory; the format is
    /// detected) and returns what it stored.
    pub fn load_images(&self, source: ArchiveSource) -> Result<Vec<LoadedImage>> {
        let store = self.store()?;
        let loaded = match source {
            ArchiveSource::Directory(p) => transfer::load_oci_dir(&store, &p)?,
            ArchiveSource::File(p) => {
                let f = std::fs::File::open(&p).map_err(|e| Error::io("open", &p, e))?;
                transfer::load(&store, f).with_context(|| format!("load {}", p.display()))?
            }
            ArchiveSource::Stream(r) => transfer::load(&store, r)?,
        };
        Ok(loaded
            .into_iter()
            .map(|(name, _, id)| LoadedImage { name, id })
            .collect())
    }

    /// Makes a one-layer image named `name` from a root filesystem; returns its ID.
    pub fn import_rootfs(
        &self,
        source: RootfsSource,
        name: &str,
        message: Option<String>,
    ) -> Result<Digest> {
        let store = self.store()?;
        let opts = ImportOptions {
            comment: message,
            source_date_epoch: None,
            limits: None,
        };
        let (_, id) = match source {
            RootfsSource::Directory(p) => transfer::import_rootfs_dir(&store, &p, name, &opts)?,
            RootfsSource::File(p) => {
                let f = std::fs::File::open(&p).map_err(|e| Error::io("open", &p, e))?;
                let shown = p.display().to_string();
                transfer::import_rootfs_tar(&store, f, name, &shown, &opts)
                    .with_context(|| format!("import {shown}"))?
            }
            RootfsSource::Stream {
                reader,
                name: shown,
            } => transfer::import_rootfs_tar(&store, reader, name, &shown, &opts)?,
        };
        Ok(id)
    }
}
