//! The container's mount table, built inside its own mount namespace:
//! the rootfs, /proc, a minimal /dev, a read-only /sys, the user's mounts,
//! the generated /etc files, then pivot_root and runc's masked and
//! read-only paths. Nothing here is visible in the host's mount table.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::rootfs::{fd_path, mkdir_all_in_root, mount_point_in_root, open_in_root};
use crate::spec::{MountSpec, Rootfs};

/// Paths runc hides behind /dev/null or an empty read-only tmpfs.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths runc makes read-only.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Device nodes a container gets: name, major, minor.
pub const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

fn sys<T>(what: impl FnOnce() -> String, r: nix::Result<T>) -> Result<T> {
    r.map_err(|e| Error::sys(what(), e))
}

/// A file made for the container outside its rootfs (hosts, resolv.conf,
/// hostname) and bind-mounted over the image's copy.
#[derive(Debug, Clone)]
pub struct GeneratedFile {
    /// The host file.
    pub source: PathBuf,
    /// Where it appears in the container.
    pub destination: PathBuf,
}

/// Mounts the rootfs on `target` (an existing empty directory); an overlay
/// is `volatile` unless `sync_upper` (see `ContainerSpec::sync_upper`).
pub fn mount_rootfs(rootfs: &Rootfs, target: &Path, sync_upper: bool) -> Result<()> {
    match rootfs {
        Rootfs::Dir { path, readonly } => {
            sys(
                || format!("bind {} on {}", path.display(), target.display()),
                mount(
                    Some(path.as_path()),
                    target,
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                ),
            )?;
            remount(target, *readonly)?;
        }
        Rootfs::Overlay {
            lowers,
            upper,
            work,
        } => {
            let overlay = crate::overlay::Overlay {
                lowers,
                upper: Some((upper, work)),
                volatile: !sync_upper,
                readonly: false,
                nodev: true,
            };
            crate::overlay::mount_overlay(&overlay, target).map_err(|e| Error::Io {
                path: target.to_path_buf(),
                source: e,
            })?;
        }
    }
    Ok(())
}

fn remount_ro(target: &Path) -> Result<()> {
    remount(target, true)
}

/// Remounts a bind mount `nodev` (and read-only when asked). Every mount a
/// container can write to is `nodev`: a device node it makes with CAP_MKNOD
/// (docker's default) cannot be opened, so the host's disks stay out of
/// reach without a devices cgroup (a cgroup v1 attach costs milliseconds per
/// container; v2 would need a BPF program).
fn remount(target: &Path, readonly: bool) -> Result<()> {
    // Keep the flags the kernel locked on the mount (nosuid, nodev, noexec):
    // a bind remount that tries to clear them fails.
    let st = sys(
        || format!("statvfs {}", target.display()),
        nix::sys::statvfs::statvfs(target),
    )?;
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV;
    if readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    use nix::sys::statvfs::FsFlags;
    for (f, m) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if st.flags().contains(f) {
            flags |= m;
        }
    }
    sys(
        || format!("remount {} read-only", target.display()),
        mount(None::<&str>, target, None::<&str>, flags, None::<&str>),
    )
}

