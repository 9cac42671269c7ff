//! Snapshots: each layer unpacked once into `ROOT/snapshots/<chain-id-hex>/fs`
//! (overlay-style: whiteouts as 0/0 devices, opaque dirs as xattrs), and
//! rootfs layouts (`ROOT/rootfs/<id>/{upper,work}`) that stack them.
//!
//! A snapshot is unpacked into `ROOT/snapshots/tmp-<pid>-…` and renamed into
//! place only when the whole layer applied and its diff ID matched: a failed
//! or killed unpack never leaves a directory that looks finished.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Once;

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::fsutil;

/// Where a container or build step's root file system lives, ready for
/// `mount -t overlay overlay -o lowerdir=L1:L2,upperdir=U,workdir=W`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsLayout {
    /// The ID this layout was prepared under.
    pub id: String,
    /// Unpacked layers, topmost first (overlay's `lowerdir` order). Empty when
    /// `copied` is true.
    pub lowers: Vec<PathBuf>,
    /// A fresh, empty upper directory (or, when `copied`, the whole tree).
    pub upper: PathBuf,
    /// overlayfs's work directory (same file system as `upper`).
    pub work: PathBuf,
    /// overlayfs is not available: `upper` holds a full copy of the image's
    /// tree and should be bind-mounted (or chrooted into) as it is.
    pub copied: bool,
}

/// The chain IDs of a layer stack: `chain[0] = diff[0]`,
/// `chain[n] = sha256(chain[n-1] + " " + diff[n])` (OCI image-spec).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// Whether the kernel offers overlayfs (it is probed once per process; when it
/// is missing, kiln copies trees instead and says so once).
pub fn overlay_supported() -> bool {
    static WARN: Once = Once::new();
    let ok = std::env::var_os("KILN_NO_OVERLAY").is_none()
        && fs::read_to_string("/proc/filesystems")
            .map(|s| {
                s.lines()
                    .any(|l| l.split_whitespace().last() == Some("overlay"))
            })
            .unwrap_or(false);
    if !ok {
        WARN.call_once(|| {
            tracing::warn!("overlayfs is not available: root file systems are copied (slower, uses more space)")
        });
    }
    ok
}

/// The snapshot directories under a store root.
#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
    rootfs: PathBuf,
}

impl Snapshots {
    /// Opens (creating) `ROOT/snapshots` and `ROOT/rootfs`.
    pub fn open(root: &Path) -> Result<Snapshots> {
        let s = Snapshots {
            dir: root.join("snapshots"),
            rootfs: root.join("rootfs"),
        };
        for d in [&s.dir, &s.rootfs] {
            fs::create_dir_all(d).ctx(|| format!("create {}", d.display()))?;
            fsutil::mark_top_dir(d);
        }
        Ok(s)
    }

    /// The unpacked tree of the snapshot with this chain ID.
    pub fn fs_dir(&self, chain: &Digest) -> PathBuf {
        self.dir.join(chain.hex()).join("fs")
    }

    /// Whether the snapshot is unpacked.
    pub fn exists(&self, chain: &Digest) -> bool {
        self.fs_dir(chain).is_dir()
    }

    /// A fresh temp directory (with an `fs/` inside) to unpack into.
    pub fn temp(&self) -> Result<PathBuf> {
        let t = self.dir.join(fsutil::temp_name("tmp"));
        fs::create_dir_all(t.join("fs")).ctx(|| format!("create {}", t.display()))?;
        Ok(t)
    }

    /// Moves a finished temp directory into place as `chain`. When another
    /// writer got there first, the temp copy is removed and theirs is kept.
    pub fn commit(&self, temp: &Path, chain: &Digest) -> Result<PathBuf> {
        let dest = self.dir.join(chain.hex());
        match fs::rename(temp, &dest) {
            Ok(()) => {
                fsutil::fsync_dir(&self.dir)?;
            }
            Err(e) if dest.join("fs").is_dir() => {
                tracing::debug!("snapshot {chain} appeared meanwhile ({e}); keeping it");
                fsutil::remove_tree(temp)?;
            }
            Err(e) => {
                return Err(Error::io(
                    format!("rename {} to {}", temp.display(), dest.display()),
                    e,
                ))
            }
        }
        Ok(dest.join("fs"))
    }

