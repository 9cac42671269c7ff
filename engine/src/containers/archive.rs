//! `docker cp`: a path of a container as a tar, a tar extracted into a directory of a
//! container, and the stat docker sends beside them, from both faces.
//!
//! Every path (the request's, and each name inside an uploaded tar) is hostile and resolved
//! inside the container's root by the solver's resolver (`openat2(RESOLVE_IN_ROOT)`), never
//! by joining strings, so a symlink swapped in meanwhile (CVE-2018-15664) can only lead to
//! another place inside the container. The root is reached two ways:
//! - a running container: `/proc/PID/root` of its first process, opened as a directory: the
//!   lookups below it walk the container's own mount namespace, volumes included;
//! - a stopped one (docker copies from and into stopped containers too): a thread made for the
//!   copy moves into a private mount namespace and mounts the container's overlay there (its
//!   lowers and upper; read-only to read, with the upper writable to extract) and its bind
//!   and volume mounts on top, so the host never sees the mount and it goes with the thread.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use kiln_executor::overlay::{mount_overlay, Overlay};
use kiln_solver::fileop::{ErrorKind, Found, RootedDir};
use nix::fcntl::{open, OFlag};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};
use serde::{Deserialize, Serialize};

use super::log::rfc3339_nanos;
use super::settings::{ContainerMount, ContainerSettings};
use super::{from_executor, is_running};
use crate::{Engine, Error, Result};

/// What docker says of a path in a container (`X-Docker-Container-Path-Stat`, base64 of
/// this as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStat {
    /// The name the path has in an archive of it (its last component).
    pub name: String,
    /// Its size in bytes.
    pub size: i64,
    /// Go's `os.FileMode` bits: permissions plus type bits (`1<<31` a directory).
    pub mode: u32,
    /// Its modification time, RFC 3339.
    pub mtime: String,
    /// For a symlink, where it leads inside the container once every link is followed
    /// (`/abs/path`); empty otherwise.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Go's `os.ModeDir`.
pub const GO_MODE_DIR: u32 = 1 << 31;
/// Go's `os.ModeSymlink`.
pub const GO_MODE_SYMLINK: u32 = 1 << 27;

impl PathStat {
    /// Whether the path is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & GO_MODE_DIR != 0
    }

    /// Whether the path is a symlink.
    pub fn is_symlink(&self) -> bool {
        self.mode & GO_MODE_SYMLINK != 0
    }
}

/// A `stat` mode as Go's `os.FileMode`, which is what docker clients decode.
pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut mode = st_mode & 0o777;
    mode |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => GO_MODE_DIR,
        libc::S_IFLNK => GO_MODE_SYMLINK,
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        mode |= 1 << 23;
    }
    if st_mode & libc::S_ISGID != 0 {
        mode |= 1 << 22;
    }
    if st_mode & libc::S_ISVTX != 0 {
        mode |= 1 << 20;
    }
    mode
}

/// How to archive a path of a container.
#[derive(Debug, Clone, Default)]
pub struct ArchiveOptions {
    /// Follow the path's last symlink (`docker cp -L`): archive what it leads to, under the
    /// link's own name.
    pub follow_link: bool,
    /// The name of the top entry instead of the path's last component (the CLI's rename when
    /// the destination is a new name).
    pub rename: Option<String>,
}

/// How `path` is looked up, and the top entry's name in an archive of it: docker follows the
/// last symlink of a path that ends in `/` or `/.`, and `/.` names the directory's contents
/// (`.`), as the root does.
fn cp_path(path: &str) -> Result<(bool, String)> {
    if path.is_empty() {
        return Err(Error::invalid("Path cannot be empty"));
    }
    let follow = path.ends_with('/') || path.ends_with("/.") || path == ".";
    if path.ends_with("/.") || path == "." {
        return Ok((follow, ".".into()));
    }
    let mut comps: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                comps.pop();
            }
            c => comps.push(c),
        }
    }
    Ok((follow, comps.last().map_or(".", |c| c).to_string()))
}

fn not_found(path: &str, key: &str) -> Error {
    Error::NotFound(format!("Could not find the file {path} in container {key}"))
}

/// A lookup's error as docker answers it: a path that is not there is a 404.
fn lookup_error(e: std::io::Error, path: &str, key: &str) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => not_found(path, key),
        Some(libc::ELOOP) => Error::invalid(format!("{path}: too many levels of symbolic links")),
        _ => Error::io("looking up", path, e),
    }
}

