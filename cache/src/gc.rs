//! Garbage collection (reachability from names, cache records and leases) and
//! `check` (fsck: every blob re-hashed, every reference followed).

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;

use rayon::prelude::*;

use crate::digest::Digest;
use crate::error::Result;
use crate::fsutil;
use crate::image::{self, Parsed, MAX_JSON};
use crate::metadata::{CacheRecord, ImageRecord, Lease, Reader, SnapshotRecord, Table};
use crate::snapshot::{self, Snapshots};
use crate::store::Store;

/// What `prune` may remove beyond unreachable data.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneOptions {
    /// Also drop every build-cache record and every unpacked snapshot not held
    /// by a lease (they are re-made from blobs on demand). Named images stay:
    /// names are GC roots.
    pub all: bool,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Blobs deleted.
    pub blobs: usize,
    /// Snapshots deleted.
    pub snapshots: usize,
    /// Cache records dropped.
    pub cache_records: usize,
    /// Leftovers of dead writers removed (temp files, dead leases, rootfs dirs).
    pub leftovers: usize,
    /// Bytes freed (apparent size).
    pub bytes: u64,
}

/// The blobs and snapshots an image needs (whatever of it can be read).
fn image_refs(
    store: &Store,
    manifest: &Digest,
    blobs: &mut HashSet<Digest>,
    snaps: &mut HashSet<Digest>,
) {
    blobs.insert(manifest.clone());
    let Ok(bytes) = store.content().read_bytes(manifest, MAX_JSON) else {
        return;
    };
    let Ok(Parsed::Manifest(m)) = image::parse_manifest(&bytes) else {
        return;
    };
    if let Ok(c) = m.config_digest() {
        blobs.insert(c.clone());
        if let Ok(cb) = store.content().read_bytes(&c, MAX_JSON) {
            if let Ok(diffs) = image::parse_config(&cb).and_then(|c| image::diff_ids(&c)) {
                snaps.extend(snapshot::chain_ids(&diffs));
            }
        }
    }
    if let Ok(layers) = m.layers() {
        blobs.extend(layers.into_iter().map(|l| l.0));
    }
}

