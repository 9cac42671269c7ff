//! COPY/ADD/WORKDIR: file actions applied to an overlay of the base's
//! snapshots, in a private mount namespace so no mount outlives the step,
//! whose upper dir becomes the step's layer.

use super::exec::prepare_rootfs;
use super::{fs_steps, LocalWorker, Output, WorkerError};
use crate::graph::VertexId;
use crate::op::FileOp;

pub(super) fn run(w: &LocalWorker, id: VertexId, op: &FileOp, inputs: &[Output]) -> Result<Output, WorkerError> {
    // A file op with no base input (heredoc scripts) starts from scratch.
    let base = match inputs.first() {
        Some(o) => fs_steps(o)?.to_vec(),
        None => Vec::new(),
    };
    let rootfs_id = w.next_id(id);
    let (rootfs, upper) = prepare_rootfs(w, &rootfs_id, &base)?;
    let result = apply_in_namespace(w, &rootfs_id, rootfs, op, inputs);
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

fn apply_in_namespace(
    _w: &LocalWorker,
    _rootfs_id: &str,
    _rootfs: kiln_executor::spec::Rootfs,
    _op: &FileOp,
    _inputs: &[Output],
) -> Result<(), WorkerError> {
    Err(WorkerError::File("file operations are not wired yet".into()))
}