/// `lstat` of what a lookup found (the root itself when it has no name).
fn lstat_found(found: &Found) -> nix::Result<FileStat> {
    match &found.name {
        Some(name) => fstatat(
            found.dir.as_fd(),
            name.as_slice(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ),
        None => fstat(found.dir.as_fd()),
    }
}

/// The stat of `path` inside `root`, named `name`.
fn stat_in(
    root: &RootedDir,
    path: &str,
    follow: bool,
    name: &str,
    key: &str,
) -> Result<(Found, PathStat)> {
    let found = root
        .lookup(path.as_bytes(), follow)
        .map_err(|e| lookup_error(e, path, key))?;
    let st = lstat_found(&found).map_err(|e| lookup_error(e.into(), path, key))?;
    let link_target = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        root.resolve(path.as_bytes())
            .map_err(|e| lookup_error(e, path, key))?
    } else {
        String::new()
    };
    let nanos = (st.st_mtime.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(st.st_mtime_nsec.max(0) as u64);
    let stat = PathStat {
        name: name.to_string(),
        size: st.st_size,
        mode: go_file_mode(st.st_mode),
        mtime: rfc3339_nanos(nanos),
        link_target,
    };
    Ok((found, stat))
}

impl Engine {
    /// The stat of `path` in a container, running or not (`HEAD /containers/{id}/archive`):
    /// [`Error::NotFound`] when it is not there.
    pub fn container_path_stat(&self, key: &str, path: &str) -> Result<PathStat> {
        let (follow, name) = cp_path(path)?;
        self.with_container_root(key, false, |root| {
            stat_in(root, path, follow, &name, key).map(|(_, stat)| stat)
        })
    }

    /// Writes a tar of `path` in a container (a directory with everything below it, as its
    /// top entry): `begin` is called with the path's stat once it is found and returns the
    /// writer the tar is streamed to (the API sends its headers then), which is returned at
    /// the end. [`Error::NotFound`] for a path that is not there, before `begin`.
    pub fn container_archive<W: Write + Send>(
        &self,
        key: &str,
        path: &str,
        options: &ArchiveOptions,
        begin: impl FnOnce(&PathStat) -> Result<W> + Send,
    ) -> Result<W> {
        let (follow, name) = cp_path(path)?;
        let name = options.rename.clone().unwrap_or(name);
        let follow = follow || options.follow_link;
        self.with_container_root(key, false, |root| {
            let (found, stat) = stat_in(root, path, follow, &name, key)?;
            let out = begin(&stat)?;
            kiln_cache::layer::write_entry_tar(
                found.dir.as_fd(),
                found.name.as_deref(),
                name.as_bytes(),
                out,
            )
            .map_err(Error::from)
        })
    }

    /// Extracts the tar stream `input` (plain or compressed) into the directory `dir` of a
    /// container (`PUT /containers/{id}/archive`): [`Error::NotFound`] when `dir` is not
    /// there, [`Error::Invalid`] when it is no directory. Every entry stays inside `dir`.
    /// With `no_overwrite_dir_non_dir`, an entry that would replace a directory with a
    /// non-directory (or the reverse) fails.
    pub fn extract_to_container<R: Read + Send + 'static>(
        &self,
        key: &str,
        dir: &str,
        input: R,
        no_overwrite_dir_non_dir: bool,
    ) -> Result<()> {
        let (_, name) = cp_path(dir)?;
        self.with_container_root(key, true, move |root| {
            let (_, stat) = stat_in(root, dir, true, &name, key)?;
            if !stat.is_dir() {
                return Err(Error::invalid("extraction point is not a directory"));
            }
            root.unpack_into(
                dir.as_bytes(),
                input,
                "the archive",
                no_overwrite_dir_non_dir,
            )
            .map_err(|e| match e.kind {
                ErrorKind::Archive(_) => Error::invalid(e.to_string()),
                _ => Error::Internal(e.to_string()),
            })
        })
    }

    /// Runs `work` on the root of container `key`: `/proc/PID/root` while it runs, else a
    /// private mount of its file systems on a thread made for it (see the module's doc).
    fn with_container_root<T: Send>(
        &self,
        key: &str,
        write: bool,
        work: impl FnOnce(&RootedDir) -> Result<T> + Send,
    ) -> Result<T> {
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        let dir = store.dir(&rec.id);
        let settings = ContainerSettings::load(&dir)?;
        if write && settings.read_only {
            return Err(Error::invalid("container rootfs is marked read-only"));
        }
        if let Some(pid) = rec.pid.filter(|_| is_running(&rec)) {
            let proc_root = PathBuf::from(format!("/proc/{pid}/root"));
            let opened = open(
                &proc_root,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            );
            // The pid is only the container's while it runs: read the record again after the
            // open, so a pid reused by another process meanwhile is never trusted.
            let still = store.load(&rec.id).map_err(from_executor)?;
            match opened {
                Ok(fd) if is_running(&still) && still.pid == Some(pid) => {
                    return work(&RootedDir::new(fd));
                }
                Err(e) if is_running(&still) && still.pid == Some(pid) => {
                    return Err(Error::io("opening", proc_root, e.into()));
                }
                // It stopped meanwhile: its file systems are reached as a stopped one's.
                _ => {}
            }
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                let root = mount_privately(&dir, &settings, write)?;
                work(&RootedDir::new(root))
            })
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("the copy panicked".into())))
        })
    }
}

