//! A directory used as a root: every path below it is resolved by the
//! kernel with `openat2(RESOLVE_IN_ROOT)`, so `..` and absolute symlinks
//! stop at the root, and every change is made with `*at` calls on the
//! directory descriptors that resolution returned. No path is ever built
//! by joining strings onto the host path of the root.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    fchmod, fchown, futimens, mkdirat, openat, openat2, readlinkat, statat, AtFlags, FileType,
    Mode, OFlags, ResolveFlags, Stat, Timestamps, CWD,
};
use rustix::io::Errno;

/// A path inside a root, as components (no empty or `.` components).
pub(crate) type Comps = Vec<Vec<u8>>;

/// How many symlinks one lookup may follow (Linux's own limit).
const MAX_HOPS: usize = 40;

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// Lexically cleans a path given by a Dockerfile or an archive, as Go's
/// `filepath.Join("/", p)`: `.` dropped, `..` removes the previous
/// component and stops at the root.
pub(crate) fn clean(path: &[u8]) -> Comps {
    let mut out: Comps = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(c.to_vec()),
        }
    }
    out
}

/// The components of a symlink target: `..` is kept, since it must be
/// resolved against the directory the link leads through, not lexically.
fn link_comps(target: &[u8]) -> Comps {
    target
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| c.to_vec())
        .collect()
}

