//! Running another program in a running container (`exec`): its namespaces, root, user,
//! environment, capabilities and seccomp, as the container's own process has them.

use std::path::PathBuf;

use kiln_executor::launch::{ExecSpec, Running};
use kiln_executor::spec::StdioSpec;

use super::{from_executor, is_running};
use crate::{Engine, Error, Result};

/// What to run (docker's `exec` flags and the API's exec create body).
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Program and arguments.
    pub cmd: Vec<String>,
    /// `K=V` added over the container's environment.
    pub env: Vec<String>,
    /// User (the container's when absent).
    pub user: Option<String>,
    /// Working directory (the container's when absent).
    pub workdir: Option<String>,
    /// A pseudo-terminal.
    pub tty: bool,
}

/// Where an exec's standard streams go.
#[derive(Debug)]
pub struct ExecStdio {
    /// Standard input.
    pub stdin: StdioSpec,
    /// Standard output.
    pub stdout: StdioSpec,
    /// Standard error.
    pub stderr: StdioSpec,
}

impl Engine {
    /// Starts `options.cmd` in a running container and returns it running: the caller waits
    /// for it (and must do so from the thread that called this: the executor ties the
    /// process's life to that thread).
    pub fn exec_in_container(
        &self,
        key: &str,
        options: &ExecOptions,
        stdio: ExecStdio,
    ) -> Result<Running> {
        if options.cmd.is_empty() {
            return Err(Error::invalid("No exec command specified"));
        }
        let store = self.containers()?;
        let rec = store.find(key).map_err(from_executor)?;
        if rec.status == kiln_executor::state::Status::Restarting && is_running(&rec) {
            return Err(Error::Conflict(format!(
                "Container {} is restarting, wait until the container is running",
                rec.id
            )));
        }
        let Some(pid) = rec.pid.filter(|_| is_running(&rec)) else {
            return Err(Error::Conflict(format!("container {key} is not running")));
        };
        let mut env = rec.env.clone();
        for e in &options.env {
            kiln_executor::image::set_env(&mut env, e.clone());
        }
        let mut process = oci_spec::runtime::Process::default();
        process.set_args(Some(options.cmd.clone()));
        process.set_env(Some(env));
        process.set_cwd(PathBuf::from(
            options
                .workdir
                .clone()
                .filter(|w| !w.is_empty())
                .unwrap_or(rec.cwd.clone()),
        ));
        let mut user = oci_spec::runtime::User::default();
        user.set_username(Some(
            options
                .user
                .clone()
                .filter(|u| !u.is_empty())
                .unwrap_or(rec.user.clone()),
        ));
        process.set_user(user);
        process.set_terminal(Some(options.tty));
        process.set_no_new_privileges(Some(rec.no_new_privs));
        process.set_capabilities(None);
        process.set_rlimits(None);
        let parsed: Vec<_> = rec
            .caps
            .iter()
            .filter_map(|n| kiln_executor::caps::parse_name(n).ok().flatten())
            .collect();
        let capabilities = if parsed.is_empty() && !rec.caps.is_empty() {
            kiln_executor::caps::docker_default()
        } else {
            parsed.into_iter().collect()
        };
        let spec = ExecSpec {
            process,
            capabilities,
            seccomp: rec.seccomp,
            stdin: stdio.stdin,
            stdout: stdio.stdout,
            stderr: stdio.stderr,
        };
        kiln_executor::launch::exec(&rec.id, pid, spec).map_err(|e| match e {
            kiln_executor::Error::Exec { code, message } => Error::Start { code, message },
            e => from_executor(e),
        })
    }
}
