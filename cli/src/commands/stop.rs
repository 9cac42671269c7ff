//! `kiln stop` and `kiln kill`

use std::process::ExitCode;
use std::time::Duration;

use kiln_engine::containers::config::parse_signal;
use kiln_engine::Engine;

use crate::Globals;

/// Flags of `kiln stop`.
#[derive(Debug, clap::Args)]
pub struct StopArgs {
    /// Seconds to wait after the stop signal before killing (default: the container's
    /// --stop-timeout, else 10).
    #[arg(short, long)]
    time: Option<u64>,
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

/// Sends the stop signal (image StopSignal, else SIGTERM), then SIGKILL after the grace time.
pub fn stop(globals: &Globals, args: StopArgs) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(&globals.root);
    engine.containers()?;
    let mut code = ExitCode::SUCCESS;
    for c in &args.containers {
        match engine.stop_container(c, args.time.map(Duration::from_secs)) {
            Ok(()) => println!("{c}"),
            Err(e) => {
                eprintln!("kiln: error: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

/// Sends a signal to running containers.
pub fn kill(globals: &Globals, args: KillArgs) -> anyhow::Result<ExitCode> {
    let engine = Engine::new(&globals.root);
    engine.containers()?;
    let sig = parse_signal(&args.signal)?;
    let mut code = ExitCode::SUCCESS;
    for c in &args.containers {
        match engine.kill_container(c, sig) {
            Ok(()) => println!("{c}"),
            Err(e) => {
                eprintln!("kiln: error: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}