/// Removes what nothing reaches: blobs not referenced by a name, a cache
/// record or a live lease; snapshots likewise; leftovers of dead writers.
/// Runs under the store's writer lock; records go first (committed), files
/// after, so a crash half-way leaves only garbage, never a dangling record.
pub fn prune(store: &Store, opts: PruneOptions) -> Result<PruneReport> {
    let meta = store.metadata();
    let lock = meta.exclusive()?;
    let mut report = PruneReport::default();
    let (keep_blobs, keep_snaps, keep_rootfs, protect_since, drop_snaps) =
        meta.write_locked(&lock, |w| {
            let images: Vec<(String, ImageRecord)> = w.all(Table::Images)?;
            let caches: Vec<(String, CacheRecord)> = w.all(Table::Cache)?;
            let leases: Vec<(String, Lease)> = w.all(Table::Leases)?;
            let snaps: Vec<(String, SnapshotRecord)> = w.all(Table::Snapshots)?;
            let mut blobs = HashSet::new();
            let mut image_snaps = HashSet::new();
            for (_, r) in &images {
                image_refs(store, &r.manifest, &mut blobs, &mut image_snaps);
            }
            let mut keep_snaps: HashSet<Digest> = if opts.all {
                HashSet::new()
            } else {
                image_snaps
            };
            for (k, c) in &caches {
                if opts.all {
                    w.remove(Table::Cache, k)?;
                    report.cache_records += 1;
                } else {
                    blobs.extend(c.blobs.iter().cloned());
                    keep_snaps.extend(c.snapshots.iter().cloned());
                }
            }
            let mut rootfs = HashSet::new();
            let mut since = i64::MAX;
            for (k, l) in &leases {
                if l.holder_alive() {
                    blobs.extend(l.blobs.iter().cloned());
                    keep_snaps.extend(l.snapshots.iter().cloned());
                    rootfs.extend(l.rootfs.iter().cloned());
                    since = since.min(l.created - 1);
                } else {
                    w.remove(Table::Leases, k)?;
                    report.leftovers += 1;
                }
            }
            let mut drop = Vec::new();
            for (k, s) in &snaps {
                if !keep_snaps.contains(&s.chain_id) {
                    w.remove(Table::Snapshots, k)?;
                    drop.push(s.chain_id.clone());
                }
            }
            Ok((blobs, keep_snaps, rootfs, since, drop))
        })?;
    // Files, still under the lock.
    let cs = store.content();
    for d in cs.list()? {
        if keep_blobs.contains(&d) {
            continue;
        }
        let path = cs.path(&d);
        let Ok(m) = fs::symlink_metadata(&path) else {
            continue;
        };
        if m.mtime() >= protect_since {
            continue;
        }
        cs.delete(&d)?;
        report.blobs += 1;
        report.bytes += m.len();
    }
    for p in cs.stale_ingests()? {
        report.bytes += fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        fsutil::remove_tree(&p)?;
        report.leftovers += 1;
    }
    let snaps = store.snapshots();
    let (on_disk, stale) = snaps.scan()?;
    for chain in on_disk {
        if keep_snaps.contains(&chain) && !drop_snaps.contains(&chain) {
            continue;
        }
        report.bytes += Snapshots::du(&snaps.fs_dir(&chain));
        snaps.remove(&chain)?;
        report.snapshots += 1;
    }
    for p in stale {
        fsutil::remove_tree(&p)?;
        report.leftovers += 1;
    }
    for id in snaps.rootfs_ids()? {
        if !keep_rootfs.contains(&id) {
            fsutil::remove_tree(&snaps.rootfs_dir(&id)?)?;
            report.leftovers += 1;
        }
    }
    let scratch = store.root().join("tmp");
    if let Ok(rd) = fs::read_dir(&scratch) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if fsutil::temp_name_pid(&n).is_none_or(|p| !fsutil::pid_alive(p)) {
                fsutil::remove_tree(&e.path())?;
                report.leftovers += 1;
            }
        }
    }
    // The kept build contexts are build cache too: `--all` drops every one not in use.
    if opts.all {
        report.leftovers += crate::context_mirror::remove_all_unleased(store.root())?;
    }
    drop(lock);
    Ok(report)
}

/// What `check` found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Blobs re-hashed.
    pub blobs_checked: usize,
    /// Names checked.
    pub images_checked: usize,
    /// Inconsistencies (a damaged blob, a name whose manifest is missing...).
    pub errors: Vec<String>,
    /// What `--repair` did about them.
    pub repaired: Vec<String>,
    /// Harmless findings: garbage a prune would remove.
    pub notes: Vec<String>,
}

impl CheckReport {
    /// Whether the store is consistent (after repairs, when repairing).
    pub fn is_clean(&self) -> bool {
        self.errors.len() == self.repaired.len()
    }
}

