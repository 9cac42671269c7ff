//! `kiln completion SHELL`

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// Flags of `kiln completion`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell to print a completion script for.
    shell: Shell,
}

/// Writes the completion script for the chosen shell to stdout.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "kiln", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
