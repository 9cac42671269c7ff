//! A root directory that the caller opened (a running container's `/proc/PID/root`, a
//! private mount of a stopped container's overlay) for work on paths that come from outside
//! kiln (`docker cp`): every lookup goes through [`Root`], so `..` and symlinks, absolute or
//! not, resolve inside it (`openat2(RESOLVE_IN_ROOT)`), and tar streams are unpacked with the
//! same extractor as `ADD`, whose entries cannot reach outside their destination.

use std::io::{self, Read};
use std::os::fd::OwnedFd;

use super::root::{clean, show, Root};
use super::unpack::{decoder_for, extract_from};
use super::{ErrorKind, FileOpError};

/// A directory used as the root of hostile paths.
pub struct RootedDir {
    root: Root,
}

/// Where a path leads inside a [`RootedDir`]: the directory holding its last component,
/// resolved inside the root, and that component's name (`None` when the path names the root
/// itself).
pub struct Found {
    /// The parent directory, open for reading.
    pub dir: OwnedFd,
    /// The last component.
    pub name: Option<Vec<u8>>,
}

impl RootedDir {
    /// A root made of an open directory (opened by the caller from a trusted path).
    pub fn new(fd: OwnedFd) -> RootedDir {
        RootedDir {
            root: Root::from_fd(fd),
        }
    }

    /// Finds `path` (cleaned lexically first, as `filepath.Join("/", path)`): symlinks on
    /// the way are followed inside the root; the last one only when `follow_last`.
    pub fn lookup(&self, path: &[u8], follow_last: bool) -> io::Result<Found> {
        let leaf = self.root.leaf(&clean(path), follow_last, None)?;
        Ok(Found {
            dir: leaf.dir,
            name: leaf.name,
        })
    }

    /// The path `path` really names once every symlink on it, the last one included, is
    /// followed inside the root (`/a/b`): docker's `linkTarget`.
    pub fn resolve(&self, path: &[u8]) -> io::Result<String> {
        Ok(show(&self.root.resolve(&clean(path), true)?))
    }

    /// Unpacks the tar stream `input` (plain or compressed) into the directory `dir` of the
    /// root, which must exist (ENOENT otherwise; ENOTDIR for a non-directory). Every entry
    /// stays inside `dir`. `display` names the stream in errors.
    pub fn unpack_into<R: Read + Send + 'static>(
        &self,
        dir: &[u8],
        input: R,
        display: &str,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<(), FileOpError> {
        let at = show(&clean(dir));
        let dest = self
            .root
            .open_dir(&clean(dir))
            .map_err(|e| FileOpError::io("extract", at.clone(), e))?;
        let mut input = io::BufReader::with_capacity(64 * 1024, input);
        let head = io::BufRead::fill_buf(&mut input)
            .map_err(|e| FileOpError::io("extract", display, e))?
            .to_vec();
        let reader = decoder_for(&head, input)
            .map_err(|e| FileOpError::new("extract", display, ErrorKind::Archive(e.to_string())))?;
        extract_from(
            Root::from_fd(dest),
            reader,
            None,
            display,
            no_overwrite_dir_non_dir,
            None,
        )
    }
}
