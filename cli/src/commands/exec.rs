//! `kiln exec`

use std::os::fd::AsRawFd;
use std::process::ExitCode;

use kiln_engine::containers::{ExecOptions, ExecStdio};
use kiln_engine::{Engine, Error};
use kiln_executor::spec::StdioSpec;

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
    let engine = Engine::new(&globals.root);
    let options = ExecOptions {
        cmd: args.command.clone(),
        env: args.env.clone(),
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        tty: args.tty,
    };
    let stdio = ExecStdio {
        stdin: if args.interactive && !args.tty {
            StdioSpec::Inherit
        } else {
            StdioSpec::Null
        },
        stdout: StdioSpec::Inherit,
        stderr: StdioSpec::Inherit,
    };
    let forward = SignalForwarder::install();
    let running = match engine.exec_in_container(&args.container, &options, stdio) {
        Ok(r) => r,
        Err(Error::Start { code, message }) => {
            eprintln!("kiln: error: {message}");
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
        Err(e) => return Err(e.into()),
    };
    let master = running.pty_master.as_ref().map(|m| m.as_raw_fd());
    forward.target(
        running.pid,
        master.map(|m| {
            Box::new(move || kiln_executor::pty::copy_winsize(0, m)) as Box<dyn Fn() + Send>
        }),
    );
    if let Some(m) = running.pty_master.as_ref() {
        attach_pty(m, args.interactive);
    }
    let code = running.wait()?;
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}
