//! Kept copies of build contexts that arrive as tar streams (`docker build` through the
//! Engine API, `kiln build -`), under `ROOT/contexts/SLOT/`.
//!
//! The classic `/build` protocol sends the whole context on every build. Unpacked into a
//! fresh scratch directory, every file becomes a new inode, and on ext4 without a journal
//! (this project's lab) allocating inodes right after a prune freed thousands costs up to a
//! millisecond each: a 20,000-file context took longer to unpack than to build. A mirror is
//! the last context that arrived for the same key, brought up to date in place (the solver's
//! `fileop::sync_stream`: unchanged files are compared, not rewritten), so a rebuild creates
//! only the files that changed, and the stat cache recognizes the rest as it does for a
//! context directory on the CLI's side.
//!
//! A mirror is leased by one build at a time (an exclusive `flock` on its `lock` file, held
//! by [`MirrorLease`]); a build that finds its slot busy uses a scratch directory instead.
//! At most [`MAX_MIRRORS`] are kept; the least recently used ones that nobody leases are
//! removed when a new one is made, and `prune --all` removes every one not in use. A crash
//! in the middle of an update leaves a mirror that the next sync corrects entry by entry,
//! so no state beyond the tree itself is needed.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{IoContext, Result};
use crate::fsutil;

/// How many mirrors a store keeps at most.
pub const MAX_MIRRORS: usize = 4;

/// A mirror leased for one build: its tree may be changed and read until the lease drops.
#[derive(Debug)]
pub struct MirrorLease {
    slot: PathBuf,
    tree: PathBuf,
    // Held for the lease's life: closing the file releases the flock.
    _lock: File,
}

impl MirrorLease {
    /// The directory holding the context (possibly the last build's, to be synced).
    pub fn tree(&self) -> &Path {
        &self.tree
    }

    /// Where the build keeps the stat cache of [`MirrorLease::tree`]: inside the slot, so it
    /// goes when the mirror does.
    pub fn stat_cache_file(&self) -> PathBuf {
        self.slot.join("statcache.json")
    }
}

/// The directory of all mirrors of the store at `root`.
pub fn mirrors_dir(root: &Path) -> PathBuf {
    root.join("contexts")
}

/// Leases the mirror for `key` (what makes two builds "the same": the face decides, e.g.
/// the tags and Dockerfile name), making it if needed. `None` when another build holds it.
pub fn lease(root: &Path, key: &str) -> Result<Option<MirrorLease>> {
    let dir = mirrors_dir(root);
    fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
    // A mirror is as big as a build's tree (see `fsutil::mark_top_dir`).
    fsutil::mark_top_dir(&dir);
    use sha2::Digest as _;
    let slot = dir.join(&hex::encode(sha2::Sha256::digest(key.as_bytes()))[..32]);
    let fresh = !slot.exists();
    let Some(lock) = lock_slot(&slot)? else {
        return Ok(None);
    };
    let tree = slot.join("tree");
    fs::create_dir_all(&tree).ctx(|| format!("create {}", tree.display()))?;
    // The lock file's mtime is the slot's last use, for eviction.
    let _ = lock.set_modified(SystemTime::now());
    if fresh {
        evict(&dir, &slot)?;
    }
    Ok(Some(MirrorLease {
        slot,
        tree,
        _lock: lock,
    }))
}

/// Takes `slot/lock` exclusively without waiting, creating the slot; `None` when busy. The
/// lock is checked to still be the slot's after it is taken: an eviction may have moved the
/// slot away between the open and the flock.
fn lock_slot(slot: &Path) -> Result<Option<File>> {
    loop {
        fs::create_dir_all(slot).ctx(|| format!("create {}", slot.display()))?;
        let path = slot.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .ctx(|| format!("open {}", path.display()))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(e) => return Err(e).ctx(|| format!("lock {}", path.display())),
        }
        let held = file.metadata().ctx(|| format!("stat {}", path.display()))?;
        match fs::metadata(&path) {
            Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => return Ok(Some(file)),
            // Evicted meanwhile: make the slot again.
            _ => continue,
        }
    }
}

