//! RUN: a process in the sandbox on an overlay of the base's snapshots,
//! whose upper dir becomes the step's layer.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use kiln_executor::spec::{ContainerSpec, NetworkMode as RtNetwork, Rootfs, StdioSpec};

use super::mounts::StepMounts;
use super::{fs_steps, LocalWorker, Output, Step, WorkerError};
use crate::graph::VertexId;
use crate::op::{ExecOp, NetworkMode, SecurityMode};

/// Lines of a failed step's output quoted in its error.
const TAIL_LINES: usize = 10;

pub(super) fn run(
    w: &LocalWorker,
    id: VertexId,
    exec: &ExecOp,
    inputs: &[Output],
) -> Result<Output, WorkerError> {
    let base = fs_steps(&inputs[0])?;
    let rootfs_id = w.next_id(id);
    let (rootfs, upper) = prepare_rootfs(w, &rootfs_id, base)?;
    let stubs = mount_stubs(&rootfs, exec);
    let result = run_in(w, id, &rootfs_id, rootfs, exec, inputs);
    match result {
        Ok(()) => {
            remove_stubs(&upper, &stubs);
            let mut steps = base.to_vec();
            steps.push(w.commit_upper(&rootfs_id, &upper, base)?);
            Ok(Output::Fs(steps))
        }
        Err(e) => {
            let _ = w.store.remove_rootfs(&rootfs_id);
            Err(e)
        }
    }
}

/// Files the runtime writes or mounts over (generated /etc files, mount
/// targets) that the base does not have: the runtime creates them as empty
/// stubs in the upper dir, and, as BuildKit, the layer must not keep them.
fn mount_stubs(rootfs: &Rootfs, exec: &ExecOp) -> Vec<String> {
    let Rootfs::Overlay { lowers, .. } = rootfs else {
        return Vec::new();
    };
    let mut targets: Vec<String> = ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    targets.extend(
        exec.mounts
            .iter()
            .filter(|m| !m.target.is_empty())
            .map(|m| m.target.clone()),
    );
    targets
        .into_iter()
        .map(|t| t.trim_start_matches('/').to_string())
        .filter(|rel| {
            // An existence check only, in kiln's own snapshot dirs.
            !rel.is_empty()
                && !lowers
                    .iter()
                    .any(|l| l.join(rel).symlink_metadata().is_ok())
        })
        .collect()
}

/// Removes the stubs `mount_stubs` listed when the step left them empty. A
/// path is only touched through real directories of the upper dir: a
/// symlink the step planted (`/etc -> /`) is never followed to the host.
fn remove_stubs(upper: &Path, stubs: &[String]) {
    for rel in stubs {
        let mut dir = upper.to_path_buf();
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let Some((last, parents)) = parts.split_last() else {
            continue;
        };
        let mut real_dirs = true;
        for p in parents {
            dir.push(p);
            if !dir.symlink_metadata().is_ok_and(|m| m.file_type().is_dir()) {
                real_dirs = false;
                break;
            }
        }
        if !real_dirs {
            continue;
        }
        let path = dir.join(last);
        match path.symlink_metadata() {
            Ok(m) if m.file_type().is_file() && m.len() == 0 => {
                let _ = std::fs::remove_file(&path);
            }
            Ok(m) if m.file_type().is_dir() => {
                // Only removes it when empty.
                let _ = std::fs::remove_dir(&path);
            }
            _ => {}
        }
    }
}

/// A fresh upper/work pair over the base's snapshots, leased in the store.
pub(super) fn prepare_rootfs(
    w: &LocalWorker,
    rootfs_id: &str,
    base: &[Step],
) -> Result<(Rootfs, PathBuf), WorkerError> {
    let mut lowers = w.lower_dirs(base)?;
    let dir = w.store.snapshots().rootfs_dir(rootfs_id)?;
    let upper = dir.join("upper");
    let work = dir.join("work");
    std::fs::create_dir_all(&upper)?;
    std::fs::create_dir_all(&work)?;
    if lowers.is_empty() {
        // overlayfs needs a lower dir; FROM scratch gets an empty one.
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty)?;
        lowers.push(empty);
    }
    Ok((
        Rootfs::Overlay {
            lowers,
            upper: upper.clone(),
            work,
        },
        upper,
    ))
}

fn run_in(
    w: &LocalWorker,
    id: VertexId,
    rootfs_id: &str,
    rootfs: Rootfs,
    exec: &ExecOp,
    inputs: &[Output],
) -> Result<(), WorkerError> {
    let state_dir = w.store.step_state_dir(rootfs_id);
    let mounts = StepMounts::prepare(w, &state_dir, exec, inputs)?;
    let mut spec = ContainerSpec::new(
        rootfs_id,
        rootfs,
        exec.args.clone(),
        state_dir.join("container"),
    );
    spec.hostname = "buildkitsandbox".into();
    let mut env = exec.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={}", kiln_executor::spec::DEFAULT_PATH));
    }
    env.extend(mounts.secret_env.iter().cloned());
    spec.process.set_env(Some(env));
    spec.process.set_cwd(PathBuf::from(&exec.cwd));
    if !exec.user.is_empty() {
        let mut user = spec.process.user().clone();
        user.set_username(Some(exec.user.clone()));
        spec.process.set_user(user);
    }
    spec.process
        .set_no_new_privileges(Some(w.options.no_new_privileges));
    spec.mounts = mounts.specs.clone();
    spec.network.mode = match exec.network {
        NetworkMode::None => RtNetwork::None,
        NetworkMode::Host => RtNetwork::Host,
        NetworkMode::Default => RtNetwork::Default,
    };
    if exec.security == SecurityMode::Insecure {
        return Err(WorkerError::Other(
            "RUN --security=insecure needs the security.insecure entitlement, which kiln does not grant".into(),
        ));
    }

    let (reader, writer) =
        nix::unistd::pipe().map_err(|e| WorkerError::Other(format!("pipe: {e}")))?;
    let writer2: OwnedFd = writer.try_clone()?;
    spec.stdout = StdioSpec::Fd(writer);
    spec.stderr = StdioSpec::Fd(writer2);
    spec.stdin = StdioSpec::Null;

    let tail = std::thread::scope(|s| -> Result<(Vec<String>, i32), WorkerError> {
        let pump = s.spawn(move || pump_output(w, id, reader));
        // `spec` owns the pipe's write ends: once the container has exited and
        // the spec is dropped, the reader sees end-of-file.
        let code = kiln_executor::launch::run(spec);
        let tail = pump.join().unwrap_or_default();
        Ok((tail, code?))
    });
    mounts.release();
    let (tail, code) = tail?;
    if code != 0 {
        let mut command = exec.args.join(" ");
        if !tail.is_empty() {
            command = format!("{command}\" (last output lines:\n{})\n\"", tail.join("\n"));
        }
        return Err(WorkerError::ExitCode { command, code });
    }
    Ok(())
}

/// Streams the step's output to progress; returns the last lines.
fn pump_output(w: &LocalWorker, id: VertexId, reader: OwnedFd) -> Vec<String> {
    let mut file = std::fs::File::from(reader);
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    loop {
        match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                w.log(id, 1, buf[..n].to_vec());
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 64 * 1024 {
                    tail.drain(..tail.len() - 16 * 1024);
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&tail);
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].to_vec()
}