    /// Removes a snapshot: renamed to a temp name first, so a crash half-way
    /// leaves garbage for GC, never a half-deleted snapshot under its name.
    pub fn remove(&self, chain: &Digest) -> Result<()> {
        let dir = self.dir.join(chain.hex());
        if !dir.exists() {
            return Ok(());
        }
        let trash = self.dir.join(fsutil::temp_name("tmp"));
        fs::rename(&dir, &trash).ctx(|| format!("rename {}", dir.display()))?;
        fsutil::remove_tree(&trash)
    }

    /// Chain IDs of every snapshot on disk, and leftovers of dead writers.
    pub fn scan(&self) -> Result<(Vec<Digest>, Vec<PathBuf>)> {
        let mut chains = Vec::new();
        let mut stale = Vec::new();
        for e in fs::read_dir(&self.dir).ctx(|| format!("read {}", self.dir.display()))? {
            let e = e.ctx(|| format!("read {}", self.dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Ok(d) = Digest::from_hex(&name) {
                chains.push(d);
            } else if let Some(pid) = fsutil::temp_name_pid(&name) {
                if !fsutil::pid_alive(pid) {
                    stale.push(e.path());
                }
            }
        }
        chains.sort();
        Ok((chains, stale))
    }

    /// The directory of a prepared rootfs.
    pub fn rootfs_dir(&self, id: &str) -> Result<PathBuf> {
        if id.is_empty()
            || id.len() > 128
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            || id.starts_with('.')
        {
            return Err(Error::Conflict(format!(
                "invalid rootfs id {id:?}: letters, digits, '-', '_', '.'"
            )));
        }
        Ok(self.rootfs.join(id))
    }

    /// IDs of every prepared rootfs on disk.
    pub fn rootfs_ids(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.rootfs).ctx(|| format!("read {}", self.rootfs.display()))? {
            let e = e.ctx(|| format!("read {}", self.rootfs.display()))?;
            out.push(e.file_name().to_string_lossy().into_owned());
        }
        out.sort();
        Ok(out)
    }

    /// Disk usage (apparent bytes) of a directory tree, not following symlinks.
    pub fn du(path: &Path) -> u64 {
        let mut total = 0;
        let mut stack = vec![path.to_path_buf()];
        while let Some(p) = stack.pop() {
            let Ok(rd) = fs::read_dir(&p) else { continue };
            for e in rd.flatten() {
                if let Ok(m) = e.metadata() {
                    if m.is_dir() {
                        stack.push(e.path());
                    } else {
                        total += m.len();
                    }
                }
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let c = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(c[0], a);
        assert_eq!(c[1], Digest::of(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn step_directories_are_spread_over_block_groups() {
        use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
        let tmp = tempfile::tempdir().unwrap();
        let probe = tmp.path().join("probe");
        fs::create_dir(&probe).unwrap();
        let f = fs::File::open(&probe).unwrap();
        let supported = ioctl_getflags(&f)
            .and_then(|fl| ioctl_setflags(&f, fl | IFlags::TOPDIR))
            .is_ok();
        if !supported {
            eprintln!("skipped: the test dir's file system has no FS_TOPDIR_FL (not ext*)");
            return;
        }
        let s = Snapshots::open(tmp.path()).unwrap();
        crate::Store::open(tmp.path()).unwrap();
        for d in [&s.dir, &s.rootfs, &tmp.path().join("builds")] {
            let flags = ioctl_getflags(fs::File::open(d).unwrap()).unwrap();
            assert!(flags.contains(IFlags::TOPDIR), "{} lacks +T", d.display());
        }
    }
}
