//! `kiln logs`

use std::process::ExitCode;

use kiln_engine::containers::LogsOptions;
use kiln_engine::Engine;

use crate::Globals;

/// Flags of `kiln logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep printing output as the container writes it.
    #[arg(short, long)]
    follow: bool,
    /// Container name or id.
    container: String,
}

/// Prints a detached container's output.
pub fn run(globals: &Globals, args: Args) -> anyhow::Result<ExitCode> {
    let options = LogsOptions {
        follow: args.follow,
    };
    Engine::new(&globals.root).container_logs(
        &args.container,
        options,
        &mut std::io::stdout().lock(),
    )?;
    Ok(ExitCode::SUCCESS)
}