/// Everything mounted under the new root before pivot_root.
pub fn populate(
    root: &OwnedFd,
    mounts: &[MountSpec],
    files: &[GeneratedFile],
    secrets_dir: &Path,
    devs_dir: &Path,
) -> Result<()> {
    let r = root.as_raw_fd();
    let at = |p: &str, dir: bool| -> Result<OwnedFd> {
        mount_point_in_root(r, Path::new(p), dir)
            .map_err(|e| Error::sys(format!("mount point {p}"), e))
    };
    let nosx = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let proc_ = at("/proc", true)?;
    sys(
        || "mount /proc".into(),
        mount(
            Some("proc"),
            &fd_path(&proc_),
            Some("proc"),
            nosx,
            None::<&str>,
        ),
    )?;
    let dev = at("/dev", true)?;
    sys(
        || "mount /dev".into(),
        mount(
            Some("tmpfs"),
            &fd_path(&dev),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        ),
    )?;
    // The tmpfs is ours and empty: paths below it cannot hold planted links.
    let dev = open_in_root(r, Path::new("/dev"), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| Error::sys("open /dev", e))?;
    let dp = fd_path(&dev);
    // /dev is nodev: each allowed device is a node of the container's own,
    // made in its private state directory on the host (never the host's
    // /dev inode: a chmod in the container must not reach the host's
    // /dev/null), bound onto an empty file: a mount of its own without
    // nodev. A node made with mknod anywhere the container can write is dead.
    // The nodes live on a tmpfs of this mount namespace's own, mounted over the
    // state directory's `devs`: six inodes made and deleted per step on the
    // store's file system cost more than the tmpfs (on ext4 without a journal,
    // every inode allocation scans past the recently deleted ones). pivot_root
    // leaves it out of the container's reach; the binds keep their nodes.
    sys(
        || format!("mount tmpfs on {}", devs_dir.display()),
        mount(
            Some("tmpfs"),
            devs_dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("mode=700,size=16k"),
        ),
    )?;
    for (name, maj, min) in DEVICES {
        let node = devs_dir.join(name);
        match nix::sys::stat::mknod(
            &node,
            nix::sys::stat::SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(*maj, *min),
        ) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(Error::sys(format!("mknod {}", node.display()), e)),
        }
        let target = dp.join(name);
        std::fs::File::create(&target).map_err(|e| Error::io(&target, e))?;
        sys(
            || format!("bind /dev/{name}"),
            mount(
                Some(node.as_path()),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            ),
        )?;
    }
    for (name, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        sys(
            || format!("symlink /dev/{name}"),
            nix::unistd::symlinkat(to, &dev, name),
        )?;
    }
    for d in ["pts", "shm", "mqueue"] {
        sys(
            || format!("mkdir /dev/{d}"),
            nix::sys::stat::mkdirat(&dev, d, Mode::from_bits_truncate(0o755)),
        )?;
    }
    sys(
        || "mount /dev/pts".into(),
        mount(
            Some("devpts"),
            &dp.join("pts"),
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
        ),
    )?;
    sys(
        || "mount /dev/shm".into(),
        mount(
            Some("shm"),
            &dp.join("shm"),
            Some("tmpfs"),
            nosx,
            Some("mode=1777,size=65536k"),
        ),
    )?;
    sys(
        || "mount /dev/mqueue".into(),
        mount(
            Some("mqueue"),
            &dp.join("mqueue"),
            Some("mqueue"),
            nosx,
            None::<&str>,
        ),
    )?;
    let sysfs = at("/sys", true)?;
    sys(
        || "mount /sys".into(),
        mount(
            Some("sysfs"),
            &fd_path(&sysfs),
            Some("sysfs"),
            nosx | MsFlags::MS_RDONLY,
            None::<&str>,
        ),
    )?;

    let mut secrets_mounted = false;
    for m in mounts {
        let dest = m.destination();
        match m {
            MountSpec::Bind {
                source, readonly, ..
            }
            | MountSpec::Cache {
                source, readonly, ..
            } => {
                let is_dir = std::fs::metadata(source)
                    .map_err(|e| Error::io(source, e))?
                    .is_dir();
                let t = mount_point_in_root(r, dest, is_dir)
                    .map_err(|e| Error::sys(format!("mount point {}", dest.display()), e))?;
                let tp = fd_path(&t);
                sys(
                    || format!("bind {} on {}", source.display(), dest.display()),
                    mount(
                        Some(source.as_path()),
                        &tp,
                        None::<&str>,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        None::<&str>,
                    ),
                )?;
                remount_in_root(r, dest, *readonly)?;
            }
            MountSpec::Tmpfs { size, .. } => {
                let t = mkdir_all_in_root(r, dest)
                    .map_err(|e| Error::sys(format!("mount point {}", dest.display()), e))?;
                let opts = if *size > 0 {
                    format!("mode=1777,size={size}")
                } else {
                    "mode=1777".into()
                };
                sys(
                    || format!("mount tmpfs on {}", dest.display()),
                    mount(
                        Some("tmpfs"),
                        &fd_path(&t),
                        Some("tmpfs"),
                        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                        Some(opts.as_str()),
                    ),
                )?;
            }
            MountSpec::Secret {
                data,
                mode,
                uid,
                gid,
                ..
            } => {
                if !secrets_mounted {
                    // A tmpfs only this mount namespace sees: the secret never reaches a disk.
                    sys(
                        || "mount secrets tmpfs".into(),
                        mount(
                            Some("tmpfs"),
                            secrets_dir,
                            Some("tmpfs"),
                            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                            Some("mode=700,size=16m"),
                        ),
                    )?;
                    secrets_mounted = true;
                }
                let file = secrets_dir.join(format!(
                    "s{}",
                    dest.as_os_str().len() + data.len() + std::process::id() as usize
                ));
                let file = unique(file);
                std::fs::write(&file, data).map_err(|e| Error::io(&file, e))?;
                sys(
                    || "chown secret".into(),
                    nix::unistd::chown(&file, Some((*uid).into()), Some((*gid).into())),
                )?;
                sys(
                    || "chmod secret".into(),
                    nix::sys::stat::fchmodat(
                        nix::fcntl::AT_FDCWD,
                        &file,
                        Mode::from_bits_truncate(*mode),
                        nix::sys::stat::FchmodatFlags::FollowSymlink,
                    ),
                )?;
                let t = mount_point_in_root(r, dest, false)
                    .map_err(|e| Error::sys(format!("mount point {}", dest.display()), e))?;
                let tp = fd_path(&t);
                sys(
                    || format!("bind secret on {}", dest.display()),
                    mount(
                        Some(file.as_path()),
                        &tp,
                        None::<&str>,
                        MsFlags::MS_BIND,
                        None::<&str>,
                    ),
                )?;
                remount_in_root(r, dest, true)?;
            }
            MountSpec::SshAgent { socket, .. } => {
                let t = mount_point_in_root(r, dest, false)
                    .map_err(|e| Error::sys(format!("mount point {}", dest.display()), e))?;
                sys(
                    || format!("bind ssh agent on {}", dest.display()),
                    mount(
                        Some(socket.as_path()),
                        &fd_path(&t),
                        None::<&str>,
                        MsFlags::MS_BIND,
                        None::<&str>,
                    ),
                )?;
            }
        }
    }
    if secrets_mounted {
        // The secrets stay reachable through their bind mounts only.
        sys(
            || "detach secrets tmpfs".into(),
            umount2(secrets_dir, MntFlags::MNT_DETACH),
        )?;
    }
    for f in files {
        if mounts.iter().any(|m| m.destination() == f.destination) {
            continue;
        }
        let t = match mount_point_in_root(r, &f.destination, false) {
            Ok(t) => t,
            // A read-only rootfs without the file: the image keeps its own
            // (or none), as with runc on a read-only bundle.
            Err(nix::errno::Errno::EROFS) => continue,
            Err(e) => {
                return Err(Error::sys(
                    format!("mount point {}", f.destination.display()),
                    e,
                ))
            }
        };
        sys(
            || format!("bind {}", f.destination.display()),
            mount(
                Some(f.source.as_path()),
                &fd_path(&t),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            ),
        )?;
    }
    Ok(())
}

