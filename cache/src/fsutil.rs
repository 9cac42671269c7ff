//! Small file-system helpers shared by the store's modules.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{IoContext, Result};

/// Flushes a directory's entries (a rename or create in it) to disk.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).ctx(|| format!("open {} to fsync it", dir.display()))?;
    f.sync_all().ctx(|| format!("fsync {}", dir.display()))
}

/// A name unique to this process and call: `PREFIX-<pid>-<nanos>-<n>`. The pid
/// lets garbage collection tell a crashed writer's leftovers from a live one's.
pub fn temp_name(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The pid encoded in a name made by [`temp_name`].
pub fn temp_name_pid(name: &str) -> Option<u32> {
    name.split('-').nth(1)?.parse().ok()
}

/// Whether a process with this pid exists now.
pub fn pid_alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
}

/// Marks `dir` as the top of directory hierarchies (`chattr +T`), so ext4's
/// allocator places each directory made in it in a block group of its own
/// choosing instead of next to its parent. Every build step writes its tree
/// into a fresh directory under `ROOT/rootfs`; without this the new inodes go
/// to the groups the last `prune` just emptied, and on ext4 without a journal
/// each inode allocation then skips over the recently deleted ones: the
/// 20,000-file COPY of the lab's d-bigcontext took 12.6 s right after a prune,
/// 3.2 s with the flag (bench/RESULTS.md). Other file systems lack the flag,
/// and the store works the same without it, so a failure is only logged.
pub fn mark_top_dir(dir: &Path) {
    use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
    let result = (|| -> std::io::Result<()> {
        let f = File::open(dir)?;
        let flags = ioctl_getflags(&f)?;
        if !flags.contains(IFlags::TOPDIR) {
            ioctl_setflags(&f, flags | IFlags::TOPDIR)?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        tracing::debug!("cannot mark {} as a top directory: {e}", dir.display());
    }
}

/// Seconds since the epoch now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Removes a directory tree without following symlinks and without crossing
/// into other file systems (a mount left inside must not take its source along).
pub fn remove_tree(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(crate::Error::io(format!("stat {}", path.display()), e)),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(path).ctx(|| format!("remove {}", path.display()));
    }
    use std::os::unix::fs::MetadataExt;
    let dev = meta.dev();
    remove_tree_on(path, dev)
}

fn remove_tree_on(path: &Path, dev: u64) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    for entry in std::fs::read_dir(path).ctx(|| format!("read {}", path.display()))? {
        let entry = entry.ctx(|| format!("read {}", path.display()))?;
        let p = entry.path();
        let m = std::fs::symlink_metadata(&p).ctx(|| format!("stat {}", p.display()))?;
        if m.is_dir() {
            if m.dev() != dev {
                return Err(crate::Error::io(
                    format!("remove {}", p.display()),
                    std::io::Error::other("a file system is mounted there"),
                ));
            }
            // Directories without write permission (mode 0555 in a layer) still go: root may.
            remove_tree_on(&p, dev)?;
        } else {
            std::fs::remove_file(&p).ctx(|| format!("remove {}", p.display()))?;
        }
    }
    std::fs::remove_dir(path).ctx(|| format!("remove {}", path.display()))
}