/// `/a/b` for display in errors.
pub(crate) fn show(comps: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for c in comps {
        s.push('/');
        s.push_str(&String::from_utf8_lossy(c));
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

fn join(comps: &[Vec<u8>]) -> Vec<u8> {
    if comps.is_empty() {
        return b".".to_vec();
    }
    comps.join(&b'/')
}

/// Metadata given to directories a lookup creates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirSpec {
    /// Permission bits.
    pub mode: u32,
    /// Owner, if not the creating user.
    pub owner: Option<(u32, u32)>,
    /// Access and modification time, if fixed.
    pub time: Option<i64>,
}

/// The last component of a path, ready for an `*at` call: the directory
/// holding it and its name, or the directory itself (`name` is `None`)
/// when the path names the root or ends in `..`.
pub(crate) struct Leaf {
    /// The directory, opened for reading.
    pub dir: OwnedFd,
    /// The name inside `dir`.
    pub name: Option<Vec<u8>>,
}

impl Leaf {
    /// `lstat` of the leaf; `None` when it does not exist.
    pub(crate) fn lstat(&self) -> io::Result<Option<Stat>> {
        let r = match &self.name {
            Some(n) => statat(&self.dir, n.as_slice(), AtFlags::SYMLINK_NOFOLLOW),
            None => rustix::fs::fstat(&self.dir),
        };
        match r {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The type of a `stat` result.
pub(crate) fn file_type(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// An open root directory.
pub(crate) struct Root {
    fd: OwnedFd,
}

impl Root {
    /// Opens `path` (trusted: it comes from kiln, not from a Dockerfile).
    pub(crate) fn open(path: &Path) -> io::Result<Root> {
        let fd = openat(
            CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd })
    }

    /// A root made of an already open directory.
    pub(crate) fn from_fd(fd: OwnedFd) -> Root {
        Root { fd }
    }

    fn open_in(&self, comps: &[Vec<u8>], flags: OFlags) -> io::Result<OwnedFd> {
        Ok(openat2_retrying(
            &self.fd,
            join(comps).as_slice(),
            flags | OFlags::CLOEXEC | OFlags::NOCTTY,
        )?)
    }

    /// Opens a file below the root for reading, following symlinks inside it.
    pub(crate) fn open_file_in(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        self.open_in(&clean(rel), OFlags::RDONLY)
    }

    /// Opens a directory below the root, following symlinks inside it.
    pub(crate) fn open_dir(&self, comps: &[Vec<u8>]) -> io::Result<OwnedFd> {
        self.open_in(comps, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// `mkdir -p` inside the root: existing directories (and symlinks to
    /// directories, resolved inside the root) are kept; missing ones are
    /// created with `spec`, including the target of a dangling symlink on
    /// the way, as BuildKit's `MkdirAll` on a root path does. Created
    /// directories are pushed to `created` (to fix their times later).
    pub(crate) fn ensure_dir(
        &self,
        comps: &[Vec<u8>],
        spec: &DirSpec,
        created: &mut Vec<OwnedFd>,
    ) -> io::Result<OwnedFd> {
        self.ensure_dir_hops(comps, spec, created, 0)
    }

    fn ensure_dir_hops(
        &self,
        comps: &[Vec<u8>],
        spec: &DirSpec,
        created: &mut Vec<OwnedFd>,
        hops: usize,
    ) -> io::Result<OwnedFd> {
        match self.open_dir(comps) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {}
            Err(e) => return Err(e),
        }
        let Some((last, parent)) = comps.split_last() else {
            return Err(Errno::NOENT.into());
        };
        let pfd = self.ensure_dir_hops(parent, spec, created, hops)?;
        if last == b".." {
            return self.open_dir(comps);
        }
        match mkdirat(&pfd, last.as_slice(), Mode::from_raw_mode(0o700)) {
            Ok(()) => {
                let fd = openat(
                    &pfd,
                    last.as_slice(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                if let Some((uid, gid)) = spec.owner {
                    fchown(&fd, Some(uid_of(uid)), Some(gid_of(gid)))?;
                }
                fchmod(&fd, Mode::from_raw_mode(spec.mode & 0o7777))?;
                if let Some(t) = spec.time {
                    set_times_fd(&fd, (t, 0), (t, 0))?;
                }
                created.push(fd.try_clone()?);
                Ok(fd)
            }
            Err(Errno::EXIST) => {
                let st = statat(&pfd, last.as_slice(), AtFlags::SYMLINK_NOFOLLOW)?;
                if file_type(&st) != FileType::Symlink {
                    // A directory made meanwhile, or a file: let open decide.
                    return Ok(openat(
                        &pfd,
                        last.as_slice(),
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?);
                }
                if hops >= MAX_HOPS {
                    return Err(Errno::LOOP.into());
                }
                let target = readlinkat(&pfd, last.as_slice(), Vec::new())?;
                let next = substitute(parent, target.as_bytes());
                self.ensure_dir_hops(&next, spec, created, hops + 1)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The path `comps` names once its symlinks (the last one only when
    /// `follow_last`) are followed inside the root: the real path that
    /// .dockerignore rules must judge. Past a missing component the rest
    /// is kept as given.
    pub(crate) fn resolve(&self, comps: &[Vec<u8>], follow_last: bool) -> io::Result<Comps> {
        let mut todo: std::collections::VecDeque<Vec<u8>> = comps.iter().cloned().collect();
        let mut done: Comps = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            if c == b".." {
                done.pop();
                continue;
            }
            done.push(c);
            if todo.is_empty() && !follow_last {
                break;
            }
            // openat2 refuses O_NOCTTY with O_PATH: not through open_in.
            let opened = openat2_retrying(
                &self.fd,
                join(&done).as_slice(),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            );
            let fd = match opened.map_err(io::Error::from) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {
                    for c in todo {
                        if c == b".." {
                            done.pop();
                        } else {
                            done.push(c);
                        }
                    }
                    break;
                }
                Err(e) => return Err(e),
            };
            if file_type(&rustix::fs::fstat(&fd)?) != FileType::Symlink {
                continue;
            }
            hops += 1;
            if hops > MAX_HOPS {
                return Err(Errno::LOOP.into());
            }
            let target = readlinkat(&fd, c"", Vec::new())?;
            let target = target.as_bytes();
            done.pop();
            if target.starts_with(b"/") {
                done.clear();
            }
            for c in link_comps(target).into_iter().rev() {
                todo.push_front(c);
            }
        }
        Ok(done)
    }

    /// The leaf of `comps`: its parent directory is resolved inside the
    /// root (created with `create` if given); a final symlink is followed
    /// inside the root when `follow_last`, even if it dangles.
    pub(crate) fn leaf(
        &self,
        comps: &[Vec<u8>],
        follow_last: bool,
        create: Option<(&DirSpec, &mut Vec<OwnedFd>)>,
    ) -> io::Result<Leaf> {
        let mut comps = comps.to_vec();
        let mut create = create;
        for _ in 0..=MAX_HOPS {
            let Some((last, parent)) = comps.split_last() else {
                return Ok(Leaf {
                    dir: self.open_dir(&[])?,
                    name: None,
                });
            };
            if last == b".." {
                return Ok(Leaf {
                    dir: self.open_dir(&comps)?,
                    name: None,
                });
            }
            let dir = match create.as_mut() {
                Some((spec, created)) => self.ensure_dir(parent, spec, created)?,
                None => self.open_dir(parent)?,
            };
            if follow_last {
                if let Ok(st) = statat(&dir, last.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                    if file_type(&st) == FileType::Symlink {
                        let target = readlinkat(&dir, last.as_slice(), Vec::new())?;
                        comps = substitute(parent, target.as_bytes());
                        continue;
                    }
                }
            }
            let name = Some(last.clone());
            return Ok(Leaf { dir, name });
        }
        Err(Errno::LOOP.into())
    }
}

/// The path reached by following a symlink found at `parent/<link>`.
fn substitute(parent: &[Vec<u8>], target: &[u8]) -> Comps {
    let mut next = if target.starts_with(b"/") {
        Vec::new()
    } else {
        parent.to_vec()
    };
    next.extend(link_comps(target));
    next
}

/// A uid for rustix.
pub(crate) fn uid_of(id: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(id)
}

/// A gid for rustix.
pub(crate) fn gid_of(id: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(id)
}

fn timestamps(atime: (i64, i64), mtime: (i64, i64)) -> Timestamps {
    Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1 as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1 as _,
        },
    }
}

/// Sets access and modification times of an open file.
pub(crate) fn set_times_fd(fd: impl AsFd, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    Ok(futimens(fd, &timestamps(atime, mtime))?)
}

/// Sets times of `dir/name` without following a symlink there.
pub(crate) fn set_times_at(
    dir: impl AsFd,
    name: &[u8],
    atime: (i64, i64),
    mtime: (i64, i64),
) -> io::Result<()> {
    Ok(rustix::fs::utimensat(
        dir,
        name,
        &timestamps(atime, mtime),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// `openat2` under [`RESOLVE`], retried while the kernel answers EAGAIN (a
/// rename or mount elsewhere raced a `..` step of the lookup: openat2(2)
/// says to retry), a bounded number of times.
fn openat2_retrying(dir: &OwnedFd, path: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let mut attempts = 0;
    loop {
        match openat2(dir, path, flags, Mode::empty(), RESOLVE) {
            Err(e) if e == Errno::AGAIN && attempts < 128 => attempts += 1,
            other => return other,
        }
    }
}
