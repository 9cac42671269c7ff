//! The file-operation engine: runs the [`FileAction`]s of a
//! [`FileOp`](crate::op::FileOp) (COPY, ADD, WORKDIR's mkdir, heredoc
//! files) onto a destination root directory, with BuildKit's semantics.
//!
//! Every path that comes from a Dockerfile, the build context, a stage or
//! an archive is hostile. Paths are resolved by the kernel inside their
//! root (`openat2` with `RESOLVE_IN_ROOT`), and changes are made with `*at`
//! calls on the directory descriptors it returned, never on host paths
//! joined from strings: a symlink to `/etc` or `../../..` in the
//! destination leads to the root's own `etc`, and a symlink in the context
//! is copied as a link (or, when named directly, followed inside the
//! context only).
//!
//! Differences from BuildKit, by design:
//! - `--exclude` also filters what a wildcard source matches (the
//!   Dockerfile reference's `COPY --exclude=*.txt hom* /mydir/` example);
//!   fsutil applies it only below a copied directory.
//! - A `--chown` name missing from the destination's /etc/passwd or
//!   /etc/group is an error, as the reference says (BuildKit maps it to 0).
//! - Directories get their times after their children are written, so
//!   the times are the source's (or the epoch) and builds are reproducible.
//! - Hard links are kept across all the sources of one COPY, not only
//!   within each.
//! - Several sources into a destination without a trailing `/` are
//!   accepted when it is an existing directory.
//!
//! ```no_run
//! use std::path::Path;
//! use kiln_solver::fileop::{apply, CopySource, FileOpEnv};
//! use kiln_solver::op::{CopyAction, FileAction};
//! let context = CopySource::context(Path::new("/ctx"), None);
//! let stage = CopySource::rootfs(Path::new("/rootfs"));
//! let env = FileOpEnv { dest_root: Path::new("/rootfs"), inputs: &[stage, context], epoch: None };
//! let copy = CopyAction {
//!     input: 1, sources: vec!["src".into()], dest: "/app/".into(), owner: None, mode: None,
//!     exclude: vec![], parents: false, unpack_archives: false, follow_symlinks: true,
//! };
//! apply(&env, &[FileAction::Copy(copy)]).unwrap();
//! ```

mod chmod;
mod copy;
mod gomatch;
mod mirror;
mod owner;
mod root;
mod rooted;
mod unpack;
mod unterminated;

#[cfg(test)]
mod attack_tests;
#[cfg(test)]
mod tests;

use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use kiln_parser::dockerignore::Matcher;
use rustix::fs::{
    fchmod, fchown, mkdirat, openat, statat, symlinkat, unlinkat, AtFlags, FileType, Mode, OFlags,
};
use rustix::io::Errno;

pub use chmod::{BadChmod, Chmod};
pub use mirror::SyncStats;
pub use owner::Ids;
pub use rooted::{Found, RootedDir};
pub use unterminated::UnterminatedTar;

use crate::op::{FileAction, Owner};
use root::{clean, file_type, gid_of, set_times_at, set_times_fd, show, uid_of, DirSpec, Root};

/// Whose files a copy source holds, which decides their owner when no
/// `--chown` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The build context: the owner of the user's files never leaks into
    /// the image; copies are owned by 0:0 (as BuildKit's context transfer).
    Reset,
    /// Another stage's or an image's filesystem: copies keep their owner.
    Keep,
}

/// A filesystem a COPY or ADD reads from.
#[derive(Debug, Clone, Copy)]
pub struct CopySource<'a> {
    /// The root directory of the source.
    pub root: &'a Path,
    /// Owner of the copies when no `--chown` is given.
    pub ownership: Ownership,
    /// The context's `.dockerignore`: matching paths are not part of the
    /// source at all.
    pub ignore: Option<&'a Matcher>,
}

impl<'a> CopySource<'a> {
    /// The build context at `root`, filtered by its `.dockerignore`.
    pub fn context(root: &'a Path, ignore: Option<&'a Matcher>) -> CopySource<'a> {
        CopySource {
            root,
            ownership: Ownership::Reset,
            ignore,
        }
    }

    /// A stage's or an image's root filesystem.
    pub fn rootfs(root: &'a Path) -> CopySource<'a> {
        CopySource {
            root,
            ownership: Ownership::Keep,
            ignore: None,
        }
    }
}

