//! Paths inside a root, resolved on file descriptors (openat2 with
//! RESOLVE_IN_ROOT), never by joining strings: a symlink planted in an image
//! (`/data -> /etc`, `/x -> ../../..`) cannot lead a mount or a created file
//! out of the container's root.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::Mode;

use crate::error::{Error, Result};

/// Opens `path` (taken relative to `root` whatever its leading `/`) with
/// `flags`, resolving every symlink and `..` as if `root` were `/`, and
/// refusing /proc magic links.
pub fn open_in_root(root: RawFd, path: &Path, flags: i32, mode: u32) -> Result<OwnedFd, Errno> {
    let rel = relative(path);
    let c = CString::new(rel.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: open_how is plain old data; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & libc::O_CREAT != 0 {
        mode as u64
    } else {
        0
    };
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // With RESOLVE_IN_ROOT the kernel answers EAGAIN when a rename or mount
    // anywhere on the system raced a `..` step of the lookup; openat2(2) says
    // to retry. Bounded, so a machine busy mounting cannot spin us forever.
    let mut attempts = 0;
    let fd = loop {
        // SAFETY: `c` is a NUL-terminated string and `how` a properly sized
        // open_how, both alive for the call; the result is a new fd we own.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            break fd;
        }
        let err = Errno::last();
        attempts += 1;
        if err != Errno::EAGAIN || attempts >= 128 {
            return Err(err);
        }
    };
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `path` without its root: the components openat2 resolves under a root.
fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// Creates `path` and its missing parents as directories inside `root`
/// (mode 0755, as docker creates mount points and WORKDIRs) and returns an
/// O_PATH descriptor of it. Every step resolves inside the root; a dangling
/// symlink on the way (`/data -> /srv/data`) is followed *inside the root*
/// and its target created there, as runc's securejoin does.
pub fn mkdir_all_in_root(root: RawFd, path: &Path) -> Result<OwnedFd, Errno> {
    mkdir_all_depth(root, path, 0)
}

fn mkdir_all_depth(root: RawFd, path: &Path, depth: u32) -> Result<OwnedFd, Errno> {
    // The kernel's own limit on symlinks in one lookup.
    if depth > 40 {
        return Err(Errno::ELOOP);
    }
    let dir = libc::O_PATH | libc::O_DIRECTORY;
    let rel = relative(path);
    let mut cur = PathBuf::new();
    for comp in rel.components() {
        let Component::Normal(name) = comp else {
            cur.push(comp);
            continue;
        };
        let parent = open_in_root(
            root,
            if cur.as_os_str().is_empty() {
                Path::new(".")
            } else {
                &cur
            },
            dir,
            0,
        )?;
        cur.push(name);
        match open_in_root(root, &cur, dir, 0) {
            Ok(_) => continue,
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(e),
        }
        match nix::fcntl::readlinkat(&parent, name) {
            Ok(target) => {
                // A dangling link: make what it points at, inside the root.
                let target = PathBuf::from(target);
                let within = if target.is_absolute() {
                    target
                } else {
                    Path::new("/")
                        .join(cur.parent().unwrap_or(Path::new("")))
                        .join(target)
                };
                mkdir_all_depth(root, &within, depth + 1)?;
            }
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(&parent, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    open_in_root(
        root,
        if cur.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &cur
        },
        dir,
        0,
    )
}

/// Makes sure a mount point for a file (`dir == false`) or directory exists
/// at `path` inside `root` and returns an O_PATH descriptor of it.
pub fn mount_point_in_root(root: RawFd, path: &Path, dir: bool) -> Result<OwnedFd, Errno> {
    if dir {
        return mkdir_all_in_root(root, path);
    }
    match open_in_root(root, path, libc::O_PATH, 0) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().ok_or(Errno::EINVAL)?;
    let pfd = mkdir_all_in_root(root, parent)?;
    let cname = CString::new(name.as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: pfd is a live directory descriptor and cname NUL-terminated;
    // O_NOFOLLOW|O_EXCL means we create a fresh file and never follow a link.
    let fd = unsafe {
        libc::openat(
            pfd.as_raw_fd(),
            cname.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
        )
    };
    if fd < 0 && Errno::last() != Errno::EEXIST {
        return Err(Errno::last());
    }
    if fd >= 0 {
        // SAFETY: fd was just returned by openat and is ours to close.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    open_in_root(root, path, libc::O_PATH, 0)
}

/// The path through which a syscall taking a path reaches what `fd` refers
/// to (the /proc magic link, as runc mounts onto resolved targets).
pub fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Resolves `path` inside the host directory `root` and returns the
/// descriptor (O_PATH): for callers (the solver) that must open a build
/// context or cache path without following links out of it.
pub fn open_path_in(root: &Path, path: &Path) -> Result<OwnedFd> {
    let rootfd = nix::fcntl::open(
        root,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::sys(format!("open {}", root.display()), e))?;
    open_in_root(rootfd.as_raw_fd(), path, libc::O_PATH, 0).map_err(|e| {
        Error::sys(
            format!("resolve {} in {}", path.display(), root.display()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root_fd(dir: &Path) -> OwnedFd {
        nix::fcntl::open(
            dir,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        symlink(outside.path(), t.path().join("escape")).unwrap();
        symlink("../../../..", t.path().join("up")).unwrap();
        let r = root_fd(t.path());
        // an absolute link resolves under the root: the outside dir's path does not exist there
        assert_eq!(
            open_in_root(r.as_raw_fd(), Path::new("/escape"), libc::O_PATH, 0).unwrap_err(),
            Errno::ENOENT
        );
        // mkdir through a link to the outside creates inside the root instead
        mkdir_all_in_root(r.as_raw_fd(), Path::new("/up/created")).unwrap();
        assert!(t.path().join("created").is_dir());
        assert!(!outside.path().join("created").exists());
        mount_point_in_root(r.as_raw_fd(), Path::new("/etc/hosts"), false).unwrap();
        assert!(t.path().join("etc/hosts").is_file());
        // a dangling link to an absolute path: its target is made inside the root
        symlink(outside.path().join("data"), t.path().join("data")).unwrap();
        mkdir_all_in_root(r.as_raw_fd(), Path::new("/data/sub")).unwrap();
        assert!(t
            .path()
            .join(outside.path().strip_prefix("/").unwrap())
            .join("data/sub")
            .is_dir());
        assert!(!outside.path().join("data").exists());
        // a link loop fails instead of spinning
        symlink("loop2", t.path().join("loop1")).unwrap();
        symlink("loop1", t.path().join("loop2")).unwrap();
        assert!(mkdir_all_in_root(r.as_raw_fd(), Path::new("/loop1/x")).is_err());
    }
}
