//! `kiln stop` and `kiln kill`

use std::process::ExitCode;
use std::time::Duration;

use kiln_executor::state::Store;
use nix::sys::signal::Signal;

use crate::commands::container::{is_running, parse_signal, wait_exited};
use crate::Globals;

/// Flags of `kiln stop`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait after the stop signal before killing.
    #[arg(short, long, default_value_t = 10)]
    time: u64,
    /// Containers (names or ids).
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Flags of `kiln kill`.
#[derive(Debug, clap::Args)]
pub struct KillArgs {
    /// Signal to send.
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    /// Containers (names or ids).
    #[arg(required = true)]
    containers: Vec<String>,
}

fn send(pid: Option<i32>, sig: Signal) {
    if let Some(p) = pid {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), sig);
    }
}

/// Sends the stop signal (image StopSignal, else SIGTERM), then SIGKILL after the grace time.
pub fn stop(globals: &Globals, args: StopArgs) -> anyhow::Result<ExitCode> {
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
            send(
                rec.pid,
                parse_signal(&rec.stop_signal).unwrap_or(Signal::SIGTERM),
            );
            if !wait_exited(&store, &rec.id, Duration::from_secs(args.time)) {
                send(rec.pid, Signal::SIGKILL);
                wait_exited(&store, &rec.id, Duration::from_secs(10));
            }
        }
        println!("{c}");
    }
    Ok(code)
}

/// Sends a signal to running containers.
pub fn kill(globals: &Globals, args: KillArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open(&globals.root)?;
    let sig = parse_signal(&args.signal)?;
    let mut code = ExitCode::SUCCESS;
    for c in &args.containers {
        match store.find(c) {
            Ok(rec) if is_running(&rec) => {
                send(rec.pid, sig);
                println!("{c}");
            }
            Ok(_) => {
                eprintln!("kiln: error: container {c} is not running");
                code = ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("kiln: error: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}
