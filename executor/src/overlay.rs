//! Mounting an overlay of any depth.
//!
//! The classic `mount(2)` call passes every lower directory in one option string, and the
//! kernel reads at most one page of it: with kiln's 90-byte snapshot paths an image of ~40
//! layers already overflows it, and the truncated last path fails with a baffling ENOENT.
//! The new mount API (`fsopen` + `fsconfig`, Linux 5.2) takes each lower with its own
//! `lowerdir+` call (Linux 6.8), so the only limit left is overlayfs' own stack depth (500).
//! Older kernels get the option string, and an explicit error when it would not fit.

use std::io;
use std::path::{Path, PathBuf};

use rustix::fd::AsFd;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
};

/// What to stack: read-only lowers, topmost first, and an optional writable upper.
#[derive(Debug, Clone)]
pub struct Overlay<'a> {
    /// Lower directories, topmost first (overlayfs' `lowerdir` order). Without `upper`, at
    /// least two: overlayfs refuses a single read-only lower (bind-mount it instead).
    pub lowers: &'a [PathBuf],
    /// `(upperdir, workdir)`, on one filesystem; `None` mounts the stack read-only.
    pub upper: Option<(&'a Path, &'a Path)>,
    /// Skip syncing the upper dir (`volatile`): for throwaway containers and steps whose
    /// result is synced when it is committed.
    pub volatile: bool,
    /// Mount read-only.
    pub readonly: bool,
    /// Mount `nodev`.
    pub nodev: bool,
}

/// The kernel copies at most one page of mount options (`copy_mount_options`).
const MAX_LEGACY_OPTIONS: usize = 4095;

/// Mounts `overlay` on `target`, an existing directory.
pub fn mount_overlay(overlay: &Overlay<'_>, target: &Path) -> io::Result<()> {
    match mount_new_api(overlay, target) {
        Ok(()) => Ok(()),
        // ENOSYS: no fsopen (before 5.2, or filtered). EINVAL on `lowerdir+`: before 6.8.
        Err(NewApiError::Unsupported) => mount_legacy(overlay, target),
        Err(NewApiError::Io(what, e)) => Err(io::Error::new(
            e.kind(),
            format!("overlay on {}: {what}: {e}", target.display()),
        )),
    }
}

enum NewApiError {
    Unsupported,
    Io(String, io::Error),
}

fn mount_new_api(o: &Overlay<'_>, target: &Path) -> Result<(), NewApiError> {
    let fs = match fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOSYS) | Err(rustix::io::Errno::PERM) => {
            return Err(NewApiError::Unsupported)
        }
        Err(e) => return Err(NewApiError::Io("fsopen".into(), e.into())),
    };
    let io_err = |what: String| move |e: rustix::io::Errno| NewApiError::Io(what, e.into());
    for (i, lower) in o.lowers.iter().enumerate() {
        match fsconfig_set_string(fs.as_fd(), "lowerdir+", lower.as_path()) {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL) if i == 0 => return Err(NewApiError::Unsupported),
            Err(e) => {
                return Err(NewApiError::Io(
                    format!("lower {} ({})", i + 1, lower.display()),
                    e.into(),
                ))
            }
        }
    }
    if let Some((upper, work)) = o.upper {
        fsconfig_set_string(fs.as_fd(), "upperdir", upper)
            .map_err(io_err(format!("upperdir {}", upper.display())))?;
        fsconfig_set_string(fs.as_fd(), "workdir", work)
            .map_err(io_err(format!("workdir {}", work.display())))?;
        if o.volatile {
            fsconfig_set_flag(fs.as_fd(), "volatile").map_err(io_err("volatile".into()))?;
        }
    }
    fsconfig_create(fs.as_fd()).map_err(io_err(format!(
        "create ({} lowers, upper {})",
        o.lowers.len(),
        o.upper.is_some()
    )))?;
    let mut attrs = MountAttrFlags::empty();
    if o.readonly {
        attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
    }
    if o.nodev {
        attrs |= MountAttrFlags::MOUNT_ATTR_NODEV;
    }
    let mnt = fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(io_err("fsmount".into()))?;
    move_mount(
        mnt.as_fd(),
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(io_err("move_mount".into()))
}