/// Removes the least recently used mirrors beyond [`MAX_MIRRORS`] (never `keep`, never one
/// leased).
fn evict(dir: &Path, keep: &Path) -> Result<()> {
    let mut slots: Vec<(SystemTime, PathBuf)> = fs::read_dir(dir)
        .ctx(|| format!("read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p != keep)
        .map(|p| {
            let used = fs::metadata(p.join("lock"))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            (used, p)
        })
        .collect();
    if slots.len() < MAX_MIRRORS {
        return Ok(());
    }
    slots.sort();
    let mut excess = slots.len() + 1 - MAX_MIRRORS;
    for (_, slot) in slots {
        if excess == 0 {
            break;
        }
        if remove_unless_leased(&slot)? {
            excess -= 1;
        }
    }
    Ok(())
}

/// Removes the mirror `slot` if no build leases it; whether it was removed.
pub fn remove_unless_leased(slot: &Path) -> Result<bool> {
    let Some(lock) = lock_slot_existing(slot)? else {
        return Ok(false);
    };
    // Moved aside first, under the lock: a build that opens the lock path afterwards
    // finds no slot and makes a new one, never a half-deleted tree.
    let parent = slot.parent().unwrap_or(Path::new("."));
    let aside = parent.join(format!(".{}", fsutil::temp_name("evicted")));
    fs::rename(slot, &aside).ctx(|| format!("move {} aside", slot.display()))?;
    drop(lock);
    fsutil::remove_tree(&aside)?;
    Ok(true)
}

/// As [`lock_slot`], for a slot that must already exist (never creates one).
fn lock_slot_existing(slot: &Path) -> Result<Option<File>> {
    let path = slot.join("lock");
    let file = match OpenOptions::new().write(true).open(&path) {
        Ok(f) => f,
        // A slot without a lock file is debris of a crash while it was made.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match fs::symlink_metadata(slot) {
                Ok(_) => {
                    fsutil::remove_tree(slot)?;
                    Ok(None)
                }
                Err(_) => Ok(None),
            }
        }
        Err(e) => return Err(e).ctx(|| format!("open {}", path.display())),
    };
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e).ctx(|| format!("lock {}", path.display())),
    }
}

/// Removes every mirror no build leases (and debris of interrupted evictions); how many.
pub fn remove_all_unleased(root: &Path) -> Result<usize> {
    let dir = mirrors_dir(root);
    let Ok(rd) = fs::read_dir(&dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let p = e.path();
        let debris = e.file_name().to_string_lossy().starts_with('.');
        if debris {
            fsutil::remove_tree(&p)?;
            removed += 1;
        } else if remove_unless_leased(&p)? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Bytes used by every mirror (for `system df`).
pub fn disk_usage(root: &Path) -> u64 {
    fn du(p: &Path) -> u64 {
        let Ok(m) = fs::symlink_metadata(p) else {
            return 0;
        };
        if !m.is_dir() {
            return m.blocks() * 512;
        }
        fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| du(&e.path())).sum())
            .unwrap_or(0)
    }
    du(&mirrors_dir(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leased_mirror_is_busy_and_comes_back_after_release() {
        let root = tempfile::tempdir().unwrap();
        let a = lease(root.path(), "k").unwrap().expect("free");
        std::fs::write(a.tree().join("f"), b"x").unwrap();
        assert!(lease(root.path(), "k").unwrap().is_none(), "held by a");
        let other = lease(root.path(), "other").unwrap().expect("another key");
        drop(other);
        drop(a);
        let again = lease(root.path(), "k").unwrap().expect("released");
        assert_eq!(std::fs::read(again.tree().join("f")).unwrap(), b"x");
    }

    #[test]
    fn at_most_max_mirrors_are_kept_and_leased_ones_survive() {
        let root = tempfile::tempdir().unwrap();
        let held = lease(root.path(), "held").unwrap().unwrap();
        for i in 0..MAX_MIRRORS + 3 {
            lease(root.path(), &format!("k{i}")).unwrap().unwrap();
        }
        let n = fs::read_dir(mirrors_dir(root.path())).unwrap().count();
        assert_eq!(n, MAX_MIRRORS);
        assert!(held.tree().exists(), "a leased mirror is never evicted");
        assert_eq!(remove_all_unleased(root.path()).unwrap(), MAX_MIRRORS - 1);
        assert!(held.tree().exists());
        drop(held);
        assert_eq!(remove_all_unleased(root.path()).unwrap(), 1);
        assert_eq!(fs::read_dir(mirrors_dir(root.path())).unwrap().count(), 0);
    }
}