/// Remounts the mount now on top of `dest` (see [`remount`]). The descriptor used
/// to mount still names the covered directory, so `dest` is resolved again.
fn remount_in_root(root: std::os::fd::RawFd, dest: &Path, readonly: bool) -> Result<()> {
    let top = open_in_root(root, dest, libc::O_PATH, 0)
        .map_err(|e| Error::sys(format!("resolve {}", dest.display()), e))?;
    remount(&fd_path(&top), readonly)
}

fn unique(mut p: PathBuf) -> PathBuf {
    let mut n = 0;
    while p.exists() {
        n += 1;
        p.set_extension(n.to_string());
    }
    p
}

/// Makes the mounted root the process's `/` with pivot_root (not chroot: the
/// old root is detached, so no `..` or fd trick walks back to the host's).
pub fn pivot(root: &OwnedFd) -> Result<()> {
    sys(|| "fchdir new root".into(), nix::unistd::fchdir(root))?;
    sys(|| "pivot_root".into(), nix::unistd::pivot_root(".", "."))?;
    sys(
        || "detach old root".into(),
        umount2(".", MntFlags::MNT_DETACH),
    )?;
    sys(|| "chdir /".into(), nix::unistd::chdir("/"))?;
    Ok(())
}

/// runc's masked and read-only paths, applied after pivot_root.
pub fn protect_proc_and_sys() -> Result<()> {
    for p in MASKED_PATHS {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            continue;
        };
        if meta.is_dir() {
            sys(
                || format!("mask {p}"),
                mount(
                    Some("tmpfs"),
                    *p,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    Some("size=0"),
                ),
            )?;
        } else {
            sys(
                || format!("mask {p}"),
                mount(
                    Some("/dev/null"),
                    *p,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                ),
            )?;
        }
    }
    for p in READONLY_PATHS {
        if std::fs::symlink_metadata(p).is_err() {
            continue;
        }
        sys(
            || format!("bind {p}"),
            mount(
                Some(*p),
                *p,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            ),
        )?;
        remount_ro(Path::new(p))?;
    }
    Ok(())
}

