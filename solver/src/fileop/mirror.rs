//! Bringing a kept directory up to date with a tar stream in place (the store's context
//! mirrors: `kiln_cache::context_mirror`), so that a context sent again whole creates only
//! the files that changed.
//!
//! The unpack (`unpack::extract_from`) asks [`Mirror::reuse_file`] before it writes a regular
//! file: when the file already there has the entry's size, mode, owner and time and no other
//! link, the two contents are compared as the entry streams by; equal, the file stays as it
//! is (no new inode, and its stat stamp, so the stat cache still knows its hash); different,
//! a new file gets the common prefix and the rest of the entry and replaces it. An existing
//! file's content is never written: a file a build is reading, or a hard link, cannot change
//! under it. What the stream does not name is removed afterwards ([`Mirror::sweep`]).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{openat, renameat, statat, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::root::{file_type, Root};
use super::{open_nofollow, remove_all_at};

/// What one sync did, for the build's log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Regular files left as they were (same content).
    pub kept: u64,
    /// Regular files written (new, or changed).
    pub written: u64,
    /// Entries removed because the stream no longer has them.
    pub removed: u64,
}

/// The state of one sync: the paths the stream named.
#[derive(Debug, Default)]
pub(crate) struct Mirror {
    /// (device, inode) of a directory and a name in it.
    seen: HashSet<(u64, u64, Vec<u8>)>,
    pub(crate) stats: SyncStats,
}

/// What the metadata of an entry says it should be.
pub(crate) struct Wanted {
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
}

/// The outcome of [`Mirror::reuse_file`].
pub(crate) enum Reuse {
    /// The file there is the entry: nothing to do.
    Kept,
    /// The content differed: this new file holds the entry's content and already replaced the
    /// old one; its owner, mode and times are for the caller to set.
    Replaced(File),
    /// Nothing reusable there (missing, another type, other metadata): unpack as usual.
    No,
}

const CHUNK: usize = 64 * 1024;

impl Mirror {
    /// Records that the stream names `dir/name`. By the directory's identity, not by the
    /// entry's path: an entry below a symlink lands where the symlink leads.
    pub(crate) fn see(&mut self, dir: BorrowedFd, name: &[u8]) -> io::Result<()> {
        let st = rustix::fs::fstat(dir)?;
        self.seen
            .insert((st.st_dev as u64, st.st_ino as u64, name.to_vec()));
        Ok(())
    }

    /// Reuses `dir/name` for a regular file entry when it can (see the module's doc).
    pub(crate) fn reuse_file(
        &mut self,
        dir: BorrowedFd,
        name: &[u8],
        existing: Option<&rustix::fs::Stat>,
        want: &Wanted,
        entry: &mut impl Read,
    ) -> io::Result<Reuse> {
        let Some(st) = existing else {
            return Ok(Reuse::No);
        };
        let same = file_type(st) == FileType::RegularFile
            && st.st_nlink == 1
            && st.st_size as u64 == want.size
            && st.st_mode & 0o7777 == want.mode
            && st.st_uid == want.uid
            && st.st_gid == want.gid
            && st.st_mtime == want.mtime
            && st.st_mtime_nsec == 0;
        if !same {
            return Ok(Reuse::No);
        }
        let mut old = File::from(open_nofollow(dir, name, OFlags::RDONLY)?);
        let (mut a, mut b) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
        let mut matched: u64 = 0;
        loop {
            let n = read_full(entry, &mut a)?;
            if n == 0 {
                // The sizes are equal, so the old file ends here too.
                self.stats.kept += 1;
                return Ok(Reuse::Kept);
            }
            let m = read_full(&mut old, &mut b[..n])?;
            if m == n && a[..n] == b[..n] {
                matched += n as u64;
                continue;
            }
            // Differs: a new file in the same directory gets the equal prefix, this chunk
            // and the rest; then it takes the name (a rename: the old inode is never written).
            let (tmp, new) = temp_file(dir)?;
            old.rewind()?;
            let mut w = &new;
            io::copy(&mut (&old).take(matched), &mut w)?;
            w.write_all(&a[..n])?;
            io::copy(entry, &mut w)?;
            renameat(dir, tmp.as_slice(), dir, name)?;
            self.stats.written += 1;
            return Ok(Reuse::Replaced(new));
        }
    }

    /// Counts a regular file written from scratch.
    pub(crate) fn wrote(&mut self) {
        self.stats.written += 1;
    }

    /// Removes everything under `root` that the stream did not name. A directory it did not
    /// name stays when something below it was named (a fresh unpack makes such parents).
    pub(crate) fn sweep(&mut self, root: &Root) -> io::Result<()> {
        let top = root.open_dir(&[])?;
        self.sweep_dir(&top).map(|_| ())
    }

    /// Sweeps `dir`; whether anything is left in it.
    fn sweep_dir(&mut self, dir: &OwnedFd) -> io::Result<bool> {
        let st = rustix::fs::fstat(dir)?;
        let id = (st.st_dev as u64, st.st_ino as u64);
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(dir)? {
            let entry = entry?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                let ft = match entry.file_type() {
                    // Not every file system says in the directory entry.
                    FileType::Unknown => file_type(&statat(dir, n, AtFlags::SYMLINK_NOFOLLOW)?),
                    ft => ft,
                };
                names.push((n.to_vec(), ft));
            }
        }
        let mut left = false;
        for (name, ft) in names {
            let seen = self.seen.contains(&(id.0, id.1, name.clone()));
            let keep = if ft == FileType::Directory {
                let sub = open_nofollow(dir, &name, OFlags::RDONLY | OFlags::DIRECTORY)?;
                let inside = self.sweep_dir(&sub)?;
                seen || inside
            } else {
                seen
            };
            if keep {
                left = true;
            } else {
                remove_all_at(dir, &name)?;
                self.stats.removed += 1;
            }
        }
        Ok(left)
    }
}

/// A new empty file in `dir` under a name no entry has, and that name. Named rather than
/// `O_TMPFILE` + `linkat`: linking an unnamed file needs a capability a rootless kiln lacks.
fn temp_file(dir: BorrowedFd) -> io::Result<(Vec<u8>, File)> {
    loop {
        let name = format!(".kiln-sync-{:016x}", rand_u64()).into_bytes();
        match openat(
            dir,
            name.as_slice(),
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => return Ok((name, File::from(fd))),
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A random number for temporary names (collisions are retried, so no quality is needed
/// beyond "differs between calls").
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// Reads until `buf` is full or the input ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
