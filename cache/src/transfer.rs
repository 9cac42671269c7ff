//! Import and export: OCI image layouts (directory or tar), docker-archive
//! (`docker save` format: `manifest.json`, `repositories`, a config and one
//! tar per layer), and a rootfs tarball or directory as a one-layer image.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;
use crate::image::{self, MediaTypes, Parsed, MAX_JSON};
use crate::layer::{
    self, ApplyMode, ApplyOptions, CompressOptions, Compression, DiffSource, TarOptions,
};
use crate::metadata::{SnapshotRecord, Table};
use crate::store::{Image, Store};

/// Formats `kiln save` writes and `kiln load` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// An OCI image layout in a tar (`oci-archive:`).
    Oci,
    /// docker-archive (`docker save`).
    Docker,
}

/// One image to save and the names to save it under.
#[derive(Debug, Clone)]
pub struct SaveItem {
    /// The image.
    pub image: Image,
    /// Names (`repo:tag`) it is saved under; may be empty (saved by ID).
    pub names: Vec<String>,
}

fn tar_file<W: Write>(
    b: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    data: impl Read,
) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    h.set_path(path).ctx(|| format!("name {path} in archive"))?;
    h.set_cksum();
    b.append(&h, data)
        .ctx(|| format!("write {path} to archive"))
}

fn tar_dir<W: Write>(b: &mut tar::Builder<W>, path: &str) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_mtime(0);
    h.set_path(path).ctx(|| format!("name {path} in archive"))?;
    h.set_cksum();
    b.append(&h, io::empty())
        .ctx(|| format!("write {path} to archive"))
}

/// The compression of a stored blob, from its media type or else its first bytes.
fn blob_compression(store: &Store, digest: &Digest, media_type: &str) -> Result<Compression> {
    if let Some(c) = Compression::from_media_type(media_type) {
        return Ok(c);
    }
    let mut f = store.content().open_blob(digest)?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).ctx(|| format!("read blob {digest}"))?;
    Ok(Compression::detect(&magic[..n]))
}