/// Verifies every blob's digest and every reference (names -> manifests ->
/// configs and layers; cache records; snapshot records). With `repair`,
/// damaged blobs are deleted and records that point at missing data are
/// dropped, so what remains is consistent.
pub fn check(store: &Store, repair: bool) -> Result<CheckReport> {
    let meta = store.metadata();
    let lock = meta.exclusive()?;
    let cs = store.content();
    let mut report = CheckReport::default();
    let blobs = cs.list()?;
    report.blobs_checked = blobs.len();
    let bad: Vec<Digest> = blobs
        .par_iter()
        .filter(|d| !cs.verify(d).unwrap_or(false))
        .cloned()
        .collect();
    let bad: HashSet<Digest> = bad.into_iter().collect();
    let mut sorted_bad: Vec<&Digest> = bad.iter().collect();
    sorted_bad.sort();
    for d in sorted_bad {
        report
            .errors
            .push(format!("blob {d}: content does not match its digest"));
        if repair {
            cs.delete(d)?;
            report.repaired.push(format!("deleted damaged blob {d}"));
        }
    }
    let present = |d: &Digest| cs.contains(d) && !bad.contains(d);
    let (images, caches, snaps, leases) = meta.read_locked(&lock, |r| {
        Ok((
            r.all::<ImageRecord>(Table::Images)?,
            r.all::<CacheRecord>(Table::Cache)?,
            r.all::<SnapshotRecord>(Table::Snapshots)?,
            r.all::<Lease>(Table::Leases)?,
        ))
    })?;
    let mut drop_images = Vec::new();
    for (name, rec) in &images {
        report.images_checked += 1;
        let problem = (|| -> std::result::Result<(), String> {
            if !present(&rec.manifest) {
                return Err(format!("manifest {} is missing or damaged", rec.manifest));
            }
            let img = store
                .load_image(&rec.manifest, Vec::new())
                .map_err(|e| e.to_string())?;
            if img.id != rec.config {
                return Err(format!(
                    "config is {} but the record says {}",
                    img.id, rec.config
                ));
            }
            if !present(&img.id) {
                return Err(format!("config {} is missing or damaged", img.id));
            }
            for (l, size, _) in img.layers().map_err(|e| e.to_string())? {
                if !present(&l) {
                    return Err(format!("layer {l} is missing or damaged"));
                }
                if cs.size(&l).ok() != Some(size) {
                    return Err(format!("layer {l} has the wrong size"));
                }
            }
            Ok(())
        })();
        if let Err(p) = problem {
            report.errors.push(format!("image {name}: {p}"));
            drop_images.push(name.clone());
        }
    }
    let mut drop_cache = Vec::new();
    for (key, c) in &caches {
        if let Some(b) = c.blobs.iter().find(|b| !present(b)) {
            report.errors.push(format!(
                "cache record {key}: blob {b} is missing or damaged"
            ));
            drop_cache.push(key.clone());
        } else if let Some(s) = c.snapshots.iter().find(|s| !store.snapshots().exists(s)) {
            report
                .errors
                .push(format!("cache record {key}: snapshot {s} is missing"));
            drop_cache.push(key.clone());
        }
    }
    let mut drop_snaps = Vec::new();
    for (key, s) in &snaps {
        if !store.snapshots().exists(&s.chain_id) {
            report
                .errors
                .push(format!("snapshot record {key}: its directory is missing"));
            drop_snaps.push(key.clone());
        }
    }
    for (k, l) in &leases {
        if !l.holder_alive() {
            report.notes.push(format!(
                "lease {k}: its process {} is gone (prune removes it)",
                l.pid
            ));
        }
    }
    let (on_disk, stale) = store.snapshots().scan()?;
    let recorded: HashSet<&str> = snaps.iter().map(|(k, _)| k.as_str()).collect();
    for c in on_disk {
        if !recorded.contains(c.hex()) {
            report
                .notes
                .push(format!("snapshot {c} has no record (prune removes it)"));
        }
    }
    for p in stale.iter().chain(cs.stale_ingests()?.iter()) {
        report.notes.push(format!(
            "{} was left by a dead writer (prune removes it)",
            p.display()
        ));
    }
    if repair && !(drop_images.is_empty() && drop_cache.is_empty() && drop_snaps.is_empty()) {
        meta.write_locked(&lock, |w| {
            for n in &drop_images {
                w.remove(Table::Images, n)?;
            }
            for k in &drop_cache {
                w.remove(Table::Cache, k)?;
            }
            for k in &drop_snaps {
                w.remove(Table::Snapshots, k)?;
            }
            Ok(())
        })?;
        report.repaired.extend(
            drop_images
                .iter()
                .map(|n| format!("removed image name {n}")),
        );
        report.repaired.extend(
            drop_cache
                .iter()
                .map(|k| format!("removed cache record {k}")),
        );
        report.repaired.extend(
            drop_snaps
                .iter()
                .map(|k| format!("removed snapshot record {k}")),
        );
    }
    drop(lock);
    Ok(report)
}
