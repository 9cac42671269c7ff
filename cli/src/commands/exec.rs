//! `kiln exec`

use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use kiln_executor::spec::StdioSpec;
use kiln_executor::state::Store;

use kiln_engine::containers::is_running;

use crate::commands::container::{attach_pty, SignalForwarder};
use crate::Globals;

/// Flags of `kiln exec`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep standard input open.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    tty: bool,
    /// Set an environment variable.
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// User: name|uid[:group|gid].
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory.
    #[arg(short, long)]
    workdir: Option<String>,
    /// Container name or id.
    container: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

/// Runs a command in a running container.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let store = Store::open(&globals.root)?;
    let rec = store.find(&args.container)?;
    let Some(pid) = rec.pid.filter(|_| is_running(&rec)) else {
        bail!("container {} is not running", args.container);
    };
    let mut env = rec.env.clone();
    for e in &args.env {
        kiln_executor::image::set_env(&mut env, e.clone());
    }
    let mut process = oci_spec::runtime::Process::default();
    process.set_args(Some(args.command.clone()));
    process.set_env(Some(env));
    process.set_cwd(PathBuf::from(
        args.workdir.clone().unwrap_or(rec.cwd.clone()),
    ));
    let mut user = oci_spec::runtime::User::default();
    user.set_username(Some(args.user.clone().unwrap_or(rec.user.clone())));
    process.set_user(user);
    process.set_terminal(Some(args.tty));
    process.set_no_new_privileges(Some(rec.no_new_privs));
    process.set_capabilities(None);
    process.set_rlimits(None);
    let mut caps = caps_from(&rec.caps);
    if caps.is_empty() && !rec.caps.is_empty() {
        caps = kiln_executor::caps::docker_default();
    }
    let spec = kiln_executor::launch::ExecSpec {
        process,
        capabilities: caps,
        seccomp: rec.seccomp,
        stdin: if args.interactive && !args.tty {
            StdioSpec::Inherit
        } else {
            StdioSpec::Null
        },
        stdout: StdioSpec::Inherit,
        stderr: StdioSpec::Inherit,
    };
    let forward = SignalForwarder::install();
    let running = match kiln_executor::launch::exec(&rec.id, pid, spec) {
        Ok(r) => r,
        Err(e) => {
            let code = match &e {
                kiln_executor::Error::Exec { code, .. } => *code as u8,
                _ => 125,
            };
            eprintln!("kiln: error: {e}");
            return Ok(ExitCode::from(code));
        }
    };
    forward.target(
        running.pid,
        running.pty_master.as_ref().map(|m| m.as_raw_fd()),
    );
    if let Some(m) = running.pty_master.as_ref() {
        attach_pty(m, args.interactive);
    }
    let code = running.wait()?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

fn caps_from(names: &[String]) -> caps_set::Set {
    names
        .iter()
        .filter_map(|n| kiln_executor::caps::parse_name(n).ok().flatten())
        .collect()
}

mod caps_set {
    /// The capability set type the executor uses.
    pub type Set = std::collections::HashSet<caps::Capability>;
}
