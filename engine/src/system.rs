//! The store as a whole: disk usage, prune, and the consistency check (fsck).

use std::collections::HashSet;

use kiln_cache::gc;

use crate::{Engine, Result};

/// How much of the store each kind of thing takes, as `docker system df` reports it.
#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    /// Distinct images (by ID) that have a name.
    pub images: usize,
    /// Bytes of every blob in the content store.
    pub images_size: u64,
    /// Bytes of blobs no named image uses.
    pub images_reclaimable: u64,
    /// Container root filesystems in use (each an unpacked rootfs).
    pub containers: usize,
    /// Build cache records plus unpacked snapshots.
    pub build_cache: usize,
    /// Bytes of the unpacked snapshots (all of it reclaimable by `prune -a`).
    pub build_cache_size: u64,
}

impl Engine {
    /// Disk usage of the store.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let store = self.store()?;
        let images = store.images()?;
        let mut ids = HashSet::new();
        let mut used = HashSet::new();
        for r in &images {
            ids.insert(r.config.clone());
            if let Ok(img) = store.load_image(&r.manifest, Vec::new()) {
                used.insert(img.manifest_digest.clone());
                used.insert(img.id.clone());
                for l in img.layers()? {
                    used.insert(l.0);
                }
            }
        }
        let (mut total, mut reclaimable) = (0, 0);
        for d in store.content().list()? {
            let s = store.content().size(&d).unwrap_or(0);
            total += s;
            if !used.contains(&d) {
                reclaimable += s;
            }
        }
        let (chains, _) = store.snapshots().scan()?;
        let snapshots_size: u64 = chains
            .iter()
            .map(|c| kiln_cache::snapshot::Snapshots::du(&store.snapshots().fs_dir(c)))
            .sum();
        let rootfs = store.snapshots().rootfs_ids()?;
        let cache: Vec<(String, kiln_cache::metadata::CacheRecord)> = store
            .metadata()
            .read(|r| r.all(kiln_cache::metadata::Table::Cache))?;
        Ok(DiskUsage {
            images: ids.len(),
            images_size: total,
            images_reclaimable: reclaimable,
            containers: rootfs.len(),
            build_cache: cache.len() + chains.len(),
            // The kept build contexts of archive builds are build cache as well.
            build_cache_size: snapshots_size + kiln_cache::context_mirror::disk_usage(store.root()),
        })
    }

    /// Removes unreferenced blobs and snapshots and leftovers of interrupted runs; with
    /// `all`, also all build cache and every unpacked snapshot not in use.
    pub fn prune(&self, all: bool) -> Result<gc::PruneReport> {
        Ok(gc::prune(&self.store()?, gc::PruneOptions { all })?)
    }

    /// Verifies every blob's digest and every reference in the store; with `repair`, deletes
    /// damaged blobs and drops records that point at missing data.
    pub fn check(&self, repair: bool) -> Result<gc::CheckReport> {
        Ok(gc::check(&self.store()?, repair)?)
    }
}