fn mount_legacy(o: &Overlay<'_>, target: &Path) -> io::Result<()> {
    use nix::mount::{mount, MsFlags};
    let lowers: Vec<String> = o.lowers.iter().map(|l| escape(l)).collect();
    let mut opts = format!("lowerdir={}", lowers.join(":"));
    if let Some((upper, work)) = o.upper {
        opts.push_str(&format!(
            ",upperdir={},workdir={}",
            escape(upper),
            escape(work)
        ));
        if o.volatile {
            opts.push_str(",volatile");
        }
    }
    if opts.len() > MAX_LEGACY_OPTIONS {
        return Err(io::Error::other(format!(
            "overlay on {}: {} layers do not fit in one page of mount options on this kernel \
             (Linux 6.8 or later mounts any depth)",
            target.display(),
            o.lowers.len()
        )));
    }
    let mut flags = MsFlags::empty();
    if o.readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    if o.nodev {
        flags |= MsFlags::MS_NODEV;
    }
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        flags,
        Some(opts.as_str()),
    )
    .map_err(io::Error::from)
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("overlay on {} ({opts}): {e}", target.display()),
        )
    })
}

/// overlayfs splits its options on `,` and lowerdir on `:`; backslash escapes them.
fn escape(p: &Path) -> String {
    p.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        nix::unistd::Uid::effective().is_root()
    }

    /// Runs `f` in a private mount namespace on its own thread, so nothing reaches the host's
    /// mount table even if the test fails half way.
    fn in_private_mount_ns(f: impl FnOnce() + Send + 'static) {
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .unwrap();
            f()
        })
        .join()
        .unwrap();
    }

    /// 200 layers with long paths: far past one page of legacy options.
    #[test]
    fn a_deep_stack_mounts_and_the_topmost_layer_wins() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        in_private_mount_ns(move || {
            let mut lowers = Vec::new();
            for i in 0..200 {
                let d = base.join(format!("{:0>64}/fs", i));
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join(format!("only-{i}")), "x").unwrap();
                std::fs::write(d.join("shared"), format!("{i}")).unwrap();
                lowers.push(d);
            }
            // Topmost first: layer 199 is on top.
            lowers.reverse();
            let (upper, work, merged) = (base.join("u"), base.join("w"), base.join("m"));
            for d in [&upper, &work, &merged] {
                std::fs::create_dir(d).unwrap();
            }
            let o = Overlay {
                lowers: &lowers,
                upper: Some((&upper, &work)),
                volatile: true,
                readonly: false,
                nodev: true,
            };
            mount_overlay(&o, &merged).unwrap();
            assert_eq!(
                std::fs::read_to_string(merged.join("shared")).unwrap(),
                "199"
            );
            assert!(merged.join("only-0").exists() && merged.join("only-150").exists());
            std::fs::write(merged.join("new"), "y").unwrap();
            assert!(upper.join("new").exists());
            nix::mount::umount(&merged).unwrap();
        });
    }

    #[test]
    fn a_read_only_stack_refuses_writes() {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        in_private_mount_ns(move || {
            let lowers = vec![base.join("a"), base.join("b")];
            for l in &lowers {
                std::fs::create_dir(l).unwrap();
            }
            std::fs::write(lowers[1].join("f"), "b").unwrap();
            let merged = base.join("m");
            std::fs::create_dir(&merged).unwrap();
            let o = Overlay {
                lowers: &lowers,
                upper: None,
                volatile: false,
                readonly: true,
                nodev: true,
            };
            mount_overlay(&o, &merged).unwrap();
            assert_eq!(std::fs::read_to_string(merged.join("f")).unwrap(), "b");
            let err = std::fs::write(merged.join("g"), "x").unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EROFS));
            nix::mount::umount(&merged).unwrap();
        });
    }

    #[test]
    fn legacy_options_escape_separators() {
        assert_eq!(escape(Path::new("/a:b,c\\d")), "/a\\:b\\,c\\\\d");
        assert_eq!(escape(Path::new("/plain/dir")), "/plain/dir");
    }

    #[test]
    fn legacy_options_that_do_not_fit_are_refused_by_name() {
        let lowers: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/nonexistent/{:0>64}/fs", i)))
            .collect();
        let o = Overlay {
            lowers: &lowers,
            upper: None,
            volatile: false,
            readonly: true,
            nodev: false,
        };
        let err = mount_legacy(&o, Path::new("/nonexistent-target")).unwrap_err();
        assert!(err.to_string().contains("100 layers do not fit"), "{err}");
    }
}
