//! `kiln version`

use std::process::ExitCode;

use kiln_solver::frontend::Platform;

use crate::Globals;

/// Flags of `kiln version`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints the version and the platform this kiln builds for.
pub fn run(globals: &Globals, _args: Args) -> anyhow::Result<ExitCode> {
    println!("kiln version {}", env!("CARGO_PKG_VERSION"));
    println!("platform: {}", Platform::host());
    println!("root: {}", globals.root.display());
    Ok(ExitCode::SUCCESS)
}