/// What the file operations of one vertex work on.
#[derive(Debug, Clone, Copy)]
pub struct FileOpEnv<'a> {
    /// The filesystem being built (the merged view of its snapshot).
    pub dest_root: &'a Path,
    /// The vertex's inputs by index, as [`CopyAction::input`](crate::op::CopyAction)
    /// counts them; input 0 is conventionally the destination itself.
    pub inputs: &'a [CopySource<'a>],
    /// `SOURCE_DATE_EPOCH`: when set, every file written gets this access
    /// and modification time instead of its source's.
    pub epoch: Option<i64>,
}

/// A file action that failed.
#[derive(Debug, thiserror::Error)]
#[error("{action}{}: {kind}", if path.is_empty() { String::new() } else { format!(" {path}") })]
pub struct FileOpError {
    /// The action, as a Dockerfile user would recognize it (`copy`,
    /// `mkdir`, ...).
    pub action: String,
    /// The path concerned, inside its root (empty when none).
    pub path: String,
    /// What went wrong.
    #[source]
    pub kind: ErrorKind,
}

/// What went wrong in a file action.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// A system call failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A source path that does not exist (or is excluded by .dockerignore).
    #[error("no such file or directory")]
    NotFound,
    /// A wildcard source that matched nothing.
    #[error("no source files were specified: nothing matches the pattern")]
    NoMatch,
    /// Several sources and a destination that is not a directory.
    #[error("when using COPY with more than one source file, the destination must be a directory and end with a /")]
    NeedDirDest,
    /// A bad `--chmod` value.
    #[error(transparent)]
    BadChmod(#[from] BadChmod),
    /// A malformed wildcard in a source path.
    #[error("syntax error in pattern")]
    BadPattern,
    /// A malformed `--exclude` or `--parents` pattern.
    #[error("invalid pattern: {0}")]
    BadExclude(String),
    /// A `--chown` user name missing from /etc/passwd.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    /// A `--chown` group name missing from /etc/group.
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    /// A directory copied onto something that is not a directory.
    #[error("cannot copy to non-directory")]
    NotADirectory,
    /// A file copied onto an existing directory.
    #[error("cannot replace a directory with a file")]
    IsADirectory,
    /// A path that must be a regular file is not.
    #[error("not a regular file")]
    NotRegular,
    /// A user database larger than BuildKit accepts.
    #[error("file too large")]
    TooLarge,
    /// A copy from an input the caller did not provide.
    #[error("the file operation has no input {0}")]
    UnknownInput(usize),
    /// An archive that cannot be read.
    #[error("bad archive: {0}")]
    Archive(String),
}

impl FileOpError {
    fn new(action: &str, path: impl Into<String>, kind: ErrorKind) -> FileOpError {
        FileOpError {
            action: action.to_string(),
            path: path.into(),
            kind,
        }
    }

    fn io(action: &str, path: impl Into<String>, e: impl Into<io::Error>) -> FileOpError {
        FileOpError::new(action, path, ErrorKind::Io(e.into()))
    }
}

/// What the start of a stream is, for a build context or a Dockerfile read
/// from standard input (docker's `DetectArchiveReader`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// A tar archive, perhaps compressed (gzip, bzip2, xz or zstd).
    Archive,
    /// Anything else: docker reads it as a Dockerfile.
    Other,
}

/// Tells a tar archive (or a compressed stream) from anything else by the
/// first bytes of a stream: up to one tar header block (512 bytes).
pub fn stream_kind(head: &[u8]) -> StreamKind {
    if unpack::is_compressed(head) {
        return StreamKind::Archive;
    }
    // A tar header: a checksum over the block that adds up, as Go's
    // archive/tar checks it (the "ustar" magic is absent from v7 tars).
    if head.len() < 512 || head.iter().all(|&b| b == 0) {
        return StreamKind::Other;
    }
    let field = &head[148..156];
    let text: String = field
        .iter()
        .map(|&b| b as char)
        .filter(|c| c.is_ascii_digit())
        .collect();
    let Ok(stored) = u32::from_str_radix(&text, 8) else {
        return StreamKind::Other;
    };
    let sum: u32 = head[..512]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u32
            }
        })
        .sum();
    if sum == stored {
        StreamKind::Archive
    } else {
        StreamKind::Other
    }
}