/// Moves the calling thread (one made for this: never a pooled one) into a private mount
/// namespace, mounts the container's root file system and its bind mounts there, and opens
/// the root. Read-only unless `write`.
fn mount_privately(dir: &Path, settings: &ContainerSettings, write: bool) -> Result<OwnedFd> {
    let sys = |what: &str, e: nix::Error| Error::Internal(format!("{what}: {e}"));
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_FS)
        .map_err(|e| sys("unsharing the mount namespace", e))?;
    // Nothing mounted here may propagate back to the host's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| sys("making mounts private", e))?;
    let target = dir.join("cp-root");
    std::fs::create_dir_all(&target).map_err(|e| Error::io("creating", &target, e))?;
    let upper = dir.join("upper");
    let work = dir.join("work");
    let bind = |source: &Path, flags: MsFlags| {
        mount(
            Some(source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | flags,
            None::<&str>,
        )
        .map_err(|e| sys("bind-mounting the container's root", e))
    };
    if write {
        if settings.lowers.is_empty() {
            bind(&upper, MsFlags::empty())?;
        } else {
            // A run's volatile mount of this upper left its marker, and overlayfs refuses a
            // new mount until it is gone; that run has ended (the container is stopped), as
            // the executor reasons before each start.
            let marker = work.join("work").join("incompat").join("volatile");
            if marker.exists() {
                std::fs::remove_dir_all(&marker).map_err(|e| Error::io("removing", &marker, e))?;
            }
            let overlay = Overlay {
                lowers: &settings.lowers,
                upper: Some((&upper, &work)),
                volatile: false,
                readonly: false,
                nodev: true,
            };
            mount_overlay(&overlay, &target)
                .map_err(|e| Error::io("mounting the container's root", &target, e))?;
        }
    } else {
        // The upper as the topmost lower: a read-only view that leaves the work dir alone.
        let mut lowers = vec![upper.clone()];
        lowers.extend(settings.lowers.iter().cloned());
        if lowers.len() == 1 {
            bind(&upper, MsFlags::empty())?;
        } else {
            let overlay = Overlay {
                lowers: &lowers,
                upper: None,
                volatile: false,
                readonly: true,
                nodev: true,
            };
            mount_overlay(&overlay, &target)
                .map_err(|e| Error::io("mounting the container's root", &target, e))?;
        }
    }
    let open_root = || {
        open(
            &target,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("opening", &target, e.into()))
    };
    // Volumes and binds, as docker mounts them for a copy: each destination is resolved
    // inside the root (a hostile image may have made it a symlink) and mounted on through
    // its descriptor; one that is missing is skipped.
    let root = RootedDir::new(open_root()?);
    for m in &settings.mounts {
        let ContainerMount::Bind {
            source,
            destination,
            readonly,
            ..
        } = m
        else {
            continue;
        };
        let Ok(found) = root.lookup(destination.as_os_str().as_encoded_bytes(), true) else {
            continue;
        };
        let Some(name) = found.name else { continue };
        let Ok(at) = nix::fcntl::openat(
            found.dir.as_fd(),
            name.as_slice(),
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        let at_path = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&at)
        ));
        let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
        if mount(
            Some(source.as_path()),
            &at_path,
            None::<&str>,
            flags,
            None::<&str>,
        )
        .is_ok()
            && (*readonly || !write)
        {
            let _ = mount(
                None::<&str>,
                &at_path,
                None::<&str>,
                flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            );
        }
    }
    drop(root);
    // Opened again: the first descriptor predates the binds on its subdirectories, which
    // it still sees, but a fresh one makes that independent of the kernel's rules.
    open_root()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp_paths_name_their_top_entry_as_docker() {
        assert_eq!(cp_path("/etc/passwd").unwrap(), (false, "passwd".into()));
        assert_eq!(cp_path("/etc/").unwrap(), (true, "etc".into()));
        assert_eq!(cp_path("/etc/.").unwrap(), (true, ".".into()));
        assert_eq!(cp_path("/").unwrap(), (true, ".".into()));
        assert_eq!(cp_path("a/../b").unwrap(), (false, "b".into()));
        assert!(cp_path("").is_err());
    }

    #[test]
    fn modes_are_go_file_modes() {
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), GO_MODE_DIR | 0o755);
        assert_eq!(go_file_mode(libc::S_IFREG | 0o644), 0o644);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), GO_MODE_SYMLINK | 0o777);
        assert_eq!(go_file_mode(libc::S_IFREG | 0o4755), (1 << 23) | 0o755);
    }
}