/// `--read-only`: the root mount becomes read-only (its submounts keep their modes).
pub fn readonly_root() -> Result<()> {
    remount_ro(Path::new("/"))
}

/// Creates the working directory if missing (docker does) and enters it,
/// resolved inside the new root. A cwd under /proc/*/fd is refused: with a
/// leaked descriptor it would be a door to the host (CVE-2024-21626).
pub fn enter_cwd(cwd: &Path) -> Result<()> {
    let s = cwd.as_os_str().as_bytes();
    let bad = |p: &[u8]| s.starts_with(p);
    if !cwd.is_absolute()
        || bad(b"/proc/self/fd")
        || bad(b"/proc/thread-self/fd")
        || (bad(b"/proc/") && s.windows(4).any(|w| w == b"/fd/" || w == b"/fd"))
    {
        return Err(Error::Invalid {
            what: "working directory",
            detail: format!("{} is not allowed", cwd.display()),
        });
    }
    if std::fs::metadata(cwd).is_err() {
        let _ = std::fs::create_dir_all(cwd);
    }
    sys(
        || format!("chdir {}", cwd.display()),
        nix::unistd::chdir(cwd),
    )?;
    // getcwd() prefixes "(unreachable)" when the directory is outside our root.
    let here = sys(|| "getcwd".into(), nix::unistd::getcwd())?;
    if !here.is_absolute() {
        return Err(Error::Setup(format!(
            "working directory {} is outside the container",
            cwd.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_and_read_only_paths_are_runcs() {
        for p in [
            "/proc/kcore",
            "/proc/keys",
            "/proc/timer_list",
            "/sys/firmware",
        ] {
            assert!(MASKED_PATHS.contains(&p), "{p}");
        }
        for p in [
            "/proc/sys",
            "/proc/sysrq-trigger",
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
        ] {
            assert!(READONLY_PATHS.contains(&p), "{p}");
        }
        let names: Vec<&str> = DEVICES.iter().map(|d| d.0).collect();
        assert_eq!(names, ["null", "zero", "full", "random", "urandom", "tty"]);
    }

    #[test]
    fn cwd_under_proc_fd_is_refused_before_any_syscall() {
        for bad in [
            "/proc/self/fd/3",
            "/proc/thread-self/fd/9",
            "/proc/1/fd/4",
            "relative/dir",
        ] {
            assert!(enter_cwd(Path::new(bad)).is_err(), "{bad}");
        }
    }
}