/// Unpacks a tar stream (plain or compressed, told by its first bytes)
/// into the directory `dest`, which acts as the root of every entry: names
/// with `..`, absolute names, symlinks and hard links cannot reach outside
/// it. Streamed: memory stays flat whatever the size. `display` names the
/// stream in errors.
pub fn unpack_stream<R: io::Read + Send + 'static>(
    dest: &Path,
    input: R,
    display: &str,
) -> Result<(), FileOpError> {
    let mut input = io::BufReader::with_capacity(64 * 1024, input);
    let head = io::BufRead::fill_buf(&mut input)
        .map_err(|e| FileOpError::io("add", display, e))?
        .to_vec();
    let root = Root::open(dest).map_err(|e| FileOpError::io("add", display, e))?;
    let reader = unpack::decoder_for(&head, input)
        .map_err(|e| FileOpError::new("add", display, ErrorKind::Archive(e.to_string())))?;
    unpack::extract_from(root, reader, None, display, false, None)
}

/// Brings `dest`, which may hold an earlier unpack, up to date with the tar stream `input`
/// (plain or compressed), as [`unpack_stream`] would leave an empty directory, but in place:
/// unchanged regular files stay as they are, and what the stream does not name is removed
/// (the store's context mirrors). Paths are as hostile as in [`unpack_stream`].
pub fn sync_stream<R: io::Read + Send + 'static>(
    dest: &Path,
    input: R,
    display: &str,
) -> Result<SyncStats, FileOpError> {
    let mut input = io::BufReader::with_capacity(64 * 1024, input);
    let head = io::BufRead::fill_buf(&mut input)
        .map_err(|e| FileOpError::io("add", display, e))?
        .to_vec();
    let root = Root::open(dest).map_err(|e| FileOpError::io("add", display, e))?;
    let reader = unpack::decoder_for(&head, input)
        .map_err(|e| FileOpError::new("add", display, ErrorKind::Archive(e.to_string())))?;
    let mut mirror = mirror::Mirror::default();
    unpack::extract_from(root, reader, None, display, false, Some(&mut mirror))?;
    Ok(mirror.stats)
}

/// Runs `actions` in order on `env.dest_root`.
///
/// Blocking (file system calls, a rayon pool for the files of big
/// directories): call it from `tokio::task::spawn_blocking` in async code.
/// On error the destination may hold part of the work, as with BuildKit:
/// the caller discards the snapshot.
pub fn apply(env: &FileOpEnv, actions: &[FileAction]) -> Result<(), FileOpError> {
    let dest = Root::open(env.dest_root)
        .map_err(|e| FileOpError::io("open destination", env.dest_root.display().to_string(), e))?;
    for action in actions {
        match action {
            FileAction::Copy(c) => copy::run(env, &dest, c)?,
            FileAction::Mkdir {
                path,
                mode,
                parents,
                owner,
            } => mkdir(env, &dest, path, *mode, *parents, owner.as_ref())?,
            FileAction::Mkfile {
                path,
                mode,
                data,
                owner,
            } => mkfile(env, &dest, path, *mode, data, owner.as_ref())?,
            FileAction::Rm {
                path,
                allow_not_found,
            } => rm(&dest, path, *allow_not_found)?,
            FileAction::Symlink { target, path } => symlink(env, &dest, target, path)?,
        }
    }
    Ok(())
}

fn resolve_owner(
    dest: &Root,
    owner: Option<&Owner>,
    action: &str,
) -> Result<Option<Ids>, FileOpError> {
    owner.map(|o| owner::resolve(dest, o, action)).transpose()
}

fn mkdir(
    env: &FileOpEnv,
    dest: &Root,
    path: &str,
    mode: u32,
    parents: bool,
    owner: Option<&Owner>,
) -> Result<(), FileOpError> {
    const A: &str = "mkdir";
    let ids = resolve_owner(dest, owner, A)?;
    let comps = clean(path.as_bytes());
    let err = |e: io::Error| FileOpError::io(A, show(&comps), e);
    let spec = DirSpec {
        mode: mode & 0o7777,
        owner: ids.map(|i| (i.uid, i.gid)),
        time: env.epoch,
    };
    if parents {
        dest.ensure_dir(&comps, &spec, &mut Vec::new())
            .map_err(err)?;
        return Ok(());
    }
    let leaf = dest.leaf(&comps, true, None).map_err(err)?;
    let Some(name) = &leaf.name else {
        return Ok(());
    };
    match mkdirat(&leaf.dir, name.as_slice(), Mode::from_raw_mode(0o700)) {
        Ok(()) => {}
        // BuildKit: an existing path is success.
        Err(Errno::EXIST) => return Ok(()),
        Err(e) => return Err(err(e.into())),
    }
    let fd = open_nofollow(&leaf.dir, name, OFlags::RDONLY | OFlags::DIRECTORY).map_err(err)?;
    finish_fd(&fd, mode, ids, env.epoch).map_err(err)
}