/// A manifest for `img` in the chosen media types (layers keep their compression).
fn manifest_for(store: &Store, img: &Image, types: MediaTypes) -> Result<Vec<u8>> {
    let layers = img
        .layers()?
        .into_iter()
        .map(|(d, s, mt)| {
            let c = blob_compression(store, &d, &mt)?;
            let mt = match types {
                MediaTypes::Oci => c.oci_media_type(),
                MediaTypes::Docker => c.docker_media_type(),
            };
            Ok((d, s, mt.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    image::build_manifest(types, (&img.id, img.config_raw.len() as u64), &layers)
}

/// Writes an OCI image layout as a tar stream: `oci-layout`, `index.json`
/// (one entry per name, annotated as containerd and docker do) and the blobs.
pub fn save_oci<W: Write>(store: &Store, items: &[SaveItem], out: W) -> Result<W> {
    let mut b = tar::Builder::new(out);
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    tar_file(&mut b, "oci-layout", layout.len() as u64, &layout[..])?;
    tar_dir(&mut b, "blobs/")?;
    tar_dir(&mut b, "blobs/sha256/")?;
    let mut written: std::collections::HashSet<Digest> = Default::default();
    let mut index = Vec::new();
    for item in items {
        let img = &item.image;
        let manifest = manifest_for(store, img, MediaTypes::Oci)?;
        let mdigest = Digest::of(&manifest);
        if written.insert(mdigest.clone()) {
            tar_file(
                &mut b,
                &format!("blobs/sha256/{}", mdigest.hex()),
                manifest.len() as u64,
                &manifest[..],
            )?;
        }
        if written.insert(img.id.clone()) {
            tar_file(
                &mut b,
                &format!("blobs/sha256/{}", img.id.hex()),
                img.config_raw.len() as u64,
                &img.config_raw[..],
            )?;
        }
        for (d, size, _) in img.layers()? {
            if written.insert(d.clone()) {
                let f = store.content().open_blob(&d)?;
                tar_file(&mut b, &format!("blobs/sha256/{}", d.hex()), size, f)?;
            }
        }
        let desc = |ann: serde_json::Value| {
            let mut v = serde_json::json!({
                "mediaType": image::OCI_MANIFEST,
                "digest": mdigest.to_string(),
                "size": manifest.len(),
            });
            if !ann.is_null() {
                v["annotations"] = ann;
            }
            v
        };
        if item.names.is_empty() {
            index.push(desc(serde_json::Value::Null));
        }
        for n in &item.names {
            let (_, tag) = image::split_tag(n);
            index.push(desc(serde_json::json!({
                "io.containerd.image.name": full_name(n),
                "org.opencontainers.image.ref.name": tag.unwrap_or("latest"),
            })));
        }
    }
    let idx = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": image::OCI_INDEX,
        "manifests": index,
    }))?;
    tar_file(&mut b, "index.json", idx.len() as u64, &idx[..])?;
    b.into_inner().ctx(|| "finish archive".to_string())
}

/// `busybox:latest` -> `docker.io/library/busybox:latest` (the fully
/// qualified form containerd and docker write into archives).
pub fn full_name(familiar: &str) -> String {
    let first = familiar.split('/').next().unwrap_or("");
    let has_host = familiar.contains('/')
        && (first.contains('.') || first.contains(':') || first == "localhost");
    if has_host {
        familiar.to_string()
    } else if familiar.contains('/') {
        format!("docker.io/{familiar}")
    } else {
        format!("docker.io/library/{familiar}")
    }
}

/// Writes a docker-archive tar stream (what `docker save` writes and
/// `docker load`, podman and skopeo read). Layers go uncompressed, as docker
/// writes them; compressed blobs are decompressed through a scratch file.
pub fn save_docker<W: Write>(store: &Store, items: &[SaveItem], out: W) -> Result<W> {
    let mut b = tar::Builder::new(out);
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut written: std::collections::HashSet<String> = Default::default();
    let scratch = store.scratch()?;
    let result = (|| -> Result<()> {
        for item in items {
            let img = &item.image;
            let cfg_name = format!("{}.json", img.id.hex());
            if written.insert(cfg_name.clone()) {
                tar_file(
                    &mut b,
                    &cfg_name,
                    img.config_raw.len() as u64,
                    &img.config_raw[..],
                )?;
            }
            let mut layer_paths = Vec::new();
            for (i, (d, size, mt)) in img.layers()?.into_iter().enumerate() {
                let diff = &img.diff_ids[i];
                let path = format!("{}/layer.tar", diff.hex());
                if written.insert(path.clone()) {
                    tar_dir(&mut b, &format!("{}/", diff.hex()))?;
                    match blob_compression(store, &d, &mt)? {
                        Compression::None => {
                            let f = store.content().open_blob(&d)?;
                            tar_file(&mut b, &path, size, f)?;
                        }
                        _ => {
                            let tmp = scratch.join(diff.hex());
                            let f = store.content().open_blob(&d)?;
                            let (_, mut dec) = layer::compress::decoder(BufReader::new(f))
                                .ctx(|| format!("decompress {d}"))?;
                            let mut out =
                                File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
                            let n =
                                io::copy(&mut dec, &mut out).ctx(|| format!("decompress {d}"))?;
                            drop(out);
                            let f = File::open(&tmp).ctx(|| format!("open {}", tmp.display()))?;
                            tar_file(&mut b, &path, n, f)?;
                            fs::remove_file(&tmp).ctx(|| format!("remove {}", tmp.display()))?;
                        }
                    }
                }
                layer_paths.push(path);
            }
            for n in &item.names {
                let (repo, tag) = image::split_tag(n);
                if let Some(top) = img.diff_ids.last() {
                    repositories
                        .entry(repo.to_string())
                        .or_default()
                        .insert(tag.unwrap_or("latest").to_string(), top.hex().to_string());
                }
            }
            manifest.push(serde_json::json!({
                "Config": cfg_name,
                "RepoTags": item.names,
                "Layers": layer_paths,
            }));
        }
        let m = serde_json::to_vec(&manifest)?;
        tar_file(&mut b, "manifest.json", m.len() as u64, &m[..])?;
        let r = serde_json::to_vec(&repositories)?;
        tar_file(&mut b, "repositories", r.len() as u64, &r[..])?;
        Ok(())
    })();
    let _ = fsutil::remove_tree(&scratch);
    result?;
    b.into_inner().ctx(|| "finish archive".to_string())
}

/// What `kiln load` brought in: (name or None, manifest digest, image ID).
pub type Loaded = Vec<(Option<String>, Digest, Digest)>;

fn clean_member(name: &[u8]) -> String {
    let s = String::from_utf8_lossy(name);
    let s = s.trim_start_matches("./").trim_start_matches('/');
    s.to_string()
}

/// Reads an image archive (OCI layout tar or docker-archive, optionally
/// gzip/zstd compressed; told apart by their index files) and stores its
/// images. Every file is streamed into the content store as it comes
/// (digest-named blobs are checked against their names), so memory stays flat.
pub fn load<R: Read + Send>(store: &Store, reader: R) -> Result<Loaded> {
    let _lease = store.lease(&fsutil::temp_name("load"))?;
    let (_, dec) = layer::compress::decoder(BufReader::with_capacity(1 << 20, reader))
        .ctx(|| "read archive".to_string())?;
    let mut archive = tar::Archive::new(dec);
    let mut files: HashMap<String, Digest> = HashMap::new();
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    for entry in archive.entries().ctx(|| "read archive".to_string())? {
        let mut entry = entry.ctx(|| "read archive".to_string())?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = clean_member(&entry.path_bytes());
        let size = entry.size();
        let expected = name
            .strip_prefix("blobs/sha256/")
            .and_then(|h| Digest::from_hex(h).ok());
        let wants_bytes = matches!(
            name.as_str(),
            "index.json" | "oci-layout" | "manifest.json" | "repositories"
        ) || (name.ends_with(".json") && !name.contains('/'));
        if wants_bytes {
            if size > MAX_JSON {
                return Err(Error::Format(format!(
                    "{name} in the archive is larger than {MAX_JSON} bytes"
                )));
            }
            let mut buf = Vec::new();
            entry
                .read_to_end(&mut buf)
                .ctx(|| format!("read {name} from archive"))?;
            small.insert(name, buf);
            continue;
        }
        let (d, _) = store
            .content()
            .put_reader(&mut entry, expected.as_ref().map(|d| (d, Some(size))))?;
        files.insert(name, d);
    }
    if let Some(m) = small.get("manifest.json").cloned() {
        load_docker(store, &m, &files, &small)
    } else if let Some(idx) = small.get("index.json").cloned() {
        load_oci_index(store, &idx)
    } else {
        Err(Error::Format(
            "not an image archive: neither manifest.json (docker-archive) nor index.json (OCI layout) found".into(),
        ))
    }
}

fn load_oci_index(store: &Store, idx: &[u8]) -> Result<Loaded> {
    let Parsed::Index(idx) = image::parse_manifest(idx)? else {
        return Err(Error::Format("index.json is not an image index".into()));
    };
    let mut out = Vec::new();
    for desc in idx.manifests() {
        let mut d = Digest::try_from(desc.digest())?;
        // A nested index (multi-platform image): take this machine's platform.
        let bytes = store.content().read_bytes(&d, MAX_JSON)?;
        if let Parsed::Index(inner) = image::parse_manifest(&bytes)? {
            d = Digest::try_from(image::pick_platform(&inner)?.digest())?;
        }
        let img = store.load_image(&d, Vec::new())?;
        for (l, _, _) in img.layers()? {
            if !store.content().contains(&l) {
                return Err(Error::Format(format!(
                    "layer {l} is missing from the archive"
                )));
            }
        }
        let ann = desc.annotations().clone().unwrap_or_default();
        let name = ann
            .get("io.containerd.image.name")
            .cloned()
            .or_else(|| {
                ann.get("org.opencontainers.image.ref.name")
                    .filter(|r| r.contains(':') || r.contains('/'))
                    .cloned()
            })
            .and_then(|n| image::normalize_name(&n).ok());
        if let Some(n) = &name {
            store.set_name(n, &d)?;
        }
        out.push((name, d, img.id));
    }
    Ok(out)
}

fn load_docker(
    store: &Store,
    manifest: &[u8],
    files: &HashMap<String, Digest>,
    small: &HashMap<String, Vec<u8>>,
) -> Result<Loaded> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        layers: Vec<String>,
    }
    let entries: Vec<Entry> = serde_json::from_slice(manifest)
        .map_err(|e| Error::Format(format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let cfg_name = clean_member(e.config.as_bytes());
        let config = match small.get(&cfg_name) {
            Some(b) => b.clone(),
            None => {
                let d = files.get(&cfg_name).ok_or_else(|| {
                    Error::Format(format!("config {cfg_name} is missing from the archive"))
                })?;
                store.content().read_bytes(d, MAX_JSON)?
            }
        };
        let cfg = image::parse_config(&config)?;
        let diff_ids = image::diff_ids(&cfg)?;
        if diff_ids.len() != e.layers.len() {
            return Err(Error::Format(format!(
                "{cfg_name}: {} diff IDs for {} layers",
                diff_ids.len(),
                e.layers.len()
            )));
        }
        let mut layers = Vec::new();
        for (i, l) in e.layers.iter().enumerate() {
            let l = clean_member(l.as_bytes());
            let d = files
                .get(&l)
                .ok_or_else(|| Error::Format(format!("layer {l} is missing from the archive")))?;
            let c = blob_compression(store, d, "")?;
            if c == Compression::None && d != &diff_ids[i] {
                return Err(Error::DigestMismatch {
                    what: format!("layer {l}"),
                    expected: diff_ids[i].clone(),
                    actual: d.clone(),
                });
            }
            layers.push((
                d.clone(),
                store.content().size(d)?,
                c.oci_media_type().to_string(),
            ));
        }
        let tags: Vec<String> = e
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| image::normalize_name(t))
            .collect::<Result<_>>()?;
        let (m, id) = store.commit_image(None, &config, &layers, MediaTypes::Oci)?;
        if tags.is_empty() {
            out.push((None, m.clone(), id.clone()));
        }
        for t in tags {
            store.set_name(&t, &m)?;
            out.push((Some(t), m.clone(), id.clone()));
        }
    }
    Ok(out)
}

