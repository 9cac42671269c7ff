//! The extra mounts of a RUN step (`RUN --mount=...`), made ready on the
//! host side: bind sources resolved inside their root, read-only views of
//! other stages, throwaway upper dirs for `rw` binds, cache directories,
//! secrets. Everything made here is undone by [`StepMounts::release`].

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use kiln_executor::overlay::{mount_overlay, Overlay};
use kiln_executor::spec::{CacheSharing as RtSharing, MountSpec};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::{LocalWorker, Output, WorkerError};
use crate::fileop::{self, CopySource, FileOpEnv};
use crate::op::{CacheSharing, CopyAction, ExecOp, FileAction, MountKind};

/// Which cache directory a cache mount uses: its id, or, when it starts
/// from a subpath of another filesystem, the id and that path (BuildKit's
/// getRefCacheDir keys such a cache by both).
fn cache_key(id: &str, from: Option<&(usize, String)>) -> String {
    match from {
        Some((_, source)) if !source.trim_matches('/').is_empty() => {
            format!("{id}:/{}", source.trim_start_matches('/'))
        }
        _ => id.to_string(),
    }
}

pub(super) struct StepMounts {
    /// What the executor mounts in the container.
    pub specs: Vec<MountSpec>,
    /// `NAME=value` for secrets exposed as variables.
    pub secret_env: Vec<String>,
    /// Overlay views mounted on the host for this step, to unmount after it.
    views: Vec<PathBuf>,
    scratch: PathBuf,
}

impl StepMounts {
    pub fn prepare(
        w: &LocalWorker,
        state_dir: &Path,
        exec: &ExecOp,
        inputs: &[Output],
    ) -> Result<Self, WorkerError> {
        let mut out = StepMounts {
            specs: Vec::new(),
            secret_env: Vec::new(),
            views: Vec::new(),
            scratch: state_dir.join("mounts"),
        };
        let result = out.fill(w, exec, inputs);
        if let Err(e) = result {
            out.release();
            return Err(e);
        }
        Ok(out)
    }

    fn fill(
        &mut self,
        w: &LocalWorker,
        exec: &ExecOp,
        inputs: &[Output],
    ) -> Result<(), WorkerError> {
        for (n, m) in exec.mounts.iter().enumerate() {
            let destination = PathBuf::from(&m.target);
            match &m.kind {
                MountKind::Bind {
                    input,
                    source,
                    readonly,
                } => {
                    let root = self.input_root(w, n, &inputs[*input])?;
                    let resolved = resolve_inside(&root, source)?;
                    let source = if *readonly {
                        resolved
                    } else {
                        // Writes go to a throwaway upper dir, never to the source
                        // (FACTS.md: buildah 1.28 gets this wrong).
                        self.overlay_view(n, &[resolved], true)?
                    };
                    self.specs.push(MountSpec::Bind {
                        source,
                        destination,
                        readonly: *readonly,
                    });
                }
                MountKind::Cache {
                    id,
                    sharing,
                    readonly,
                    from,
                    mode,
                    uid,
                    gid,
                } => {
                    let dir = w.store.root().join("cache-mounts").join(
                        &blake3::hash(cache_key(id, from.as_ref()).as_bytes()).to_hex()[..32],
                    );
                    if !dir.exists() {
                        self.create_cache_dir(
                            w,
                            n,
                            &dir,
                            inputs,
                            from.as_ref(),
                            *mode,
                            *uid,
                            *gid,
                        )?;
                    }
                    self.specs.push(MountSpec::Cache {
                        source: dir,
                        destination,
                        sharing: match sharing {
                            CacheSharing::Shared => RtSharing::Shared,
                            CacheSharing::Private => RtSharing::Private,
                            CacheSharing::Locked => RtSharing::Locked,
                        },
                        readonly: *readonly,
                    });
                }
                MountKind::Tmpfs { size } => self.specs.push(MountSpec::Tmpfs {
                    destination,
                    size: *size,
                }),
                MountKind::Secret {
                    id,
                    env,
                    required,
                    mode,
                    uid,
                    gid,
                } => {
                    let Some(data) = w.options.secrets.get(id) else {
                        if *required {
                            return Err(WorkerError::MissingSecret(id.clone()));
                        }
                        continue;
                    };
                    if let Some(name) = env {
                        self.secret_env
                            .push(format!("{name}={}", String::from_utf8_lossy(data)));
                    }
                    if !m.target.is_empty() {
                        self.specs.push(MountSpec::Secret {
                            data: data.clone(),
                            destination,
                            mode: *mode,
                            uid: *uid,
                            gid: *gid,
                        });
                    }
                }
                MountKind::Ssh { id, required, .. } => match w.options.ssh.get(id) {
                    Some(socket) => self.specs.push(MountSpec::SshAgent {
                        socket: socket.clone(),
                        destination,
                    }),
                    None if *required => {
                        return Err(WorkerError::Other(format!(
                            "ssh agent {id} not found: pass --ssh {id}"
                        )))
                    }
                    None => {}
                },
            }
        }
        Ok(())
    }