fn finish_fd(fd: &OwnedFd, mode: u32, ids: Option<Ids>, epoch: Option<i64>) -> io::Result<()> {
    if let Some(i) = ids {
        fchown(fd, Some(uid_of(i.uid)), Some(gid_of(i.gid)))?;
    }
    fchmod(fd, Mode::from_raw_mode(mode & 0o7777))?;
    if let Some(t) = epoch {
        set_times_fd(fd, (t, 0), (t, 0))?;
    }
    Ok(())
}

pub(crate) fn open_nofollow(dir: impl AsFd, name: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    Ok(openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::from_raw_mode(0o600),
    )?)
}

fn mkfile(
    env: &FileOpEnv,
    dest: &Root,
    path: &str,
    mode: u32,
    data: &[u8],
    owner: Option<&Owner>,
) -> Result<(), FileOpError> {
    const A: &str = "mkfile";
    let ids = resolve_owner(dest, owner, A)?;
    let comps = clean(path.as_bytes());
    let err = |e: io::Error| FileOpError::io(A, show(&comps), e);
    let leaf = dest.leaf(&comps, true, None).map_err(err)?;
    let Some(name) = &leaf.name else {
        return Err(FileOpError::new(A, show(&comps), ErrorKind::IsADirectory));
    };
    let fd = open_nofollow(
        &leaf.dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
    )
    .map_err(err)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(data).map_err(err)?;
    let fd = OwnedFd::from(file);
    finish_fd(&fd, mode, ids, env.epoch).map_err(err)
}

fn rm(dest: &Root, path: &str, allow_not_found: bool) -> Result<(), FileOpError> {
    const A: &str = "rm";
    let comps = clean(path.as_bytes());
    let err = |e: io::Error| FileOpError::io(A, show(&comps), e);
    let leaf = match dest.leaf(&comps, false, None) {
        Ok(l) => l,
        Err(e) if e.raw_os_error() == Some(Errno::NOENT.raw_os_error()) && allow_not_found => {
            return Ok(())
        }
        Err(e) => return Err(err(e)),
    };
    let Some(name) = &leaf.name else {
        return Err(err(Errno::BUSY.into()));
    };
    match remove_all_at(&leaf.dir, name) {
        Ok(true) => Ok(()),
        Ok(false) if allow_not_found => Ok(()),
        Ok(false) => Err(FileOpError::new(A, show(&comps), ErrorKind::NotFound)),
        Err(e) => Err(err(e)),
    }
}

/// `rm -rf dir/name` on descriptors, never following a symlink. Returns
/// whether something was there.
pub(crate) fn remove_all_at(dir: impl AsFd, name: &[u8]) -> io::Result<bool> {
    let dir = dir.as_fd();
    let st = match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if file_type(&st) != FileType::Directory {
        unlinkat(dir, name, AtFlags::empty())?;
        return Ok(true);
    }
    let sub = open_nofollow(dir, name, OFlags::RDONLY | OFlags::DIRECTORY)?;
    for entry in rustix::fs::Dir::read_from(&sub)? {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        remove_all_at(&sub, n)?;
    }
    unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    Ok(true)
}

fn symlink(env: &FileOpEnv, dest: &Root, target: &str, path: &str) -> Result<(), FileOpError> {
    const A: &str = "symlink";
    let comps = clean(path.as_bytes());
    let err = |e: io::Error| FileOpError::io(A, show(&comps), e);
    let leaf = dest.leaf(&comps, false, None).map_err(err)?;
    let Some(name) = &leaf.name else {
        return Err(err(Errno::EXIST.into()));
    };
    symlinkat(target, &leaf.dir, name.as_slice()).map_err(|e| err(e.into()))?;
    if let Some(t) = env.epoch {
        set_times_at(&leaf.dir, name, (t, 0), (t, 0)).map_err(err)?;
    }
    Ok(())
}
