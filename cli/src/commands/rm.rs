//! `kiln rm`

use std::process::ExitCode;
use std::time::Duration;

use kiln_executor::state::Store;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::commands::container::{is_running, wait_exited};
use crate::Globals;

/// Flags of `kiln rm`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Kill a running container first.
    #[arg(short, long)]
    force: bool,
    /// Containers (names or ids).
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Removes containers (their state, upper layer and cgroups).
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let store = Store::open(&globals.root)?;
    let mut code = ExitCode::SUCCESS;
    for c in &args.containers {
        let rec = match store.find(c) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("kiln: error: {e}");
                code = ExitCode::FAILURE;
                continue;
            }
        };
        if is_running(&rec) {
            if !args.force {
                eprintln!("kiln: error: container {c} is running: stop it first or use rm -f");
                code = ExitCode::FAILURE;
                continue;
            }
            if let Some(p) = rec.pid {
                let _ = nix::sys::signal::kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            if !wait_exited(&store, &rec.id, Duration::from_secs(5)) {
                // The supervisor hangs: killing it takes the container (PDEATHSIG) and its ports along.
                if let Some(s) = rec.supervisor {
                    let _ = nix::sys::signal::kill(Pid::from_raw(s), Signal::SIGKILL);
                }
                wait_exited(&store, &rec.id, Duration::from_secs(5));
            }
            // The supervisor exits right after recording the exit; its
            // listening sockets (published ports) close with it.
            if let Some(s) = rec.supervisor {
                for _ in 0..250 {
                    if !kiln_executor::state::process_alive(s, rec.supervisor_start) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        match store.remove(&rec.id) {
            Ok(()) => println!("{c}"),
            Err(e) => {
                eprintln!("kiln: error: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}