    /// Makes a cache mount's directory: empty, or (`from=`) holding a copy
    /// of that input's `source`, as BuildKit starts such a cache from its
    /// base. Made aside and renamed into place, so no user ever sees a half
    /// seeded cache; a concurrent step that got there first wins.
    #[allow(clippy::too_many_arguments)]
    fn create_cache_dir(
        &mut self,
        w: &LocalWorker,
        n: usize,
        dir: &Path,
        inputs: &[Output],
        from: Option<&(usize, String)>,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(), WorkerError> {
        let Some(parent) = dir.parent() else {
            return Err(WorkerError::Other(format!(
                "no parent for {}",
                dir.display()
            )));
        };
        std::fs::create_dir_all(parent)?;
        static SEEDING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tmp = parent.join(format!(
            ".seeding-{}-{}",
            std::process::id(),
            SEEDING.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::create_dir(&tmp)?;
        let seeded = self.seed_cache_dir(w, n, &tmp, inputs, from, mode, uid, gid);
        if let Err(e) = seeded {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if let Err(e) = std::fs::rename(&tmp, dir) {
            let _ = std::fs::remove_dir_all(&tmp);
            if !dir.exists() {
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Gives a new cache directory its mode and owner, and the copy of
    /// `from` it starts with.
    #[allow(clippy::too_many_arguments)]
    fn seed_cache_dir(
        &mut self,
        w: &LocalWorker,
        n: usize,
        tmp: &Path,
        inputs: &[Output],
        from: Option<&(usize, String)>,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<(), WorkerError> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(mode))?;
        std::os::unix::fs::chown(tmp, Some(uid), Some(gid))?;
        let Some((input, source)) = from else {
            return Ok(());
        };
        let input = inputs.get(*input).ok_or_else(|| {
            WorkerError::Other(format!("cache mount from input {input} is missing"))
        })?;
        let root = self.input_root(w, n, input)?;
        let ignore = w.options.ignore.as_ref();
        let sources = [
            CopySource::rootfs(tmp),
            match input {
                Output::Context => CopySource::context(&root, ignore),
                Output::Fs(_) | Output::Dir(_) => CopySource::rootfs(&root),
            },
        ];
        let env = FileOpEnv {
            dest_root: tmp,
            inputs: &sources,
            epoch: None,
        };
        let copy = FileAction::Copy(CopyAction {
            input: 1,
            sources: vec![format!("/{}", source.trim_start_matches('/'))],
            dest: "/".into(),
            owner: None,
            mode: None,
            exclude: Vec::new(),
            parents: false,
            unpack_archives: false,
            follow_symlinks: true,
        });
        fileop::apply(&env, &[copy])
            .map_err(|e| WorkerError::Other(format!("seeding cache mount from {source}: {e}")))
    }

    /// The directory a bind mount reads from: the context, or a read-only
    /// view of another stage's layers.
    fn input_root(
        &mut self,
        w: &LocalWorker,
        n: usize,
        input: &Output,
    ) -> Result<PathBuf, WorkerError> {
        match input {
            Output::Context => Ok(w.options.context.clone()),
            Output::Dir(dir) => Ok(dir.clone()),
            Output::Fs(steps) => {
                let lowers = w.lower_dirs(steps)?;
                if lowers.is_empty() {
                    let empty = self.scratch.join(format!("empty-{n}"));
                    std::fs::create_dir_all(&empty)?;
                    return Ok(empty);
                }
                self.overlay_view(n, &lowers, false)
            }
        }
    }

    /// Mounts an overlay of `lowers` (topmost first) on the host, writable
    /// into a scratch upper dir when `writable`.
    fn overlay_view(
        &mut self,
        n: usize,
        lowers: &[PathBuf],
        writable: bool,
    ) -> Result<PathBuf, WorkerError> {
        let base = self.scratch.join(format!("view-{n}-{}", self.views.len()));
        let merged = base.join("merged");
        std::fs::create_dir_all(&merged)?;
        let (upper, work) = (base.join("upper"), base.join("work"));
        if writable {
            std::fs::create_dir_all(&upper)?;
            std::fs::create_dir_all(&work)?;
        } else if lowers.len() == 1 {
            // overlayfs wants two lowers without an upper dir; a bind will do.
            mount(
                Some(&lowers[0]),
                &merged,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(|e| WorkerError::Other(format!("bind {}: {e}", lowers[0].display())))?;
            self.views.push(merged.clone());
            return Ok(merged);
        }
        let overlay = Overlay {
            lowers,
            upper: writable.then_some((upper.as_path(), work.as_path())),
            volatile: true,
            readonly: false,
            nodev: false,
        };
        mount_overlay(&overlay, &merged)
            .map_err(|e| WorkerError::Other(format!("overlay view for a RUN mount: {e}")))?;
        self.views.push(merged.clone());
        Ok(merged)
    }

    /// Unmounts every view and removes the scratch dirs.
    pub fn release(&self) {
        for v in self.views.iter().rev() {
            let _ = umount2(v, MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// `path` resolved inside `root` (symlinks included, none escaping it), as
/// the real absolute path of what it names.
fn resolve_inside(root: &Path, path: &str) -> Result<PathBuf, WorkerError> {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return Ok(root.to_path_buf());
    }
    let fd = kiln_executor::rootfs::open_path_in(root, Path::new(rel))?;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| WorkerError::Other(format!("resolving {path} in {}: {e}", root.display())))
}

#[cfg(test)]
mod tests {
    use super::cache_key;

    #[test]
    fn a_cache_started_from_a_subpath_is_its_own_cache() {
        assert_eq!(cache_key("go", None), "go");
        assert_eq!(cache_key("go", Some(&(1, "/".into()))), "go");
        assert_eq!(cache_key("go", Some(&(1, "seed".into()))), "go:/seed");
        assert_eq!(cache_key("go", Some(&(2, "/seed".into()))), "go:/seed");
    }
}
