//! COPY/ADD/WORKDIR: file actions applied to an overlay of the base's
//! snapshots, whose upper dir becomes the step's layer.
//!
//! The overlay (and read-only views of the stages copied from) are mounted
//! in a private mount namespace of a thread made for the step: when the
//! thread ends, the namespace and every mount in it go away, so a failed or
//! killed step can leave no mount behind on the host.

use std::path::{Path, PathBuf};

use kiln_executor::overlay::{mount_overlay, Overlay};
use kiln_executor::spec::Rootfs;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::exec::prepare_rootfs;
use super::{fs_steps, LocalWorker, Output, WorkerError};
use crate::fileop::{self, CopySource, FileOpEnv};
use crate::graph::VertexId;
use crate::op::FileOp;

pub(super) fn run(
    w: &LocalWorker,
    id: VertexId,
    op: &FileOp,
    inputs: &[Output],
) -> Result<Output, WorkerError> {
    // A file op with no base input (a heredoc script) starts from scratch.
    let base = match inputs.first() {
        Some(o) => fs_steps(o)?.to_vec(),
        None => Vec::new(),
    };
    let rootfs_id = w.next_id(id);
    let (rootfs, upper) = prepare_rootfs(w, &rootfs_id, &base)?;
    let scratch = w.store.step_state_dir(&rootfs_id);
    let result = std::thread::scope(|s| {
        s.spawn(|| apply_in_private_namespace(w, &scratch, &rootfs, op, inputs))
            .join()
            .unwrap_or_else(|_| Err(WorkerError::Other("the file operation panicked".into())))
    });
    let _ = std::fs::remove_dir_all(&scratch);
    match result {
        Ok(()) => {
            let mut steps = base.clone();
            steps.push(w.commit_upper(&rootfs_id, &upper, &base)?);
            Ok(Output::Fs(steps))
        }
        Err(e) => {
            let _ = w.store.remove_rootfs(&rootfs_id);
            Err(e)
        }
    }
}

/// Runs on a thread of its own, which this function moves into a new mount
/// namespace: never call it on a pooled thread.
fn apply_in_private_namespace(
    w: &LocalWorker,
    scratch: &Path,
    rootfs: &Rootfs,
    op: &FileOp,
    inputs: &[Output],
) -> Result<(), WorkerError> {
    let sys = |what: &str, e: nix::Error| WorkerError::Other(format!("{what}: {e}"));
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_FS)
        .map_err(|e| sys("unshare mount namespace", e))?;
    // Nothing mounted here may propagate back to the host's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| sys("make mounts private", e))?;

    let merged = scratch.join("merged");
    std::fs::create_dir_all(&merged)?;
    mount_rootfs(rootfs, &merged)?;

    let mut roots: Vec<(PathBuf, bool)> = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        match input {
            _ if i == 0 => roots.push((merged.clone(), false)),
            Output::Context => roots.push((w.options.context.clone(), true)),
            Output::Dir(dir) => roots.push((dir.clone(), false)),
            Output::Fs(steps) => {
                let view = scratch.join(format!("input-{i}"));
                std::fs::create_dir_all(&view)?;
                let lowers = w.lower_dirs(steps)?;
                match lowers.len() {
                    0 => {}
                    1 => mount(
                        Some(&lowers[0]),
                        &view,
                        None::<&str>,
                        MsFlags::MS_BIND,
                        None::<&str>,
                    )
                    .map_err(|e| sys("bind a source stage", e))?,
                    _ => {
                        let overlay = Overlay {
                            lowers: &lowers,
                            upper: None,
                            volatile: false,
                            readonly: true,
                            nodev: false,
                        };
                        mount_overlay(&overlay, &view)
                            .map_err(|e| WorkerError::Other(format!("mount a source stage: {e}")))?
                    }
                }
                roots.push((view, false));
            }
        }
    }
    let ignore = w.options.ignore.as_ref();
    let sources: Vec<CopySource<'_>> = roots
        .iter()
        .map(|(root, is_context)| {
            if *is_context {
                CopySource::context(root, ignore)
            } else {
                CopySource::rootfs(root)
            }
        })
        .collect();
    let env = FileOpEnv {
        dest_root: &merged,
        inputs: &sources,
        epoch: w.options.epoch,
    };
    fileop::apply(&env, &op.actions).map_err(|e| WorkerError::File(e.to_string()))
}

fn mount_rootfs(rootfs: &Rootfs, at: &Path) -> Result<(), WorkerError> {
    let Rootfs::Overlay {
        lowers,
        upper,
        work,
    } = rootfs
    else {
        return Err(WorkerError::Other(
            "file operations need an overlay rootfs".into(),
        ));
    };
    let overlay = Overlay {
        lowers,
        upper: Some((upper, work)),
        volatile: false,
        readonly: false,
        nodev: false,
    };
    mount_overlay(&overlay, at)
        .map_err(|e| WorkerError::Other(format!("mount the step's overlay: {e}")))
}