/// Loads an OCI image layout directory.
pub fn load_oci_dir(store: &Store, dir: &Path) -> Result<Loaded> {
    let _lease = store.lease(&fsutil::temp_name("load"))?;
    let blobs = dir.join("blobs/sha256");
    for e in fs::read_dir(&blobs).ctx(|| format!("read {}", blobs.display()))? {
        let e = e.ctx(|| format!("read {}", blobs.display()))?;
        let Ok(d) = Digest::from_hex(&e.file_name().to_string_lossy()) else {
            continue;
        };
        let f = File::open(e.path()).ctx(|| format!("open {}", e.path().display()))?;
        store.content().put_reader(f, Some((&d, None)))?;
    }
    let idx =
        fs::read(dir.join("index.json")).ctx(|| format!("read {}/index.json", dir.display()))?;
    load_oci_index(store, &idx)
}

/// Options of a rootfs import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The history comment (docker: "Imported from -").
    pub comment: Option<String>,
    /// Fixed times for the layer and config (else `SOURCE_DATE_EPOCH` or now).
    pub source_date_epoch: Option<i64>,
    /// Limits for unpacking the tarball (default: [`ApplyOptions::default`]).
    pub limits: Option<ApplyOptions>,
}

fn import_config(diff_id: &Digest, opts: &ImportOptions, source: &str) -> Result<Vec<u8>> {
    let created = image::rfc3339(opts.source_date_epoch.unwrap_or_else(image::created_now));
    let v = serde_json::json!({
        "created": created,
        "architecture": image::host_arch(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        "history": [{
            "created": created,
            "created_by": "kiln import",
            "comment": opts.comment.clone().unwrap_or_else(|| format!("Imported from {source}")),
        }],
    });
    Ok(serde_json::to_vec(&v)?)
}

/// `kiln import ROOTFS.tar NAME`: a tarball (plain, gzip or zstd) of a root
/// file system as a one-layer image. The tarball is unpacked safely first
/// (hostile archives are refused and leave nothing behind), then the layer is
/// written from the unpacked tree, deterministically; the tree becomes the
/// layer's snapshot.
pub fn import_rootfs_tar<R: Read + Send>(
    store: &Store,
    reader: R,
    name: &str,
    source: &str,
    opts: &ImportOptions,
) -> Result<(Digest, Digest)> {
    let name = image::normalize_name(name)?;
    let _lease = store.lease(&fsutil::temp_name("import"))?;
    let temp = store.snapshots().temp()?;
    let fs_dir = temp.join("fs");
    let result = (|| {
        layer::apply_layer(
            reader,
            &fs_dir,
            &ApplyOptions {
                mode: ApplyMode::Merged,
                ..opts.limits.unwrap_or_default()
            },
        )?;
        store.create_layer(
            DiffSource::Tree(&fs_dir),
            &TarOptions {
                source_date_epoch: opts.source_date_epoch,
            },
            &CompressOptions {
                compression: Compression::None,
                ..CompressOptions::default()
            },
        )
    })();
    let info = match result {
        Ok(i) => i,
        Err(e) => {
            let _ = fsutil::remove_tree(&temp);
            return Err(e);
        }
    };
    let size = crate::snapshot::Snapshots::du(&fs_dir);
    store.snapshots().commit(&temp, &info.diff_id)?;
    let rec = SnapshotRecord {
        chain_id: info.diff_id.clone(),
        parent: None,
        diff_id: info.diff_id.clone(),
        size,
        created: fsutil::now_unix(),
    };
    store
        .metadata()
        .write(|w| w.put(Table::Snapshots, info.diff_id.hex(), &rec))?;
    let config = import_config(&info.diff_id, opts, source)?;
    store.commit_image(
        Some(&name),
        &config,
        &[(
            info.digest.clone(),
            info.size,
            Compression::None.oci_media_type().to_string(),
        )],
        MediaTypes::Oci,
    )
}

/// `kiln import DIR NAME`: a directory tree as a one-layer image.
pub fn import_rootfs_dir(
    store: &Store,
    dir: &Path,
    name: &str,
    opts: &ImportOptions,
) -> Result<(Digest, Digest)> {
    let name = image::normalize_name(name)?;
    let _lease = store.lease(&fsutil::temp_name("import"))?;
    let info = store.create_layer(
        DiffSource::Tree(dir),
        &TarOptions {
            source_date_epoch: opts.source_date_epoch,
        },
        &CompressOptions {
            compression: Compression::None,
            ..CompressOptions::default()
        },
    )?;
    let config = import_config(&info.diff_id, opts, &dir.display().to_string())?;
    store.commit_image(
        Some(&name),
        &config,
        &[(
            info.digest.clone(),
            info.size,
            Compression::None.oci_media_type().to_string(),
        )],
        MediaTypes::Oci,
    )
}
