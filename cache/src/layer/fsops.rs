//! File-descriptor-relative helpers: listing, stat, xattrs and removal, all
//! acting on a directory fd plus one name, so no path string is ever resolved
//! through a symlink planted in the tree.

use std::ffi::{CStr, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, Mode, OFlags};

use crate::error::{IoContext, Result};

/// `stat` of `name` in `dir` without following a final symlink.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<rustix::fs::Stat> {
    rustix::fs::statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW)
}

/// Opens subdirectory `name` of `dir` for reading, refusing a symlink.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens a directory by path for reading (the roots the store itself owns).
pub fn open_dir(path: &std::path::Path) -> Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ctx(|| format!("open directory {}", path.display()))
}

/// The names in `dir` (without `.` and `..`), sorted bytewise.
pub fn list_sorted(dir: BorrowedFd<'_>) -> rustix::io::Result<Vec<Vec<u8>>> {
    // Dir::read_from dups the fd, so the caller's offset is left alone.
    let mut d = rustix::fs::Dir::read_from(dir)?;
    let mut names = Vec::new();
    while let Some(e) = d.read() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    names.sort();
    Ok(names)
}

/// A path naming `name` inside the directory open as `dir`, through
/// /proc/self/fd: the way to reach an entry with the path-only xattr calls
/// (`l*xattr` do not follow the final symlink; the directory part is the fd).
pub fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> Vec<u8> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    p
}

/// The extended attributes of `name` in `dir` (not following symlinks), sorted by name.
pub fn xattrs_at(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<Vec<(String, Vec<u8>)>> {
    let path = proc_path(dir, name);
    let path = OsStr::from_bytes(&path);
    let n = match rustix::fs::llistxattr_query(path) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut buf = vec![0u8; n];
    let n = rustix::fs::llistxattr(path, &mut buf[..])?;
    let mut out = Vec::new();
    for raw in buf[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let key = String::from_utf8_lossy(raw).into_owned();
        let len = match rustix::fs::lgetxattr_query(path, raw) {
            Ok(l) => l,
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e),
        };
        let mut val = vec![0u8; len];
        let len = rustix::fs::lgetxattr(path, raw, &mut val[..])?;
        val.truncate(len);
        out.push((key, val));
    }
    out.sort();
    Ok(out)
}

/// One extended attribute of `name` in `dir`, if set.
pub fn xattr_at(dir: BorrowedFd<'_>, name: &[u8], key: &str) -> Option<Vec<u8>> {
    let path = proc_path(dir, name);
    let path = OsStr::from_bytes(&path);
    let mut val = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(path, key, &mut val[..]).ok()?;
    val.truncate(n);
    Some(val)
}

/// Sets an extended attribute on `name` in `dir` without following a symlink.
pub fn set_xattr_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    key: &str,
    value: &[u8],
) -> rustix::io::Result<()> {
    let path = proc_path(dir, name);
    rustix::fs::lsetxattr(
        OsStr::from_bytes(&path),
        key,
        value,
        rustix::fs::XattrFlags::empty(),
    )
}

/// Removes `name` from `dir`, a whole tree when it is a directory, never
/// following symlinks (a symlink is removed, not its target).
pub fn remove_at(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<()> {
    let st = match lstat_at(dir, name) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
        let sub = open_dir_at(dir, name)?;
        clear_dir(sub.as_fd())?;
        rustix::fs::unlinkat(dir, OsStr::from_bytes(name), AtFlags::REMOVEDIR)
    } else {
        rustix::fs::unlinkat(dir, OsStr::from_bytes(name), AtFlags::empty())
    }
}

/// Removes everything inside the directory open as `dir`.
pub fn clear_dir(dir: BorrowedFd<'_>) -> rustix::io::Result<()> {
    for n in list_sorted(dir)? {
        remove_at(dir, &n)?;
    }
    Ok(())
}

/// Reads the target of symlink `name` in `dir`.
pub fn readlink_at(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<Vec<u8>> {
    let c = rustix::fs::readlinkat(dir, OsStr::from_bytes(name), Vec::new())?;
    Ok(CStr::to_bytes(&c).to_vec())
}
